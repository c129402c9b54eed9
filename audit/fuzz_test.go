package audit

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ktracer/ktracer/kofile"
)

// Any bytes: a module is parsed and audited, or refused with an error; no
// panic. The seeds are the real modules in testdata (uncompressed ones:
// the fuzzer mutates ELF, not xz).
func FuzzAudit(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.ko")
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := kofile.Parse(data)
		if err != nil {
			return
		}
		m.InitFunctions()
		m.PersistentDataSections()
		fs, err := Module(m)
		if err != nil {
			return
		}
		for _, f := range fs {
			if f.Message == "" || f.Rule == "" {
				t.Fatalf("incomplete finding %+v", f)
			}
		}
	})
}
