package boot

import (
	"bufio"
	"io/fs"
	"strings"
)

// levelOrder is the order the kernel runs initcall sections in (see
// include/asm-generic/vmlinux.lds.h INIT_CALLS and init/main.c): console
// initcalls from console_init, early ones before SMP, then levels 0..7,
// each followed by its _sync variant, rootfs between fs and device.
// Trace events name only console, early and the eight numbered levels.
var levelOrder = []string{
	"console", "security", "early",
	"pure", "pure_sync", "core", "core_sync", "postcore", "postcore_sync",
	"arch", "arch_sync", "subsys", "subsys_sync", "fs", "fs_sync", "rootfs",
	"device", "device_sync", "late", "late_sync",
	LevelModule, LevelUnknown,
}

var levelNames = []string{"pure", "core", "postcore", "arch", "subsys", "fs", "device", "late"}

func levelRank(name string) int {
	for i, l := range levelOrder {
		if l == name {
			return i
		}
	}
	return len(levelOrder)
}

// symbolLevel reads an initcall table symbol from kallsyms:
// __initcall__kmod_<obj>__<id>_<line>_<fn><level> (5.13 and later, what
// Debian 6.1 has) or __initcall_<fn><level> (older kernels), where level is
// a digit 0-7 with an optional "s" (sync), or early, rootfs, con, security.
func symbolLevel(sym string) (fn, level string, ok bool) {
	rest, ok := strings.CutPrefix(sym, "__initcall_")
	if !ok {
		return "", "", false
	}
	if r, ok := strings.CutPrefix(rest, "_kmod_"); ok {
		// <obj>__<id>_<line>_<fn><level>
		_, after, found := strings.Cut(r, "__")
		if !found {
			return "", "", false
		}
		parts := strings.SplitN(after, "_", 3)
		if len(parts) != 3 {
			return "", "", false
		}
		rest = parts[2]
	}
	for _, w := range []struct{ suffix, level string }{{"early", "early"}, {"rootfs", "rootfs"}, {"con", "console"}, {"security", "security"}} {
		if f, found := strings.CutSuffix(rest, w.suffix); found && f != "" {
			return f, w.level, true
		}
	}
	sync := strings.HasSuffix(rest, "s")
	r := strings.TrimSuffix(rest, "s")
	if len(r) < 2 {
		return "", "", false
	}
	d := r[len(r)-1]
	if d < '0' || d > '7' {
		return "", "", false
	}
	level = levelNames[d-'0']
	if sync {
		level += "_sync"
	}
	return r[:len(r)-1], level, true
}

// kallsymsLevels maps each initcall function to its levels, in table order
// (a name can be defined static in several files at different levels).
func kallsymsLevels(root fs.FS) map[string][]string {
	if root == nil {
		return nil
	}
	f, err := root.Open(kallsymsPath)
	if err != nil {
		return nil
	}
	defer f.Close()
	out := map[string][]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		i := strings.Index(line, " __initcall_")
		if i < 0 || strings.ContainsRune(line, '\t') {
			continue
		}
		if fn, level, ok := symbolLevel(line[i+1:]); ok {
			out[fn] = append(out[fn], level)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// assignLevels gives each built-in initcall a level from kallsyms. Levels
// only go forward, so for a name defined at several levels the first one
// not before the current level is taken.
func assignLevels(r *Report) {
	table := r.table
	if table == nil {
		for _, ic := range r.Initcalls {
			if ic.Module == "" && ic.Level == LevelUnknown {
				r.Notes = append(r.Notes, "initcall levels are unknown: the log has none and /proc/kallsyms has no __initcall symbols (not root, or --from without --root); the trace events record them")
				return
			}
		}
		return
	}
	cur := 0
	for i := range r.Initcalls {
		ic := &r.Initcalls[i]
		if ic.Module != "" || ic.Level != LevelUnknown {
			if ic.Module == "" {
				cur = max(cur, levelRank(ic.Level))
			}
			continue
		}
		cands := table[ic.Function]
		best := ""
		for _, l := range cands {
			if levelRank(l) >= cur {
				best = l
				break
			}
		}
		if best == "" && len(cands) > 0 {
			best = cands[len(cands)-1]
		}
		if best != "" {
			ic.Level = best
			cur = max(cur, levelRank(best))
		}
	}
}
