// Command ktbench runs inside the benchmark VM (e2e/bench/run.sh) and
// prints, as markdown, what ktracer costs next to bpftrace running the
// equivalent one-liner, measured side by side in the same boot:
//
//   - kernel cost: finit_module(2) time of a small module with no tracer,
//     with `ktracer watch` and with bpftrace, interleaved in rounds so that
//     drift in a shared, emulated machine hits every mode alike;
//   - start-up: exec to all probes attached;
//   - resident memory after attach and after many load/unload cycles;
//   - idle wake-ups: context switches of every tracer thread while nothing
//     happens.
//
// It is a report, never a pass/fail test: the goals are printed beside the
// figures. It needs root, a kernel with kprobes and BTF, and a static build
// (CGO_ENABLED=0) since the guest has no libc of its own.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

type config struct {
	ktracer  string
	bpftrace string
	module   string
	rounds   int
	loads    int
	warmup   int
	cycles   int
	idle     time.Duration
	settle   time.Duration
	ready    time.Duration
	raw      string
}

// The bpftrace program: the one-liner of the issue, plus a BEGIN line that
// is printed once the probes are attached (see bpftraceReady).
const bpftraceProg = `BEGIN { printf("ready\n"); } kretprobe:do_one_initcall { @[retval] = count(); }`

// bpftrace (0.17, Debian bookworm) runs BEGIN before it attaches the other
// probes; with this variable set it writes this line to stderr once they
// are all attached (its own test suite waits for it). That is the ready
// signal; the BEGIN line's arrival is recorded beside it.
const (
	bpftraceNotifyEnv = "__BPFTRACE_NOTIFY_PROBES_ATTACHED"
	bpftraceNotify    = "__BPFTRACE_NOTIFY_PROBES_ATTACHED"
)

func main() {
	var c config
	flag.StringVar(&c.ktracer, "ktracer", "/payload/bin/ktracer", "ktracer binary")
	flag.StringVar(&c.bpftrace, "bpftrace", "/payload/bin/bpftrace", "bpftrace binary")
	flag.StringVar(&c.module, "module", "/payload/modules/kt_good.ko", "module loaded and unloaded")
	flag.IntVar(&c.rounds, "rounds", 10, "rounds; each runs every mode once, in a rotating order")
	flag.IntVar(&c.loads, "loads", 20, "timed loads per mode and round")
	flag.IntVar(&c.warmup, "warmup", 2, "untimed loads after a tracer attached, before the timed ones")
	flag.IntVar(&c.cycles, "cycles", 500, "load/unload cycles between the two memory readings")
	flag.DurationVar(&c.idle, "idle", 10*time.Second, "idle window for counting wake-ups")
	flag.DurationVar(&c.settle, "settle", 500*time.Millisecond, "pause after a tracer is ready, before loading")
	flag.DurationVar(&c.ready, "ready-timeout", 10*time.Minute, "give up on a tracer that is not ready by then")
	flag.StringVar(&c.raw, "raw", "", "also write every sample to this file")
	flag.Parse()
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "ktbench:", err)
		os.Exit(1)
	}
}

// Modes of the kernel-cost measurement.
const (
	modeNone = iota
	modeKtracer
	modeBpftrace
	numModes
)

var modeNames = [numModes]string{"no tracer", "ktracer watch", "bpftrace one-liner"}

type results struct {
	load     [numModes][]time.Duration // every timed finit_module
	roundMed [numModes][]time.Duration // per round, the median of that round's loads
	startup  [numModes][]time.Duration // exec to attached (ktracer, bpftrace)
	begin    []time.Duration           // bpftrace: exec to its BEGIN line
	hooks    string                    // ktracer's attached hooks, as reported
	mem      [numModes]memReading      // after attach / after the cycles
	idle     [numModes][2]idleReading  // after attach / after the cycles
	cyclesD  time.Duration             // wall time of the cycles
	seen     [numModes]string          // what each tracer saw of the cycles
	progs    []progCost                // BPF run time per program over the cycles
	progsErr string
	kernel   string
	order    [][numModes]int
}

type memReading struct{ attachKB, afterKB, hwmKB int }

type idleReading struct {
	vol, invol int
	threads    int
}

func run(c config) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root: it loads modules and runs tracers")
	}
	name := moduleName(c.module)
	f, err := os.Open(c.module)
	if err != nil {
		return err
	}
	defer f.Close()
	fd := int(f.Fd())
	// A leftover from an earlier run would make every load fail with EEXIST.
	_ = unix.DeleteModule(name, unix.O_NONBLOCK)

	var u unix.Utsname
	_ = unix.Uname(&u)
	r := &results{kernel: unix.ByteSliceToString(u.Release[:])}

	// The measuring thread stays put and the collector stays out of the way.
	runtime.LockOSThread()
	debug.SetGCPercent(-1)
	defer debug.SetGCPercent(100)

	modes := [numModes]int{modeNone, modeKtracer, modeBpftrace}
	for round := 0; round < c.rounds; round++ {
		var order [numModes]int
		for i := range order {
			order[i] = modes[(i+round)%numModes]
		}
		r.order = append(r.order, order)
		for _, m := range order {
			logf("round %d/%d: %s", round+1, c.rounds, modeNames[m])
			if err := measureMode(c, r, m, fd, name); err != nil {
				return fmt.Errorf("round %d, %s: %w", round+1, modeNames[m], err)
			}
			runtime.GC()
		}
	}

	if err := measureFootprint(c, r, fd, name); err != nil {
		return err
	}
	if c.raw != "" {
		if err := writeRaw(c.raw, r); err != nil {
			return err
		}
	}
	report(os.Stdout, c, r)
	return nil
}

// measureMode starts the mode's tracer, waits until it is attached, times
// c.loads loads of the module, and stops the tracer.
func measureMode(c config, r *results, mode, fd int, name string) error {
	var t *tracerProc
	var err error
	switch mode {
	case modeKtracer:
		t, err = startKtracer(c)
	case modeBpftrace:
		t, err = startBpftrace(c)
	}
	if err != nil {
		return err
	}
	if t != nil {
		defer t.stop()
		if err := t.waitReady(c.ready); err != nil {
			return err
		}
		r.startup[mode] = append(r.startup[mode], t.readyAt.Sub(t.started))
		if mode == modeKtracer && r.hooks == "" {
			r.hooks = t.hooks
		}
	}
	time.Sleep(c.settle)
	for i := 0; i < c.warmup; i++ {
		if _, err := loadOnce(fd, name); err != nil {
			return err
		}
	}
	samples := make([]time.Duration, 0, c.loads)
	for i := 0; i < c.loads; i++ {
		d, err := loadOnce(fd, name)
		if err != nil {
			return err
		}
		samples = append(samples, d)
	}
	r.load[mode] = append(r.load[mode], samples...)
	r.roundMed[mode] = append(r.roundMed[mode], median(samples))
	if mode == modeBpftrace {
		// Read only now: the BEGIN line may come before or after the
		// probes are attached.
		if at, ok := t.markAt("begin"); ok {
			r.begin = append(r.begin, at.Sub(t.started))
		}
	}
	if t != nil {
		return t.stop()
	}
	return nil
}

// measureFootprint runs both tracers side by side: memory after attach,
// idle wake-ups, c.cycles load/unload cycles, memory and idle wake-ups
// again, and what each tracer counted of the cycles.
func measureFootprint(c config, r *results, fd int, name string) error {
	logf("footprint: starting both tracers")
	kt, err := startKtracer(c)
	if err != nil {
		return err
	}
	defer kt.stop()
	if err := kt.waitReady(c.ready); err != nil {
		return err
	}
	bt, err := startBpftrace(c)
	if err != nil {
		return err
	}
	defer bt.stop()
	if err := bt.waitReady(c.ready); err != nil {
		return err
	}
	procs := map[int]*tracerProc{modeKtracer: kt, modeBpftrace: bt}
	time.Sleep(time.Second)
	for m, t := range procs {
		r.mem[m].attachKB = t.status("VmRSS")
	}
	logf("footprint: idle %s after attach", c.idle)
	if err := idleWindow(c, r, procs, 0); err != nil {
		return err
	}
	kt.resetCounts()
	logf("footprint: %d load/unload cycles", c.cycles)
	debug.SetGCPercent(100)
	// The kernel's BPF run-time statistics (kernel.bpf_stats_enabled) say
	// where the kernel-side cost goes; they cost a little themselves, so
	// only here, not in the timed rounds.
	var before map[ebpf.ProgramID]progCost
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		r.progsErr = err.Error()
	} else {
		before = progStats()
	}
	t0 := time.Now()
	for i := 0; i < c.cycles; i++ {
		if _, err := loadOnce(fd, name); err != nil {
			return fmt.Errorf("cycle %d: %w", i+1, err)
		}
	}
	r.cyclesD = time.Since(t0)
	if stats != nil {
		for id, a := range progStats() {
			b := before[id]
			a.runs -= b.runs
			a.runtime -= b.runtime
			if a.runs > 0 {
				r.progs = append(r.progs, a)
			}
		}
		stats.Close()
		slices.SortFunc(r.progs, func(a, b progCost) int { return int(b.runtime - a.runtime) })
	}
	debug.SetGCPercent(-1)
	// Let both drain what the cycles produced before reading them.
	time.Sleep(2 * time.Second)
	for m, t := range procs {
		r.mem[m].afterKB = t.status("VmRSS")
		r.mem[m].hwmKB = t.status("VmHWM")
	}
	logf("footprint: idle %s after the cycles", c.idle)
	if err := idleWindow(c, r, procs, 1); err != nil {
		return err
	}
	r.seen[modeKtracer] = kt.countSummary()
	if err := kt.stop(); err != nil {
		return err
	}
	r.seen[modeKtracer] += "; its summary: `" + kt.summaryLine() + "`"
	if err := bt.stop(); err != nil {
		return err
	}
	r.seen[modeBpftrace] = bt.mapSummary()
	return nil
}

// progCost is one BPF program's run count and run time.
type progCost struct {
	name    string
	typ     string
	runs    uint64
	runtime time.Duration
}

// progStats reads the run-time statistics of every BPF program loaded.
func progStats() map[ebpf.ProgramID]progCost {
	m := map[ebpf.ProgramID]progCost{}
	for id := ebpf.ProgramID(0); ; {
		next, err := ebpf.ProgramGetNextID(id)
		if err != nil {
			return m
		}
		id = next
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue
		}
		info, err1 := p.Info()
		st, err2 := p.Stats()
		p.Close()
		if err1 != nil || err2 != nil {
			continue
		}
		m[id] = progCost{name: info.Name, typ: info.Type.String(), runs: st.RunCount, runtime: st.Runtime}
	}
}

// idleWindow counts each tracer's context switches over c.idle while this
// process only sleeps.
func idleWindow(c config, r *results, procs map[int]*tracerProc, slot int) error {
	before := map[int]idleReading{}
	for m, t := range procs {
		before[m] = t.switches()
	}
	time.Sleep(c.idle)
	for m, t := range procs {
		after := t.switches()
		r.idle[m][slot] = idleReading{
			vol:     after.vol - before[m].vol,
			invol:   after.invol - before[m].invol,
			threads: after.threads,
		}
		if !t.alive() {
			return fmt.Errorf("%s exited during the idle window: %s", t.name, t.stderrTail())
		}
	}
	return nil
}

// loadOnce loads the module from fd, times only finit_module(2), and
// unloads it again.
func loadOnce(fd int, name string) (time.Duration, error) {
	t0 := time.Now()
	err := unix.FinitModule(fd, "", 0)
	d := time.Since(t0) // monotonic
	if err != nil {
		return 0, fmt.Errorf("finit_module %s: %w", name, err)
	}
	if err := unix.DeleteModule(name, unix.O_NONBLOCK); err != nil {
		return 0, fmt.Errorf("delete_module %s: %w", name, err)
	}
	return d, nil
}

func moduleName(path string) string {
	return strings.ReplaceAll(strings.TrimSuffix(filepath.Base(path), ".ko"), "-", "_")
}

// --- tracer processes ---------------------------------------------------

type tracerProc struct {
	name    string
	cmd     *exec.Cmd
	started time.Time
	exited  chan struct{}
	waitErr error

	mu      sync.Mutex
	ready   chan struct{}
	readyAt time.Time
	marks   map[string]time.Time
	hooks   string
	counts  map[string]int
	tail    []string // last stderr lines
	mapOut  []string // bpftrace's map, printed at exit
	summary string   // ktracer's summary line, printed at exit
	stopped bool
}

func startKtracer(c config) (*tracerProc, error) {
	t := newTracer("ktracer", exec.Command(c.ktracer, "watch", "--output", "json"))
	err := t.start(func(line string, at time.Time) {
		var ev struct {
			Event string `json:"event"`
			Hooks []struct {
				Name     string `json:"name"`
				Attached bool   `json:"attached"`
				Method   string `json:"method"`
			} `json:"hooks"`
			Module   string `json:"module"`
			Rule     string `json:"rule"`
			Severity string `json:"severity"`
		}
		if json.Unmarshal([]byte(line), &ev) != nil {
			return
		}
		t.mu.Lock()
		defer t.mu.Unlock()
		if ev.Event == "attached" {
			n := 0
			var hs []string
			for _, h := range ev.Hooks {
				if h.Attached {
					n++
					hs = append(hs, h.Name+" ("+h.Method+")")
				} else {
					hs = append(hs, h.Name+" (not attached)")
				}
			}
			t.hooks = fmt.Sprintf("%d of %d hooks attached: %s", n, len(ev.Hooks), strings.Join(hs, ", "))
			t.markReady(at)
			return
		}
		switch ev.Event {
		case "finding":
			t.counts[fmt.Sprintf("finding %s/%s on %q", ev.Severity, ev.Rule, ev.Module)]++
		case "summary":
			t.summary = line
		default:
			t.counts[ev.Event]++
		}
	}, t.keepTail)
	if err != nil {
		return nil, err
	}
	return t, nil
}

func startBpftrace(c config) (*tracerProc, error) {
	// -B line: print each line as it comes, the output is a pipe.
	t := newTracer("bpftrace", exec.Command(c.bpftrace, "-B", "line", "-e", bpftraceProg))
	t.cmd.Env = append(os.Environ(), bpftraceNotifyEnv+"=1")
	err := t.start(func(line string, at time.Time) {
		t.mu.Lock()
		defer t.mu.Unlock()
		switch {
		case line == "ready":
			t.marks["begin"] = at
		case strings.HasPrefix(line, "@"):
			t.mapOut = append(t.mapOut, line)
		}
	}, func(line string, at time.Time) {
		if strings.Contains(line, bpftraceNotify) {
			t.mu.Lock()
			t.markReady(at)
			t.mu.Unlock()
			return
		}
		t.keepTail(line, at)
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

func newTracer(name string, cmd *exec.Cmd) *tracerProc {
	return &tracerProc{
		name:   name,
		cmd:    cmd,
		exited: make(chan struct{}),
		ready:  make(chan struct{}),
		marks:  map[string]time.Time{},
		counts: map[string]int{},
	}
}

// start runs the tracer with each output line handed to onStdout or
// onStderr, with the time it was read.
func (t *tracerProc) start(onStdout, onStderr func(line string, at time.Time)) error {
	stdout, err := t.cmd.StdoutPipe()
	if err != nil {
		return err
	}
	stderr, err := t.cmd.StderrPipe()
	if err != nil {
		return err
	}
	t.started = time.Now()
	if err := t.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", t.name, err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { scanLines(stdout, onStdout) })
	wg.Go(func() { scanLines(stderr, onStderr) })
	go func() {
		// Wait closes the pipes: read them to the end first.
		wg.Wait()
		t.waitErr = t.cmd.Wait()
		close(t.exited)
	}()
	return nil
}

// scanLines hands every line of r to fn with the time it was read.
func scanLines(r io.Reader, fn func(line string, at time.Time)) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		fn(sc.Text(), time.Now())
	}
}

// markReady is called with t.mu held.
func (t *tracerProc) markReady(at time.Time) {
	if t.readyAt.IsZero() {
		t.readyAt = at
		close(t.ready)
	}
}

func (t *tracerProc) markAt(name string) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.marks[name]
	return at, ok
}

func (t *tracerProc) keepTail(line string, _ time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.tail = append(t.tail, line)
	if len(t.tail) > 20 {
		t.tail = t.tail[len(t.tail)-20:]
	}
}

func (t *tracerProc) stderrTail() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.tail, " | ")
}

func (t *tracerProc) waitReady(timeout time.Duration) error {
	select {
	case <-t.ready:
		return nil
	case <-t.exited:
		// The ready line may have been the last thing it printed.
		select {
		case <-t.ready:
			return nil
		default:
		}
		return fmt.Errorf("%s exited before it was attached (%v): %s", t.name, t.waitErr, t.stderrTail())
	case <-time.After(timeout):
		return fmt.Errorf("%s not attached after %s: %s", t.name, timeout, t.stderrTail())
	}
}

func (t *tracerProc) alive() bool {
	select {
	case <-t.exited:
		return false
	default:
		return true
	}
}

// stop interrupts the tracer as a user would (SIGINT) and waits for it;
// it is safe to call twice.
func (t *tracerProc) stop() error {
	t.mu.Lock()
	if t.stopped {
		t.mu.Unlock()
		return nil
	}
	t.stopped = true
	t.mu.Unlock()
	_ = t.cmd.Process.Signal(os.Interrupt)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	select {
	case <-t.exited:
	case <-ctx.Done():
		_ = t.cmd.Process.Kill()
		<-t.exited
		return fmt.Errorf("%s did not stop on SIGINT within 2 minutes", t.name)
	}
	var ee *exec.ExitError
	if t.waitErr != nil && !errors.As(t.waitErr, &ee) {
		return fmt.Errorf("%s: %w", t.name, t.waitErr)
	}
	if t.waitErr != nil {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return nil // killed by the SIGINT itself
		}
		return fmt.Errorf("%s exited with %v after SIGINT: %s", t.name, t.waitErr, t.stderrTail())
	}
	return nil
}

func (t *tracerProc) resetCounts() {
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(t.counts)
}

func (t *tracerProc) countSummary() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	keys := make([]string, 0, len(t.counts))
	for k := range t.counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, t.counts[k]))
	}
	return strings.Join(parts, ", ")
}

func (t *tracerProc) summaryLine() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.summary
}

func (t *tracerProc) mapSummary() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.mapOut, ", ")
}

// status returns a kB field (VmRSS, VmHWM) of /proc/PID/status, -1 if
// unreadable.
func (t *tracerProc) status(field string) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", t.cmd.Process.Pid))
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err == nil {
				return n
			}
		}
	}
	return -1
}

// switches sums the context switches of every thread: /proc/PID/status
// holds only the main thread's, and a Go program or bpftrace has several.
func (t *tracerProc) switches() idleReading {
	var r idleReading
	dirs, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", t.cmd.Process.Pid))
	for _, p := range dirs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		r.threads++
		for _, l := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(l, ":")
			if !ok {
				continue
			}
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			switch k {
			case "voluntary_ctxt_switches":
				r.vol += n
			case "nonvoluntary_ctxt_switches":
				r.invol += n
			}
		}
	}
	return r
}

// --- report --------------------------------------------------------------

func median(d []time.Duration) time.Duration { return quantile(d, 0.5) }

func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	pos := q * float64(len(s)-1)
	lo := int(pos)
	if lo+1 >= len(s) {
		return s[lo]
	}
	frac := pos - float64(lo)
	return s[lo] + time.Duration(frac*float64(s[lo+1]-s[lo]))
}

func pct(a, base time.Duration) string {
	if base == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%+.1f%%", (float64(a)/float64(base)-1)*100)
}

// roundOverhead is the median over rounds of mode's round median against
// the no-tracer round median of the same round: drift between rounds
// cancels out.
func roundOverhead(r *results, mode int) string {
	var ratios []float64
	for i := range r.roundMed[mode] {
		if i < len(r.roundMed[modeNone]) && r.roundMed[modeNone][i] > 0 {
			ratios = append(ratios, float64(r.roundMed[mode][i])/float64(r.roundMed[modeNone][i]))
		}
	}
	if len(ratios) == 0 {
		return "n/a"
	}
	slices.Sort(ratios)
	m := ratios[len(ratios)/2]
	if len(ratios)%2 == 0 {
		m = (ratios[len(ratios)/2-1] + ratios[len(ratios)/2]) / 2
	}
	return fmt.Sprintf("%+.1f%%", (m-1)*100)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/1e6) }

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

func mb(kb int) string {
	if kb < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f MB", float64(kb)/1024)
}

func report(w io.Writer, c config, r *results) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	none := median(r.load[modeNone])
	p("Guest: Linux %s, %d vCPUs; module %s; bpftrace program `%s`.", r.kernel, runtime.NumCPU(), filepath.Base(c.module), bpftraceProg)
	p("")
	p("#### Kernel cost: finit_module(2) time, %d rounds x %d modes x %d loads, interleaved (rotating order)", c.rounds, numModes, c.loads)
	p("")
	p("| mode | median | p25 | p75 | overhead vs none (medians) | overhead (median of per-round ratios) |")
	p("|---|---:|---:|---:|---:|---:|")
	for m := 0; m < numModes; m++ {
		med := median(r.load[m])
		o1, o2 := "—", "—"
		if m != modeNone {
			o1, o2 = pct(med, none), roundOverhead(r, m)
		}
		p("| %s | %s | %s | %s | %s | %s |", modeNames[m], ms(med), ms(quantile(r.load[m], 0.25)), ms(quantile(r.load[m], 0.75)), o1, o2)
	}
	p("")
	p("Goal: ktracer adds <= 1%% and less than bpftrace.")
	p("")
	kt, bt := median(r.startup[modeKtracer]), median(r.startup[modeBpftrace])
	p("#### Start-up: exec to all probes attached (median of %d starts each)", len(r.startup[modeKtracer]))
	p("")
	p("| tracer | median | min | max | ready signal |")
	p("|---|---:|---:|---:|---|")
	p("| ktracer watch | %s | %s | %s | its `{\"event\":\"attached\"}` line |", secs(kt), secs(slices.Min(r.startup[modeKtracer])), secs(slices.Max(r.startup[modeKtracer])))
	p("| bpftrace | %s | %s | %s | `%s` on stderr |", secs(bt), secs(slices.Min(r.startup[modeBpftrace])), secs(slices.Max(r.startup[modeBpftrace])), bpftraceNotify)
	p("")
	ratio := "n/a"
	if bt > 0 {
		ratio = fmt.Sprintf("%.2f", float64(kt)/float64(bt))
	}
	early := 0
	for i, d := range r.begin {
		if i < len(r.startup[modeBpftrace]) && d < r.startup[modeBpftrace][i] {
			early++
		}
	}
	p("ktracer / bpftrace: %s (goal: <= 0.20). bpftrace's BEGIN line arrived %s after exec (median), before the probes were attached in %d of %d starts: bpftrace 0.17 runs BEGIN before it attaches the kprobes, so it is no ready signal.", ratio, secs(median(r.begin)), early, len(r.begin))
	p("ktracer: %s.", r.hooks)
	p("")
	p("#### Memory: VmRSS, both tracers running side by side")
	p("")
	p("| tracer | after attach | after %d load/unload cycles | peak (VmHWM) |", c.cycles)
	p("|---|---:|---:|---:|")
	for _, m := range []int{modeKtracer, modeBpftrace} {
		p("| %s | %s | %s | %s |", modeNames[m], mb(r.mem[m].attachKB), mb(r.mem[m].afterKB), mb(r.mem[m].hwmKB))
	}
	p("")
	p("Goal: ktracer <= 20 MB. The %d cycles took %s; ktracer reported %s; bpftrace counted %s.", c.cycles, secs(r.cyclesD), r.seen[modeKtracer], r.seen[modeBpftrace])
	p("")
	p("#### Where the kernel time goes: BPF programs that ran during the %d cycles", c.cycles)
	p("")
	if r.progsErr != "" {
		p("BPF run-time statistics unavailable: %s", r.progsErr)
	} else {
		p("Both tracers' programs, from the kernel's BPF run-time statistics (kernel.bpf_stats_enabled; program bodies only, not the kprobe/trampoline entry).")
		p("")
		p("| program | type | runs | per run | per module load |")
		p("|---|---|---:|---:|---:|")
		for _, pc := range r.progs {
			p("| %s | %s | %d | %.1f µs | %.1f µs |", pc.name, pc.typ, pc.runs,
				float64(pc.runtime)/float64(pc.runs)/1e3, float64(pc.runtime)/float64(c.cycles)/1e3)
		}
	}
	p("")
	p("#### Idle wake-ups: context switches (voluntary + involuntary, all threads) in %s with no events", c.idle)
	p("")
	p("| tracer | after attach | after the cycles | threads |")
	p("|---|---:|---:|---:|")
	for _, m := range []int{modeKtracer, modeBpftrace} {
		a, b := r.idle[m][0], r.idle[m][1]
		p("| %s | %d (%d + %d) | %d (%d + %d) | %d |", modeNames[m], a.vol+a.invol, a.vol, a.invol, b.vol+b.invol, b.vol, b.invol, b.threads)
	}
	p("")
	p("Goal: ktracer none or near none.")
}

func writeRaw(path string, r *results) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for i, o := range r.order {
		fmt.Fprintf(w, "order round=%d %s,%s,%s\n", i+1, modeNames[o[0]], modeNames[o[1]], modeNames[o[2]])
	}
	for m := 0; m < numModes; m++ {
		for i, d := range r.load[m] {
			fmt.Fprintf(w, "load mode=%q i=%d ns=%d\n", modeNames[m], i, d.Nanoseconds())
		}
		for i, d := range r.startup[m] {
			fmt.Fprintf(w, "startup mode=%q i=%d ns=%d\n", modeNames[m], i, d.Nanoseconds())
		}
	}
	for i, d := range r.begin {
		fmt.Fprintf(w, "bpftrace-begin i=%d ns=%d attached-ns=%d\n", i, d.Nanoseconds(), r.startup[modeBpftrace][i].Nanoseconds())
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "ktbench: "+format+"\n", a...)
}
