// Package boot is the boot-log analysis room: it turns the kernel's own
// record of a boot (boot-time initcall trace events, or initcall_debug lines
// in the kernel log) into the story of the built-in initcalls, and checks the
// boot's command line against what this kernel knows and what took effect.
//
// Built-in initcalls run before user space exists, so no BPF program can
// watch them; this package only reads what the kernel wrote down. It is pure:
// inputs are readers and an fs.FS rooted like "/", so tests run it on
// captures from a real VM.
package boot

import (
	"cmp"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"time"

	"github.com/ktracer/ktracer/decoder"
)

// Rules only boot analysis reports; the initcall rules are decoder's.
const (
	RuleInitcallOops          decoder.Rule = "initcall-oops"
	RuleUnknownBootParam      decoder.Rule = "unknown-boot-param"
	RuleBootParamNotEffective decoder.Rule = "boot-param-not-effective"
)

// RuleSeverity gives each boot rule's fixed severity, the decoder's rules
// included so a finding's severity is the same live and at boot.
var RuleSeverity = map[decoder.Rule]decoder.Severity{
	decoder.RulePositiveInitReturn: decoder.RuleSeverity[decoder.RulePositiveInitReturn],
	decoder.RuleInitFailed:         decoder.RuleSeverity[decoder.RuleInitFailed],
	decoder.RuleSlowInit:           decoder.RuleSeverity[decoder.RuleSlowInit],
	RuleInitcallOops:               decoder.SeverityError,
	// Warning, not error: a word meant for a custom init is not a typo.
	RuleUnknownBootParam:      decoder.SeverityWarning,
	RuleBootParamNotEffective: decoder.SeverityError,
	RuleBootExpectation:       decoder.SeverityError,
}

// The boot-time recording mechanisms, as Report.Source names them.
const (
	SourceTrace        = "trace"          // trace_event=initcall:* in the trace buffer
	SourceInitcallLog  = "initcall_debug" // "calling"/"returned" lines in the kernel log
	SourceNone         = "none"
	SourceUnreadable   = "unreadable" // initcall_debug lines in a log format not read
	LevelModule        = "module"     // a loadable module's init, run by insmod/udev
	LevelUnknown       = "unknown"
	defaultSlow        = 100 * time.Millisecond
	defaultTop         = 10
	recommendTrace     = "trace_event=initcall:initcall_level,initcall:initcall_start,initcall:initcall_finish trace_clock=global"
	recommendDebug     = "initcall_debug log_buf_len=4M"
	tracePath          = "sys/kernel/tracing/trace"
	traceDebugPath     = "sys/kernel/debug/tracing/trace"
	cmdlinePath        = "proc/cmdline"
	kallsymsPath       = "proc/kallsyms"
	cpuOnlinePath      = "sys/devices/system/cpu/online"
	cpuPossiblePath    = "sys/devices/system/cpu/possible"
	meminfoPath        = "proc/meminfo"
	crashSizePath      = "sys/kernel/kexec_crash_size"
	iomemPath          = "proc/iomem"
	sysModulePath      = "sys/module"
	procSysPath        = "proc/sys"
	libModulesPath     = "lib/modules"
	builtinModinfoName = "modules.builtin.modinfo"
)

// Recommended is the kernel command line that makes a boot analysable:
// either mechanism alone is enough. trace_clock=global keeps the trace:
// without it a kernel with an unstable sched clock switches the trace clock
// at late_initcall and that resets the buffer, losing every earlier event.
var Recommended = []string{recommendTrace, recommendDebug}

// Initcall is one init function the kernel ran during boot.
type Initcall struct {
	Seq      int           `json:"seq"` // order of start, from 1
	Function string        `json:"function"`
	Module   string        `json:"module,omitempty"` // "" for built-in
	Level    string        `json:"level"`
	Start    time.Duration `json:"start_ns"` // since boot
	Duration time.Duration `json:"duration_ns"`
	Ret      int32         `json:"ret"`
	Errno    string        `json:"errno,omitempty"`
	PID      int           `json:"pid"`
	// Finished is false when no return was recorded: the initcall oopsed,
	// hung, or the record ended first.
	Finished bool `json:"finished"`
}

// Finding is a broken rule, in the same vocabulary as live tracing.
type Finding struct {
	Rule     decoder.Rule     `json:"rule"`
	Severity decoder.Severity `json:"-"`
	Function string           `json:"function,omitempty"`
	Module   string           `json:"module,omitempty"`
	Level    string           `json:"level,omitempty"`
	Param    string           `json:"param,omitempty"`      // the command-line word
	Suggest  string           `json:"suggestion,omitempty"` // did you mean
	Sources  []string         `json:"sources,omitempty"`    // unknown-boot-param: "kernel-log", "cmdline-check"
	Reaches  []string         `json:"reaches,omitempty"`    // initcall-oops: later-level initcalls the trace reaches
	Value    int64            `json:"value"`
	Message  string           `json:"message"`
}

// LevelSummary is the time spent in one initcall level.
type LevelSummary struct {
	Name     string        `json:"level"`
	Count    int           `json:"initcalls"`
	Start    time.Duration `json:"start_ns"`
	End      time.Duration `json:"end_ns"`
	Duration time.Duration `json:"duration_ns"` // sum of its initcalls' durations
}

// Report is everything `ktracer boot` says about one boot.
type Report struct {
	Kernel     string         `json:"kernel,omitempty"` // the "Linux version" line
	Cmdline    string         `json:"cmdline,omitempty"`
	Source     string         `json:"source"` // SourceTrace, SourceInitcallLog, SourceNone or SourceUnreadable
	Initcalls  []Initcall     `json:"initcalls"`
	Levels     []LevelSummary `json:"levels"`
	TimeToInit time.Duration  `json:"time_to_init_ns"` // "Run /init" or the last built-in initcall's end
	Slowest    []Initcall     `json:"slowest"`
	Findings   []Finding      `json:"findings"`
	Notes      []string       `json:"notes,omitempty"` // what limits this report, in words
	Recommend  []string       `json:"recommended_params,omitempty"`
	// Expectations are the --expect assertions, judged; a failed one is
	// also a boot-expectation-failed finding.
	Expectations []ExpectResult `json:"expectations,omitempty"`

	table map[string][]string // kallsyms: initcall function -> levels
}

// Input is what one analysis reads. Every field is optional.
type Input struct {
	Log io.Reader // the kernel log: dmesg output, /dev/kmsg records or syslog(2) text
	// LogName and TraceName name the inputs in notes and errors ("dmesg.txt",
	// "the kernel log"); empty: a generic name.
	LogName, TraceName string
	Trace              io.Reader // the trace buffer text; nil: read it from Root
	// Root is the machine the boot happened on, rooted like "/": /proc,
	// /sys, /lib/modules. Nil when the log was saved elsewhere (--from):
	// then only the log itself is checked.
	Root fs.FS
}

// Options tune the rules.
type Options struct {
	Slow time.Duration // slow-init threshold; 0: 100ms
	Top  int           // how many slowest initcalls to list; 0: 10
	// Expect are post-boot assertions (ParseExpectation) checked against
	// Root, or the log without one.
	Expect []Expectation
}

// Analyze builds the report. It fails only on input it cannot read; a boot
// recorded with neither mechanism is a report that says so.
func Analyze(in Input, opt Options) (*Report, error) {
	if opt.Slow <= 0 {
		opt.Slow = defaultSlow
	}
	if opt.Top <= 0 {
		opt.Top = defaultTop
	}
	r := &Report{Source: SourceNone, Initcalls: []Initcall{}, Levels: []LevelSummary{}, Slowest: []Initcall{}, Findings: []Finding{}}

	r.table = kallsymsLevels(in.Root)
	var klog *kernelLog
	if in.Log != nil {
		var err error
		if klog, err = parseKernelLog(in.Log, in.LogName); err != nil {
			return nil, err
		}
	}
	traceIn := in.Trace
	if traceIn == nil && in.Root != nil {
		for _, p := range []string{tracePath, traceDebugPath} {
			if f, err := in.Root.Open(p); err == nil {
				defer f.Close()
				traceIn = f
				break
			}
		}
	}
	var tr *traceLog
	if traceIn != nil {
		var err error
		if tr, err = parseTrace(traceIn, in.TraceName); err != nil {
			return nil, err
		}
	}

	// The richer record wins: the trace carries levels, but is partial
	// when its buffer was reset or overflowed.
	switch {
	case tr != nil && len(tr.initcalls) > 0 && (klog == nil || len(tr.initcalls) >= len(klog.initcalls)):
		r.Source, r.Initcalls = SourceTrace, tr.initcalls
		if tr.reset {
			r.Notes = append(r.Notes, "the trace buffer does not start at boot (its first initcall is not a console or early one): boot with trace_clock=global, or the trace was cleared")
		}
	case klog != nil && len(klog.initcalls) > 0:
		r.Source, r.Initcalls = SourceInitcallLog, klog.initcalls
		if tr != nil && len(tr.initcalls) > 0 {
			r.Notes = append(r.Notes, fmt.Sprintf("the trace buffer holds only %d of the %d initcalls in the kernel log, so the log is used: the buffer was reset, e.g. when the kernel switched the trace clock at late_initcall (\"Unstable clock detected\"); boot with trace_clock=global", len(tr.initcalls), len(klog.initcalls)))
		}
	}
	if tr != nil {
		r.Notes = append(r.Notes, tr.notes...)
	}
	if klog != nil {
		r.Kernel, r.Cmdline = klog.version, klog.cmdline
		r.Notes = append(r.Notes, klog.notes...)
		if klog.wrapped {
			r.Notes = append(r.Notes, "the kernel log no longer starts at boot (its ring buffer wrapped): boot with log_buf_len=4M, or use the trace events")
		}
	}
	if in.Root != nil {
		if b, err := fs.ReadFile(in.Root, cmdlinePath); err == nil {
			r.Cmdline = trimLine(string(b))
		}
	}

	switch {
	case r.Source == SourceNone && klog != nil && klog.unreadFormat:
		r.Source = SourceUnreadable // recorded, in a form not read: its note says which
	case r.Source == SourceNone:
		r.Recommend = Recommended
		r.Notes = append(r.Notes, "this boot was recorded with neither boot-time initcall trace events nor initcall_debug, so its initcalls cannot be listed; add to the kernel command line either of: "+recommendTrace+" | "+recommendDebug)
	default:
		if r.Source == SourceInitcallLog || levelsMissing(r.Initcalls) {
			assignLevels(r)
		}
		for i := range r.Initcalls {
			r.Initcalls[i].Seq = i + 1
			r.Initcalls[i].Errno = decoder.ErrnoName(r.Initcalls[i].Ret)
		}
		r.initcallFindings(opt.Slow)
	}
	if klog != nil {
		r.oopsFindings(klog)
	}
	r.summarize(klog, opt.Top)
	if err := r.paramFindings(klog, in.Root); err != nil {
		return nil, err
	}
	r.expectFindings(opt.Expect, in.Root, klog)
	// Errors first; within a severity, in boot order.
	slices.SortStableFunc(r.Findings, func(a, b Finding) int { return cmp.Compare(b.Severity, a.Severity) })
	return r, nil
}

// Recorded tells whether the report lists the boot's initcalls.
func (r *Report) Recorded() bool { return r.Source == SourceTrace || r.Source == SourceInitcallLog }

func levelsMissing(ics []Initcall) bool {
	for _, ic := range ics {
		if ic.Level == LevelUnknown {
			return true
		}
	}
	return false
}

// initcallFindings applies the live-tracing rules to every finished initcall.
func (r *Report) initcallFindings(slow time.Duration) {
	for _, ic := range r.Initcalls {
		if !ic.Finished {
			continue
		}
		what := ic.Module
		if what == "" {
			what = "the kernel"
		}
		f := Finding{Function: ic.Function, Module: ic.Module, Level: ic.Level}
		switch {
		case ic.Ret > 0:
			// do_one_initcall only warns about a positive return and carries
			// on; for a module, do_init_module keeps it loaded.
			f.Rule, f.Value = decoder.RulePositiveInitReturn, int64(ic.Ret)
			f.Message = fmt.Sprintf("%s (%s level) returned %d: a positive init return counts as success, so %s carries on as if it initialized; return 0 or a negative errno", ic.Function, ic.Level, ic.Ret, what)
			r.add(f)
		case ic.Ret < 0:
			f.Rule, f.Value = decoder.RuleInitFailed, int64(ic.Ret)
			f.Message = fmt.Sprintf("%s (%s level) returned %d (%s): it did not initialize", ic.Function, ic.Level, ic.Ret, ic.Errno)
			r.add(f)
		}
		if ic.Duration > slow {
			f.Rule, f.Value = decoder.RuleSlowInit, ic.Duration.Nanoseconds()
			f.Message = fmt.Sprintf("%s (%s level) took %s, more than the %s threshold; built in, it delays the whole boot", ic.Function, ic.Level, ic.Duration.Round(time.Microsecond), slow)
			r.add(f)
		}
	}
}

func (r *Report) add(f Finding) {
	f.Severity = RuleSeverity[f.Rule]
	r.Findings = append(r.Findings, f)
}

// Worst is the highest severity among the findings, 0 without any.
func (r *Report) Worst() decoder.Severity {
	var w decoder.Severity
	for _, f := range r.Findings {
		w = max(w, f.Severity)
	}
	return w
}

// summarize fills the time to init, the slowest initcalls and the levels.
func (r *Report) summarize(klog *kernelLog, top int) {
	var lastBuiltin time.Duration
	idx := map[string]int{}
	for _, ic := range r.Initcalls {
		end := ic.Start + ic.Duration
		if ic.Module == "" {
			lastBuiltin = max(lastBuiltin, end)
		}
		i, ok := idx[ic.Level]
		if !ok {
			i = len(r.Levels)
			idx[ic.Level] = i
			r.Levels = append(r.Levels, LevelSummary{Name: ic.Level, Start: ic.Start})
		}
		l := &r.Levels[i]
		l.Count++
		l.Start = min(l.Start, ic.Start)
		l.End = max(l.End, end)
		l.Duration += ic.Duration
	}
	slices.SortStableFunc(r.Levels, func(a, b LevelSummary) int { return cmp.Compare(levelRank(a.Name), levelRank(b.Name)) })
	r.TimeToInit = lastBuiltin
	if klog != nil && klog.runInit > 0 {
		r.TimeToInit = klog.runInit
	}
	for _, ic := range r.Initcalls {
		if ic.Module == "" {
			r.Slowest = append(r.Slowest, ic)
		}
	}
	slices.SortStableFunc(r.Slowest, func(a, b Initcall) int { return cmp.Compare(b.Duration, a.Duration) })
	if len(r.Slowest) > top {
		r.Slowest = r.Slowest[:top]
	}
}
