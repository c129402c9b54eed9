package decoder

import (
	"bytes"
	"os"
	"testing"
	"time"

	"github.com/ktracer/ktracer/bpf"
)

// The benchmarks report records per second and allocations per record. The
// goal for decoding is >= 5 million records/s on one core with 0 allocs.

func loadCapture(b *testing.B) [][]byte {
	data, err := os.ReadFile("testdata/kt_timebomb.rec")
	if err != nil {
		b.Fatal(err)
	}
	var recs [][]byte
	if err := ReadRecording(bytes.NewReader(data), func(raw []byte) error {
		recs = append(recs, append([]byte(nil), raw...))
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	return recs
}

func reportRate(b *testing.B, start time.Time) {
	if s := time.Since(start).Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "records/s")
	}
}

// BenchmarkDecode decodes the records of a real capture, round robin.
func BenchmarkDecode(b *testing.B) {
	recs := loadCapture(b)
	var r Record
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if err := Decode(recs[i%len(recs)], &r); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, start)
}

// BenchmarkHandleSymbols is the bulk of a real session: every module load
// sends its whole symbol table. Decode plus analysis, per record.
func BenchmarkHandleSymbols(b *testing.B) {
	// A large module: 4096 symbols, then the next load of it.
	const perModule = 4096
	var l bpf.KtModuleLoadEvent
	var r Record
	if err := Decode(loadRecord("kt_bench", 1), &r); err != nil {
		b.Fatal(err)
	}
	l = r.ModuleLoad
	l.NumSymbols = perModule
	load := Encode(&l)
	a := NewAnalyzer(Config{})
	var out []Event
	sym := symbolRecord(1, textBase+0x40, 't', "kt_bench_handle_request")
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if i%perModule == 0 {
			out, _ = a.Handle(load, out[:0])
		}
		out, _ = a.Handle(sym, out[:0])
	}
	reportRate(b, start)
}

// BenchmarkHandleInitcallStart: records that yield no event.
func BenchmarkHandleInitcallStart(b *testing.B) {
	a := NewAnalyzer(Config{})
	rec := initcallRecord(bpf.KtEventTypeEVENT_INITCALL_START, 1, initFn, 0, 0)
	var out []Event
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		out, _ = a.Handle(rec, out[:0])
	}
	reportRate(b, start)
}

// BenchmarkModuleLoad is one whole module load as the kernel sends it: load,
// symbols, initcall, done, free; per record.
func BenchmarkModuleLoad(b *testing.B) {
	seq := append(loadSequence("kt_bench", 1, 0, time.Millisecond), freeRecord(1, "kt_bench"))
	a := NewAnalyzer(Config{SlowInit: time.Second})
	var out []Event
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		out, _ = a.Handle(seq[i%len(seq)], out[:0])
	}
	reportRate(b, start)
}
