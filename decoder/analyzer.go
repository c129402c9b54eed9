package decoder

import (
	"fmt"
	"strconv"
	"time"

	"github.com/ktracer/ktracer/bpf"
)

// Config holds the rules' thresholds and the core-kernel symbolizer.
type Config struct {
	SlowInit time.Duration // slow-init threshold
	Kernel   Symbolizer    // may be nil: kernel addresses print as hex
}

// Stats counts what the analyzer saw, for summaries and metrics.
type Stats struct {
	Records        uint64 // records decoded
	Corrupt        uint64 // records rejected by Decode
	OrphanSymbols  uint64 // symbol records for a module never announced
	MissingSymbols uint64 // symbols the kernel had that never arrived
	ModuleInits    uint64
	FailedInits    uint64
	// Init-text pointers the BPF scan found that are not reported: not
	// inside a sized data object, or not at a function's start.
	UnattributedInitPointers uint64
	// Instruction-fetch faults outside any freed init text (not ours).
	OtherExecFaults uint64
	// Modules or symbols not tracked because a bound was reached: a sign of
	// corrupt input, never of a real kernel.
	Overflow uint64
}

// Bounds on what the analyzer keeps, so no input can grow it without limit.
// A kernel has at most a few thousand modules; the largest module has tens
// of thousands of symbols.
const (
	maxModules          = 1 << 13
	maxSymbolsPerModule = 1 << 18
	// maxSymbolsPresized bounds the allocation a module_load's claimed
	// symbol count makes before any symbol arrives (Debian's largest
	// modules have 5,000-10,000 defined symbols).
	maxSymbolsPresized = 1 << 13
)

// Analyzer follows modules through load, init and free, attributes each
// initcall to the module its task is initializing, and applies the rules.
// It is not safe for concurrent use; feed it records in ring-buffer order.
type Analyzer struct {
	cfg     Config
	rec     Record
	modules map[uint64]*Module // by struct module address
	byTask  map[uint32]*Module // tid -> module being initialized by it
	stats   Stats
	audit   AuditStats
	loaded  map[string]*Module // by name: modules added by AddLoaded
}

// NewAnalyzer returns an Analyzer with the given rules configuration.
func NewAnalyzer(cfg Config) *Analyzer {
	return &Analyzer{cfg: cfg, modules: map[uint64]*Module{}, byTask: map[uint32]*Module{}}
}

// Stats returns the counters so far.
func (a *Analyzer) Stats() Stats { return a.stats }

// Module returns the live module at a struct module address, if known.
func (a *Analyzer) Module(addr uint64) *Module { return a.modules[addr] }

// Handle decodes one raw record and appends the events it yields to out. A
// corrupt record is counted and returned as an error; state is unchanged.
func (a *Analyzer) Handle(raw []byte, out []Event) ([]Event, error) {
	if err := Decode(raw, &a.rec); err != nil {
		a.stats.Corrupt++
		return out, err
	}
	return a.Process(&a.rec, out), nil
}

// Process applies one decoded record and appends the events it yields.
func (a *Analyzer) Process(r *Record, out []Event) []Event {
	a.stats.Records++
	switch Type(r.Header.Type) {
	case bpf.KtEventTypeEVENT_MODULE_LOAD:
		if len(a.modules) >= maxModules && a.modules[r.ModuleLoad.Module] == nil {
			a.stats.Overflow++
			break
		}
		m := newModule(r)
		a.reclaim(m)
		a.modules[m.Addr] = m
		a.byTask[r.Header.Tid] = m
	case bpf.KtEventTypeEVENT_INIT_POINTER:
		out = a.initPointer(r, out)
	case bpf.KtEventTypeEVENT_EXEC_FAULT:
		out = a.execFault(r, out)
	case bpf.KtEventTypeEVENT_OOPS:
		out = a.oops(r, out)
	case bpf.KtEventTypeEVENT_WARNING:
		out = a.warning(r, out)
	case bpf.KtEventTypeEVENT_BAD_PAGE:
		out = a.badPage(r, out)
	case bpf.KtEventTypeEVENT_PANIC:
		out = a.panicked(r, out)
	case bpf.KtEventTypeEVENT_CRASH_KEXEC, bpf.KtEventTypeEVENT_EMERGENCY_RESTART:
		out = a.crash(r, out)
	case bpf.KtEventTypeEVENT_LOAD_FAILED:
		out = a.loadFailed(r, out)
	case bpf.KtEventTypeEVENT_MODULE_SYMBOL:
		if m := a.modules[r.Symbol.Module]; m != nil {
			if len(m.syms) < maxSymbolsPerModule {
				m.addSymbol(r)
			} else {
				a.stats.Overflow++
			}
		} else {
			a.stats.OrphanSymbols++
		}
	case bpf.KtEventTypeEVENT_INITCALL_START:
		if m := a.byTask[r.Header.Tid]; m != nil {
			out = a.announce(m, r, out)
		}
	case bpf.KtEventTypeEVENT_INITCALL_FINISH:
		out = a.initcallFinished(r, out)
	case bpf.KtEventTypeEVENT_MODULE_INIT_DONE:
		out = a.moduleDone(r, out)
	case bpf.KtEventTypeEVENT_MODULE_FREE:
		name := cString(r.ModuleFree.Name[:])
		out = append(out, a.event(KindModuleFree, r, name))
		// A failed init frees the module before do_init_module returns;
		// keep it until then so the failure still has a name.
		if m := a.byTask[r.Header.Tid]; m == nil || m.Addr != r.ModuleFree.Module {
			a.forget(r.ModuleFree.Module)
		}
	}
	return out
}

func (a *Analyzer) event(kind Kind, r *Record, module string) Event {
	h := &r.Header
	return Event{Kind: kind, MonoNS: h.TsNs, CPU: h.Cpu, PID: h.Pid, TID: h.Tid, Module: module}
}

// announce emits module_load once the symbol table has arrived (it is sent
// right after the load record, before init runs).
func (a *Analyzer) announce(m *Module, r *Record, out []Event) []Event {
	if m.reported {
		return out
	}
	m.reported = true
	ev := a.event(KindModuleLoad, r, m.Name)
	if m.InitFn != 0 {
		ev.Address = m.InitFn
		ev.Function = a.function(m, m.InitFn)
	}
	ev.Symbols = len(m.syms)
	return append(out, ev)
}

// function names addr: from the module's own table first (init symbols are
// gone from kallsyms soon), then the kernel's.
func (a *Analyzer) function(m *Module, addr uint64) string {
	if m != nil {
		if name, off, ok := m.Function(addr); ok {
			return symbolString(name, off)
		}
	}
	for _, other := range a.modules {
		if other == m {
			continue
		}
		if name, off, ok := other.Function(addr); ok {
			return symbolString(name, off)
		}
	}
	if a.cfg.Kernel != nil {
		if name, off, ok := a.cfg.Kernel.Symbolize(addr); ok {
			return symbolString(name, off)
		}
	}
	return "0x" + strconv.FormatUint(addr, 16)
}

func (a *Analyzer) initcallFinished(r *Record, out []Event) []Event {
	ic := &r.Initcall
	m := a.byTask[r.Header.Tid]
	if m != nil && m.InitFn != 0 && ic.Func != 0 && m.InitFn != ic.Func {
		m = nil // not this module's init: do not misattribute
	}
	module := ""
	if m != nil {
		out = a.announce(m, r, out)
		module = m.Name
		a.stats.ModuleInits++
	}
	ev := a.event(KindInitcall, r, module)
	ev.Address = ic.Func
	ev.Function = a.function(m, ic.Func)
	ev.Ret = ic.Ret
	ev.Errno = ErrnoName(ic.Ret)
	ev.Duration = time.Duration(ic.DurationNs)
	out = append(out, ev)
	return a.initcallRules(ev, out)
}

// initcallRules applies the rules of a finished initcall.
func (a *Analyzer) initcallRules(ev Event, out []Event) []Event {
	what := ev.Module
	if what == "" {
		what = "the kernel"
	}
	switch {
	case ev.Ret > 0:
		// Seed incident 5: do_one_initcall and load_module treat ret >= 0 as
		// success, so a half-cleaned-up module stays loaded.
		out = append(out, finding(ev, RulePositiveInitReturn, int64(ev.Ret), fmt.Sprintf(
			"%s returned %d: a positive init return counts as success, so %s stays loaded even if its init already ran its error cleanup; return 0 or a negative errno",
			ev.Function, ev.Ret, what)))
	case ev.Ret < 0:
		out = append(out, finding(ev, RuleInitFailed, int64(ev.Ret), fmt.Sprintf(
			"%s returned %d (%s): %s did not initialize", ev.Function, ev.Ret, ev.Errno, what)))
	}
	if a.cfg.SlowInit > 0 && ev.Duration > a.cfg.SlowInit {
		out = append(out, finding(ev, RuleSlowInit, ev.Duration.Nanoseconds(), fmt.Sprintf(
			"%s took %s, more than the %s threshold; it blocks modprobe (and boot, if built in)",
			ev.Function, ev.Duration.Round(time.Microsecond), a.cfg.SlowInit)))
	}
	return out
}

func finding(ev Event, rule Rule, value int64, msg string) Event {
	f := ev
	f.Kind = KindFinding
	f.Value = value
	f.Rule = rule
	f.Severity = findingSeverity(rule, f)
	f.Message = msg
	return f
}

func (a *Analyzer) moduleDone(r *Record, out []Event) []Event {
	d := &r.ModuleDone
	m := a.modules[d.Module]
	if a.byTask[r.Header.Tid] == m {
		delete(a.byTask, r.Header.Tid)
	}
	name := cString(d.Name[:])
	if m != nil {
		name = m.Name
	}
	if d.Ret < 0 {
		a.stats.FailedInits++
		ev := a.event(KindModuleInitFailed, r, name)
		ev.Ret, ev.Errno = d.Ret, ErrnoName(d.Ret)
		a.forget(d.Module)
		return append(out, ev)
	}
	if m != nil {
		m.live = true
		out = a.announce(m, r, out) // a module without an init function
	}
	ev := a.event(KindModuleLive, r, name)
	ev.Ret = d.Ret
	return append(out, ev)
}

func (a *Analyzer) forget(addr uint64) {
	m := a.modules[addr]
	if m == nil {
		return
	}
	delete(a.modules, addr)
	for tid, mm := range a.byTask {
		if mm == m {
			delete(a.byTask, tid)
		}
	}
}

// initPointer reports a word of persistent data that points at an __init
// function (seed incident 2), found by the BPF scan before init memory is
// freed.
func (a *Analyzer) initPointer(r *Record, out []Event) []Event {
	p := &r.InitPointer
	m := a.modules[p.Module]
	if m == nil {
		a.stats.UnattributedInitPointers++
		return out
	}
	return a.judgeInitPointer(a.event(KindFinding, r, m.Name), m, p.Where, p.Value, out)
}

// execFault reports an instruction fetch from init text that was freed: a
// module's after its init returned, or the kernel's own after boot.
func (a *Analyzer) execFault(r *Record, out []Event) []Event {
	f := &r.ExecFault
	out, ok := a.freedInitCall(r, f.Address, f.Caller, "", out)
	if !ok {
		a.stats.OtherExecFaults++
	}
	return out
}

// freedInitOwner is the one judgment of a call into freed init text: addr
// lies in the init text of a module whose init returned (owner), or in the
// kernel's own init text after boot (owner nil, ok). Mapped code is not.
func (a *Analyzer) freedInitOwner(addr uint64) (owner *Module, ok bool) {
	for _, m := range a.modules {
		if m.Text.Contains(addr) || (!m.live && m.InitText.Contains(addr)) {
			return nil, false // mapped code: not a freed-init call
		}
		if m.live && m.freedInit(addr) {
			owner = m
		}
	}
	if owner != nil {
		return owner, true
	}
	return nil, a.cfg.Kernel != nil && a.cfg.Kernel.InitText().Contains(addr)
}

// freedInitCall appends the freed-init-call finding for a call to addr from
// caller (a return address), when freedInitOwner says addr is freed init
// text; how adds how the kernel noticed, if not by a page fault.
func (a *Analyzer) freedInitCall(r *Record, addr, caller uint64, how string, out []Event) ([]Event, bool) {
	owner, ok := a.freedInitOwner(addr)
	if !ok {
		return out, false
	}
	ev := a.event(KindFinding, r, "")
	ev.Address = addr
	ev.Caller = a.function(nil, caller)
	what := "the kernel"
	if owner != nil {
		ev.Module = owner.Name
		name, off, _ := owner.InitTextFunction(addr)
		ev.Function = symbolString(name, off)
		what = ev.Module
	} else {
		ev.Function = a.function(nil, addr)
	}
	msg := fmt.Sprintf("%s called %s at 0x%x, an __init function of %s whose init memory was freed after init returned: a pointer to __init code outlived init%s",
		unowned(ev.Caller), ev.Function, addr, what, how)
	if owner != nil && owner.recovered {
		msg += fmt.Sprintf(" (%s was loaded before ktracer started; names recovered from %s)", owner.Name, owner.origin)
	}
	return append(out, finding(ev, RuleFreedInitCall, 0, msg)), true
}
