package loaded

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ktracer/ktracer/decoder"
)

const fixture = "testdata/vm-6.1-kt_tablebomb"

// From the capture: kt_tablebomb's .init.text and .bss, and kt_good's text,
// which took kt_tablebomb's freed init text.
const (
	initText = 0xffffffffc0502000
	bss      = 0xffffffffc04ff3c0
)

// fakeMemory is kernel memory holding kt_table[2].fn = kt_table_helper, as
// the module's init left it (the helper is the first function of
// .init.text); everything else reads as zero.
func fakeMemory(reads *[]uint64) func(addr uint64, b []byte) error {
	return func(addr uint64, b []byte) error {
		*reads = append(*reads, addr)
		clear(b)
		if addr == bss && len(b) >= 0x30 {
			binary.LittleEndian.PutUint64(b[0x28:], initText)
		}
		return nil
	}
}

func TestSectionsAndBuildIDFromCapture(t *testing.T) {
	secs, err := ReadSections(filepath.Join(fixture, "sys/module/kt_tablebomb/sections"))
	if err != nil {
		t.Fatal(err)
	}
	if secs[".init.text"] != initText || secs[".bss"] != bss || secs[".gnu.linkonce.this_module"] != 0xffffffffc04ff040 {
		t.Errorf("sections: %#x", secs)
	}
	id, err := ReadBuildID(filepath.Join(fixture, "sys/module/kt_tablebomb"))
	if err != nil || id != "c7ee2e6c4bfb88e3cf867ad536af01dc37b9e64e" {
		t.Errorf("build-id %q, %v", id, err)
	}
	// Unprivileged readers see zeros: that is an error, not addresses.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, ".text"), []byte("0x0000000000000000\n"), 0o644)
	if _, err := ReadSections(dir); err == nil {
		t.Error("all-zero sections accepted")
	}
}

func TestRecoverFromCapture(t *testing.T) {
	var reads []uint64
	res, err := Recover(Options{Root: fixture, KernelRelease: "6.1.0-57-cloud-amd64", ReadMemory: fakeMemory(&reads)})
	if err != nil {
		t.Fatal(err)
	}
	// /proc/modules lists kt_good first (newest): oldest first here.
	if len(res.Modules) != 2 || res.Modules[0].Name != "kt_tablebomb" || res.Modules[1].Name != "kt_good" {
		t.Fatalf("modules %+v", res.Modules)
	}
	tb, good := res.Modules[0], res.Modules[1]
	if tb.NoInitNames != "" || tb.InitText != (decoder.Range{Base: initText, Size: 0x42}) || tb.Addr != 0xffffffffc04ff040 ||
		!strings.HasSuffix(tb.Origin, "extra/kt_tablebomb.ko") {
		t.Errorf("kt_tablebomb: %+v", tb)
	}
	has := func(lm decoder.LoadedModule, name string, addr uint64) bool {
		for _, s := range lm.Symbols {
			if s.Name == name && s.Addr == addr {
				return true
			}
		}
		return false
	}
	if !has(tb, "kt_table_helper", initText) || !has(tb, "kt_table", bss) || !has(tb, "kt_trigger_set", 0xffffffffc04fd000) {
		t.Errorf("kt_tablebomb symbols: %+v", tb.Symbols)
	}
	for _, s := range tb.Symbols {
		if strings.HasPrefix(s.Name, "__pfx_") {
			t.Errorf("padding symbol %s", s.Name)
		}
	}
	// The data scan read .bss (and the other persistent sections), never
	// init or kernel-managed tables.
	var sawBSS bool
	for _, c := range tb.Memory {
		sawBSS = sawBSS || c.Section == ".bss"
		if strings.HasPrefix(c.Section, ".init") || c.Section == "__mcount_loc" || c.Section == ".gnu.linkonce.this_module" {
			t.Errorf("scanned %s", c.Section)
		}
	}
	if !sawBSS {
		t.Errorf("no .bss scanned: %+v", reads)
	}
	// kt_good: no sysfs in the capture; its live code is named from kallsyms,
	// its init functions not at all, and it says why.
	if good.NoInitNames == "" || good.InitText.Size != 0 || !has(good, "kt_good_exit", 0xffffffffc0502000) || good.Text.Base != 0xffffffffc0502000 {
		t.Errorf("kt_good: %+v", good)
	}

	a := decoder.NewAnalyzer(decoder.Config{})
	var evs []decoder.Event
	for i := range res.Modules {
		evs = a.AddLoaded(&res.Modules[i], evs)
	}
	for i := range res.Modules {
		evs = a.ScanLoaded(&res.Modules[i], evs)
	}
	var f, ignored []decoder.Event
	for _, ev := range evs {
		if ev.Kind == decoder.KindFinding {
			f = append(f, ev)
		}
		if ev.Kind == decoder.KindInitPointerIgnored {
			ignored = append(ignored, ev)
		}
		if ev.Kind == decoder.KindModuleAlreadyLoaded && ev.Module == "kt_tablebomb" && ev.Function != "kt_tablebomb_init" {
			t.Errorf("init function %q", ev.Function)
		}
	}
	// As it happened in the VM: kt_good took the freed init text, so the
	// word now leads into kt_good's code, which a pointer kt_good's init
	// stored would too: explained, not reported.
	if len(f) != 0 || len(ignored) != 1 || ignored[0].Location != "kt_table+0x28" || ignored[0].Function != "kt_table_helper" ||
		ignored[0].Source != decoder.SourceStartupAudit || !strings.Contains(ignored[0].Reason, "now kt_good_exit [kt_good]") {
		t.Errorf("findings %+v, ignored %+v", f, ignored)
	}
	// Without kt_good, the same word is a dangling-init-pointer.
	b := decoder.NewAnalyzer(decoder.Config{})
	b.AddLoaded(&res.Modules[0], nil)
	f = nil
	for _, ev := range b.ScanLoaded(&res.Modules[0], nil) {
		if ev.Kind == decoder.KindFinding {
			f = append(f, ev)
		}
	}
	if len(f) != 1 || f[0].Location != "kt_table+0x28" || f[0].Function != "kt_table_helper" || f[0].Source != decoder.SourceStartupAudit || f[0].Rule != decoder.RuleDanglingInitPointer {
		t.Errorf("findings without kt_good: %+v", f)
	}
}

// A file at the modules.dep path that is another build of the module is
// detected by its build-id, and nothing is named from it.
func TestRecoverRebuiltFile(t *testing.T) {
	root := t.TempDir()
	if err := os.CopyFS(root, os.DirFS(fixture)); err != nil {
		t.Fatal(err)
	}
	ko := filepath.Join(root, "lib/modules/6.1.0-57-cloud-amd64/extra/kt_tablebomb.ko")
	// Another build: the same file with one byte of its build-id changed is
	// enough for the check, and keeps the ELF valid.
	b, err := os.ReadFile(ko)
	if err != nil {
		t.Fatal(err)
	}
	id := []byte{0xc7, 0xee, 0x2e, 0x6c}
	i := strings.Index(string(b), string(id))
	if i < 0 {
		t.Fatal("build-id not found in the file")
	}
	b[i] ^= 0xff
	os.WriteFile(ko, b, 0o644)

	var reads []uint64
	res, err := Recover(Options{Root: root, KernelRelease: "6.1.0-57-cloud-amd64", ReadMemory: fakeMemory(&reads)})
	if err != nil {
		t.Fatal(err)
	}
	tb := res.Modules[0]
	if !strings.Contains(tb.NoInitNames, "another build") || tb.InitText.Size != 0 || len(reads) != 0 {
		t.Errorf("rebuilt: %+v, %d reads", tb, len(reads))
	}
	// Only kallsyms' names remain (live code and data, no sizes); no
	// __init name, and nothing taken from the file.
	for _, s := range tb.Symbols {
		if s.Name == "kt_table_helper" || s.Size != 0 {
			t.Errorf("a name from the other build: %+v", s)
		}
	}
	// With the daemon's state of this boot, the init names come back.
	state := []decoder.LoadedModule{{Name: "kt_tablebomb", Addr: 0xffffffffc04ff040, InitText: decoder.Range{Base: initText, Size: 0x1000},
		Symbols: []decoder.ModuleSymbol{{Name: "kt_table_helper", Addr: initText, Kind: 't'}}}}
	res, err = Recover(Options{Root: root, KernelRelease: "6.1.0-57-cloud-amd64", State: state})
	if err != nil {
		t.Fatal(err)
	}
	tb = res.Modules[0]
	if tb.NoInitNames != "" || tb.Origin != "the daemon's state" || !strings.Contains(tb.Note, "another build") || tb.InitText.Base != initText {
		t.Errorf("with state: %+v", tb)
	}
}
