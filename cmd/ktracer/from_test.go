package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Issue 12 item 5: --from is bounded and never blocks. /dev/zero grew to
// 2.3 GB; /dev/kmsg, which a kernel log reader should accept, never
// returned. The binary runs under a 30 s deadline; a hang fails the test.
func TestBootFromDevices(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "ktracer")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	run := func(args ...string) (string, int) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		out, err := cmd.CombinedOutput()
		if ctx.Err() != nil {
			t.Fatalf("%v did not return within 30 s", args)
		}
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		return string(out), code
	}
	out, code := run("boot", "--from", "/dev/zero")
	if code != 2 || !strings.Contains(out, "/dev/zero") || !strings.Contains(out, "character device") {
		t.Errorf("--from /dev/zero: exit %d, %q", code, out)
	}
	// /proc/kmsg is "regular" but blocks, and reading it is destructive.
	out, code = run("boot", "--from", "/proc/kmsg")
	if code != 2 || !strings.Contains(out, "/proc/kmsg") || !strings.Contains(out, "/proc or /sys") {
		t.Errorf("--from /proc/kmsg: exit %d, %q", code, out)
	}
	if f, err := os.Open("/dev/kmsg"); err == nil {
		f.Close()
		out, code = run("boot", "--from", "/dev/kmsg")
		if code == 2 || !strings.Contains(out, "findings:") {
			t.Errorf("--from /dev/kmsg: exit %d, %q", code, out)
		}
	} else {
		t.Logf("/dev/kmsg not readable here (%v): only /dev/zero checked", err)
	}
	// A file over the size cap is refused with its name.
	big := filepath.Join(t.TempDir(), "big.log")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(300 << 20); err != nil { // sparse: no disk used
		t.Fatal(err)
	}
	f.Close()
	out, code = run("boot", "--from", big)
	if code != 2 || !strings.Contains(out, big) || !strings.Contains(out, "MiB") {
		t.Errorf("--from a 300 MiB file: exit %d, %q", code, out)
	}
}
