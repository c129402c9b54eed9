package decoder

import (
	"fmt"
	"strings"

	"github.com/ktracer/ktracer/bpf"
)

// Errnos load_module's checks return (asm-generic/errno*.h).
const (
	errENOENT       = 2
	errENOEXEC      = 8
	errEEXIST       = 17
	errEINVAL       = 22
	errEKEYREJECTED = 129
)

// findingSeverity is every finding's severity: its rule's (RuleSeverity),
// except a load refused because the module is already loaded. udev runs
// modprobe for every device alias at once, so a stock boot hits EEXIST
// many times; it must not raise an alarm.
func findingSeverity(rule Rule, ev Event) Severity {
	if rule == RuleLoadFailed && ev.Ret == -errEEXIST {
		return SeverityInfo
	}
	return RuleSeverity[rule]
}

// loadReason is the kernel's reason for refusing a module, in words, and
// the facts it rests on. A fact a reason hook recorded only counts when
// load_module's errno is the one that check returns: a module may pass a
// check that recorded something (a weak undefined symbol, a signature the
// kernel tolerates) and fail later for another reason.
type loadReason struct {
	words                    string // "" when the reason was not captured
	symbol                   string
	kernelCRC, moduleCRC     string // 0x%08x; moduleCRC "" when not found
	vermagic, kernelVermagic string
}

func reasonOf(l *bpf.KtLoadFailedEvent) loadReason {
	errno := -l.Ret
	has := func(f bpf.KtLoadFact) bool { return l.Facts&uint32(f) != 0 }
	symbol := cString(l.Symbol[:])
	switch {
	case errno == errEEXIST:
		return loadReason{words: "already loaded"}
	case has(bpf.KtLoadFactLOAD_SIGNATURE) && (errno == errEKEYREJECTED || errno == -l.SigErr):
		return loadReason{words: "module signature not accepted (" + ErrnoName(l.SigErr) + ")"}
	case errno == errEKEYREJECTED:
		return loadReason{words: "unsigned module, and the kernel requires signatures (module.sig_enforce=1 or lockdown)"}
	case has(bpf.KtLoadFactLOAD_SYMBOL_VERSION) && (errno == errEINVAL || errno == errENOEXEC):
		r := loadReason{symbol: symbol}
		if !has(bpf.KtLoadFactLOAD_KERNEL_CRC) {
			r.words = "symbol version mismatch: " + symbol + " (its CRCs are not readable on this kernel)"
			return r
		}
		r.kernelCRC = fmt.Sprintf("0x%08x", l.KernelCrc)
		r.words = fmt.Sprintf("symbol version mismatch: %s has CRC %s in this kernel", symbol, r.kernelCRC)
		switch {
		case has(bpf.KtLoadFactLOAD_MODULE_CRC):
			r.moduleCRC = fmt.Sprintf("0x%08x", l.ModuleCrc)
			r.words += ", the module was built against " + r.moduleCRC
		case has(bpf.KtLoadFactLOAD_CRC_SEARCHED):
			r.words += "; the module's __versions has no CRC for it"
		default:
			r.words += "; the module's CRC is not readable on this kernel"
		}
		return r
	case has(bpf.KtLoadFactLOAD_UNKNOWN_SYMBOL) && errno == errENOENT:
		return loadReason{symbol: symbol, words: "unknown symbol " + symbol}
	case has(bpf.KtLoadFactLOAD_SYMBOL_ERROR) && errno == -l.SymbolErr:
		return loadReason{symbol: symbol, words: "symbol " + symbol + " refused"}
	case has(bpf.KtLoadFactLOAD_VERMAGIC) && errno == errENOEXEC:
		r := loadReason{vermagic: cString(l.Vermagic[:]), kernelVermagic: cString(l.KernelVermagic[:])}
		r.words = fmt.Sprintf("vermagic %q does not match the kernel's %q",
			strings.TrimSpace(r.vermagic), strings.TrimSpace(r.kernelVermagic))
		return r
	case errno == errENOEXEC:
		return loadReason{words: "invalid module: bad ELF, or built for another kernel"}
	}
	return loadReason{}
}

// loadFailed reports a module load that failed before the module's init
// ran: modprobe prints only the errno; this says why.
func (a *Analyzer) loadFailed(r *Record, out []Event) []Event {
	l := &r.LoadFailed
	ev := a.event(KindFinding, r, cString(l.Name[:]))
	ev.Ret, ev.Errno = l.Ret, ErrnoName(l.Ret)
	rs := reasonOf(l)
	ev.Reason, ev.Symbol = rs.words, rs.symbol
	ev.KernelCRC, ev.ModuleCRC = rs.kernelCRC, rs.moduleCRC
	ev.Vermagic, ev.KernelVermagic = rs.vermagic, rs.kernelVermagic
	what := ev.Module
	if what == "" {
		what = "a module (name not yet read)"
	}
	var msg string
	switch {
	case -l.Ret == errEEXIST:
		msg = fmt.Sprintf("%s is already loaded (EEXIST): a second load of it, as udev's parallel modprobes do; nothing to fix", what)
	case rs.words != "":
		msg = fmt.Sprintf("loading %s failed before its init ran: %s (%s)", what, rs.words, ev.Errno)
	default:
		msg = fmt.Sprintf("loading %s failed before its init ran (%s); the kernel's reason was not captured: see dmesg", what, ev.Errno)
	}
	return append(out, finding(ev, RuleLoadFailed, int64(l.Ret), msg))
}
