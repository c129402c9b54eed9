package decoder

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/ktracer/ktracer/bpf"
)

func loadFailedRecord(tid uint32, ret int32, name string, set func(e *bpf.KtLoadFailedEvent)) []byte {
	var e bpf.KtLoadFailedEvent
	e.Hdr = header(bpf.KtEventTypeEVENT_LOAD_FAILED, sizeOf(e), tid, 300)
	e.Ret = ret
	cname(e.Name[:], name)
	if set != nil {
		set(&e)
	}
	return Encode(&e)
}

func facts(fs ...bpf.KtLoadFact) uint32 {
	var f uint32
	for _, x := range fs {
		f |= uint32(x)
	}
	return f
}

// Each load failure names the kernel's reason; a recorded fact counts only
// with the errno its check returns.
func TestLoadFailed(t *testing.T) {
	for _, tc := range []struct {
		name     string
		ret      int32
		module   string
		set      func(e *bpf.KtLoadFailedEvent)
		severity Severity
		reason   string
		check    func(t *testing.T, f Event)
	}{
		{name: "already loaded", ret: -17, module: "kt_good", severity: SeverityInfo, reason: "already loaded"},
		{name: "unknown symbol", ret: -2, module: "kt_unresolved", severity: SeverityError, reason: "unknown symbol kt_no_such_export",
			set: func(e *bpf.KtLoadFailedEvent) {
				e.Facts = facts(bpf.KtLoadFactLOAD_UNKNOWN_SYMBOL)
				cname(e.Symbol[:], "kt_no_such_export")
			},
			check: func(t *testing.T, f Event) {
				if f.Symbol != "kt_no_such_export" || f.KernelCRC != "" {
					t.Errorf("symbol %q, kernel CRC %q", f.Symbol, f.KernelCRC)
				}
			}},
		{name: "version mismatch", ret: -22, module: "kt_badcrc", severity: SeverityError,
			reason: "symbol version mismatch: kmemdup has CRC 0x1b2d2a09 in this kernel, the module was built against 0xe4d2d5f6",
			set: func(e *bpf.KtLoadFailedEvent) {
				e.Facts = facts(bpf.KtLoadFactLOAD_SYMBOL_VERSION, bpf.KtLoadFactLOAD_KERNEL_CRC, bpf.KtLoadFactLOAD_CRC_SEARCHED, bpf.KtLoadFactLOAD_MODULE_CRC)
				e.KernelCrc, e.ModuleCrc = 0x1b2d2a09, 0xe4d2d5f6
				cname(e.Symbol[:], "kmemdup")
			},
			check: func(t *testing.T, f Event) {
				if f.Symbol != "kmemdup" || f.KernelCRC != "0x1b2d2a09" || f.ModuleCRC != "0xe4d2d5f6" {
					t.Errorf("symbol %q, CRCs %q %q", f.Symbol, f.KernelCRC, f.ModuleCRC)
				}
			}},
		{name: "module_layout mismatch without the module CRC", ret: -8, module: "other", severity: SeverityError,
			reason: "symbol version mismatch: module_layout has CRC 0x00000001 in this kernel; the module's __versions has no CRC for it",
			set: func(e *bpf.KtLoadFailedEvent) {
				e.Facts = facts(bpf.KtLoadFactLOAD_SYMBOL_VERSION, bpf.KtLoadFactLOAD_KERNEL_CRC, bpf.KtLoadFactLOAD_CRC_SEARCHED)
				e.KernelCrc = 1
				cname(e.Symbol[:], "module_layout")
			}},
		{name: "version mismatch, kernel CRC only (5.10 kretprobe)", ret: -22, module: "kt_badcrc", severity: SeverityError,
			reason: "symbol version mismatch: kmemdup has CRC 0x1b2d2a09 in this kernel; the module's CRC is not readable on this kernel",
			set: func(e *bpf.KtLoadFailedEvent) {
				e.Facts = facts(bpf.KtLoadFactLOAD_SYMBOL_VERSION, bpf.KtLoadFactLOAD_KERNEL_CRC)
				e.KernelCrc = 0x1b2d2a09
				cname(e.Symbol[:], "kmemdup")
			},
			check: func(t *testing.T, f Event) {
				if f.KernelCRC != "0x1b2d2a09" || f.ModuleCRC != "" {
					t.Errorf("CRCs %q %q, want the kernel's only", f.KernelCRC, f.ModuleCRC)
				}
			}},
		{name: "version mismatch without CRCs (5.10 fexit)", ret: -22, module: "kt_badcrc", severity: SeverityError,
			reason: "symbol version mismatch: kmemdup (its CRCs are not readable on this kernel)",
			set: func(e *bpf.KtLoadFailedEvent) {
				e.Facts = facts(bpf.KtLoadFactLOAD_SYMBOL_VERSION)
				cname(e.Symbol[:], "kmemdup")
			},
			check: func(t *testing.T, f Event) {
				if f.KernelCRC != "" || f.ModuleCRC != "" {
					t.Errorf("CRCs %q %q, want none", f.KernelCRC, f.ModuleCRC)
				}
			}},
		{name: "vermagic", ret: -8, module: "kt_magic", severity: SeverityError,
			reason: `vermagic "6.1.0-57-cloud-amd64 SMP mod_unload" does not match the kernel's "6.1.0-57-cloud-amd64 SMP preempt mod_unload modversions"`,
			set: func(e *bpf.KtLoadFailedEvent) {
				e.Facts = facts(bpf.KtLoadFactLOAD_VERMAGIC)
				cname(e.Vermagic[:], "6.1.0-57-cloud-amd64 SMP mod_unload ")
				cname(e.KernelVermagic[:], "6.1.0-57-cloud-amd64 SMP preempt mod_unload modversions ")
			},
			check: func(t *testing.T, f Event) {
				if !strings.Contains(f.Vermagic, "SMP mod_unload") || !strings.Contains(f.KernelVermagic, "preempt") {
					t.Errorf("vermagic %q / %q", f.Vermagic, f.KernelVermagic)
				}
			}},
		{name: "invalid ELF", ret: -8, severity: SeverityError, reason: "invalid module: bad ELF, or built for another kernel",
			check: func(t *testing.T, f Event) {
				if !strings.Contains(f.Message, "a module (name not yet read)") {
					t.Errorf("message %q does not say the name is unknown", f.Message)
				}
			}},
		{name: "unsigned under sig_enforce", ret: -129, severity: SeverityError,
			reason: "unsigned module, and the kernel requires signatures (module.sig_enforce=1 or lockdown)"},
		{name: "untrusted key under sig_enforce", ret: -129, severity: SeverityError, reason: "module signature not accepted (ENOKEY)",
			set: func(e *bpf.KtLoadFailedEvent) {
				e.Facts = facts(bpf.KtLoadFactLOAD_SIGNATURE)
				e.SigErr = -126
			}},
		// A tolerated signature failure (no enforcement) does not explain
		// a later unknown symbol.
		{name: "tolerated signature, then unknown symbol", ret: -2, module: "dkms_mod", severity: SeverityError, reason: "unknown symbol foo",
			set: func(e *bpf.KtLoadFailedEvent) {
				e.Facts = facts(bpf.KtLoadFactLOAD_SIGNATURE, bpf.KtLoadFactLOAD_UNKNOWN_SYMBOL)
				e.SigErr = -126
				cname(e.Symbol[:], "foo")
			}},
		{name: "namespace not imported", ret: -22, module: "m", severity: SeverityError, reason: "symbol usb_stor_probe1 refused",
			set: func(e *bpf.KtLoadFailedEvent) {
				e.Facts = facts(bpf.KtLoadFactLOAD_SYMBOL_ERROR)
				e.SymbolErr = -22
				cname(e.Symbol[:], "usb_stor_probe1")
			}},
		// A weak undefined symbol is recorded but the load fails later
		// with another errno: no reason is claimed.
		{name: "fact with another errno", ret: -12, module: "m", severity: SeverityError, reason: "",
			set: func(e *bpf.KtLoadFailedEvent) {
				e.Facts = facts(bpf.KtLoadFactLOAD_UNKNOWN_SYMBOL)
				cname(e.Symbol[:], "weak_sym")
			},
			check: func(t *testing.T, f Event) {
				if f.Symbol != "" || !strings.Contains(f.Message, "not captured") {
					t.Errorf("symbol %q, message %q", f.Symbol, f.Message)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := NewAnalyzer(Config{})
			got := findings(run(t, a, loadFailedRecord(42, tc.ret, tc.module, tc.set)))
			if len(got) != 1 {
				t.Fatalf("got %d findings %+v, want 1", len(got), got)
			}
			f := got[0]
			if f.Rule != RuleLoadFailed || f.Severity != tc.severity || f.Reason != tc.reason {
				t.Errorf("got %s/%s reason %q, want %s/%s reason %q", f.Rule, f.Severity, f.Reason, RuleLoadFailed, tc.severity, tc.reason)
			}
			if f.Module != tc.module || f.Ret != tc.ret || f.Errno != ErrnoName(tc.ret) || f.Value != int64(tc.ret) || f.TID != 42 {
				t.Errorf("module %q ret %d errno %s value %d tid %d", f.Module, f.Ret, f.Errno, f.Value, f.TID)
			}
			if tc.reason != "" && !strings.Contains(f.Message, tc.reason) && tc.severity != SeverityInfo {
				t.Errorf("message %q lacks the reason", f.Message)
			}
			if tc.check != nil {
				tc.check(t, f)
			}
		})
	}
}

// Only load-failed has a per-finding severity; every other rule keeps its own.
func TestFindingSeverityOnlyBendsLoadFailed(t *testing.T) {
	for rule, sev := range RuleSeverity {
		if got := findingSeverity(rule, Event{Ret: -17}); rule != RuleLoadFailed && got != sev {
			t.Errorf("%s with ret -17: %s, want %s", rule, got, sev)
		}
		if got := findingSeverity(rule, Event{Ret: -2}); got != sev {
			t.Errorf("%s with ret -2: %s, want %s", rule, got, sev)
		}
	}
}

// The records ktracer read on Debian's 6.1 kernel while the e2e module boot
// loaded kt_unresolved, kt_badcrc, kt_badmagic, kt_good twice, stp without
// llc and a truncated .ko (TestLoadFailed, KT_UPDATE_FIXTURES=1).
func TestReplayLoadFailedCapture(t *testing.T) {
	data, err := os.ReadFile("testdata/load_failed.rec")
	if err != nil {
		t.Fatal(err)
	}
	a := NewAnalyzer(Config{SlowInit: 100e6})
	var got []Event
	if err := ReadRecording(bytes.NewReader(data), func(raw []byte) error {
		var herr error
		got, herr = a.Handle(raw, got)
		return herr
	}); err != nil {
		t.Fatal(err)
	}
	var f []Event
	for _, e := range findings(got) {
		if e.Rule == RuleLoadFailed {
			f = append(f, e)
		}
	}
	want := []struct {
		module, errno string
		severity      Severity
		reason        string
	}{
		{"kt_unresolved", "ENOENT", SeverityError, "unknown symbol kt_unresolved_dep_fn"},
		{"kt_badcrc", "EINVAL", SeverityError, "symbol version mismatch: kmemdup has CRC 0x"},
		{"kt_badmagic", "ENOEXEC", SeverityError, `vermagic "6.1.0-57-cloud-amd64 SMP preempt modversions" does not match the kernel's "6.1.0-57-cloud-amd64 SMP preempt mod_unload modversions"`},
		{"kt_good", "EEXIST", SeverityInfo, "already loaded"},
		{"stp", "ENOENT", SeverityError, "unknown symbol llc_"},
		{"", "ENOEXEC", SeverityError, "invalid module: bad ELF"},
	}
	if len(f) != len(want) {
		t.Fatalf("%d load-failed findings, want %d: %+v", len(f), len(want), f)
	}
	for i, w := range want {
		if f[i].Module != w.module || f[i].Errno != w.errno || f[i].Severity != w.severity || !strings.HasPrefix(f[i].Reason, w.reason) {
			t.Errorf("finding %d: %s %s %s %q, want %s %s %s %q", i, f[i].Module, f[i].Errno, f[i].Severity, f[i].Reason, w.module, w.errno, w.severity, w.reason)
		}
	}
	if c := f[1]; c.ModuleCRC != "0xdeadbeef" || c.KernelCRC == "" || c.KernelCRC == c.ModuleCRC {
		t.Errorf("kt_badcrc CRCs: kernel %q module %q", c.KernelCRC, c.ModuleCRC)
	}
	if st := a.Stats(); st.Corrupt != 0 {
		t.Errorf("stats %+v", st)
	}
}
