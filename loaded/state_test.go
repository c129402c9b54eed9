package loaded

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ktracer/ktracer/decoder"
)

func stateModules(n int) []decoder.LoadedModule {
	var out []decoder.LoadedModule
	for i := range n {
		base := 0xffffffffc0000000 + uint64(i)<<16
		out = append(out, decoder.LoadedModule{
			Name: "kt_timebomb", Addr: base + 0x3000, Text: decoder.Range{Base: base, Size: 0x1000},
			InitText: decoder.Range{Base: base + 0x8000, Size: 0x80},
			Data:     [3]decoder.Range{{Base: base + 0x2000, Size: 0x800}},
			Symbols:  []decoder.ModuleSymbol{{Name: "kt_init_helper", Addr: base + 0x8000, Size: 0x30, Kind: 't'}},
		})
	}
	return out
}

func TestStateRoundTrip(t *testing.T) {
	dir := t.TempDir()
	mods := stateModules(2)
	if err := WriteState(dir, "boot-a", mods); err != nil {
		t.Fatal(err)
	}
	got, err := ReadState(dir, "boot-a")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, mods) {
		t.Errorf("read back %+v\nwant %+v", got, mods)
	}
	// No temporary file is left behind.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != StateFile {
		t.Errorf("state dir holds %v", ents)
	}
	// Another boot's modules are gone: no state, no error.
	if got, err := ReadState(dir, "boot-b"); err != nil || got != nil {
		t.Errorf("other boot: %v, %v", got, err)
	}
	// No file: no state, no error.
	if got, err := ReadState(t.TempDir(), "boot-a"); err != nil || got != nil {
		t.Errorf("no file: %v, %v", got, err)
	}
}

func TestStateCorruptIsSetAside(t *testing.T) {
	for name, content := range map[string]string{
		"garbage":   "{\"version\":1,\"modules\":[{\"name\":",
		"version":   `{"version":99,"boot_id":"boot-a","modules":[]}`,
		"too large": `{"version":1,"boot_id":"` + strings.Repeat("x", maxStateBytes) + `"}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, StateFile)
			if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := ReadState(dir, "boot-a")
			if err == nil || got != nil || !strings.Contains(err.Error(), "set aside") {
				t.Fatalf("ReadState = %v, %v", got, err)
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Errorf("the corrupt file is still in place: %v", err)
			}
			aside, _ := filepath.Glob(path + ".corrupt-*")
			if len(aside) != 1 {
				t.Errorf("set-aside files: %v", aside)
			}
			// The next write starts afresh.
			if err := WriteState(dir, "boot-a", stateModules(1)); err != nil {
				t.Fatal(err)
			}
			if got, err := ReadState(dir, "boot-a"); err != nil || len(got) != 1 {
				t.Errorf("after rewrite: %v, %v", got, err)
			}
		})
	}
}

// The state stays bounded whatever the analyzer hands it.
func TestStateBounded(t *testing.T) {
	dir := t.TempDir()
	mods := stateModules(maxStateModules + 10)
	mods[0].Symbols = make([]decoder.ModuleSymbol, maxStateSymbols+5)
	for i := range mods[0].Symbols {
		mods[0].Symbols[i] = decoder.ModuleSymbol{Name: "f", Addr: uint64(i), Kind: 't'}
	}
	if err := WriteState(dir, "b", mods); err != nil {
		t.Fatal(err)
	}
	got, err := ReadState(dir, "b")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != maxStateModules || len(got[0].Symbols) != maxStateSymbols {
		t.Errorf("kept %d modules, %d symbols of the first", len(got), len(got[0].Symbols))
	}
	if fi, _ := os.Stat(filepath.Join(dir, StateFile)); fi.Size() > maxStateBytes {
		t.Errorf("state is %d bytes", fi.Size())
	}
}

// A state directory that cannot be written is an error, not a crash, and
// leaves the old state.
func TestStateUnwritable(t *testing.T) {
	if os.Geteuid() == 0 {
		dir := filepath.Join(t.TempDir(), "missing")
		if err := WriteState(dir, "b", stateModules(1)); err == nil {
			t.Error("WriteState into a missing directory succeeded")
		}
		return
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o500)
	defer os.Chmod(dir, 0o700)
	if err := WriteState(dir, "b", stateModules(1)); err == nil {
		t.Error("WriteState into a read-only directory succeeded")
	}
}
