//go:build e2e

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Seed incident 3's loop, on a real kernel: three boots in one QEMU process,
// each recorded by the daemon in its history on a disk, each ending in a
// panic; on the fourth, ktracer check reports panic-loop.
func TestPanicLoop(t *testing.T) {
	script, err := os.ReadFile("panicloop.sh")
	if err != nil {
		t.Fatal(err)
	}
	disk := filepath.Join(t.TempDir(), "state.img")
	if out, err := exec.Command("truncate", "-s", "32M", disk).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", disk).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	g := boot(t, string(script), nil, "--reboot", "--disk", disk,
		"--kmod", "virtio_pci", "--kmod", "virtio_blk", "--timeout", "900")
	for _, b := range []string{"boot1", "boot2", "boot3"} {
		if r := g.runs[b]; r == nil || len(r.raw) == 0 || r.raw[0] != "recorded:1" {
			t.Fatalf("%s was not recorded by the daemon before its panic: %+v\n%s", b, r, tail(g.console, 40))
		}
	}
	r := g.run(t, "loop")
	var loops []line
	for _, f := range r.findings() {
		if f.Rule == "panic-loop" {
			loops = append(loops, f)
		}
	}
	if len(loops) != 1 || loops[0].Value == nil || *loops[0].Value != 3 || loops[0].Severity != "error" {
		t.Fatalf("want one panic-loop finding with 3 unclean ends, got %+v\n%s", loops, strings.Join(r.raw, "\n"))
	}
	t.Logf("panic-loop: %s", loops[0].Message)
	if r.exit != 1 {
		t.Errorf("check exit %d, want 1", r.exit)
	}
}
