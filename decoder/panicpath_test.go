package decoder

import (
	"strings"
	"testing"

	"github.com/ktracer/ktracer/bpf"
)

func TestFormatPanic(t *testing.T) {
	for _, tc := range []struct {
		format string
		args   []uint64
		strs   [2]string
		want   string
	}{
		{"Fatal exception", nil, [2]string{}, "Fatal exception"},
		{"%s: %d\n", []uint64{1, 0xfffffff4}, [2]string{"sysrq triggered crash"}, "sysrq triggered crash: -12"},
		{"Attempted to kill init! exitcode=0x%08x\n", []uint64{0x9}, [2]string{}, "Attempted to kill init! exitcode=0x00000009"},
		{"VFS: Unable to mount root fs on %s", []uint64{0xffff}, [2]string{""}, "VFS: Unable to mount root fs on ?"},
		{"%d%%", []uint64{50}, [2]string{}, "50%"},
		{"%s %s %s", []uint64{1, 2}, [2]string{"a", "b"}, "a b ?"},
		{"trailing %", nil, [2]string{}, "trailing %"},
	} {
		if got := formatPanic(tc.format, tc.args, tc.strs); got != tc.want {
			t.Errorf("formatPanic(%q) = %q, want %q", tc.format, got, tc.want)
		}
	}
}

func TestPageFaultCode(t *testing.T) {
	for code, want := range map[uint64]string{
		0x0:  "error code 0x0: read, not-present page",
		0x2:  "error code 0x2: write, not-present page",
		0x10: "error code 0x10: instruction fetch, not-present page",
		0x3:  "error code 0x3: write, protection violation",
	} {
		if got := pageFaultCode(code); got != want {
			t.Errorf("pageFaultCode(%#x) = %q, want %q", code, got, want)
		}
	}
}

// An oops in a module's function, as kt_oops produces on 6.1: the module and
// function come from the symbols captured at load.
func TestOopsNamesModuleFunction(t *testing.T) {
	const tid = 4
	a := NewAnalyzer(Config{})
	var o bpf.KtOopsEvent
	o.Hdr = header(bpf.KtEventTypeEVENT_OOPS, sizeOf(o), tid, 500)
	o.Kind = uint32(bpf.KtOopsKindOOPS_PAGE_FAULT)
	o.Ip = textBase + 0x25 + tid<<20
	o.Caller = textBase + 0x105 + tid<<20
	o.Address = 0x18
	cname(o.Comm[:], "sh")
	recs := append(loadSequence("kt_oops", tid, 0, 0),
		symbolRecord(tid, textBase+0x20, 't', "kt_oops_handle"),
		Encode(&o))
	f := findings(run(t, a, recs...))
	if len(f) != 1 || f[0].Rule != RuleOops || f[0].Module != "kt_oops" || f[0].Function != "kt_oops_handle+0x5" ||
		f[0].Caller != "kt_oops_exit+0x5 [kt_oops]" || f[0].Task != "sh" || f[0].Severity != SeverityError {
		t.Fatalf("got %+v", f)
	}
	if !strings.Contains(f[0].Message, "address 0x18 (error code 0x0: read, not-present page) in kt_oops_handle+0x5 [kt_oops]") {
		t.Errorf("message %q", f[0].Message)
	}
}

// bad_page is called from mm code; the module is found deeper in the stack.
func TestBadPageBlamesModuleInStack(t *testing.T) {
	const tid = 5
	a := NewAnalyzer(Config{})
	var b bpf.KtBadPageEvent
	b.Hdr = header(bpf.KtEventTypeEVENT_BAD_PAGE, sizeOf(b), tid, 500)
	b.Pfn, b.Flags = 0x3ff70, 0xfffffc0000000
	b.Caller = 0xffffffff81234567 // free_pages_prepare, in the kernel
	b.Stack = [8]uint64{0xffffffff81234500, 0xffffffff81234600, textBase + 0x105 + tid<<20}
	cname(b.Reason[:], "non-NULL mapping")
	recs := append(loadSequence("kt_badpage", tid, 0, 0), Encode(&b))
	f := findings(run(t, a, recs...))
	if len(f) != 1 || f[0].Rule != RuleBadPage || f[0].Module != "kt_badpage" || f[0].Function != "kt_badpage_exit+0x5" || f[0].Value != 0x3ff70 || f[0].Reason != "non-NULL mapping" {
		t.Fatalf("got %+v", f)
	}
	// Without a module frame, the kernel caller is named and no module blamed.
	b.Stack = [8]uint64{}
	f = findings(run(t, NewAnalyzer(Config{}), Encode(&b)))
	if len(f) != 1 || f[0].Module != "" || f[0].Function != "0xffffffff81234567" {
		t.Fatalf("got %+v", f)
	}
}

// panic() then __crash_kexec: the panic's message rendered from what BPF
// saw, then whether a crash kernel was there to take over.
func TestPanicThenCrashKexec(t *testing.T) {
	a := NewAnalyzer(Config{})
	var p bpf.KtPanicEvent
	p.Hdr = header(bpf.KtEventTypeEVENT_PANIC, sizeOf(p), 1, 700)
	cname(p.Fmt[:], "%s: %d\n")
	p.Args = [5]uint64{0xffffffffc0000000, 0xfffffff4}
	cname(p.Str[0][:], "Fatal exception in interrupt")
	cname(p.Comm[:], "kworker/0:1")
	var c bpf.KtCrashEvent
	c.Hdr = header(bpf.KtEventTypeEVENT_CRASH_KEXEC, sizeOf(c), 1, 701)
	c.CrashKernelLoaded = 0
	var r bpf.KtCrashEvent
	r.Hdr = header(bpf.KtEventTypeEVENT_EMERGENCY_RESTART, sizeOf(r), 1, 702)
	r.CrashKernelLoaded = 2 // the kallsyms look-up had not finished
	evs := run(t, a, Encode(&p), Encode(&c), Encode(&r))
	if len(evs) != 3 {
		t.Fatalf("events %+v", evs)
	}
	if f := evs[0]; f.Rule != RulePanic || f.Reason != "Fatal exception in interrupt: -12" || f.Task != "kworker/0:1" ||
		!strings.HasPrefix(f.Message, "Kernel panic - not syncing: Fatal exception in interrupt: -12") {
		t.Errorf("panic = %+v", f)
	}
	if e := evs[1]; e.Kind != KindCrashKexec || e.CrashKernelLoaded == nil || *e.CrashKernelLoaded {
		t.Errorf("crash_kexec = %+v, want crash kernel not loaded", e)
	}
	if e := evs[2]; e.Kind != KindEmergencyRestart || e.CrashKernelLoaded != nil {
		t.Errorf("emergency_restart = %+v, want unknown crash kernel state", e)
	}
}

// The fentry variant on the panic's log dump (kmsg_dump, kernels before
// 6.11 without kprobes) gives no format: the panic finding is still made. A
// "%s" format with a message holding '%' keeps it literal.
func TestPanicFromLogDump(t *testing.T) {
	for _, tc := range []struct{ fmt, str, want string }{
		{"%s", "Attempted to kill init! exitcode=0x%08x", "Attempted to kill init! exitcode=0x%08x"},
		{"", "", "message not captured (see the kernel log)"},
	} {
		a := NewAnalyzer(Config{})
		var p bpf.KtPanicEvent
		p.Hdr = header(bpf.KtEventTypeEVENT_PANIC, sizeOf(p), 1, 700)
		cname(p.Fmt[:], tc.fmt)
		cname(p.Str[0][:], tc.str)
		cname(p.Comm[:], "sh")
		evs := run(t, a, Encode(&p))
		if len(evs) != 1 || evs[0].Rule != RulePanic || evs[0].Reason != tc.want {
			t.Errorf("fmt %q: events %+v, want one panic finding with reason %q", tc.fmt, evs, tc.want)
		}
	}
}
