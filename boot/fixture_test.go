package boot

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path"
	"strings"
	"testing"
	"testing/fstest"
)

// loadFixture unpacks a capture made in the VM by e2e/boot-capture.sh: a
// tree rooted like / plus the boot's kernel log as /dmesg.
func loadFixture(t testing.TB, name string) (fstest.MapFS, []byte) {
	t.Helper()
	f, err := os.Open(path.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		fsys[strings.TrimPrefix(path.Clean(h.Name), "./")] = &fstest.MapFile{Data: b, Mode: 0o644}
	}
	dmesg := fsys["dmesg"].Data
	delete(fsys, "dmesg")
	return fsys, dmesg
}

func analyzeFixture(t testing.TB, name string, opt Options) *Report {
	t.Helper()
	fsys, dmesg := loadFixture(t, name)
	r, err := Analyze(Input{Log: bytes.NewReader(dmesg), Root: fsys}, opt)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
