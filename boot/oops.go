package boot

import (
	"fmt"
	"strings"
	"time"
)

// Frames that every initcall's call trace has; they say nothing about what
// the initcall reached.
var plumbing = map[string]bool{
	"do_one_initcall": true, "do_initcalls": true, "do_initcall_level": true,
	"kernel_init_freeable": true, "kernel_init": true, "ret_from_fork": true,
	"do_basic_setup": true, "do_init_module": true, "load_module": true,
	"__do_sys_finit_module": true, "__do_sys_init_module": true, "do_syscall_64": true,
	"entry_SYSCALL_64_after_hwframe": true, "do_pre_smp_initcalls": true,
}

// oopsFindings reports initcall-oops (seed incident 1): an oops while an
// initcall had been called and had not returned.
func (r *Report) oopsFindings(kl *kernelLog) {
	for _, o := range kl.oopses {
		ic := runningAt(kl.initcalls, o)
		if ic == nil {
			ic = runningAt(r.Initcalls, o)
		}
		if ic == nil {
			continue // an oops after boot, in no initcall: not this rule's business
		}
		level := ic.Level
		for _, c := range r.Initcalls {
			if c.Function == ic.Function && c.Module == ic.Module && c.Level != LevelUnknown {
				level = c.Level
			}
		}
		var frames []string
		if o.rip != "" {
			frames = append(frames, o.rip)
		}
		for _, f := range o.frames {
			if len(frames) == 0 || frames[len(frames)-1] != f {
				frames = append(frames, f)
			}
		}
		who := ic.Function
		if ic.Module != "" {
			who += " (module " + ic.Module + ")"
		}
		var b strings.Builder
		fmt.Fprintf(&b, "the kernel oopsed (%s) while %s, %s level, was running: it was called and never returned", o.title, who, level)
		if len(frames) > 0 {
			fmt.Fprintf(&b, "; call trace %s", strings.Join(frames, " <- "))
		}
		reach := r.laterReach(level, frames, ic.Start)
		if len(reach) > 0 {
			fmt.Fprintf(&b, "; it reaches code of initcalls at later levels that had not run yet: %s, so it uses a subsystem before that subsystem initializes; move it to a later level (device_initcall/module_init) or make it wait for that subsystem", strings.Join(reach, ", "))
		}
		b.WriteString(". This is a heuristic: the oops is attributed to the unfinished initcall of the same task")
		if len(reach) > 0 {
			b.WriteString(", and call-trace functions are matched to later initcalls by name")
		}
		r.add(Finding{Rule: RuleInitcallOops, Function: ic.Function, Module: ic.Module, Level: level, Reaches: reach, Message: b.String()})
	}
}

// runningAt is the initcall the oops interrupted: the last one started
// before it, by the same task when the oops names one, with no return.
func runningAt(ics []Initcall, o oops) *Initcall {
	for i := len(ics) - 1; i >= 0; i-- {
		ic := &ics[i]
		if ic.Finished || (o.at > 0 && ic.Start > o.at) {
			continue
		}
		if o.pid != 0 && ic.PID != o.pid {
			continue
		}
		return ic
	}
	return nil
}

// laterReach names the initcalls at levels after level that had not run
// when the oops hit and whose function shares a name, or its first two
// words (net_dev_*), with a call-trace function.
func (r *Report) laterReach(level string, frames []string, at time.Duration) []string {
	rank := levelRank(level)
	if level == LevelUnknown || level == LevelModule {
		return nil
	}
	type cand struct{ fn, level string }
	var later []cand
	seen := map[string]bool{}
	for _, ic := range r.Initcalls {
		if ic.Module == "" && levelRank(ic.Level) > rank && ic.Start > at && !seen[ic.Function] {
			seen[ic.Function] = true
			later = append(later, cand{ic.Function, ic.Level})
		}
	}
	for fn, levels := range r.table {
		for _, l := range levels {
			if levelRank(l) > rank && !seen[fn] {
				seen[fn] = true
				later = append(later, cand{fn, l})
			}
		}
	}
	var out []string
	for _, f := range frames {
		if plumbing[f] {
			continue
		}
		for _, c := range later {
			if f == c.fn || (prefix2(f) != "" && prefix2(f) == prefix2(c.fn)) {
				s := fmt.Sprintf("%s (%s)", c.fn, c.level)
				if !contains(out, s) {
					out = append(out, s)
				}
			}
		}
	}
	return out
}

// prefix2 is a function name's first two words: net_dev_init -> net_dev.
func prefix2(fn string) string {
	parts := strings.SplitN(strings.TrimLeft(fn, "_"), "_", 3)
	if len(parts) < 3 || len(parts[0]) < 2 {
		return ""
	}
	return parts[0] + "_" + parts[1]
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
