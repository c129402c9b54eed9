//go:build e2e

package e2e

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// load-failed (issue 10, item 4): loads the kernel refuses before init, and
// what ktracer must say about each. The same cases run on the 6.1 module
// boot (test modules) and in the kernel matrix (shipped modules, so they
// run where the test modules do not build).

// loadFailCase is one insmod the kernel must refuse.
type loadFailCase struct {
	what     string
	cmd      string // guest shell; no single quotes (it runs inside sh -c '...')
	module   string // "" where the name cannot be read yet (bad ELF, signature)
	errno    string
	severity string
	// A substring of the reason, and the symbol (a trailing * matches a
	// prefix) and the module's CRC ("": not readable, only the kernel's).
	reason, symbol, moduleCRC string
	vermagic                  bool   // the module's and the kernel's vermagic are quoted
	hook                      string // the reason hook this case exercises
}

// moduleLoadFailCases are the 6.1 module boot's: the test modules, a
// shipped module without its dependency, a truncated ELF. kt_good is
// removed first so the second of two loads is the only EEXIST.
func moduleLoadFailCases() []loadFailCase {
	return []loadFailCase{
		{what: "unknown symbol", cmd: "/payload/bin/insmod /payload/modules/kt_unresolved.ko", module: "kt_unresolved", errno: "ENOENT", severity: "error",
			reason: "unknown symbol kt_unresolved_dep_fn", symbol: "kt_unresolved_dep_fn", hook: "load_unknown_symbol"},
		{what: "symbol version", cmd: "/payload/bin/insmod /payload/modules/kt_badcrc.ko", module: "kt_badcrc", errno: "EINVAL", severity: "error",
			reason: "symbol version mismatch: kstrdup", symbol: "kstrdup", moduleCRC: "0xdeadbeef", hook: "load_symbol_version"},
		{what: "vermagic", cmd: "/payload/bin/insmod /payload/modules/kt_badmagic.ko", module: "kt_badmagic", errno: "ENOEXEC", severity: "error",
			reason: "vermagic", vermagic: true, hook: "load_vermagic"},
		{what: "already loaded", cmd: "/payload/bin/rmmod kt_good; /payload/bin/insmod /payload/modules/kt_good.ko; /payload/bin/insmod /payload/modules/kt_good.ko",
			module: "kt_good", errno: "EEXIST", severity: "info", reason: "already loaded", hook: "load_failed"},
		{what: "shipped module without its dependency", cmd: "/payload/bin/insmod $(/payload/bin/modinfo -n stp)", module: "stp", errno: "ENOENT", severity: "error",
			reason: "unknown symbol llc_", symbol: "llc_*", hook: "load_unknown_symbol"},
		{what: "truncated ELF", cmd: "head -c 3000 /payload/modules/kt_good.ko >/tmp/kt_trunc.ko; /payload/bin/insmod /tmp/kt_trunc.ko", errno: "ENOEXEC", severity: "error",
			reason: "invalid module", hook: "load_failed"},
	}
}

// sigEnforceCase cannot be undone (sig_enforce only turns on): it runs last.
var sigEnforceCase = loadFailCase{what: "unsigned module under sig_enforce",
	cmd:   "echo 1 >/sys/module/module/parameters/sig_enforce; /payload/bin/insmod /payload/modules/kt_enodev.ko",
	errno: "EKEYREJECTED", severity: "error", reason: "unsigned module", hook: "load_failed"}

func loadFailCommand(cs []loadFailCase) string {
	var b strings.Builder
	b.WriteString("sh -c '")
	for _, c := range cs {
		b.WriteString(c.cmd + "; ")
	}
	b.WriteString("exit 0'")
	return b.String()
}

// checkLoadFailed holds the load-failed findings of r to the cases, in
// order. It returns the problems by the hook they fall to.
func checkLoadFailed(r *run, cs []loadFailCase) map[string][]string {
	fails := map[string][]string{}
	got := r.findingsOf("load-failed")
	if len(got) != len(cs) {
		var s []string
		for _, f := range got {
			s = append(s, f.Module+"/"+f.Errno)
		}
		fails["load_failed"] = append(fails["load_failed"], fmt.Sprintf("%d load-failed findings %v, want %d", len(got), s, len(cs)))
		return fails
	}
	for i, c := range cs {
		f := got[i]
		bad := func(hook, format string, args ...any) {
			fails[hook] = append(fails[hook], c.what+": "+fmt.Sprintf(format, args...))
		}
		if f.Errno != c.errno || f.Severity != c.severity || f.Ret == nil {
			bad("load_failed", "errno %s severity %s ret %v, want %s %s", f.Errno, f.Severity, ptr(f.Ret), c.errno, c.severity)
		}
		if f.Module != c.module {
			bad(c.hook, "module %q, want %q", f.Module, c.module)
		}
		if !strings.Contains(f.Reason, c.reason) || !strings.Contains(f.Message, c.reason) {
			bad(c.hook, "reason %q (message %q), want %q", f.Reason, f.Message, c.reason)
		}
		if prefix, ok := strings.CutSuffix(c.symbol, "*"); ok && !strings.HasPrefix(f.Symbol, prefix) || !ok && f.Symbol != c.symbol {
			bad(c.hook, "symbol %q, want %q", f.Symbol, c.symbol)
		}
		switch {
		case c.hook != "load_symbol_version":
		case c.moduleCRC == "" && (f.KernelCRC == "" || f.ModuleCRC != ""):
			bad(c.hook, "CRCs kernel %q module %q, want the kernel's only", f.KernelCRC, f.ModuleCRC)
		case c.moduleCRC != "" && (f.KernelCRC == "" || f.KernelCRC == f.ModuleCRC || f.ModuleCRC != c.moduleCRC):
			bad(c.hook, "CRCs kernel %q module %q, want module %q and a different kernel CRC", f.KernelCRC, f.ModuleCRC, c.moduleCRC)
		}
		if c.vermagic && (f.Vermagic == "" || f.KernelVermagic == "" || f.Vermagic == f.KernelVermagic) {
			bad(c.hook, "vermagic %q, kernel's %q: want both, different", f.Vermagic, f.KernelVermagic)
		}
	}
	return fails
}

// The 6.1 module boot: each refused load gives load-failed with the
// kernel's reason, EEXIST as info; watch exits 1 for the errors.
func TestLoadFailed(t *testing.T) {
	r := moduleGuest(t).run(t, "load-failed")
	for hook, fs := range checkLoadFailed(r, moduleLoadFailCases()) {
		t.Errorf("%s: %s", hook, strings.Join(fs, "; "))
	}
	for _, l := range r.lines {
		if l.Event == "module_load" && l.Module != "kt_good" {
			t.Errorf("module_load for %s, whose load failed before init", l.Module)
		}
	}
	if r.exit != 1 {
		t.Errorf("watch exit = %d, want 1 (error findings)", r.exit)
	}
	checkNoLoss(t, r)
	if t.Failed() {
		t.Logf("output:\n%s", strings.Join(r.raw, "\n"))
	}
	saveFixture(t, "load_failed.rec", moduleGuest(t).runs["load-failed-rec"])
}

func TestLoadFailedSignature(t *testing.T) {
	r := moduleGuest(t).run(t, "load-failed-sig")
	for hook, fs := range checkLoadFailed(r, []loadFailCase{sigEnforceCase}) {
		t.Errorf("%s: %s\n%s", hook, strings.Join(fs, "; "), strings.Join(r.raw, "\n"))
	}
}

// shippedModule reads a module shipped with k's kernel, decompressed.
func (k *matrixKernel) shippedModule(t *testing.T, module string) []byte {
	t.Helper()
	out, err := exec.Command("modinfo", "-b", filepath.Join(k.vmdir, "kernel"), "-k", k.kver, "-n", module).Output()
	if err != nil {
		t.Fatalf("modinfo -n %s: %v", module, err)
	}
	path := strings.TrimSpace(string(out))
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ ext, tool string }{{".xz", "xz"}, {".zst", "zstd"}, {".gz", "gzip"}} {
		if strings.HasSuffix(path, c.ext) {
			cmd := exec.Command(c.tool, "-dc")
			cmd.Stdin = bytes.NewReader(data)
			if data, err = cmd.Output(); err != nil {
				t.Fatalf("%s -dc %s: %v", c.tool, path, err)
			}
		}
	}
	return data
}

// spoil writes data to path and runs modules/spoil.sh on it; its output.
func spoil(t *testing.T, data []byte, path string, args ...string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sh", append([]string{"modules/spoil.sh", args[0], path}, args[1:]...)...).Output()
	if err != nil {
		t.Fatalf("spoil.sh %s %s: %v", args[0], path, err)
	}
	return strings.TrimSpace(string(out))
}

// lastVersionedSymbol is the last __versions entry of a module but
// module_layout (a mismatch there is another case: the struct module check).
func lastVersionedSymbol(t *testing.T, data []byte) string {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	s := f.Section("__versions")
	if s == nil {
		return "" // a kernel without CONFIG_MODVERSIONS (sid's 7.x)
	}
	v, err := s.Data()
	if err != nil || len(v) < 64 {
		t.Fatalf("__versions: %d bytes, %v", len(v), err)
	}
	for off := len(v) - 64; off >= 0; off -= 64 {
		name := v[off+8 : off+64]
		if n := string(name[:max(bytes.IndexByte(name, 0), 0)]); n != "" && n != "module_layout" {
			return n
		}
	}
	t.Fatal("no versioned symbol but module_layout")
	return ""
}

// matrixLoadFailCases are built from shipped modules, so every kernel has
// them: stp without llc, dummy twice (it is loaded by then), nbd with one
// CRC spoiled (nbd's own load fails in init, so it is not loaded), dummy
// with its vermagic spoiled (vermagic is checked before EEXIST), and a
// truncated copy. The spoiled files go into the payload, per kernel.
func (k *matrixKernel) loadFailCases(t *testing.T, payload string) []loadFailCase {
	dir := filepath.Join(payload, "spoiled", k.kver)
	nbd := k.shippedModule(t, "nbd")
	sym := lastVersionedSymbol(t, nbd)
	var crc string
	if sym != "" {
		crc = spoil(t, nbd, filepath.Join(dir, "nbd.ko"), "crc", sym)
	} else {
		// No CONFIG_MODVERSIONS: no CRCs to check, no symbol version case;
		// the truncated case below still needs the file.
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "nbd.ko"), nbd, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	spoil(t, k.shippedModule(t, "dummy"), filepath.Join(dir, "dummy.ko"), "vermagic")
	g := "/payload/spoiled/" + k.kver
	vermagic := loadFailCase{what: "vermagic", cmd: "/payload/bin/insmod " + g + "/dummy.ko", module: "dummy", errno: "ENOEXEC", severity: "error",
		reason: "vermagic", vermagic: true, hook: "load_vermagic"}
	if _, gap := k.gaps()["load_vermagic"]; gap {
		// same_magic is inlined (5.10, 7.x): a bare ENOEXEC.
		vermagic.reason, vermagic.vermagic, vermagic.hook = "invalid module", false, "load_failed"
	}
	version := loadFailCase{what: "symbol version", cmd: "/payload/bin/insmod " + g + "/nbd.ko", module: "nbd", errno: "EINVAL", severity: "error",
		reason: "symbol version mismatch: " + sym, symbol: sym, moduleCRC: crc, hook: "load_symbol_version"}
	if k.series() == "5.10" {
		version.moduleCRC = "" // no bpf_loop: the module's CRC is not read
	}
	cases := []loadFailCase{
		{what: "shipped module without its dependency", cmd: "/payload/bin/insmod $(/payload/bin/modinfo -n stp)", module: "stp", errno: "ENOENT", severity: "error",
			reason: "unknown symbol llc_", symbol: "llc_*", hook: "load_unknown_symbol"},
		{what: "already loaded", cmd: "/payload/bin/insmod $(/payload/bin/modinfo -n dummy)", module: "dummy", errno: "EEXIST", severity: "info",
			reason: "already loaded", hook: "load_failed"},
		version,
		vermagic,
		{what: "truncated ELF", cmd: "head -c 3000 " + g + "/nbd.ko >/tmp/kt_trunc.ko; /payload/bin/insmod /tmp/kt_trunc.ko", errno: "ENOEXEC", severity: "error",
			reason: "invalid module", hook: "load_failed"},
	}
	if sym == "" {
		cases = slices.DeleteFunc(cases, func(c loadFailCase) bool { return c.hook == "load_symbol_version" })
		// The module's name is read where the kernel checks its
		// struct module CRC (check_version, before the vermagic and
		// EEXIST checks); without CONFIG_MODVERSIONS nothing reads it
		// first.
		for i := range cases {
			if cases[i].errno == "EEXIST" || cases[i].what == "vermagic" {
				cases[i].module = ""
			}
		}
	}
	return cases
}
