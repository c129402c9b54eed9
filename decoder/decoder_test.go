package decoder

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/ktracer/ktracer/bpf"
)

// Addresses as the Debian 6.1 kernel lays out a small module.
const (
	modAddr  = 0xffffffffc0402040
	textBase = 0xffffffffc0400000
	initBase = 0xffffffffc0406000
	initFn   = initBase + 0x10
)

func header(t bpf.KtEventType, size uintptr, tid uint32, ts uint64) bpf.KtEventHeader {
	return bpf.KtEventHeader{Type: uint16(t), Size: uint16(size), Cpu: 1, TsNs: ts, Pid: tid, Tid: tid}
}

func cname[N ~[]int8](dst N, s string) {
	for i := range dst {
		dst[i] = 0
	}
	for i := 0; i < len(s) && i < len(dst)-1; i++ {
		dst[i] = int8(s[i])
	}
}

func loadRecord(name string, tid uint32) []byte {
	var e bpf.KtModuleLoadEvent
	e.Hdr = header(bpf.KtEventTypeEVENT_MODULE_LOAD, sizeOf(e), tid, 100)
	e.Module = modAddr + uint64(tid)<<20
	e.InitFn = initFn + uint64(tid)<<20
	e.Ranges.Text = bpf.KtMemRange{Base: textBase + uint64(tid)<<20, Size: 0x1000}
	e.Ranges.InitText = bpf.KtMemRange{Base: initBase + uint64(tid)<<20, Size: 0x200}
	e.Ranges.Data[0] = bpf.KtMemRange{Base: textBase + uint64(tid)<<20 + 0x1000, Size: 0x1000}
	e.NumSymbols = 4
	cname(e.Name[:], name)
	return Encode(&e)
}

func symbolRecord(tid uint32, value uint64, kind byte, name string) []byte {
	var e bpf.KtModuleSymbolEvent
	e.Hdr = header(bpf.KtEventTypeEVENT_MODULE_SYMBOL, sizeOf(e), tid, 101)
	e.Module = modAddr + uint64(tid)<<20
	e.Value = value + uint64(tid)<<20
	e.Type = kind
	cname(e.Name[:], name)
	return Encode(&e)
}

func initcallRecord(typ bpf.KtEventType, tid uint32, fn uint64, ret int32, d time.Duration) []byte {
	var e bpf.KtInitcallEvent
	e.Hdr = header(typ, sizeOf(e), tid, 200)
	e.Func = fn + uint64(tid)<<20
	e.Ret = ret
	e.DurationNs = uint64(d)
	return Encode(&e)
}

func doneRecord(tid uint32, ret int32, name string) []byte {
	var e bpf.KtModuleDoneEvent
	e.Hdr = header(bpf.KtEventTypeEVENT_MODULE_INIT_DONE, sizeOf(e), tid, 300)
	e.Module = modAddr + uint64(tid)<<20
	e.Ret = ret
	cname(e.Name[:], name)
	return Encode(&e)
}

func freeRecord(tid uint32, name string) []byte {
	var e bpf.KtModuleFreeEvent
	e.Hdr = header(bpf.KtEventTypeEVENT_MODULE_FREE, sizeOf(e), tid, 290)
	e.Module = modAddr + uint64(tid)<<20
	cname(e.Name[:], name)
	return Encode(&e)
}

// loadSequence is what the BPF side sends for one module whose init returns
// ret after d: load, symbols (module_init's init_module alias included, as
// in a real symtab), start, finish, done.
func loadSequence(name string, tid uint32, ret int32, d time.Duration) [][]byte {
	recs := [][]byte{
		loadRecord(name, tid),
		symbolRecord(tid, initFn, 't', ""), // the .init.text section symbol
		symbolRecord(tid, initFn, 't', "init_module"),
		symbolRecord(tid, initFn, 't', name+"_init"),
		symbolRecord(tid, textBase+0x100, 't', name+"_exit"),
		symbolRecord(tid, textBase+0x1000, 'd', "global_ops"),
		initcallRecord(bpf.KtEventTypeEVENT_INITCALL_START, tid, initFn, 0, 0),
		initcallRecord(bpf.KtEventTypeEVENT_INITCALL_FINISH, tid, initFn, ret, d),
	}
	if ret < 0 {
		// The kernel frees a module whose init failed before
		// do_init_module returns, and the name is gone by then.
		return append(recs, freeRecord(tid, name), doneRecord(tid, ret, ""))
	}
	return append(recs, doneRecord(tid, 0, name))
}

func run(t *testing.T, a *Analyzer, recs ...[]byte) []Event {
	t.Helper()
	var out []Event
	for _, r := range recs {
		var err error
		out, err = a.Handle(r, out)
		if err != nil {
			t.Fatalf("Handle: %v", err)
		}
	}
	return out
}

func findings(evs []Event) []Event {
	var out []Event
	for _, e := range evs {
		if e.Kind == KindFinding {
			out = append(out, e)
		}
	}
	return out
}

func TestRules(t *testing.T) {
	slow := 100 * time.Millisecond
	for _, tc := range []struct {
		name     string
		ret      int32
		d        time.Duration
		rules    []Rule
		values   []int64
		severity []Severity
	}{
		{"good", 0, time.Millisecond, nil, nil, nil},
		{"positive", 1, time.Millisecond, []Rule{RulePositiveInitReturn}, []int64{1}, []Severity{SeverityError}},
		{"large positive", 0x7fffffff, 0, []Rule{RulePositiveInitReturn}, []int64{0x7fffffff}, []Severity{SeverityError}},
		{"enodev", -19, time.Millisecond, []Rule{RuleInitFailed}, []int64{-19}, []Severity{SeverityInfo}},
		{"slow at threshold is not slow", 0, slow, nil, nil, nil},
		{"slow just above threshold", 0, slow + time.Nanosecond, []Rule{RuleSlowInit}, []int64{int64(slow) + 1}, []Severity{SeverityWarning}},
		{"slow and positive", 1, 300 * time.Millisecond, []Rule{RulePositiveInitReturn, RuleSlowInit}, []int64{1, int64(300 * time.Millisecond)}, []Severity{SeverityError, SeverityWarning}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := NewAnalyzer(Config{SlowInit: slow})
			got := findings(run(t, a, loadSequence("kt_mod", 7, tc.ret, tc.d)...))
			if len(got) != len(tc.rules) {
				t.Fatalf("got %d findings %+v, want %v", len(got), got, tc.rules)
			}
			for i, f := range got {
				if f.Rule != tc.rules[i] || f.Value != tc.values[i] || f.Severity != tc.severity[i] {
					t.Errorf("finding %d = %s/%d/%s, want %s/%d/%s", i, f.Rule, f.Value, f.Severity, tc.rules[i], tc.values[i], tc.severity[i])
				}
				if f.Module != "kt_mod" || f.Function != "kt_mod_init" {
					t.Errorf("finding %d names %s/%s, want kt_mod/kt_mod_init", i, f.Module, f.Function)
				}
			}
		})
	}
}

func TestInitcallEventNamesInitFunctionNotAlias(t *testing.T) {
	a := NewAnalyzer(Config{SlowInit: time.Second})
	evs := run(t, a, loadSequence("kt_positive", 3, -19, 5*time.Millisecond)...)
	var kinds []Kind
	for _, e := range evs {
		kinds = append(kinds, e.Kind)
	}
	want := []Kind{KindModuleLoad, KindInitcall, KindFinding, KindModuleFree, KindModuleInitFailed}
	if len(kinds) != len(want) {
		t.Fatalf("events %v, want %v", kinds, want)
	}
	for i := range want {
		if kinds[i] != want[i] {
			t.Fatalf("events %v, want %v", kinds, want)
		}
	}
	load, ic := evs[0], evs[1]
	if load.Function != "kt_positive_init" || load.Symbols != 4 {
		t.Errorf("module_load = %+v", load)
	}
	if ic.Function != "kt_positive_init" || ic.Module != "kt_positive" || ic.Ret != -19 || ic.Errno != "ENODEV" || ic.Duration != 5*time.Millisecond {
		t.Errorf("initcall = %+v", ic)
	}
	if failed := evs[4]; failed.Module != "kt_positive" || failed.Errno != "ENODEV" {
		t.Errorf("module_init_failed = %+v, want kt_positive ENODEV", failed)
	}
	if a.Module(modAddr+3<<20) != nil {
		t.Error("a module whose init failed is still tracked")
	}
}

// Two tasks loading modules at once: each initcall belongs to its own task's
// module, whatever the interleaving.
func TestConcurrentLoadsDoNotMix(t *testing.T) {
	a := NewAnalyzer(Config{SlowInit: time.Second})
	x := loadSequence("kt_a", 10, 1, 0)
	y := loadSequence("kt_b", 11, -12, 0)
	var recs [][]byte
	for i := range max(len(x), len(y)) {
		if i < len(x) {
			recs = append(recs, x[i])
		}
		if i < len(y) {
			recs = append(recs, y[i])
		}
	}
	var got []string
	for _, e := range run(t, a, recs...) {
		if e.Kind == KindInitcall {
			got = append(got, e.Module+":"+e.Function+":"+ErrnoName(e.Ret))
		}
	}
	want := "kt_a:kt_a_init:,kt_b:kt_b_init:ENOMEM"
	if strings.Join(got, ",") != want {
		t.Errorf("initcalls %v, want %s", got, want)
	}
}

func TestInitcallOfOtherFunctionNotAttributed(t *testing.T) {
	a := NewAnalyzer(Config{})
	evs := run(t, a,
		loadRecord("kt_mod", 5),
		initcallRecord(bpf.KtEventTypeEVENT_INITCALL_FINISH, 5, 0xffffffff81000000, 0, 0),
	)
	for _, e := range evs {
		if e.Kind == KindInitcall && (e.Module != "" || e.Function != "0xffffffff81500000") {
			t.Errorf("initcall of a non-module function attributed: %+v", e)
		}
	}
}

func TestModuleFreeForgetsModule(t *testing.T) {
	a := NewAnalyzer(Config{})
	evs := run(t, a, append(loadSequence("kt_good", 4, 0, 0), freeRecord(4, "kt_good"))...)
	last := evs[len(evs)-1]
	if last.Kind != KindModuleFree || last.Module != "kt_good" {
		t.Errorf("last event %+v, want module_free kt_good", last)
	}
	if a.Module(modAddr+4<<20) != nil {
		t.Error("freed module still tracked")
	}
}

func TestDecodeRejectsCorruptRecords(t *testing.T) {
	good := initcallRecord(bpf.KtEventTypeEVENT_INITCALL_FINISH, 1, initFn, 1, 0)
	sizeLie := append([]byte(nil), good...)
	sizeLie[2] = byte(len(good) + 8)
	unknown := append([]byte(nil), good...)
	unknown[0] = 99
	wrongSize := append(append([]byte(nil), good...), make([]byte, 8)...)
	wrongSize[2] = byte(len(wrongSize))
	for name, raw := range map[string][]byte{
		"empty":           nil,
		"short header":    good[:10],
		"size mismatch":   sizeLie,
		"unknown type":    unknown,
		"type/size clash": wrongSize,
	} {
		var r Record
		if err := Decode(raw, &r); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: Decode = %v, want ErrCorrupt", name, err)
		}
	}
	a := NewAnalyzer(Config{})
	if _, err := a.Handle(unknown, nil); err == nil || a.Stats().Corrupt != 1 {
		t.Errorf("corrupt record not counted: err=%v stats=%+v", err, a.Stats())
	}
}

func TestDecodeRoundTrip(t *testing.T) {
	raw := initcallRecord(bpf.KtEventTypeEVENT_INITCALL_FINISH, 9, initFn, -517, 42)
	var r Record
	if err := Decode(raw, &r); err != nil {
		t.Fatal(err)
	}
	if r.Initcall.Ret != -517 || r.Initcall.DurationNs != 42 || r.Header.Tid != 9 || r.Initcall.Func != initFn+9<<20 {
		t.Errorf("decoded %+v", r.Initcall)
	}
	if ErrnoName(-517) != "EPROBE_DEFER" || ErrnoName(-4095) != "errno 4095" || ErrnoName(0) != "" {
		t.Error("ErrnoName")
	}
}

func TestSeverity(t *testing.T) {
	for _, s := range []string{"info", "WARNING", "error"} {
		if _, err := ParseSeverity(s); err != nil {
			t.Error(err)
		}
	}
	if _, err := ParseSeverity("fatal"); err == nil {
		t.Error("ParseSeverity(fatal) succeeded")
	}
	if !(SeverityError > SeverityWarning && SeverityWarning > SeverityInfo) {
		t.Error("severity order")
	}
}

func sizeOf[T any](v T) uintptr { return unsafe.Sizeof(v) }

// A module without an init function is still announced, once.
func TestModuleWithoutInitIsAnnounced(t *testing.T) {
	a := NewAnalyzer(Config{})
	var e bpf.KtModuleLoadEvent
	var r Record
	if err := Decode(loadRecord("kt_lib", 6), &r); err != nil {
		t.Fatal(err)
	}
	e = r.ModuleLoad
	e.InitFn = 0
	evs := run(t, a, Encode(&e), doneRecord(6, 0, "kt_lib"))
	if len(evs) != 2 || evs[0].Kind != KindModuleLoad || evs[0].Module != "kt_lib" || evs[0].Function != "" || evs[1].Kind != KindModuleLive {
		t.Fatalf("events %+v", evs)
	}
}

// With the init symbols lost, an init text address is not named after the
// last core-text function: it stays an address.
func TestFunctionStaysInItsRegion(t *testing.T) {
	a := NewAnalyzer(Config{})
	evs := run(t, a,
		loadRecord("kt_mod", 8),
		symbolRecord(8, textBase+0x100, 't', "kt_mod_exit"),
		initcallRecord(bpf.KtEventTypeEVENT_INITCALL_FINISH, 8, initFn, 0, 0),
	)
	for _, e := range evs {
		if e.Kind == KindInitcall && e.Function != "0xffffffffc0c06010" {
			t.Errorf("init function named %q, want its address", e.Function)
		}
	}
}

// Kernels with function padding (CONFIG_CALL_PADDING, kCFI: 6.2 on, and
// Debian's 7.2) give each function F a __pfx_F or __cfi_F symbol on the 16
// bytes before it, init_module's alias included: none of them is a function.
func TestPaddingSymbolsAreNotFunctions(t *testing.T) {
	const tid = 7
	recs := loadSequence("kt_padded", tid, 0, time.Millisecond)
	pad := [][]byte{
		symbolRecord(tid, initFn-0x10, 't', "__pfx_init_module"),
		symbolRecord(tid, initFn-0x10, 't', "__pfx_kt_padded_init"),
		symbolRecord(tid, initFn-0x10, 't', "__cfi_kt_padded_init"),
		symbolRecord(tid, textBase+0xf0, 't', "__pfx_kt_padded_exit"),
	}
	// After the load record, before the real symbols: the order of a symtab.
	recs = append(append([][]byte{recs[0]}, pad...), recs[1:]...)
	a := NewAnalyzer(Config{SlowInit: time.Second})
	evs := run(t, a, recs...)
	if evs[0].Kind != KindModuleLoad || evs[0].Function != "kt_padded_init" {
		t.Fatalf("module_load = %+v, want function kt_padded_init", evs[0])
	}
	if evs[0].Symbols != 4 {
		t.Errorf("module_load counts %d symbols, want 4 (padding symbols are not kept)", evs[0].Symbols)
	}
	m := a.Module(modAddr + tid<<20)
	if m == nil {
		t.Fatal("module not tracked")
	}
	for _, addr := range []uint64{initFn - 0x10, initFn - 1, initFn, textBase + 0xf8, textBase + 0x100} {
		addr += tid << 20
		if name, _, ok := m.Function(addr); ok && (strings.HasPrefix(name, "__pfx_") || strings.HasPrefix(name, "__cfi_")) {
			t.Errorf("Function(%#x) = %s: a padding symbol", addr, name)
		}
	}
	if name, off, _ := m.Function(textBase + 0xf8 + tid<<20); name != "" && off == 0 {
		t.Errorf("an address in the exit's padding resolved to %s+0", name)
	}
}
