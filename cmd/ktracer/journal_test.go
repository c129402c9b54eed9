package main

import (
	"archive/tar"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Issue 12 item 13: `ktracer boot --boot -1` reads a previous boot's
// kernel log from the systemd journal through journalctl (no cgo). Here
// journalctl is a stand-in on PATH that checks its arguments and prints
// the repo's initcall_debug capture as journalctl -k -o short-monotonic
// prints it; the real journalctl runs in the systemd VM test.
func TestBootFromJournal(t *testing.T) {
	dmesg := fixtureDmesg(t, "../../boot/testdata/vm-6.1-initcall_debug-oops.tgz")
	journal := regexp.MustCompile(`(?m)^(\[\s*\d+\.\d+\]) ?`).ReplaceAllString(dmesg, "$1 debian kernel: ")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "journal.txt"), []byte(journal), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `#!/bin/sh
[ "$*" = "-k -b -1 -o short-monotonic --no-pager -q" ] || { echo "journalctl: unexpected arguments: $*" >&2; exit 1; }
cat ` + filepath.Join(dir, "journal.txt") + "\n"
	if err := os.WriteFile(filepath.Join(dir, "journalctl"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "ktracer")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "boot", "--boot", "-1", "--format", "json", "--out", filepath.Join(dir, "r.json"))
	cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"))
	out, _ := cmd.CombinedOutput()
	if !strings.Contains(string(out), "ktracer boot: 576 initcalls recorded by initcall_debug") {
		t.Errorf("ktracer boot --boot -1: %s", out)
	}
	// journalctl failing (no persistent journal) is an error naming it.
	if err := os.WriteFile(filepath.Join(dir, "journalctl"), []byte("#!/bin/sh\necho 'No journal boot entry found for the specified boot.' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(bin, "boot", "--boot", "-1")
	cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "No journal boot entry found") {
		t.Errorf("failing journalctl: %v: %s", err, out)
	}
}

func fixtureDmesg(t *testing.T, p string) string {
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimPrefix(h.Name, "./") == "dmesg" {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
	}
}
