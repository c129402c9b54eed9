package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Bad configuration: one line on stderr naming the flag, exit 2, and
// nothing attached (these are all checked before the tracer loads, so they
// behave the same with or without privileges or kernel support).
func TestBadConfiguration(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "ktracer")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"watch", "--output", "yaml"}, "ktracer: --output: unknown output format \"yaml\""},
		{[]string{"watch", "--fail-on", "fatal"}, "ktracer: --fail-on: unknown severity \"fatal\""},
		{[]string{"watch", "--slow", "-1s"}, "ktracer: --slow must be positive"},
		{[]string{"watch", "--methods", "uprobe"}, "ktracer: --methods: unknown attach method \"uprobe\""},
		{[]string{"daemon", "--log.format", "xml"}, "ktracer: --log.format: unknown log format \"xml\""},
		{[]string{"daemon", "--log.file", filepath.Join(notDir, "ktracer.log")}, "ktracer: --log.file: "},
		{[]string{"daemon", "--log.file", "/dev/null", "--state-dir", filepath.Join(notDir, "state")}, "ktracer: --state-dir: "},
		{[]string{"daemon", "--log.file", "/dev/null", "--root", notDir}, "ktracer: --root " + notDir + " is not an absolute path to a directory"},
		{[]string{"daemon", "--log.file", "/dev/null", "--state-dir", "var/lib/ktracer"}, "ktracer: --state-dir must be an absolute path"},
		{[]string{"check", "--output", "yaml"}, "ktracer"},
	} {
		cmd := exec.Command(bin, tc.args...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		err := cmd.Run()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 2 {
			t.Errorf("%v: err %v, want exit status 2", tc.args, err)
		}
		lines := strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n")
		if len(lines) != 1 || !strings.HasPrefix(lines[0], tc.want) {
			t.Errorf("%v: stderr %q, want one line starting %q", tc.args, stderr.String(), tc.want)
		}
	}
}
