package main

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// unpack extracts a boot/testdata capture (a tree rooted like /, the log
// as /dmesg) into a temporary directory.
func unpack(t *testing.T, name string) string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "boot", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return dir
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		p := filepath.Join(dir, filepath.Clean("/"+h.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// The wiring of --expect and boot diff, on real captures.
func TestBootExpectAndDiffCLI(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "ktracer")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	run := func(args ...string) (string, int) {
		out, err := exec.Command(bin, args...).CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	typo, right := unpack(t, "vm-6.1-smp4-mxcpus.tgz"), unpack(t, "vm-6.1-smp4-maxcpus.tgz")
	out, code := run("boot", "--from", filepath.Join(typo, "dmesg"), "--root", typo, "--expect", "cpus=2")
	if code != 1 || !strings.Contains(out, "expect cpus=2: FAILED (cpus 4") || !strings.Contains(out, "did you mean maxcpus?") {
		t.Errorf("typo: exit %d\n%s", code, out)
	}
	out, code = run("boot", "--from", filepath.Join(right, "dmesg"), "--root", right, "--expect", "cpus=2")
	if code != 0 || !strings.Contains(out, "expect cpus=2: held (cpus 2") {
		t.Errorf("maxcpus: exit %d\n%s", code, out)
	}
	if out, code = run("boot", "--from", filepath.Join(right, "dmesg"), "--expect", "cpus=two"); code != 2 || !strings.Contains(out, "--expect") {
		t.Errorf("bad --expect: exit %d, %q", code, out)
	}

	a, b := unpack(t, "vm-6.1-trace-initcall_debug-mxcpus.tgz"), unpack(t, "vm-6.12-trace-initcall_debug-mxcpus.tgz")
	arg := func(d string) string {
		return filepath.Join(d, "dmesg") + "," + filepath.Join(d, "sys", "kernel", "tracing", "trace")
	}
	out, code = run("boot", "diff", "--format", "json", arg(a), arg(b))
	var d struct {
		Old, New struct {
			Initcalls int    `json:"initcalls"`
			Source    string `json:"source"`
		}
		LevelChanged []struct{} `json:"level_changed"`
	}
	if err := json.Unmarshal([]byte(out), &d); code != 0 || err != nil || d.Old.Initcalls != 575 || d.New.Initcalls != 653 || d.New.Source != "trace" || len(d.LevelChanged) == 0 {
		t.Errorf("boot diff json: exit %d, %v, %+v", code, err, d)
	}
	out, code = run("boot", "diff", filepath.Join(typo, "dmesg"), filepath.Join(right, "dmesg"))
	if code != 0 || !strings.Contains(out, "- mxcpus=2   WARNING unknown-boot-param (did you mean maxcpus?)") || !strings.Contains(out, "+ maxcpus=2") {
		t.Errorf("boot diff text: exit %d\n%s", code, out)
	}
	if out, code = run("boot", "diff", arg(a)); code != 2 {
		t.Errorf("one argument: exit %d, %q", code, out)
	}
}
