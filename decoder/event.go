package decoder

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Kind names an event in output; the values are the JSON "event" field.
type Kind string

const (
	KindModuleLoad       Kind = "module_load"        // a module is about to run its init
	KindInitcall         Kind = "initcall"           // an init function returned
	KindModuleLive       Kind = "module_live"        // do_init_module succeeded
	KindModuleInitFailed Kind = "module_init_failed" // do_init_module failed; module freed
	KindModuleFree       Kind = "module_free"        // module memory released
	KindFinding          Kind = "finding"            // a rule was broken
	// A word pointing into init text that is not reported, and why; shown
	// with --verbose so a missed time bomb can be told from noise.
	KindInitPointerIgnored Kind = "init_pointer_ignored"
	// A module loaded before ktracer started, as the startup audit found
	// it: where its names come from (Location), or why its __init
	// functions cannot be named (Reason).
	KindModuleAlreadyLoaded Kind = "module_already_loaded"
	// The panic path hands over to the crash kernel (kdump), or restarts.
	KindCrashKexec       Kind = "crash_kexec"
	KindEmergencyRestart Kind = "emergency_restart"
)

// Severity orders findings; --fail-on compares against it.
type Severity int

const (
	SeverityInfo Severity = iota + 1
	SeverityWarning
	SeverityError
)

func (s Severity) String() string {
	switch s {
	case SeverityInfo:
		return "info"
	case SeverityWarning:
		return "warning"
	case SeverityError:
		return "error"
	}
	return "unknown"
}

// ParseSeverity reads "info", "warning" or "error".
func ParseSeverity(s string) (Severity, error) {
	for _, v := range []Severity{SeverityInfo, SeverityWarning, SeverityError} {
		if strings.EqualFold(s, v.String()) {
			return v, nil
		}
	}
	return 0, fmt.Errorf("unknown severity %q (want info, warning or error)", s)
}

// Rule is a stable finding identifier, documented in the README.
type Rule string

const (
	RulePositiveInitReturn  Rule = "positive-init-return"
	RuleInitFailed          Rule = "init-failed"
	RuleSlowInit            Rule = "slow-init"
	RuleDanglingInitPointer Rule = "dangling-init-pointer"
	RuleFreedInitCall       Rule = "freed-init-call"
	// The panic path (seed incident 3): what the kernel knew as it failed.
	RuleOops    Rule = "oops"
	RuleWarning Rule = "warning"
	RuleBadPage Rule = "bad-page"
	RulePanic   Rule = "panic"
	// A module load refused before its init ran (unknown symbol, version
	// mismatch, vermagic, signature, already loaded, bad ELF).
	RuleLoadFailed Rule = "load-failed"
)

// RuleSeverity is each rule's severity. load-failed's is its worst case:
// findingSeverity makes an "already loaded" info.
var RuleSeverity = map[Rule]Severity{
	RulePositiveInitReturn:  SeverityError,
	RuleInitFailed:          SeverityInfo,
	RuleSlowInit:            SeverityWarning,
	RuleDanglingInitPointer: SeverityError,
	RuleFreedInitCall:       SeverityError,
	RuleOops:                SeverityError,
	RuleWarning:             SeverityWarning,
	RuleBadPage:             SeverityError,
	RulePanic:               SeverityError,
	RuleLoadFailed:          SeverityError,
}

// HasValue tells whether the rule's finding carries a numeric Value.
func (r Rule) HasValue() bool {
	return r == RulePositiveInitReturn || r == RuleInitFailed || r == RuleSlowInit || r == RuleBadPage || r == RuleLoadFailed
}

// HasRet tells whether the rule's finding carries the return it judged.
func (r Rule) HasRet() bool {
	return r == RulePositiveInitReturn || r == RuleInitFailed || r == RuleLoadFailed
}

// Event is one thing ktracer saw, or a finding about it. Fields that do not
// apply to a Kind are zero.
type Event struct {
	Kind     Kind
	MonoNS   uint64 // kernel CLOCK_MONOTONIC timestamp
	CPU      uint32
	PID      uint32
	TID      uint32
	Module   string // "" for a built-in initcall
	Function string // symbol name, or 0x... when unknown
	Address  uint64
	Ret      int32
	Errno    string // name of a negative Ret, e.g. ENODEV
	Duration time.Duration
	Symbols  int    // module_load: symbols captured
	Location string // dangling-init-pointer: the data holding it, e.g. global_ops+0x0
	Caller   string // freed-init-call: the return address, symbolized
	Reason   string // init_pointer_ignored: why not a finding; oops: the trap; bad-page: the kernel's reason
	Task     string // the task's comm, for the panic path
	// load-failed: the symbol the kernel refused, its CRCs (0x%08x; the
	// module's is "" when not found) and the vermagic strings.
	Symbol                   string
	KernelCRC, ModuleCRC     string
	Vermagic, KernelVermagic string
	// Source is "startup-audit" for what the startup audit found in
	// modules loaded before ktracer started; "" for what was seen live.
	Source string
	// crash_kexec, emergency_restart: whether a crash kernel was loaded
	// (nil when unknown).
	CrashKernelLoaded *bool

	// Findings only.
	Rule     Rule
	Severity Severity
	Value    int64 // the offending value: the return, or the duration in ns
	Message  string
}

// ErrnoName names a negative init return as the kernel would (-19 -> ENODEV).
func ErrnoName(ret int32) string {
	if ret >= 0 {
		return ""
	}
	if n, ok := errnoNames[-ret]; ok {
		return n
	}
	return "errno " + strconv.Itoa(int(-ret))
}
