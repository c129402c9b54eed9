package decoder

import (
	"bytes"
	"encoding/binary"
	"os"
	"strings"
	"testing"

	"github.com/ktracer/ktracer/bpf"
)

// replayUntil feeds the kt_timebomb capture (Debian 6.1) to a, stopping
// before the first record of type stop; it returns the records left.
func replayUntil(t *testing.T, a *Analyzer, stop Type) [][]byte {
	t.Helper()
	data, err := os.ReadFile("testdata/kt_timebomb.rec")
	if err != nil {
		t.Fatal(err)
	}
	var rest [][]byte
	var r Record
	err = ReadRecording(bytes.NewReader(data), func(raw []byte) error {
		if len(rest) == 0 {
			if Decode(raw, &r) == nil && Type(r.Header.Type) == stop {
				rest = append(rest, bytes.Clone(raw))
				return nil
			}
			_, err := a.Handle(raw, nil)
			return err
		}
		rest = append(rest, bytes.Clone(raw))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The capture predates the oops hook: add the oops the kernel printed
	// for that fault, at its address, from its caller.
	if Decode(rest[0], &r) != nil {
		t.Fatal("bad exec fault record")
	}
	var o bpf.KtOopsEvent
	o.Hdr = r.ExecFault.Hdr
	o.Hdr.Type = uint16(bpf.KtEventTypeEVENT_OOPS)
	o.Hdr.Size = uint16(sizeOf(o))
	o.Kind = uint32(bpf.KtOopsKindOOPS_PAGE_FAULT)
	o.Ip, o.Caller, o.Address, o.ErrorCode = r.ExecFault.Address, r.ExecFault.Caller, r.ExecFault.Address, 0x10
	cname(o.Comm[:], "sh")
	return append(rest[:1], append([][]byte{Encode(&o)}, rest[1:]...)...)
}

func byName(a *Analyzer, name string) *Module {
	for _, m := range a.modules {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// asLoaded is what the startup audit would recover of m: the same layout
// and symbols, at the same addresses.
func asLoaded(m *Module) LoadedModule {
	lm := LoadedModule{Name: m.Name, Addr: m.Addr, Text: m.Text, InitText: m.InitText, Data: m.Data, Origin: "/lib/modules/x/extra/" + m.Name + ".ko"}
	for i := range m.syms {
		s := &m.syms[i]
		lm.Symbols = append(lm.Symbols, ModuleSymbol{Name: m.name(s), Addr: s.value, Size: s.size, Kind: s.kind})
	}
	return lm
}

// A daemon restarted between kt_timebomb's load and its trigger: the
// snapshot of the first (what the state file keeps) plus kallsyms' live
// names let the second name the call and the oops, as the first would.
func TestRestartKeepsInitNames(t *testing.T) {
	first := NewAnalyzer(Config{Kernel: loadKallsyms(t)})
	rest := replayUntil(t, first, bpf.KtEventTypeEVENT_EXEC_FAULT)
	snap := first.InitSnapshot()
	if len(snap) != 1 || snap[0].Name != "kt_timebomb" || len(snap[0].Symbols) == 0 {
		t.Fatalf("snapshot = %+v", snap)
	}
	for _, s := range snap[0].Symbols {
		if !snap[0].InitText.Contains(s.Addr) {
			t.Errorf("snapshot keeps %s, outside init text", s.Name)
		}
	}
	// The restarted daemon: core names as kallsyms has them (no sizes).
	lm := snap[0]
	tb := byName(first, "kt_timebomb")
	for i := range tb.syms {
		s := &tb.syms[i]
		if tb.Text.Contains(s.value) {
			lm.Symbols = append(lm.Symbols, ModuleSymbol{Name: tb.name(s), Addr: s.value, Kind: s.kind})
		}
	}
	lm.Origin = "the daemon's state"
	second := NewAnalyzer(Config{Kernel: loadKallsyms(t)})
	evs := second.AddLoaded(&lm, nil)
	if len(evs) != 1 || evs[0].Kind != KindModuleAlreadyLoaded || evs[0].Source != SourceStartupAudit || evs[0].Function != "kt_timebomb_init" {
		t.Fatalf("AddLoaded events = %+v", evs)
	}
	var got []Event
	for _, raw := range rest {
		got, _ = second.Handle(raw, got)
	}
	var call, oops *Event
	for i := range got {
		switch got[i].Rule {
		case RuleFreedInitCall:
			call = &got[i]
		case RuleOops:
			oops = &got[i]
		}
	}
	if call == nil || call.Module != "kt_timebomb" || call.Function != "kt_init_helper" || !strings.HasPrefix(call.Caller, "kt_trigger_set") {
		t.Fatalf("freed-init-call after restart = %+v", call)
	}
	if !strings.Contains(call.Message, "loaded before ktracer started") {
		t.Errorf("message does not say the names were recovered: %s", call.Message)
	}
	if oops == nil || !strings.Contains(oops.Message, "kt_init_helper [kt_timebomb]") || !strings.Contains(oops.Message, "kt_trigger_set") {
		t.Errorf("oops after restart not named: %+v", oops)
	}
}

// Without anything recovered, the oops says the address belongs to nobody
// rather than printing a bare number.
func TestOopsUnownedSaysSo(t *testing.T) {
	first := NewAnalyzer(Config{Kernel: loadKallsyms(t)})
	rest := replayUntil(t, first, bpf.KtEventTypeEVENT_EXEC_FAULT)
	second := NewAnalyzer(Config{Kernel: loadKallsyms(t)})
	var got []Event
	for _, raw := range rest {
		got, _ = second.Handle(raw, got)
	}
	oopses := 0
	for _, ev := range got {
		if ev.Rule == RuleFreedInitCall {
			t.Errorf("freed-init-call with no recovered module: %+v", ev)
		}
		if ev.Rule == RuleOops {
			oopses++
			if !strings.Contains(ev.Message, "no module and not the kernel owns") {
				t.Errorf("oops: %s", ev.Message)
			}
		}
	}
	if oopses != 1 {
		t.Errorf("%d oopses, want 1", oopses)
	}
}

// The audit's scan: the word in global_ops pointing at kt_init_helper is a
// dangling-init-pointer marked as the audit's; words that are not a
// function start or not in a named object are explained, not reported.
func TestAddLoadedScansData(t *testing.T) {
	first := NewAnalyzer(Config{Kernel: loadKallsyms(t)})
	replayUntil(t, first, bpf.KtEventTypeEVENT_EXEC_FAULT)
	tb := byName(first, "kt_timebomb")
	lm := asLoaded(tb)
	tb.sort()
	var helper, globalOps, globalSize uint64
	for i := range tb.syms {
		switch tb.name(&tb.syms[i]) {
		case "kt_init_helper":
			helper = tb.syms[i].value
		case "global_ops":
			globalOps, globalSize = tb.syms[i].value, tb.syms[i].size
		}
	}
	if helper == 0 || globalOps == 0 {
		t.Fatal("capture lacks kt_init_helper or global_ops")
	}
	mem := make([]byte, 24)
	binary.LittleEndian.PutUint64(mem[0:], helper)    // global_ops+0x0
	binary.LittleEndian.PutUint64(mem[8:], helper+3)  // past the object, mid-function
	binary.LittleEndian.PutUint64(mem[16:], 0x123456) // not init text
	lm.Memory = []MemoryChunk{{Section: ".data", Base: globalOps, Bytes: mem}}

	a := NewAnalyzer(Config{})
	evs := a.AddLoaded(&lm, nil)
	evs = a.ScanLoaded(&lm, evs)
	var f, ignored []Event
	for _, ev := range evs {
		switch ev.Kind {
		case KindFinding:
			f = append(f, ev)
		case KindInitPointerIgnored:
			ignored = append(ignored, ev)
		}
	}
	if len(f) != 1 || f[0].Rule != RuleDanglingInitPointer || f[0].Location != "global_ops+0x0" || f[0].Function != "kt_init_helper" || f[0].Source != SourceStartupAudit {
		t.Fatalf("findings = %+v", f)
	}
	if !strings.Contains(f[0].Message, "startup audit") {
		t.Errorf("message: %s", f[0].Message)
	}
	wantIgnored := 1
	if globalSize > 8 {
		wantIgnored = 1 // inside global_ops, but not a function's start
	}
	if len(ignored) != wantIgnored || ignored[0].Source != SourceStartupAudit {
		t.Errorf("ignored = %+v", ignored)
	}
	if st := a.AuditStats(); st.Modules != 1 || st.InitNamed != 1 || st.WordsScanned != 3 || st.InitPointers != 2 || st.DanglingFound != 1 {
		t.Errorf("audit stats = %+v", st)
	}
}

// A module loaded after kt_timebomb into its freed init text ends the
// range's claim, for recovered modules as for live ones.
func TestAddLoadedReclaim(t *testing.T) {
	first := NewAnalyzer(Config{Kernel: loadKallsyms(t)})
	rest := replayUntil(t, first, bpf.KtEventTypeEVENT_EXEC_FAULT)
	lm := asLoaded(byName(first, "kt_timebomb"))
	later := LoadedModule{Name: "later", Addr: 0xffffffffc1000000, Text: lm.InitText}
	a := NewAnalyzer(Config{Kernel: loadKallsyms(t)})
	a.AddLoaded(&lm, nil)
	a.AddLoaded(&later, nil)
	var got []Event
	for _, raw := range rest {
		got, _ = a.Handle(raw, got)
	}
	for _, ev := range got {
		if ev.Rule == RuleFreedInitCall {
			t.Errorf("freed-init-call in memory a later module owns: %+v", ev)
		}
	}
	// A later module that took only part of the freed init text ends the
	// claim on that part only.
	part := NewAnalyzer(Config{Kernel: loadKallsyms(t)})
	helper := helperOf(t, first)
	partial := LoadedModule{Name: "partial", Addr: 0xffffffffc1100000, Data: [3]Range{{helper + 0x100, 0x100}}}
	lm2 := asLoaded(byName(first, "kt_timebomb"))
	part.AddLoaded(&lm2, nil)
	part.AddLoaded(&partial, nil)
	var calls int
	for _, raw := range rest {
		evs, _ := part.Handle(raw, nil)
		for _, ev := range evs {
			if ev.Rule == RuleFreedInitCall && ev.Function == "kt_init_helper" {
				calls++
			}
		}
	}
	if calls != 1 {
		t.Errorf("partial reuse: %d freed-init-calls at kt_init_helper, want 1", calls)
	}
	// A word pointing into the part a later module took may be a pointer
	// to that module's code: explained, not reported.
	lm.Memory = []MemoryChunk{{Section: ".data", Base: globalOpsOf(t, first), Bytes: le(helperOf(t, first))}}
	evs := a.ScanLoaded(&lm, nil)
	if len(evs) != 1 || evs[0].Kind != KindInitPointerIgnored || !strings.Contains(evs[0].Reason, "a later module took since (now") ||
		!strings.Contains(evs[0].Reason, "[later]") || evs[0].Function != "kt_init_helper" || evs[0].Location != "global_ops+0x0" {
		t.Errorf("scan after reuse: %+v", evs)
	}
	// A module without a name source says why, and its init text is not
	// claimed.
	none := LoadedModule{Name: "nofile", Addr: 0xffffffffc2000000, NoInitNames: "no file"}
	evs = a.AddLoaded(&none, nil)
	if len(evs) != 1 || evs[0].Reason != "no file" {
		t.Errorf("AddLoaded(nofile) = %+v", evs)
	}
}

func symAddr(t *testing.T, a *Analyzer, name string) uint64 {
	tb := byName(a, "kt_timebomb")
	for i := range tb.syms {
		if tb.name(&tb.syms[i]) == name {
			return tb.syms[i].value
		}
	}
	t.Fatalf("no %s in the capture", name)
	return 0
}

func globalOpsOf(t *testing.T, a *Analyzer) uint64 { return symAddr(t, a, "global_ops") }
func helperOf(t *testing.T, a *Analyzer) uint64    { return symAddr(t, a, "kt_init_helper") }

func le(v uint64) []byte {
	b := make([]byte, 8)
	binary.LittleEndian.PutUint64(b, v)
	return b
}

// kallsyms lines of modules, as the 6.1 VM printed them: the module's live
// names by module; core-kernel lines are left to ParseKallsyms.
func TestParseModuleKallsyms(t *testing.T) {
	text := "ffffffffc04fd000 t kt_trigger_set\t[kt_tablebomb]\n" +
		"ffffffffc04ff3c0 b kt_table\t[kt_tablebomb]\n" +
		"ffffffffc0502000 t kt_good_exit\t[kt_good]\n" +
		"ffffffff81000000 T _stext\n"
	got, err := ParseModuleKallsyms(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || len(got["kt_tablebomb"]) != 2 || got["kt_tablebomb"][1] != (ModuleSymbol{Name: "kt_table", Addr: 0xffffffffc04ff3c0, Kind: 'b'}) {
		t.Errorf("got %+v", got)
	}
	if _, err := ParseModuleKallsyms(strings.NewReader("0000000000000000 t a\t[m]\n")); err == nil {
		t.Error("all-zero addresses accepted")
	}
}
