package decoder

import (
	"runtime"
	"testing"

	"github.com/ktracer/ktracer/bpf"
)

// Issue 12 item 12: a module_load record claiming 0xffffffff symbols made
// the analyzer allocate 12 MiB up front for one module. The claim sizes a
// first allocation only up to a small bound; real symbols grow it.
func TestHugeSymbolClaimIsNotAllocated(t *testing.T) {
	var e bpf.KtModuleLoadEvent
	e.Hdr = header(bpf.KtEventTypeEVENT_MODULE_LOAD, sizeOf(e), 7, 100)
	e.Module = modAddr + 7<<20
	e.NumSymbols = 0xffffffff
	cname(e.Name[:], "liar")
	raw := Encode(&e)

	a := NewAnalyzer(Config{})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if _, err := a.Handle(raw, nil); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
		t.Errorf("one module_load claiming 2^32-1 symbols allocated %d KiB", got>>10)
	}
	// The symbols that do come are all kept.
	for i := 0; i < 5000; i++ {
		if _, err := a.Handle(symbolRecord(7, uint64(0x1000+i*16), 't', "fn"), nil); err != nil {
			t.Fatal(err)
		}
	}
	if m := a.Module(modAddr + 7<<20); m == nil || len(m.syms) != 5000 {
		t.Errorf("symbols kept: %v", m)
	}
}
