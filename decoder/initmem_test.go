package decoder

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/ktracer/ktracer/bpf"
)

const kallsymsFixture = "testdata/kallsyms-6.1.0-56-cloud-amd64.txt"

func loadKallsyms(t *testing.T) *KernelSymbols {
	t.Helper()
	f, err := os.Open(kallsymsFixture)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ks, err := ParseKallsyms(f)
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func TestParseKallsyms(t *testing.T) {
	ks := loadKallsyms(t)
	// From the capture: _sinittext, _einittext and net_dev_init.
	const sinit, einit, netDevInit = 0xffffffffa6c4e000, 0xffffffffa6cb1850, 0xffffffffa6ca79ed
	if got := ks.InitText(); got != (Range{sinit, einit - sinit}) {
		t.Errorf("InitText = %#x+%#x", got.Base, got.Size)
	}
	if name, off, ok := ks.Symbolize(netDevInit + 5); !ok || name != "net_dev_init" || off != 5 {
		t.Errorf("Symbolize(net_dev_init+5) = %s+%#x %v", name, off, ok)
	}
	if _, _, ok := ks.Symbolize(0xffffffffc0400000); ok {
		t.Error("a module-space address resolved to a core-kernel symbol")
	}
	if _, _, ok := ks.Symbolize(0x1000); ok {
		t.Error("an address below all symbols resolved")
	}
	for name, text := range map[string]string{
		"no type":      "ffffffff81000000\n",
		"bad address":  "zzzz T foo\n",
		"unprivileged": "0000000000000000 T _stext\n0000000000000000 T foo\n",
	} {
		if _, err := ParseKallsyms(strings.NewReader(text)); err == nil {
			t.Errorf("%s: ParseKallsyms accepted %q", name, text)
		}
	}
}

// Replays the records ktracer captured on Debian's 6.1 kernel while
// kt_timebomb loaded and its trigger called the stored __init pointer.
func TestReplayTimebombCapture(t *testing.T) {
	data, err := os.ReadFile("testdata/kt_timebomb.rec")
	if err != nil {
		t.Fatal(err)
	}
	a := NewAnalyzer(Config{SlowInit: 100e6, Kernel: loadKallsyms(t)})
	var got []Event
	err = ReadRecording(bytes.NewReader(data), func(raw []byte) error {
		var herr error
		got, herr = a.Handle(raw, got)
		return herr
	})
	if err != nil {
		t.Fatal(err)
	}
	f := findings(got)
	if len(f) != 2 {
		t.Fatalf("want 2 findings, got %d: %+v", len(f), f)
	}
	d, c := f[0], f[1]
	if d.Rule != RuleDanglingInitPointer || d.Module != "kt_timebomb" || d.Location != "global_ops+0x0" || d.Function != "kt_init_helper" {
		t.Errorf("first finding = %s %s %s %s", d.Rule, d.Module, d.Location, d.Function)
	}
	if c.Rule != RuleFreedInitCall || c.Module != "kt_timebomb" || c.Function != "kt_init_helper" || !strings.HasPrefix(c.Caller, "kt_trigger_set") || c.Address != d.Address {
		t.Errorf("second finding = %s %s %s from %s at %#x", c.Rule, c.Module, c.Function, c.Caller, c.Address)
	}
	if st := a.Stats(); st.Corrupt != 0 || st.OrphanSymbols != 0 {
		t.Errorf("stats %+v", st)
	}
}

func initPointerRecord(tid uint32, where, value uint64) []byte {
	var e bpf.KtInitPointerEvent
	e.Hdr = header(bpf.KtEventTypeEVENT_INIT_POINTER, sizeOf(e), tid, 250)
	e.Module = modAddr + uint64(tid)<<20
	e.Where = where + uint64(tid)<<20
	e.Value = value + uint64(tid)<<20
	return Encode(&e)
}

func execFaultRecord(tid uint32, addr, caller uint64) []byte {
	var e bpf.KtExecFaultEvent
	e.Hdr = header(bpf.KtEventTypeEVENT_EXEC_FAULT, sizeOf(e), tid, 900)
	e.Address, e.Ip, e.ErrorCode, e.Caller = addr, addr, 0x10, caller
	return Encode(&e)
}

// A module with a sized data object global_ops at the start of its data and
// __this_module after it, as the kernel lays kt_timebomb out.
func timebombSequence(tid uint32) [][]byte {
	return [][]byte{
		loadRecord("kt_bomb", tid),
		symbolRecord(tid, initFn, 't', "kt_bomb_init"),
		symbolRecord(tid, initBase+0x40, 't', "kt_init_helper"),
		symbolRecord(tid, textBase+0x20, 't', "kt_trigger_set"),
		sizedSymbol(tid, textBase+0x1000, 'd', "global_ops", 8),
		sizedSymbol(tid, textBase+0x1040, 'd', "__this_module", 0x340),
		initcallRecord(bpf.KtEventTypeEVENT_INITCALL_START, tid, initFn, 0, 0),
	}
}

func sizedSymbol(tid uint32, value uint64, kind byte, name string, size uint64) []byte {
	var r Record
	if err := Decode(symbolRecord(tid, value, kind, name), &r); err != nil {
		panic(err)
	}
	r.Symbol.Size = size
	return Encode(&r.Symbol)
}

func TestDanglingInitPointerPrecision(t *testing.T) {
	const tid = 2
	for _, tc := range []struct {
		name         string
		where, value uint64
		want         string // Location of the finding, "" for none
	}{
		{"pointer to an __init function in a data object", textBase + 0x1000, initBase + 0x40, "global_ops+0x0"},
		{"pointer into the middle of an __init function", textBase + 0x1000, initBase + 0x44, ""},
		{"pointer in struct module itself", textBase + 0x1040 + 0x158, initFn, ""},
		{"word outside any data object", textBase + 0x1800, initBase + 0x40, ""},
		{"pointer to non-init code", textBase + 0x1000, textBase + 0x20, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := NewAnalyzer(Config{})
			recs := append(timebombSequence(tid), initPointerRecord(tid, tc.where, tc.value))
			f := findings(run(t, a, recs...))
			switch {
			case tc.want == "" && len(f) != 0:
				t.Fatalf("false positive: %+v", f)
			case tc.want != "" && (len(f) != 1 || f[0].Location != tc.want || f[0].Function != "kt_init_helper" || f[0].Rule != RuleDanglingInitPointer):
				t.Fatalf("want one dangling-init-pointer at %s, got %+v", tc.want, f)
			}
		})
	}
}

func TestFreedInitCallRanges(t *testing.T) {
	const tid = 3
	live := append(timebombSequence(tid),
		initcallRecord(bpf.KtEventTypeEVENT_INITCALL_FINISH, tid, initFn, 0, 0),
		doneRecord(tid, 0, "kt_bomb"))
	helper := initBase + 0x40 + uint64(tid)<<20
	caller := textBase + 0x2f + uint64(tid)<<20
	ks := loadKallsyms(t)

	t.Run("call into freed module init text", func(t *testing.T) {
		a := NewAnalyzer(Config{Kernel: ks})
		f := findings(run(t, a, append(live, execFaultRecord(tid, helper, caller))...))
		if len(f) != 1 || f[0].Rule != RuleFreedInitCall || f[0].Function != "kt_init_helper" || f[0].Caller != "kt_trigger_set+0xf" || f[0].Module != "kt_bomb" {
			t.Fatalf("got %+v", f)
		}
	})
	t.Run("init text still in use while init runs", func(t *testing.T) {
		a := NewAnalyzer(Config{Kernel: ks})
		recs := append(timebombSequence(tid), execFaultRecord(tid, helper, caller))
		if f := findings(run(t, a, recs...)); len(f) != 0 {
			t.Fatalf("false positive: %+v", f)
		}
	})
	t.Run("freed range reused by a newer module", func(t *testing.T) {
		a := NewAnalyzer(Config{Kernel: ks})
		var r Record
		if err := Decode(loadRecord("kt_next", 9), &r); err != nil {
			t.Fatal(err)
		}
		reuse := r.ModuleLoad
		// The freed init page now holds the new module's data: executing
		// it is a bug of its own, not kt_bomb's freed init text.
		reuse.Ranges.Data[0] = bpf.KtMemRange{Base: helper &^ 0xfff, Size: 0x1000}
		recs := append(live, Encode(&reuse), execFaultRecord(9, helper, caller))
		if f := findings(run(t, a, recs...)); len(f) != 0 {
			t.Fatalf("a fault in reused memory was blamed on the old module: %+v", f)
		}
	})
	t.Run("call into the kernel's freed init text", func(t *testing.T) {
		a := NewAnalyzer(Config{Kernel: ks})
		const netDevInit = 0xffffffffa6ca79ed
		f := findings(run(t, a, execFaultRecord(1, netDevInit, 0xffffffffa6c4e100)))
		if len(f) != 1 || f[0].Module != "" || f[0].Function != "net_dev_init" {
			t.Fatalf("got %+v", f)
		}
	})
	t.Run("fault outside any init text", func(t *testing.T) {
		a := NewAnalyzer(Config{Kernel: ks})
		if f := findings(run(t, a, append(live, execFaultRecord(tid, 0, caller))...)); len(f) != 0 {
			t.Fatalf("a NULL call was reported as freed-init-call: %+v", f)
		}
		if a.Stats().OtherExecFaults != 1 {
			t.Errorf("stats %+v", a.Stats())
		}
	})
}

func TestRecordingRejectsGarbage(t *testing.T) {
	for name, data := range map[string][]byte{
		"truncated length": {1, 0},
		"huge length":      {0, 0, 0, 1},
		"truncated body":   {8, 0, 0, 0, 1, 2},
	} {
		if err := ReadRecording(bytes.NewReader(data), func([]byte) error { return nil }); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	var buf bytes.Buffer
	raw := initcallRecord(bpf.KtEventTypeEVENT_INITCALL_FINISH, 1, initFn, 1, 0)
	if err := WriteRecording(&buf, raw); err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := ReadRecording(&buf, func(b []byte) error { n++; return nil }); err != nil || n != 1 {
		t.Errorf("round trip: %d records, %v", n, err)
	}
}

func int3Record(tid uint32, ip, caller uint64) []byte {
	var o bpf.KtOopsEvent
	o.Hdr = header(bpf.KtEventTypeEVENT_OOPS, sizeOf(o), tid, 950)
	o.Kind = uint32(bpf.KtOopsKindOOPS_TRAP)
	o.Ip, o.Caller = ip, caller
	cname(o.What[:], "int3")
	cname(o.Comm[:], "sh")
	return Encode(&o)
}

// On 7.2 the freed init text stays mapped, filled with int3: the stale
// call traps at the function's first byte (die("int3"), ip one byte past
// it) instead of page-faulting, and the same freed-init-call is reported,
// before the oops.
func TestFreedInitCallThroughInt3(t *testing.T) {
	const tid = 5
	live := append(timebombSequence(tid),
		initcallRecord(bpf.KtEventTypeEVENT_INITCALL_FINISH, tid, initFn, 0, 0),
		doneRecord(tid, 0, "kt_bomb"))
	helper := initBase + 0x40 + uint64(tid)<<20
	caller := textBase + 0x2f + uint64(tid)<<20

	a := NewAnalyzer(Config{Kernel: loadKallsyms(t)})
	f := findings(run(t, a, append(live, int3Record(tid, helper+1, caller))...))
	if len(f) != 2 || f[0].Rule != RuleFreedInitCall || f[1].Rule != RuleOops {
		t.Fatalf("want freed-init-call then oops, got %+v", f)
	}
	if g := f[0]; g.Module != "kt_bomb" || g.Function != "kt_init_helper" || g.Caller != "kt_trigger_set+0xf" || g.Address != helper {
		t.Errorf("freed-init-call = %+v", g)
	}
	if !strings.Contains(f[0].Message, "int3") {
		t.Errorf("message %q does not say how the call was caught", f[0].Message)
	}

	// The same trap while init still runs, and an int3 in mapped text
	// (a BUG-like trap, a kprobe gone wrong): only the oops.
	for name, recs := range map[string][][]byte{
		"during init":  append(timebombSequence(tid), int3Record(tid, helper+1, caller)),
		"in core text": append(live, int3Record(tid, textBase+0x21+uint64(tid)<<20, caller)),
	} {
		a := NewAnalyzer(Config{Kernel: loadKallsyms(t)})
		if f := findings(run(t, a, recs...)); len(f) != 1 || f[0].Rule != RuleOops {
			t.Errorf("%s: want only the oops, got %+v", name, f)
		}
	}
}
