package check

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// hostileRoot writes the vmAfterPanic machine to a real directory, so that
// symlinks to devices and FIFOs can be in it.
func hostileRoot(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for p, f := range vmAfterPanic(t) {
		if f.Mode.IsDir() {
			continue
		}
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, f.Data, 0o644); err != nil {
			t.Fatal(err)
		}
		if !f.ModTime.IsZero() {
			os.Chtimes(full, f.ModTime, f.ModTime)
		}
	}
	return dir
}

// runBounded runs the check with a deadline: a hang is a failure, not a
// stuck test.
func runBounded(t *testing.T, root string) (*Report, error) {
	t.Helper()
	type result struct {
		r   *Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		o := DefaultOptions()
		o.Now = bootTime.Add(time.Minute)
		r, err := Run(os.DirFS(root), o)
		done <- result{r, err}
	}()
	select {
	case res := <-done:
		return res.r, res.err
	case <-time.After(30 * time.Second):
		t.Fatal("check did not return within 30 s")
	}
	return nil, nil
}

func sourceErr(r *Report, sub string) bool {
	for _, e := range r.Errors {
		if strings.Contains(e.Source+": "+e.Err, sub) {
			return true
		}
	}
	return false
}

// Issue 12 item 10: a pstore entry that is a symlink to /dev/zero, a FIFO,
// a directory or a symlink loop, and a corrupt boots.json, each fail alone
// with their own error; the rest of the report comes out.
func TestHostileSources(t *testing.T) {
	root := hostileRoot(t)
	ps := filepath.Join(root, "sys/fs/pstore")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink("/dev/zero", filepath.Join(ps, "dmesg-ramoops-7")))
	must(syscall.Mkfifo(filepath.Join(ps, "dmesg-ramoops-8"), 0o644))
	must(os.Mkdir(filepath.Join(ps, "dmesg-ramoops-9"), 0o755))
	must(os.Symlink("dmesg-loop", filepath.Join(ps, "dmesg-loop")))
	state := filepath.Join(root, "var/lib/ktracer")
	must(os.MkdirAll(state, 0o755))
	must(os.WriteFile(filepath.Join(state, "boots.json"), []byte(`{"version":1,"boots":[{"boot_id":`), 0o644))

	r, err := runBounded(t, root)
	if err != nil {
		t.Fatalf("one bad source failed the whole check: %v", err)
	}
	for _, want := range []string{"dmesg-ramoops-7", "dmesg-ramoops-8", "dmesg-ramoops-9", "dmesg-loop", "boots.json"} {
		if !sourceErr(r, want) {
			t.Errorf("no error for %s: %+v", want, r.Errors)
		}
	}
	// The good record is still read: the panic is still found.
	if len(r.Boot.Records) != 1 || !strings.Contains(rules(r), "panic-without-vmcore") {
		t.Errorf("records %d, findings %q", len(r.Boot.Records), rules(r))
	}
	if r.Kdump.RAMBytes == 0 {
		t.Errorf("kdump facts missing")
	}
}

// Issue 12 item 10: a huge boots.json (1M entries took 940 MB and printed a
// 41 MB line) is refused by size, naming the file.
func TestHugeBootHistory(t *testing.T) {
	root := hostileRoot(t)
	state := filepath.Join(root, "var/lib/ktracer")
	if err := os.MkdirAll(state, 0o755); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString(`{"version":1,"boots":[`)
	for i := 0; i < 20000; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`{"boot_id":"0b5e1b6c-7c56-4f8e-9d55-3a7f2f3c5a10","start":"2026-11-26T04:18:00Z","seen":"2026-11-26T04:18:09Z","clean":false}`)
	}
	b.WriteString("]}")
	if err := os.WriteFile(filepath.Join(state, "boots.json"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := runBounded(t, root)
	if err != nil {
		t.Fatalf("a huge history failed the whole check: %v", err)
	}
	if r.Boot.History != nil || !sourceErr(r, "boots.json") || !sourceErr(r, "MiB") {
		t.Errorf("history read (%v boots), errors %+v", r.Boot.History != nil, r.Errors)
	}
}
