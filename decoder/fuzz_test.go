package decoder

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// The fuzz targets' seeds are real captures: the records ktracer recorded
// on Debian's 6.1 kernel (testdata/kt_timebomb.rec, load_failed.rec) and a
// 6.1 kallsyms.
var captures = []string{"testdata/kt_timebomb.rec", "testdata/load_failed.rec"}

func captureRecords(f *testing.F) [][]byte {
	var recs [][]byte
	for _, c := range captures {
		data, err := os.ReadFile(c)
		if err != nil {
			f.Fatal(err)
		}
		if err := ReadRecording(bytes.NewReader(data), func(raw []byte) error {
			recs = append(recs, append([]byte(nil), raw...))
			return nil
		}); err != nil {
			f.Fatal(err)
		}
	}
	return recs
}

// Any bytes: Decode either fills the record or says ErrCorrupt; no panic.
func FuzzDecode(f *testing.F) {
	for _, r := range captureRecords(f) {
		f.Add(r)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var r Record
		_ = Decode(raw, &r)
	})
}

// Any stream of records through the analyzer: no panic, and its state
// stays within its bounds.
func FuzzAnalyzer(f *testing.F) {
	for _, c := range captures {
		data, err := os.ReadFile(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a := NewAnalyzer(Config{SlowInit: 1})
		var out []Event
		_ = ReadRecording(bytes.NewReader(data), func(raw []byte) error {
			out, _ = a.Handle(raw, out[:0])
			return nil
		})
		if len(a.modules) > maxModules || len(a.byTask) > maxModules {
			t.Fatalf("analyzer grew past its bounds: %d modules, %d tasks", len(a.modules), len(a.byTask))
		}
		for _, m := range a.modules {
			if len(m.syms) > maxSymbolsPerModule {
				t.Fatalf("module %q kept %d symbols", m.Name, len(m.syms))
			}
		}
	})
}

func FuzzParseKallsyms(f *testing.F) {
	data, err := os.ReadFile(kallsymsFixture)
	if err != nil {
		f.Fatal(err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	f.Add(string(data))
	for i := 0; i+20 < len(lines); i += 97 {
		f.Add(strings.Join(lines[i:i+20], ""))
	}
	f.Fuzz(func(t *testing.T, text string) {
		ks, err := ParseKallsyms(strings.NewReader(text))
		if err != nil {
			return
		}
		// Whatever parsed must answer look-ups without panicking.
		for _, s := range ks.syms {
			ks.Symbolize(s.addr)
			ks.Symbolize(s.addr + 1)
		}
	})
}

func FuzzFormatPanic(f *testing.F) {
	for _, s := range []string{"Fatal exception", "%s: %d\n", "Attempted to kill init! exitcode=0x%08x\n", "VFS: Unable to mount root fs on %s", "%", "%%%", "%-08lx %p %zu %c"} {
		f.Add(s, uint64(0xffffffff81000000), "sysrq")
	}
	f.Fuzz(func(t *testing.T, format string, arg uint64, str string) {
		_ = formatPanic(format, []uint64{arg, arg, arg}, [2]string{str, str})
	})
}

func FuzzReadRecording(f *testing.F) {
	data, err := os.ReadFile("testdata/kt_timebomb.rec")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add(data[:len(data)/2])
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = ReadRecording(bytes.NewReader(data), func(raw []byte) error {
			if len(raw) > maxRecord {
				t.Fatalf("record of %d bytes handed on", len(raw))
			}
			return nil
		})
	})
}
