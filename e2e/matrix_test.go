//go:build e2e

package e2e

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// The kernel matrix (issue 7): the same binary against Debian's bullseye,
// bookworm and trixie cloud kernels. Each kernel is prepared by
// vm/setup.sh (run here, so a kernel that cannot be prepared fails the
// test), booted once, and ktracer watches the same loads and unloads twice:
// with the preferred attach methods, then with kprobes/kretprobes only.

var (
	matrixKernels = flag.String("matrix", "bullseye,bookworm,trixie,sid",
		"kernels of TestKernelMatrix: Debian suites; the host's own suite uses -vmdir, the others vm-SUITE beside -vmdir")
	matrixCore = flag.String("matrix-core", "trixie,sid",
		"kernels of TestKernelMatrix whose one boot also runs the core suite (coreScript) with their own test modules; each step's findings must match 6.1's")
	matrixOut = flag.String("matrix-out", "../build/matrix.md", "where TestKernelMatrix writes its markdown table")
)

// knownGaps: hooks that cannot work on a kernel series, with the error the
// tracer must report for them; a key "MODE/hook" holds only in that mode
// (matrixModes). A gap that closes (the hook now attaches) fails the test
// too, so this list stays true.
var knownGaps = map[string]map[string]string{
	"5.10": {
		// No bpf_loop (5.17) and no callback subprograms (BPF_PSEUDO_FUNC,
		// 5.13): the verifier rejects the programs that pass emit_symbol
		// and scan_word to bpf_loop before it reads an instruction.
		"module_load":     "number of funcs in func_info doesn't match number of subprogs",
		"initcall_finish": "number of funcs in func_info doesn't match number of subprogs",
		// page_fault_oops appeared in 5.15 (the x86 fault code's rework);
		// 5.10's exec_fault still has its raw tracepoint.
		"oops_page_fault":    "__x64_page_fault_oops: not found",
		"kprobes/exec_fault": "__x64_page_fault_oops: not found",
		// load-failed: no bpf_loop, so the module's CRC is not read (a
		// degraded kretprobe); same_magic is inlined (a bare ENOEXEC).
		"load_symbol_version": "number of funcs in func_info doesn't match number of subprogs",
		"load_vermagic":       "same_magic",
	},
	// Debian's 7.x (sid) is built without CONFIG_MODVERSIONS: no
	// check_version to hook, and same_magic is inlined, so a bad vermagic
	// is a bare ENOEXEC there, as on 5.10.
	"7": {
		"load_symbol_version": "check_version",
		"load_vermagic":       "same_magic",
	},
}

// knownCoreGaps: core steps whose findings cannot match 6.1's on a kernel
// series (or major version, for sid's next releases), with what happens
// instead: substrings of the observed difference, all required. A step that
// matches again fails too, so this list stays true.
var knownCoreGaps = map[string]map[string][]string{
	"7": {
		// x86 module text now comes from execmem's ROX cache: freed init
		// text stays mapped, filled with int3. The stale call traps at
		// kt_init_helper+0x1 instead of page-faulting, and an int3 oops is
		// fatal ("in interrupt": exc_int3 runs as an NMI). Only what
		// ktracer reported before, at load time, reaches user space; the
		// decoder names the trap freed-init-call (TestFreedInitCallThroughInt3)
		// but the reader never gets the record.
		"kt_timebomb": {
			"the guest died: Oops: int3",
			"Kernel panic - not syncing: Fatal exception in interrupt",
			`reported before: ["dangling-init-pointer kt_timebomb kt_init_helper (error) at global_ops+0x0"]`,
		},
	},
}

// gaps are knownGaps for k: its series', else its major version's.
func (k *matrixKernel) gaps() map[string]string {
	if g, ok := knownGaps[k.series()]; ok {
		return g
	}
	major, _, _ := strings.Cut(k.kver, ".")
	return knownGaps[major]
}

// coreGaps are knownCoreGaps for k: its series', else its major version's.
func (k *matrixKernel) coreGaps() map[string][]string {
	if g, ok := knownCoreGaps[k.series()]; ok {
		return g
	}
	major, _, _ := strings.Cut(k.kver, ".")
	return knownCoreGaps[major]
}

// requiredHooks: without them ktracer exits 2.
var requiredHooks = []string{"module_load", "initcall_finish"}

// exercisedHooks are checked by the loads below; every other hook (the
// panic path) is only checked to attach.
var exercisedHooks = []string{"module_load", "initcall_start", "initcall_finish", "module_init_done", "module_free",
	"load_failed", "load_unknown_symbol", "load_symbol_version", "load_vermagic"}

// modCase is one module load in the guest and what ktracer must report.
type modCase struct {
	name, function string // module, and its init function
	ret            int32  // the init's return
	live           bool   // kept loaded (module_live) or not (module_init_failed)
	path           string // insmod path, or "" for modprobe
	args           string
}

// A shipped module whose init fails on every kernel: nbd refuses a negative
// max_part with -EINVAL.
var shippedCases = []modCase{
	{name: "dummy", ret: 0, live: true},
	{name: "nbd", ret: -22, live: false, args: "max_part=-1"},
}

var testModuleCases = []modCase{
	{name: "kt_good", function: "kt_good_init", ret: 0, live: true},
	{name: "kt_positive", function: "kt_positive_init", ret: 1, live: true},
	{name: "kt_enodev", function: "kt_enodev_init", ret: -19, live: false},
}

// matrixKernel is one prepared kernel.
type matrixKernel struct {
	suite, vmdir, kver string
	unbuilt            string // why the test modules did not build, if they did not
	setupTime          time.Duration
}

// prepareKernel runs vm/setup.sh for suite (idempotent: fast once done).
func prepareKernel(t *testing.T, suite string) *matrixKernel {
	t.Helper()
	host := hostSuite(t)
	k := &matrixKernel{suite: suite, vmdir: *vmDir}
	args := []string{k.vmdir}
	if suite != host {
		k.vmdir = filepath.Join(filepath.Dir(*vmDir), "vm-"+suite)
		args = []string{"--suite", suite, k.vmdir}
	}
	start := time.Now()
	out, err := exec.Command("./vm/setup.sh", args...).CombinedOutput()
	k.setupTime = time.Since(start)
	if err != nil {
		t.Fatalf("vm/setup.sh %s failed (%v):\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("%s", bytes.TrimSpace(out))
	kver, err := os.ReadFile(filepath.Join(k.vmdir, "KVER"))
	if err != nil {
		t.Fatal(err)
	}
	k.kver = strings.TrimSpace(string(kver))
	if b, err := os.ReadFile(filepath.Join(k.vmdir, "modules-unbuilt")); err == nil {
		k.unbuilt = strings.TrimSpace(string(b))
	} else if _, err := os.Stat(filepath.Join(k.vmdir, "modules", "kt_good.ko")); err != nil {
		t.Fatalf("%s: neither test modules nor modules-unbuilt: %v", k.vmdir, err)
	}
	return k
}

func hostSuite(t *testing.T) string {
	b, err := os.ReadFile("/etc/os-release")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VERSION_CODENAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	t.Fatal("no VERSION_CODENAME in /etc/os-release")
	return ""
}

// series is "5.10" for "5.10.0-46-cloud-amd64".
func (k *matrixKernel) series() string {
	p := strings.SplitN(k.kver, ".", 3)
	if len(p) < 2 {
		return k.kver
	}
	return p[0] + "." + p[1]
}

// initFunction reads a shipped module's init function name from its ELF
// symbols: the function at init_module's address with a name of its own.
func (k *matrixKernel) initFunction(t *testing.T, module string) string {
	t.Helper()
	path := module
	data := k.shippedModule(t, module)
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	syms, err := f.Symbols()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var alias *elf.Symbol
	for i := range syms {
		if syms[i].Name == "init_module" {
			alias = &syms[i]
		}
	}
	if alias == nil {
		t.Fatalf("%s has no init_module symbol", path)
	}
	for _, s := range syms {
		if s.Name != "init_module" && s.Section == alias.Section && s.Value == alias.Value &&
			elf.ST_TYPE(s.Info) == elf.STT_FUNC && !strings.HasPrefix(s.Name, "__") {
			return s.Name
		}
	}
	t.Fatalf("%s: no function at init_module's address", path)
	return ""
}

// cases are the loads on this kernel: the test modules where they built,
// and two shipped modules everywhere.
func (k *matrixKernel) cases(t *testing.T) []modCase {
	var cs []modCase
	if k.unbuilt == "" {
		for _, c := range testModuleCases {
			c.path = "/payload/modules/" + c.name + ".ko"
			cs = append(cs, c)
		}
	}
	for _, c := range shippedCases {
		c.function = k.initFunction(t, c.name)
		cs = append(cs, c)
	}
	return cs
}

// guestCommand loads every case, then the loads that must fail (while the
// live ones are loaded: one of them is loaded twice), then removes the live
// ones.
func guestCommand(cs []modCase, lf []loadFailCase) string {
	var b strings.Builder
	b.WriteString("sh -c '")
	var rm []string
	for _, c := range cs {
		if c.path != "" {
			fmt.Fprintf(&b, "/payload/bin/insmod %s %s; ", c.path, c.args)
		} else {
			fmt.Fprintf(&b, "/payload/bin/modprobe %s %s; ", c.name, c.args)
		}
		if c.live {
			rm = append(rm, c.name)
		}
	}
	for _, c := range lf {
		b.WriteString(c.cmd + "; ")
	}
	fmt.Fprintf(&b, "/payload/bin/rmmod %s; exit 0'", strings.Join(rm, " "))
	return b.String()
}

// hookStatus is one hook on one kernel in one mode.
type hookStatus struct {
	attached bool
	method   string
	degraded string // what the attached variant gives up, e.g. without bpf_loop
	err      string
	result   string // "pass", "FAIL: ...", "known gap: ...", "not exercised"
}

// modeResult is one `ktracer watch` run.
type modeResult struct {
	hooks   map[string]*hookStatus
	order   []string
	lost    string // "0", or what went wrong
	message string // ktracer's one-line refusal, when it could not run
	exit    int
}

// hooksOf reads the attach report: the JSON attached line when ktracer
// started, else its -v lines ("hook NAME: METHOD TARGET [(degraded: WHAT)]"
// or "hook NAME: not attached: ERROR") from stderr. The degraded note is
// taken from the -v lines in both cases.
func hooksOf(r *run, stderr *run) (map[string]*hookStatus, []string) {
	hooks := map[string]*hookStatus{}
	var order []string
	fromJSON := false
	if a := r.event("attached"); a != nil {
		fromJSON = true
		for _, h := range a.Hooks {
			hooks[h.Name] = &hookStatus{attached: h.Attached, method: h.Method, err: h.Error}
			order = append(order, h.Name)
		}
	}
	if stderr == nil {
		return hooks, order
	}
	for _, l := range stderr.raw {
		rest, ok := strings.CutPrefix(l, "hook ")
		if !ok {
			continue
		}
		name, what, ok := strings.Cut(rest, ": ")
		if !ok {
			continue
		}
		h := &hookStatus{}
		if e, failed := strings.CutPrefix(what, "not attached: "); failed {
			h.err = e
		} else {
			h.attached = true
			h.method, _, _ = strings.Cut(what, " ")
			if _, d, ok := strings.Cut(what, " (degraded: "); ok {
				h.degraded = strings.TrimSuffix(d, ")")
			}
		}
		if fromJSON {
			if j := hooks[name]; j != nil {
				j.degraded = h.degraded
			}
			continue
		}
		hooks[name] = h
		order = append(order, name)
	}
	return hooks, order
}

// check judges one run against the cases; problems are returned, not
// reported, so the caller decides what must hold.
func check(k *matrixKernel, mode string, r, stderr *run, cs []modCase, lf []loadFailCase) (*modeResult, []string) {
	var problems []string
	res := &modeResult{exit: r.exit}
	res.hooks, res.order = hooksOf(r, stderr)
	if len(res.hooks) == 0 {
		return res, []string{"no attach report (neither the attached line nor -v hook lines)"}
	}
	gaps := k.gaps()
	for _, name := range res.order {
		h := res.hooks[name]
		gap, isGap := gaps[mode+"/"+name]
		if !isGap {
			gap, isGap = gaps[name]
		}
		switch {
		case isGap && h.attached && h.degraded == "":
			h.result = "FAIL: attaches, but knownGaps says it cannot"
			problems = append(problems, fmt.Sprintf("hook %s attached by %s on %s: remove it from knownGaps[%q]", name, h.method, k.kver, k.series()))
		case isGap && h.attached:
			// The gap is bridged by a degraded variant: the events decide.
			h.result = "not exercised"
		case isGap && strings.Contains(h.err, gap):
			h.result = "known gap: " + gap
		case isGap:
			h.result = "FAIL: not attached"
			problems = append(problems, fmt.Sprintf("hook %s: want error %q, got %q", name, gap, h.err))
		case !h.attached:
			h.result = "FAIL: not attached"
			problems = append(problems, fmt.Sprintf("hook %s did not attach: %s", name, h.err))
		case h.degraded != "":
			// Only a listed gap may fall back to a degraded variant.
			h.result = "FAIL: degraded"
			problems = append(problems, fmt.Sprintf("hook %s attached degraded (%s): its full variant must load on %s", name, h.degraded, k.kver))
		default:
			h.result = "not exercised"
		}
	}

	required := true
	for _, name := range requiredHooks {
		if h := res.hooks[name]; h == nil || !h.attached {
			required = false
		}
	}
	if !required {
		// ktracer must refuse to run, in one line, with status 2.
		res.lost = "not run"
		msg := ""
		if stderr != nil {
			for _, l := range stderr.raw {
				if strings.HasPrefix(l, "ktracer: ") {
					msg = l
				}
			}
		}
		res.message = msg
		if r.exit != 2 || msg == "" {
			problems = append(problems, fmt.Sprintf("required hooks missing: want exit 2 and a one-line ktracer: message, got exit %d, message %q", r.exit, msg))
		}
		for _, name := range exercisedHooks {
			if h := res.hooks[name]; h != nil && h.attached {
				h.result = "not run (ktracer exits 2)"
			}
		}
		return res, problems
	}

	// Each exercised hook: did its events arrive, right?
	var events = map[string][]line{}
	for _, l := range r.lines {
		events[l.Event+"/"+l.Module] = append(events[l.Event+"/"+l.Module], l)
	}
	fails := map[string][]string{}
	for _, c := range cs {
		if ls := events["module_load/"+c.name]; len(ls) != 1 || ls[0].Function != c.function {
			fails["module_load"] = append(fails["module_load"], fmt.Sprintf("%s: want one module_load with function %s, got %v", c.name, c.function, functions(ls)))
		}
		ic := events["initcall/"+c.name]
		switch {
		case len(ic) != 1:
			fails["initcall_finish"] = append(fails["initcall_finish"], fmt.Sprintf("%s: %d initcall events, want 1", c.name, len(ic)))
		case ic[0].Function != c.function || ic[0].Ret == nil || *ic[0].Ret != c.ret:
			fails["initcall_finish"] = append(fails["initcall_finish"], fmt.Sprintf("%s: initcall %s ret %v, want %s ret %d", c.name, ic[0].Function, ptr(ic[0].Ret), c.function, c.ret))
		case ic[0].DurationNS == nil || *ic[0].DurationNS <= 0:
			fails["initcall_start"] = append(fails["initcall_start"], fmt.Sprintf("%s: initcall has no duration (start not seen)", c.name))
		}
		done := "module_live"
		if !c.live {
			done = "module_init_failed"
		}
		if len(events[done+"/"+c.name]) != 1 {
			fails["module_init_done"] = append(fails["module_init_done"], fmt.Sprintf("%s: want one %s", c.name, done))
		}
		// Every module here leaves: rmmod, or its failed init.
		if len(events["module_free/"+c.name]) != 1 {
			fails["module_free"] = append(fails["module_free"], fmt.Sprintf("%s: want one module_free", c.name))
		}
	}
	for hook, f := range checkLoadFailed(r, lf) {
		fails[hook] = append(fails[hook], f...)
	}
	for _, name := range exercisedHooks {
		h := res.hooks[name]
		if h == nil || !h.attached {
			continue
		}
		if name == "load_symbol_version" && !slices.ContainsFunc(lf, func(c loadFailCase) bool { return c.hook == name }) {
			h.result = "not exercised: the kernel has no CONFIG_MODVERSIONS"
			continue
		}
		if f := fails[name]; len(f) > 0 {
			h.result = "FAIL: " + strings.Join(f, "; ")
			problems = append(problems, fmt.Sprintf("hook %s (%s): %s", name, h.method, strings.Join(f, "; ")))
		} else {
			h.result = "pass"
		}
	}
	s := r.event("summary")
	switch {
	case s == nil || s.Lost == nil:
		res.lost = "no summary"
		problems = append(problems, "no summary line")
	case *s.Lost != 0 || s.Corrupt != 0:
		res.lost = fmt.Sprintf("%d lost, %d corrupt", *s.Lost, s.Corrupt)
		problems = append(problems, "records lost or corrupt: "+res.lost)
	default:
		res.lost = "0"
	}
	return res, problems
}

func functions(ls []line) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.Function)
	}
	return out
}

func ptr(p *int32) string {
	if p == nil {
		return "none"
	}
	return fmt.Sprint(*p)
}

// matrixRow is one kernel's results for the table.
type matrixRow struct {
	suite    string
	k        *matrixKernel // nil when setup failed
	modules  string
	modes    map[string]*modeResult
	vmTime   time.Duration
	problems []string
	core     map[string]string // core step -> result, for -matrix-core kernels
}

// findingKey is what must match between kernels: the verdict and the names,
// not addresses, offsets or durations, which the compiler and the kernel
// change.
func findingKey(f line) string {
	fn, _, _ := strings.Cut(f.Function, "+") // offsets are the compiler's
	k := fmt.Sprintf("%s %s %s (%s)", f.Rule, f.Module, fn, f.Severity)
	if f.Location != "" {
		// A WARN's file is where that kernel's modules were built.
		k += " at " + filepath.Base(f.Location)
	}
	if f.Errno != "" {
		k += " " + f.Errno
	}
	if f.Caller != "" {
		c, _, _ := strings.Cut(f.Caller, "+")
		k += " from " + c
	}
	if f.Value != nil && (f.Rule == "positive-init-return" || f.Rule == "init-failed") {
		k += fmt.Sprintf(" value %d", *f.Value)
	}
	return k
}

func findingKeys(r *run) []string {
	var ks []string
	for _, f := range r.findings() {
		ks = append(ks, findingKey(f))
	}
	sort.Strings(ks)
	return ks
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// deathOf names how a guest died: its last oops line and its panic line.
func deathOf(g *guest) string {
	var oops, panicked string
	for _, l := range strings.Split(g.console, "\n") {
		if i := strings.Index(l, "Oops:"); i >= 0 {
			oops = strings.TrimSpace(l[i:])
		}
		if i := strings.Index(l, "Kernel panic"); i >= 0 && panicked == "" {
			panicked = strings.TrimSpace(l[i:])
		}
	}
	if oops == "" && panicked == "" {
		return "no oops or panic line on the console"
	}
	return strings.Trim(oops+"; "+panicked, "; ")
}

// compareCore judges each core step on k against 6.1's run of the same
// step; it returns the step results and the problems.
func compareCore(k *matrixKernel, g *guest, died error, ref *guest) (map[string]string, []string) {
	res := map[string]string{}
	var problems []string
	gaps := k.coreGaps()
	for _, step := range coreSteps {
		want := ref.runs[step]
		got := g.runs[step]
		var diff string
		switch {
		case want == nil || want.exit < 0:
			diff = "no 6.1 result"
		case got == nil || got.exit < 0:
			diff = "no result"
			if died != nil {
				diff += ": the guest died: " + deathOf(g)
			}
			if live := g.runs[step+"-live"]; live != nil {
				diff += fmt.Sprintf("; reported before: %q", findingKeys(live))
			}
		default:
			w, h := findingKeys(want), findingKeys(got)
			if strings.Join(w, "\n") != strings.Join(h, "\n") {
				diff = fmt.Sprintf("findings %q, 6.1 has %q", h, w)
			} else if s := got.event("summary"); s == nil || s.Lost == nil || *s.Lost != 0 || s.Corrupt != 0 {
				diff = "records lost or no summary"
			}
		}
		gap, isGap := gaps[step]
		switch {
		case diff == "":
			res[step] = fmt.Sprintf("= 6.1 (%d findings)", len(findingKeys(got)))
			if isGap {
				res[step] = "FAIL: matches 6.1, but knownCoreGaps says it cannot"
				problems = append(problems, fmt.Sprintf("core %s matches 6.1: remove it from knownCoreGaps[%q]", step, k.series()))
			}
		case isGap && containsAll(diff, gap):
			res[step] = "known gap: " + diff
		default:
			res[step] = "FAIL: " + diff
			problems = append(problems, fmt.Sprintf("core %s: %s", step, diff))
		}
	}
	return res, problems
}

var matrixModes = []struct{ name, flags string }{
	{"preferred", "-v"},
	{"kprobes", "-v --methods kprobe,kretprobe"},
}

func TestKernelMatrix(t *testing.T) {
	payload := buildPayload(t)
	sum, err := fileSHA256(filepath.Join(payload, "bin", "ktracer"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("one ktracer binary for every kernel: sha256 %s", sum)
	var rows []*matrixRow
	for _, suite := range strings.Split(*matrixKernels, ",") {
		suite = strings.TrimSpace(suite)
		row := &matrixRow{suite: suite, modes: map[string]*modeResult{}}
		rows = append(rows, row)
		t.Run(suite, func(t *testing.T) {
			k := prepareKernel(t, suite)
			row.k = k
			cs := k.cases(t)
			lf := k.loadFailCases(t, payload)
			var names []string
			for _, c := range cs {
				names = append(names, c.name)
			}
			row.modules = strings.Join(names, ", ")
			if k.unbuilt != "" {
				t.Logf("%s: test modules not built, shipped modules only:\n%s", k.kver, k.unbuilt)
			}
			var s strings.Builder
			s.WriteString("set -u\n")
			core := k.unbuilt == "" && suite != hostSuite(t) && slices.Contains(strings.Split(*matrixCore, ","), suite)
			// Where the time bomb panics the guest (an int3 oops, 7.x), the
			// boot keeps its panic in ramoops and restarts (--reboot); the
			// second boot only asks ktracer check about it, first thing.
			afterPanic := core && k.coreGaps()["kt_timebomb"] != nil
			if afterPanic {
				s.WriteString(int3RebootScript)
			}
			for _, m := range matrixModes {
				s.WriteString(watchStep(m.name, m.flags, guestCommand(cs, lf)))
			}
			if core {
				// The same boot: the loads above left nothing loaded.
				s.WriteString(coreScript(true))
			}
			// no_timer_check: on a starved host (2 cores, other VMs) the
			// IO-APIC timer check fails and the kernel panics at 0.0s
			// ("IO-APIC + timer doesn't work!"); it is seen in this matrix.
			kmods := []string{"--timeout", "900", "--append", "no_timer_check"}
			if afterPanic {
				kmods = []string{"--timeout", "900", "--append", "no_timer_check memmap=1M$" + ramoopsAddr, "--reboot", "--kmod", "ramoops"}
				// KT_MATRIX_CONSOLE=FILE keeps both boots' console.
				if l := os.Getenv("KT_MATRIX_CONSOLE"); l != "" {
					kmods = append(kmods, "--log", l)
				}
			}
			for _, c := range shippedCases {
				kmods = append(kmods, "--kmod", c.name)
			}
			kmods = append(kmods, "--kmod", "stp") // loaded without llc: load-failed
			start := time.Now()
			g, died := runGuestMayDie(t, k.vmdir, payload, s.String(), kmods...)
			row.vmTime = time.Since(start)
			if died != nil && !core {
				t.Fatal(died)
			}
			if afterPanic {
				died = checkAfterInt3Panic(t, k, g, row)
			}
			if core {
				var problems []string
				row.core, problems = compareCore(k, g, died, moduleGuest(t))
				for _, p := range problems {
					row.problems = append(row.problems, p)
					t.Errorf("%s: %s", k.kver, p)
				}
				if died != nil {
					t.Logf("%s: the guest died during the core suite: %s\nconsole (tail):\n%s", k.kver, deathOf(g), tail(g.console, 60))
				}
			}
			for _, m := range matrixModes {
				r := g.run(t, m.name)
				res, problems := check(k, m.name, r, g.runs[m.name+"-stderr"], cs, lf)
				row.modes[m.name] = res
				for _, p := range problems {
					row.problems = append(row.problems, m.name+": "+p)
					t.Errorf("%s, %s methods: %s", k.kver, m.name, p)
				}
				if len(problems) > 0 {
					t.Logf("%s output:\n%s\nstderr:\n%s", m.name, strings.Join(r.raw, "\n"), strings.Join(rawOf(g.runs[m.name+"-stderr"]), "\n"))
				}
			}
			t.Logf("%s: setup %s, VM boot and both runs %s", k.kver, k.setupTime.Round(100*time.Millisecond), row.vmTime.Round(100*time.Millisecond))
		})
	}
	table := fmt.Sprintf("One static ktracer binary (sha256 %.12s) on every kernel.\n\n", sum) + matrixTable(rows)
	t.Logf("kernel matrix:\n%s", table)
	if err := os.MkdirAll(filepath.Dir(*matrixOut), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(*matrixOut, []byte(table), 0o644); err != nil {
		t.Fatal(err)
	}
}

func rawOf(r *run) []string {
	if r == nil {
		return nil
	}
	return r.raw
}

// matrixTable: one table per attach mode, a row per hook, a column per
// kernel; each cell is the method the hook got and whether it worked.
func matrixTable(rows []*matrixRow) string {
	var b strings.Builder
	var ok []*matrixRow
	for _, r := range rows {
		if r.k != nil {
			ok = append(ok, r)
		}
	}
	fmt.Fprintf(&b, "| kernel | test modules | loads | setup | VM run |\n| --- | --- | --- | --- | --- |\n")
	for _, r := range rows {
		if r.k == nil {
			fmt.Fprintf(&b, "| %s: setup FAILED | | | | |\n", r.suite)
			continue
		}
		mods := "built"
		if r.k.unbuilt != "" {
			mods = "not built: " + secondLine(r.k.unbuilt)
		}
		fmt.Fprintf(&b, "| %s (%s) | %s | %s | %s | %s |\n", r.k.kver, r.k.suite, mods, r.modules,
			r.k.setupTime.Round(time.Second), r.vmTime.Round(time.Second))
	}
	notes := map[string]int{}
	var noteList []string
	note := func(s string) string {
		s = strings.ReplaceAll(s, "\n", "; ")
		if _, seen := notes[s]; !seen {
			noteList = append(noteList, s)
			notes[s] = len(noteList)
		}
		return fmt.Sprintf("[%d]", notes[s])
	}
	for _, m := range matrixModes {
		fmt.Fprintf(&b, "\n`ktracer watch %s`\n\n| hook |", m.flags)
		for _, r := range ok {
			fmt.Fprintf(&b, " %s |", r.k.kver)
		}
		b.WriteString("\n| --- |" + strings.Repeat(" --- |", len(ok)) + "\n")
		var order []string
		seen := map[string]bool{}
		for _, r := range ok {
			if res := r.modes[m.name]; res != nil {
				for _, h := range res.order {
					if !seen[h] {
						seen[h] = true
						order = append(order, h)
					}
				}
			}
		}
		for _, h := range order {
			fmt.Fprintf(&b, "| `%s` |", h)
			for _, r := range ok {
				res := r.modes[m.name]
				hs := (*hookStatus)(nil)
				if res != nil {
					hs = res.hooks[h]
				}
				switch {
				case hs == nil:
					b.WriteString(" – |")
				case hs.attached && hs.degraded != "":
					fmt.Fprintf(&b, " %s, degraded %s: %s |", hs.method, note("degraded: "+hs.degraded), cell(hs.result, note))
				case hs.attached:
					fmt.Fprintf(&b, " %s: %s |", hs.method, cell(hs.result, note))
				default:
					fmt.Fprintf(&b, " not attached %s: %s |", note(hs.err), cell(hs.result, note))
				}
			}
			b.WriteString("\n")
		}
		b.WriteString("| records lost |")
		for _, r := range ok {
			if res := r.modes[m.name]; res != nil {
				fmt.Fprintf(&b, " %s |", res.lost)
			} else {
				b.WriteString(" – |")
			}
		}
		b.WriteString("\n")
		for _, r := range ok {
			if res := r.modes[m.name]; res != nil && res.message != "" {
				fmt.Fprintf(&b, "\nOn %s ktracer exits %d: `%s`\n", r.k.kver, res.exit, res.message)
			}
		}
	}
	var coreRows []*matrixRow
	for _, r := range ok {
		if r.core != nil {
			coreRows = append(coreRows, r)
		}
	}
	if len(coreRows) > 0 {
		b.WriteString("\nThe core suite in the same boot, with each kernel's own test modules, against 6.1's findings\n\n| step |")
		for _, r := range coreRows {
			fmt.Fprintf(&b, " %s |", r.k.kver)
		}
		b.WriteString("\n| --- |" + strings.Repeat(" --- |", len(coreRows)) + "\n")
		for _, step := range coreSteps {
			fmt.Fprintf(&b, "| `%s` |", step)
			for _, r := range coreRows {
				fmt.Fprintf(&b, " %s |", cell(r.core[step], note))
			}
			b.WriteString("\n")
		}
	}
	if len(noteList) > 0 {
		b.WriteString("\n")
		for i, n := range noteList {
			fmt.Fprintf(&b, "[%d] %s\n\n", i+1, n)
		}
	}
	var problems []string
	for _, r := range ok {
		for _, p := range r.problems {
			problems = append(problems, r.k.kver+": "+p)
		}
	}
	sort.Strings(problems)
	if len(problems) > 0 {
		b.WriteString("Failures:\n\n")
		for _, p := range problems {
			fmt.Fprintf(&b, "- %s\n", p)
		}
	}
	return b.String()
}

// cell keeps table cells short: long results go to a numbered note.
func cell(result string, note func(string) string) string {
	if len(result) <= 30 {
		return result
	}
	head, _, _ := strings.Cut(result, ":")
	return head + " " + note(result)
}

// secondLine of modules-unbuilt is the compiler's error.
func secondLine(s string) string {
	ls := strings.Split(s, "\n")
	if len(ls) < 2 {
		return s
	}
	return ls[1]
}

func fileSHA256(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:]), nil
}

// int3RebootScript starts the matrix guest script where the time bomb's
// int3 oops panics the kernel: ramoops keeps the panic, and on the boot
// after it the module is installed as a user's would be (modules.dep, so
// the check can read its file) and `ktracer check` runs.
var int3RebootScript = `mount -t pstore pstore /sys/fs/pstore
/payload/bin/modprobe ramoops ` + ramoopsParams + ` || echo KT-OUT:ramoops:exit:1
for f in /sys/fs/pstore/dmesg-*; do [ -e "$f" ] && echo "KT-OUT:pstore-$(basename $f):$(head -c 40 $f | head -n1)"; done
if grep -qs '^Panic#' /sys/fs/pstore/dmesg-*; then
	kv=$(uname -r)
	mkdir -p /lib/modules/$kv/extra
	cp /payload/modules/kt_timebomb.ko /lib/modules/$kv/extra/
	echo extra/kt_timebomb.ko: >>/lib/modules/$kv/modules.dep
	echo 1 >/proc/sys/kernel/printk
	for f in /sys/fs/pstore/dmesg-*; do base64 $f | sed "s|^|KT-OUT:int3-record-$(basename $f):|"; done
` + checkStep("after-int3-panic", "--output json") + `	exit 0
fi
`

// checkAfterInt3Panic checks the second boot of a guest whose time bomb
// panicked it: ktracer check names the panic freed-init-call, with the
// module and its __init function, besides panic-without-vmcore. It returns
// the death of the first boot for compareCore, nil if it did not die.
func checkAfterInt3Panic(t *testing.T, k *matrixKernel, g *guest, row *matrixRow) error {
	t.Helper()
	first, _, rebooted := strings.Cut(g.console, "KT-GUEST-START")
	if rebooted {
		first2, _, again := strings.Cut(g.console[len(first)+len("KT-GUEST-START"):], "KT-GUEST-START")
		rebooted = again
		first += "KT-GUEST-START" + first2
	}
	problem := func(format string, args ...any) {
		p := fmt.Sprintf(format, args...)
		row.problems = append(row.problems, p)
		t.Errorf("%s: %s", k.kver, p)
	}
	r := g.runs["after-int3-panic"]
	if !rebooted || r == nil || r.exit < 0 {
		problem("after the time bomb: no second boot with a ktracer check result (rebooted %v)", rebooted)
		return nil
	}
	var freed []line
	rules := map[string]int{}
	for _, f := range r.findings() {
		rules[f.Rule]++
		if f.Rule == "freed-init-call" {
			freed = append(freed, f)
		}
	}
	if len(freed) != 1 || freed[0].Module != "kt_timebomb" || freed[0].Function != "kt_init_helper" || freed[0].Severity != "error" || rules["panic-without-vmcore"] != 1 {
		problem("after the time bomb's panic, ktracer check: want freed-init-call kt_timebomb kt_init_helper (error) and panic-without-vmcore, got %v\n%s", rules, strings.Join(r.raw, "\n"))
	} else {
		t.Logf("%s: after the time bomb's panic, ktracer check: %s", k.kver, freed[0].Message)
	}
	if r.exit != 1 {
		problem("ktracer check after the panic exited %d, want 1", r.exit)
	}
	// compareCore judges the first boot, whose end was the panic; the
	// second boot's output is in g.runs.
	g.console = first
	return fmt.Errorf("the guest panicked and restarted: %s", deathOf(g))
}
