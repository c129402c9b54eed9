package main

import (
	"bytes"
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/common/version"
)

// The Makefile sets these with -ldflags -X; ktracer version and
// ktracer_build_info must both show them.
func TestVersionFromLdflags(t *testing.T) {
	oldV, oldR := version.Version, version.Revision
	t.Cleanup(func() { version.Version, version.Revision = oldV, oldR })
	version.Version, version.Revision = "v1.4.2", "0123456789abcdef"

	b := buildInfo()
	if b.Version != "v1.4.2" || b.Revision != "0123456789abcdef" || b.GoOS != runtime.GOOS || b.GoArch != runtime.GOARCH {
		t.Errorf("buildInfo() = %+v", b)
	}
	var out bytes.Buffer
	cmd := newVersionCmd()
	cmd.SetOut(&out)
	cmd.SetArgs(nil)
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ktracer v1.4.2", "revision 0123456789abcdef", runtime.GOOS + "/" + runtime.GOARCH} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("ktracer version = %q, missing %q", out.String(), want)
		}
	}
}
