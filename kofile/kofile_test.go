package kofile

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testdata holds real modules: crc7.ko from Debian's 6.1 cloud kernel,
// xt_mark.ko.xz as Debian 13's 6.12 cloud kernel ships it (with __pfx_
// symbols), kt_timebomb.ko built from e2e/modules against the 6.1 headers
// (debug info stripped), and crc7.ko.zst, crc7.ko compressed with zstd.

func TestOpenPlain(t *testing.T) {
	m, err := Open("testdata/crc7.ko")
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "crc7" {
		t.Errorf("name %q, want crc7", m.Name)
	}
	if m.BuildID != "153414c5768cdb6192c1f189a8e801a0ee763a70" {
		t.Errorf("build-id %q", m.BuildID)
	}
	if s := m.Section(".text"); s == nil || s.Size != 0x24 || s.Flags != elf.SHF_ALLOC|elf.SHF_EXECINSTR {
		t.Errorf(".text section %+v", s)
	}
	var found bool
	for _, s := range m.Symbols {
		if s.Name == "crc7_be" {
			found = true
			if s.Section != ".text" || s.Value != 0 || s.Size != 36 || !s.IsFunction() || s.Binding != elf.STB_GLOBAL {
				t.Errorf("crc7_be %+v", s)
			}
		}
		if s.Name == "crc7_be_syndrome_table" && (s.Section != ".rodata" || s.Size != 256 || !s.IsObject()) {
			t.Errorf("crc7_be_syndrome_table %+v", s)
		}
	}
	if !found {
		t.Error("no crc7_be symbol")
	}
	if f := m.InitFunctions(); len(f) != 0 {
		t.Errorf("crc7 has no init text, got %v", f)
	}
	for i, s := range m.Symbols {
		if s.Index != i+1 {
			t.Fatalf("symbol %d has index %d", i, s.Index)
		}
	}
}

func TestOpenZstdSameAsPlain(t *testing.T) {
	m, err := Open("testdata/crc7.ko.zst")
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "crc7" || m.BuildID != "153414c5768cdb6192c1f189a8e801a0ee763a70" || len(m.Symbols) != 23 {
		t.Errorf("got %s %s %d symbols", m.Name, m.BuildID, len(m.Symbols))
	}
}

func TestOpenXZWithPadding(t *testing.T) {
	m, err := Open("testdata/xt_mark.ko.xz")
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "xt_mark" || m.BuildID != "c3787cba82fefabd3ca68030207fa0c1da0a5214" {
		t.Errorf("got %s %s", m.Name, m.BuildID)
	}
	init := m.InitFunctions()
	if len(init) != 2 || init[0].Name != "mark_mt_init" || init[0].Value != 0x10 || init[0].Size != 80 ||
		init[1].Name != "init_module" {
		t.Errorf("init functions %+v, want mark_mt_init at 0x10 then its init_module alias", init)
	}
	// The __pfx_ symbol covers 0..0x10 of .init.text: padding, no name.
	it := m.Section(".init.text")
	if _, _, ok := m.FunctionAt(elf.SectionIndex(it.Index), 0x4); ok {
		t.Error("an offset in __pfx_ padding was named")
	}
	if fn, off, ok := m.FunctionAt(elf.SectionIndex(it.Index), 0x14); !ok || fn.Name != "mark_mt_init" || off != 4 {
		t.Errorf("0x14 -> %s+%#x %v, want mark_mt_init+0x4", fn.Name, off, ok)
	}
	text := m.Section(".text")
	for _, s := range m.Functions(elf.SectionIndex(text.Index)) {
		if IsPadding(s.Name) {
			t.Errorf("padding symbol %s among functions", s.Name)
		}
	}
	if fn, _, ok := m.FunctionAt(elf.SectionIndex(text.Index), 0x50); !ok || fn.Name != "mark_mt" {
		t.Errorf("0x50 -> %s, want mark_mt (not __pfx_mark_mt)", fn.Name)
	}
	var names []string
	for _, s := range m.PersistentDataSections() {
		names = append(names, s.Name)
	}
	if got := strings.Join(names, " "); got != ".data .data..read_mostly .bss" {
		t.Errorf("persistent data %q", got)
	}
}

func TestOpenTestModule(t *testing.T) {
	m, err := Open("testdata/kt_timebomb.ko")
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "kt_timebomb" || m.BuildID != "696f1cde9bfa6eed7b8735fa54f9abde3e62c195" {
		t.Errorf("got %s %s", m.Name, m.BuildID)
	}
	var got []string
	for _, s := range m.InitFunctions() {
		got = append(got, s.Name)
	}
	if strings.Join(got, " ") != "kt_init_helper kt_timebomb_init init_module" {
		t.Errorf("init functions %v", got)
	}
	d := m.Section(".data")
	if o, off, ok := m.ObjectAt(elf.SectionIndex(d.Index), 0); !ok || o.Name != "global_ops" || off != 0 {
		t.Errorf(".data+0 -> %s %v", o.Name, ok)
	}
	// kernel-managed and freed sections are not persistent data
	for _, s := range m.Sections {
		persistent := s.IsPersistentData()
		switch s.Name {
		case ".data", ".bss", ".rodata", "__param":
			if !persistent {
				t.Errorf("%s not persistent", s.Name)
			}
		case "__mcount_loc", ".init.data", ".exit.data", ".gnu.linkonce.this_module", ".orc_unwind_ip", ".modinfo", ".text":
			if persistent {
				t.Errorf("%s persistent", s.Name)
			}
		}
	}
}

func TestMagicNotSuffix(t *testing.T) {
	data, err := os.ReadFile("testdata/xt_mark.ko.xz")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "xt_mark.ko")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := Open(p)
	if err != nil || m.Name != "xt_mark" {
		t.Fatalf("xz data named .ko: %v", err)
	}
}

func TestMalformed(t *testing.T) {
	for name, data := range map[string][]byte{
		"empty":     {},
		"text":      []byte("hello, world\n"),
		"truncated": mustRead(t, "testdata/crc7.ko")[:200],
		"bad xz":    append(append([]byte{}, magicXZ...), 1, 2, 3, 4, 5, 6, 7),
	} {
		if _, err := ReadAllAndParse(data); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func ReadAllAndParse(data []byte) (*Module, error) {
	b, err := ReadAll(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	return Parse(b)
}

func TestTooLarge(t *testing.T) {
	if _, err := ReadAll(&zeros{n: 100}); err == nil || !strings.Contains(err.Error(), "not an ELF") {
		t.Fatalf("zeros: got %v", err)
	}
	big := io.MultiReader(bytes.NewReader(magicELF), &zeros{n: 1<<20 + 10})
	if _, err := readLimited(big, 1<<20); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
}

type zeros struct{ n int }

func (z *zeros) Read(p []byte) (int, error) {
	if z.n <= 0 {
		return 0, io.EOF
	}
	if len(p) > z.n {
		p = p[:z.n]
	}
	clear(p)
	z.n -= len(p)
	return len(p), nil
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLocate(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "lib/modules/6.12.1-test")
	for _, p := range []string{"kernel/net/netfilter/xt_mark.ko.xz", "kernel/sound/snd-hda-codec.ko.zst", "updates/kt_good.ko"} {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dep := "kernel/net/netfilter/xt_mark.ko.xz: kernel/net/netfilter/x_tables.ko.xz\n" +
		"kernel/sound/snd-hda-codec.ko.zst:\nupdates/kt_good.ko:\n"
	if err := os.WriteFile(filepath.Join(dir, "modules.dep"), []byte(dep), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"xt_mark":       "kernel/net/netfilter/xt_mark.ko.xz",
		"snd_hda_codec": "kernel/sound/snd-hda-codec.ko.zst",
		"snd-hda-codec": "kernel/sound/snd-hda-codec.ko.zst",
		"kt_good":       "updates/kt_good.ko",
	} {
		got, err := Locate(root, "6.12.1-test", name)
		if err != nil || got != filepath.Join(dir, want) {
			t.Errorf("%s: %s %v", name, got, err)
		}
	}
	if _, err := Locate(root, "6.12.1-test", "x_tables"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a dependency-only name: %v", err)
	}
	if _, err := Locate(root, "../..", "xt_mark"); err == nil {
		t.Error("bad kver accepted")
	}
}

// TestLocateBookworm finds a module in the unpacked Debian 6.1 tree when
// the VM kernel cache is present.
func TestLocateBookworm(t *testing.T) {
	root := "/var/cache/ktracer/vm-bookworm/kernel"
	kver, err := os.ReadFile("/var/cache/ktracer/vm-bookworm/KVER")
	if err != nil {
		t.Skip("no VM kernel cache")
	}
	p, err := Locate(root, strings.TrimSpace(string(kver)), "crc7")
	if err != nil {
		t.Fatal(err)
	}
	m, err := Open(p)
	if err != nil || m.Name != "crc7" {
		t.Fatalf("%s: %v", p, err)
	}
}

// The kernel keeps a loaded module's notes in sysfs as the raw section
// bytes; they give the same build-id as the file.
func TestBuildIDFromNotes(t *testing.T) {
	m, err := Open("testdata/kt_timebomb.ko")
	if err != nil {
		t.Fatal(err)
	}
	data, err := m.ELF.Section(".note.gnu.build-id").Data()
	if err != nil {
		t.Fatal(err)
	}
	if got := BuildIDFromNotes(data, binary.LittleEndian); got != m.BuildID || got == "" {
		t.Errorf("BuildIDFromNotes = %q, file says %q", got, m.BuildID)
	}
	for _, bad := range [][]byte{nil, data[:11], data[:20]} {
		if got := BuildIDFromNotes(bad, binary.LittleEndian); got != "" {
			t.Errorf("BuildIDFromNotes(%d bytes) = %q, want none", len(bad), got)
		}
	}
}
