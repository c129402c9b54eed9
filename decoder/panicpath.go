package decoder

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/ktracer/ktracer/bpf"
)

// The panic path (seed incident 3): oopses, WARNs, bad page state and
// panics are reported as findings naming the module and function involved,
// so a crash that never reaches a vmcore still leaves words behind.

// owner is the module whose code (or freed init code) holds addr.
func (a *Analyzer) owner(addr uint64) *Module {
	for _, m := range a.modules {
		if m.Text.Contains(addr) || m.freedInit(addr) {
			return m
		}
	}
	return nil
}

// where names addr as "function+0xoff [module]", or the kernel's name.
func (a *Analyzer) where(addr uint64) (text, module string) {
	if addr == 0 {
		return "", ""
	}
	m := a.owner(addr)
	fn := a.function(m, addr)
	if m != nil {
		return fn + " [" + m.Name + "]", m.Name
	}
	return fn, ""
}

// unowned says so when an address could not be named: no module, live or
// recovered, and not the kernel owns that memory any more.
func unowned(text string) string {
	if strings.HasPrefix(text, "0x") {
		return text + " (memory no module and not the kernel owns: freed, or never mapped)"
	}
	return text
}

// blame picks the module to attribute a failure to: the faulting code's
// owner, else the caller's.
func (a *Analyzer) blame(ev *Event, ip, caller uint64) (ipText, callerText string) {
	ipText, ev.Module = a.where(ip)
	callerText, callerMod := a.where(caller)
	if ev.Module == "" {
		ev.Module = callerMod
	}
	ev.Address = ip
	ev.Caller = callerText
	return ipText, callerText
}

func (a *Analyzer) oops(r *Record, out []Event) []Event {
	o := &r.Oops
	// Newer kernels (seen on 7.2) leave freed module init text mapped and
	// filled with int3: a call through a stale __init pointer traps there
	// ("Oops: int3", then a panic: the trap is fatal in that context)
	// instead of page-faulting. int3 is a trap, so ip is one byte past it.
	if o.Kind == uint32(bpf.KtOopsKindOOPS_TRAP) && cString(o.What[:]) == "int3" && o.Ip != 0 {
		out, _ = a.freedInitCall(r, o.Ip-1, o.Caller,
			"; the freed init text was left mapped and filled with int3, so the call trapped (Oops: int3) instead of faulting", out)
	}
	ev := a.event(KindFinding, r, "")
	ev.Task = cString(o.Comm[:])
	ip, caller := a.blame(&ev, o.Ip, o.Caller)
	ev.Function = strings.TrimSuffix(ip, " ["+ev.Module+"]")
	var what string
	switch o.Kind {
	case uint32(bpf.KtOopsKindOOPS_PAGE_FAULT):
		ev.Reason = "page fault"
		what = fmt.Sprintf("BUG: unable to handle page fault for address 0x%x (%s) in %s", o.Address, pageFaultCode(o.ErrorCode), unowned(ip))
	default:
		ev.Reason = cString(o.What[:])
		what = fmt.Sprintf("%s in %s", ev.Reason, unowned(ip))
		if o.Kind == uint32(bpf.KtOopsKindOOPS_GP) && o.Address != 0 {
			what += fmt.Sprintf(" (address 0x%x)", o.Address)
		}
	}
	if caller != "" {
		what += ", called from " + unowned(caller)
	}
	return append(out, finding(ev, RuleOops, 0, fmt.Sprintf(
		"%s; task %s was killed and the kernel is tainted: whatever it held (locks, references) stays held", what, ev.Task)))
}

// pageFaultCode spells out the x86 page-fault error code bits.
func pageFaultCode(code uint64) string {
	var parts []string
	if code&0x10 != 0 {
		parts = append(parts, "instruction fetch")
	} else if code&0x2 != 0 {
		parts = append(parts, "write")
	} else {
		parts = append(parts, "read")
	}
	if code&0x1 != 0 {
		parts = append(parts, "protection violation")
	} else {
		parts = append(parts, "not-present page")
	}
	return "error code 0x" + strconv.FormatUint(code, 16) + ": " + strings.Join(parts, ", ")
}

func (a *Analyzer) warning(r *Record, out []Event) []Event {
	w := &r.Warning
	ev := a.event(KindFinding, r, "")
	ev.Task = cString(w.Comm[:])
	at, _ := a.blame(&ev, w.Caller, 0)
	ev.Function = strings.TrimSuffix(at, " ["+ev.Module+"]")
	ev.Caller = ""
	if file := cString(w.File[:]); file != "" {
		ev.Location = file + ":" + strconv.Itoa(int(w.Line))
	}
	msg := "WARNING"
	if ev.Location != "" {
		msg += " at " + ev.Location
	}
	return append(out, finding(ev, RuleWarning, 0, fmt.Sprintf("%s in %s (task %s): the kernel found a condition its code says must not happen, and carried on", msg, at, ev.Task)))
}

func (a *Analyzer) badPage(r *Record, out []Event) []Event {
	b := &r.BadPage
	ev := a.event(KindFinding, r, "")
	ev.Task = cString(b.Comm[:])
	ev.Reason = cString(b.Reason[:])
	// bad_page's caller is mm code; the module that freed the page is
	// deeper in the stack.
	culprit := b.Caller
	for _, pc := range b.Stack {
		if pc != 0 && a.owner(pc) != nil {
			culprit = pc
			break
		}
	}
	_, caller := a.blame(&ev, 0, culprit)
	ev.Function = strings.TrimSuffix(caller, " ["+ev.Module+"]")
	ev.Address = b.Page
	pfn := "unknown"
	if b.Pfn != ^uint64(0) {
		ev.Value = int64(b.Pfn)
		pfn = "0x" + strconv.FormatUint(b.Pfn, 16)
	}
	return append(out, finding(ev, RuleBadPage, ev.Value, fmt.Sprintf(
		"BUG: Bad page state: pfn %s, flags 0x%x, %s, found by %s (task %s): a page was freed while still in use, or its struct page was overwritten; the seed's signature of code using freed memory",
		pfn, b.Flags, ev.Reason, caller, ev.Task)))
}

func (a *Analyzer) panicked(r *Record, out []Event) []Event {
	p := &r.Panic
	ev := a.event(KindFinding, r, "")
	ev.Task = cString(p.Comm[:])
	ev.Reason = formatPanic(cString(p.Fmt[:]), p.Args[:], [2]string{cString(p.Str[0][:]), cString(p.Str[1][:])})
	if cString(p.Fmt[:]) == "" {
		// Seen at the panic's log dump (fentry on kmsg_dump before 6.10),
		// which has no message: it is in the kernel log.
		ev.Reason = "message not captured (see the kernel log)"
	}
	return append(out, finding(ev, RulePanic, 0, fmt.Sprintf(
		"Kernel panic - not syncing: %s (task %s); unless a crash kernel takes over, the machine reboots with no vmcore", ev.Reason, ev.Task)))
}

func (a *Analyzer) crash(r *Record, out []Event) []Event {
	kind := KindCrashKexec
	if Type(r.Header.Type) == bpf.KtEventTypeEVENT_EMERGENCY_RESTART {
		kind = KindEmergencyRestart
	}
	ev := a.event(kind, r, "")
	switch r.Crash.CrashKernelLoaded {
	case 0, 1:
		loaded := r.Crash.CrashKernelLoaded == 1
		ev.CrashKernelLoaded = &loaded
	}
	return append(out, ev)
}

// formatPanic renders panic()'s format with the arguments the BPF program
// could see: the first five, and the first two read as strings.
func formatPanic(format string, args []uint64, strs [2]string) string {
	var b strings.Builder
	argi := 0
	next := func() (uint64, int, bool) {
		if argi >= len(args) {
			return 0, argi, false
		}
		argi++
		return args[argi-1], argi - 1, true
	}
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' || i+1 >= len(format) {
			b.WriteByte(c)
			continue
		}
		j := i + 1
		for j < len(format) && strings.IndexByte("-+ #0123456789.lhzt", format[j]) >= 0 {
			j++
		}
		if j >= len(format) {
			b.WriteString(format[i:])
			break
		}
		spec, verb := format[i+1:j], format[j]
		i = j
		if verb == '%' {
			b.WriteByte('%')
			continue
		}
		v, n, ok := next()
		var text string
		switch {
		case !ok:
			text = "?"
		case verb == 's':
			text = "?"
			if n < len(strs) && strs[n] != "" {
				text = strs[n]
			}
		case verb == 'd' || verb == 'i':
			if strings.Contains(spec, "l") {
				text = strconv.FormatInt(int64(v), 10)
			} else {
				text = strconv.FormatInt(int64(int32(v)), 10)
			}
		case verb == 'u':
			text = strconv.FormatUint(v, 10)
		case verb == 'x':
			text = strconv.FormatUint(v, 16)
		case verb == 'p':
			text = "0x" + strconv.FormatUint(v, 16)
		default:
			text = "?"
		}
		// %08x and the like: zero-pad to the width, as printk would.
		// The width is bounded: a corrupt format must not allocate without limit.
		if w, err := strconv.Atoi(strings.TrimLeft(strings.TrimRight(spec, "lhzt"), "-+ #")); err == nil && strings.HasPrefix(strings.TrimLeft(spec, "-+ #"), "0") && len(text) < w && w <= 64 {
			text = strings.Repeat("0", w-len(text)) + text
		}
		b.WriteString(text)
	}
	return strings.TrimRight(b.String(), "\n")
}
