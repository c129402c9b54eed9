//go:build e2e

// Package e2e runs ktracer against a real kernel: Debian's cloud kernel boots
// under QEMU with a busybox initramfs, the guest runs `ktracer watch` around
// insmod of test modules that reproduce the seed's incidents, and the tests
// assert the exact findings. A VM that cannot boot fails the tests: it never
// skips them. Run through `make test` (which prepares the VM first).
package e2e

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var vmDir = flag.String("vmdir", "/var/cache/ktracer/vm-bookworm", "directory prepared by e2e/vm/setup.sh")

// line is one JSON object printed by ktracer watch --output json.
type line struct {
	Event      string `json:"event"`
	Module     string `json:"module"`
	Function   string `json:"function"`
	Address    string `json:"address"`
	Ret        *int32 `json:"ret"`
	Errno      string `json:"errno"`
	DurationNS *int64 `json:"duration_ns"`
	Rule       string `json:"rule"`
	Severity   string `json:"severity"`
	Value      *int64 `json:"value"`
	Message    string `json:"message"`
	Lost       *int64 `json:"lost_records"`
	Corrupt    int64  `json:"corrupt_records"`
	Ignored    int64  `json:"ignored_init_pointers"`
	Location   string `json:"location"`
	Reason     string `json:"reason"`
	Task       string `json:"task"`
	Caller     string `json:"caller"`
	// load-failed
	Symbol         string `json:"symbol"`
	KernelCRC      string `json:"kernel_crc"`
	ModuleCRC      string `json:"module_crc"`
	Vermagic       string `json:"vermagic"`
	KernelVermagic string `json:"kernel_vermagic"`
	// startup audit
	Source  string `json:"source"`
	Symbols *int   `json:"symbols"`
	Hooks   []struct {
		Name     string `json:"name"`
		Attached bool   `json:"attached"`
		Method   string `json:"method"`
		Target   string `json:"target"`
		Degraded string `json:"degraded"`
		Error    string `json:"error"`
	} `json:"hooks"`
}

// run is what the guest reported for one `ktracer watch -- CMD`.
type run struct {
	exit  int
	lines []line
	raw   []string
}

func (r *run) findings() []line {
	var out []line
	for _, l := range r.lines {
		if l.Event == "finding" {
			out = append(out, l)
		}
	}
	return out
}

func (r *run) findingsOf(rule string) []line {
	var out []line
	for _, l := range r.findings() {
		if l.Rule == rule {
			out = append(out, l)
		}
	}
	return out
}

func (r *run) event(kind string) *line {
	for i := range r.lines {
		if r.lines[i].Event == kind {
			return &r.lines[i]
		}
	}
	return nil
}

// guest is one VM boot: the script's per-step output, keyed by step name.
type guest struct {
	runs    map[string]*run
	console string
}

// buildPayload builds a static ktracer into dir/bin.
func buildPayload(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, "bin", "ktracer"), "../cmd/ktracer")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build ktracer: %v\n%s", err, out)
	}
	if out, err := exec.Command("./kmod-payload.sh", dir).CombinedOutput(); err != nil {
		t.Fatalf("add kmod to the payload: %v\n%s", err, out)
	}
	return dir
}

// boot runs script in the VM. Each step the script runs must print its
// output as "KT-OUT:<step>:<line>" and its status as "KT-OUT:<step>:exit:<n>".
// addToPayload, when set, adds files to the payload directory.
func boot(t *testing.T, script string, addToPayload func(dir string) error, extraArgs ...string) *guest {
	t.Helper()
	if _, err := os.Stat(filepath.Join(*vmDir, "vmlinuz")); err != nil {
		t.Fatalf("no VM kernel in %s (run e2e/vm/setup.sh, or make test): %v", *vmDir, err)
	}
	payload := buildPayload(t)
	if addToPayload != nil {
		if err := addToPayload(payload); err != nil {
			t.Fatalf("prepare payload: %v", err)
		}
	}
	return runGuest(t, *vmDir, payload, script, extraArgs...)
}

// runGuest boots the kernel in vmdir with payload, runs script and parses
// its KT-OUT lines.
func runGuest(t *testing.T, vmdir, payload, script string, extraArgs ...string) *guest {
	t.Helper()
	g, err := runGuestMayDie(t, vmdir, payload, script, extraArgs...)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// runGuestMayDie is runGuest for a script whose last step may kill the
// guest (a panic): the steps before it are parsed, and the failure is
// returned with the guest.
func runGuestMayDie(t *testing.T, vmdir, payload, script string, extraArgs ...string) (*guest, error) {
	t.Helper()
	scriptPath := filepath.Join(t.TempDir(), "guest.sh")
	if err := os.WriteFile(scriptPath, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--vmdir", vmdir, "--payload", payload, "--script", scriptPath}, extraArgs...)
	start := time.Now()
	cmd := exec.Command("./vm/run.sh", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	t.Logf("VM boot and script took %s", time.Since(start).Round(100*time.Millisecond))
	var runErr error
	if err != nil {
		runErr = fmt.Errorf("VM run failed: %v\nstderr:\n%s\nconsole (tail):\n%s", err, stderr.String(), tail(stdout.String(), 60))
	}
	g := &guest{runs: map[string]*run{}, console: stdout.String()}
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		text := sc.Text()
		i := strings.Index(text, "KT-OUT:")
		if i < 0 {
			continue
		}
		step, rest, ok := strings.Cut(text[i+len("KT-OUT:"):], ":")
		if !ok {
			continue
		}
		r := g.runs[step]
		if r == nil {
			r = &run{exit: -1}
			g.runs[step] = r
		}
		if code, isExit := strings.CutPrefix(rest, "exit:"); isExit {
			fmt.Sscanf(code, "%d", &r.exit)
			continue
		}
		r.raw = append(r.raw, rest)
		if strings.HasPrefix(rest, "{") {
			var l line
			if err := json.Unmarshal([]byte(rest), &l); err != nil {
				t.Errorf("step %s: bad JSON line %q: %v", step, rest, err)
				continue
			}
			r.lines = append(r.lines, l)
		}
	}
	return g, runErr
}

func (g *guest) run(t *testing.T, step string) *run {
	t.Helper()
	r := g.runs[step]
	if r == nil || r.exit < 0 {
		t.Fatalf("guest printed no result for step %s\nconsole (tail):\n%s", step, tail(g.console, 80))
	}
	return r
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// watchStep is the guest shell for one `ktracer watch --output json` run.
func watchStep(step, flags, command string) string {
	// After an oops the kernel prints everything to the console, splicing
	// into our lines: quieten it again before printing.
	return fmt.Sprintf(`ktracer watch --output json %[2]s -- %[3]s >/tmp/%[1]s.out 2>/tmp/%[1]s.err
echo "KT-OUT:%[1]s:exit:$?" >/tmp/%[1]s.status
echo 1 >/proc/sys/kernel/printk
cat /tmp/%[1]s.status
sed 's/^/KT-OUT:%[1]s:/' /tmp/%[1]s.out
sed 's/^/KT-OUT:%[1]s-stderr:/' /tmp/%[1]s.err
`, step, flags, command)
}

// watchStepLive is watchStep whose findings also go to the console as they
// come, as step-live (KERN_EMERG records in /dev/kmsg, which the kernel
// never splices into its own lines): a step that may kill the guest still
// leaves what ktracer had reported before.
func watchStepLive(step, flags, command string) string {
	return fmt.Sprintf(`{ ktracer watch --output json %[2]s -- %[3]s 2>/tmp/%[1]s.err; echo "KT-OUT:%[1]s:exit:$?" >/tmp/%[1]s.status; } |
	tee /tmp/%[1]s.out | while IFS= read -r l; do case $l in *'"finding"'*) echo "<0>KT-OUT:%[1]s-live:$l" >/dev/kmsg ;; esac; done
echo 1 >/proc/sys/kernel/printk
cat /tmp/%[1]s.status
sed 's/^/KT-OUT:%[1]s:/' /tmp/%[1]s.out
sed 's/^/KT-OUT:%[1]s-stderr:/' /tmp/%[1]s.err
`, step, flags, command)
}

// trigger loads a module, waits for its init memory to be freed (a
// workqueue after an RCU grace period), then writes its trigger parameter
// from a child shell, which the oops kills if the call lands in freed code.
func trigger(module string) string {
	return fmt.Sprintf(`sh -c '/payload/bin/insmod /payload/modules/%[1]s.ko && sleep 1 && sh -c "echo 1 > /sys/module/%[1]s/parameters/trigger"; exit 0'`, module)
}

// coreSteps are the core suite's watch steps, in coreScript's order; the
// kernel matrix repeats them on every kernel with built test modules and
// compares each step's findings with 6.1's (matrix_test.go).
var coreSteps = []string{"kt_positive", "kt_slow", "kt_enodev", "kt_good", "kt_initok", "kt_oops", "kt_warn", "kt_badpage", "kt_timebomb"}

// coreScript is the guest shell of the core suite (one boot): the issue-2
// module tests, the panic path, and the time bomb last. matrix leaves out
// the kprobe/kretprobe run of kt_positive (the matrix runs every load in
// that mode anyway) and streams the time bomb's findings (watchStepLive):
// on 7.x its call panics the guest.
func coreScript(matrix bool) string {
	withKprobes := !matrix
	var s strings.Builder
	for _, m := range []string{"kt_positive", "kt_slow", "kt_enodev", "kt_good"} {
		s.WriteString(watchStep(m, "", "/payload/bin/insmod /payload/modules/"+m+".ko"))
	}
	if withKprobes {
		// The same findings through the kprobe/kretprobe fallbacks.
		s.WriteString("/payload/bin/rmmod kt_positive\n")
		s.WriteString(watchStep("kprobes-kt_positive", "--methods kprobe,kretprobe", "/payload/bin/insmod /payload/modules/kt_positive.ko"))
	}
	// Seed incident 2 and its control. The time bomb goes last: its
	// oops leaves the module's parameter lock held.
	if !matrix {
		// load-failed: loads refused before init (loadfail_test.go); the
		// matrix runs its own shipped-module cases.
		s.WriteString(watchStep("load-failed", "--record /tmp/load_failed.rec", loadFailCommand(moduleLoadFailCases())))
		s.WriteString("base64 /tmp/load_failed.rec | sed 's/^/KT-OUT:load-failed-rec:/'\n")
	}
	s.WriteString(watchStep("kt_initok", "", trigger("kt_initok")))
	// The panic path, live: an oops, a WARN and a bad page state.
	for _, m := range []string{"kt_oops", "kt_warn", "kt_badpage"} {
		s.WriteString(watchStep(m, "", trigger(m)))
	}
	s.WriteString("dmesg | grep 'kt_badpage: freeing pfn' | sed 's/^/KT-OUT:kt_badpage-dmesg:/'\n")
	s.WriteString("dmesg | grep -A3 'address: 0000000000000018' | grep 'error_code' | sed 's/^/KT-OUT:kt_oops-dmesg:/'\n")
	if matrix {
		s.WriteString(watchStepLive("kt_timebomb", "", trigger("kt_timebomb")))
	} else {
		s.WriteString(watchStep("kt_timebomb", "--record /tmp/kt_timebomb.rec", trigger("kt_timebomb")))
	}
	s.WriteString("base64 /tmp/kt_timebomb.rec | sed 's/^/KT-OUT:kt_timebomb-rec:/'\n")
	if !matrix {
		// Signatures can be enforced but not relaxed again: last.
		s.WriteString(watchStep("load-failed-sig", "", loadFailCommand([]loadFailCase{sigEnforceCase})))
	}
	s.WriteString("dmesg | grep -E 'kt_|suspiciously' | sed 's/^/KT-OUT:dmesg:/'\necho KT-OUT:dmesg:exit:0\n")
	return s.String()
}

var (
	moduleBoot     *guest
	moduleBootOnce sync.Once
)

// moduleGuest boots once for all the issue-2 module tests.
func moduleGuest(t *testing.T) *guest {
	moduleBootOnce.Do(func() {
		moduleBoot = boot(t, "set -u\n"+coreScript(false), nil, "--timeout", "300", "--kmod", "stp")
	})
	if moduleBoot == nil {
		t.Fatal("module VM boot failed (see the first test's log)")
	}
	return moduleBoot
}

// expectOne asserts exactly one finding with these fields.
func expectOne(t *testing.T, r *run, rule, module, function string) line {
	t.Helper()
	f := r.findings()
	if len(f) != 1 {
		t.Fatalf("want exactly one finding %s, got %d:\n%s", rule, len(f), strings.Join(r.raw, "\n"))
	}
	got := f[0]
	if got.Rule != rule || got.Module != module || got.Function != function {
		t.Fatalf("finding = %s %s %s, want %s %s %s\n%s", got.Rule, got.Module, got.Function, rule, module, function, strings.Join(r.raw, "\n"))
	}
	return got
}

func checkNoLoss(t *testing.T, r *run) {
	t.Helper()
	s := r.event("summary")
	if s == nil || s.Lost == nil {
		t.Fatalf("no summary line:\n%s", strings.Join(r.raw, "\n"))
	}
	if *s.Lost != 0 {
		t.Errorf("%d records lost", *s.Lost)
	}
}

func TestHooksAttachOnDebianKernel(t *testing.T) {
	r := moduleGuest(t).run(t, "kt_good")
	a := r.event("attached")
	if a == nil {
		t.Fatalf("no attached line:\n%s", strings.Join(r.raw, "\n"))
	}
	for _, h := range a.Hooks {
		t.Logf("hook %s: attached=%v method=%s %s", h.Name, h.Attached, h.Method, h.Error)
		if !h.Attached {
			t.Errorf("hook %s did not attach on the Debian kernel", h.Name)
		}
	}
}

// Seed incident 5: init cleans up after a failed registration, then
// returns 1; the kernel treats it as success.
func TestPositiveInitReturn(t *testing.T) {
	r := moduleGuest(t).run(t, "kt_positive")
	f := expectOne(t, r, "positive-init-return", "kt_positive", "kt_positive_init")
	if f.Value == nil || *f.Value != 1 || f.Ret == nil || *f.Ret != 1 || f.Severity != "error" {
		t.Errorf("finding value/ret/severity = %v/%v/%s, want 1/1/error", f.Value, f.Ret, f.Severity)
	}
	if r.exit != 1 {
		t.Errorf("watch exit = %d, want 1 (an error finding; insmod itself succeeded)", r.exit)
	}
	if live := r.event("module_live"); live == nil || live.Module != "kt_positive" {
		t.Errorf("no module_live for kt_positive: the kernel should have kept it loaded")
	}
	checkNoLoss(t, r)
}

func TestSlowInit(t *testing.T) {
	r := moduleGuest(t).run(t, "kt_slow")
	f := expectOne(t, r, "slow-init", "kt_slow", "kt_slow_init")
	if f.DurationNS == nil || *f.DurationNS < int64(300*time.Millisecond) || f.Severity != "warning" {
		t.Errorf("slow-init duration %v severity %s, want >= 300ms warning", f.DurationNS, f.Severity)
	}
	if r.exit != 0 {
		t.Errorf("watch exit = %d, want 0 (a warning is below the default --fail-on error)", r.exit)
	}
	checkNoLoss(t, r)
}

func TestInitFailed(t *testing.T) {
	r := moduleGuest(t).run(t, "kt_enodev")
	f := expectOne(t, r, "init-failed", "kt_enodev", "kt_enodev_init")
	if f.Errno != "ENODEV" || f.Value == nil || *f.Value != -19 || f.Severity != "info" {
		t.Errorf("finding errno/value/severity = %s/%v/%s, want ENODEV/-19/info", f.Errno, f.Value, f.Severity)
	}
	if r.exit == 0 {
		t.Errorf("watch exit = 0, want insmod's failure status")
	}
	if ev := r.event("module_init_failed"); ev == nil || ev.Errno != "ENODEV" {
		t.Errorf("no module_init_failed ENODEV event")
	}
	checkNoLoss(t, r)
}

// The control: a correct module yields no finding at all.
func TestGoodModuleIsClean(t *testing.T) {
	r := moduleGuest(t).run(t, "kt_good")
	if f := r.findings(); len(f) != 0 {
		t.Fatalf("kt_good produced findings: %+v", f)
	}
	ic := r.event("initcall")
	if ic == nil || ic.Module != "kt_good" || ic.Function != "kt_good_init" || ic.Ret == nil || *ic.Ret != 0 {
		t.Fatalf("initcall event = %+v, want kt_good kt_good_init ret 0\n%s", ic, strings.Join(r.raw, "\n"))
	}
	if r.exit != 0 {
		t.Errorf("watch exit = %d, want 0", r.exit)
	}
	checkNoLoss(t, r)
}

// The kprobe/kretprobe fallbacks give the same finding as the tracepoints.
func TestPositiveInitReturnThroughKprobes(t *testing.T) {
	r := moduleGuest(t).run(t, "kprobes-kt_positive")
	a := r.event("attached")
	if a == nil {
		t.Fatalf("no attached line:\n%s", strings.Join(r.raw, "\n"))
	}
	for _, h := range a.Hooks {
		t.Logf("hook %s: attached=%v method=%s %s", h.Name, h.Attached, h.Method, h.Error)
		if !h.Attached || (h.Method != "kprobe" && h.Method != "kretprobe") {
			t.Errorf("hook %s: attached=%v method=%s, want a kprobe or kretprobe", h.Name, h.Attached, h.Method)
		}
	}
	f := expectOne(t, r, "positive-init-return", "kt_positive", "kt_positive_init")
	if f.Value == nil || *f.Value != 1 {
		t.Errorf("value = %v, want 1", f.Value)
	}
	if ic := r.event("initcall"); ic == nil || ic.DurationNS == nil || *ic.DurationNS <= 0 {
		t.Errorf("kretprobe initcall has no duration: %+v", ic)
	}
	checkNoLoss(t, r)
}

// Seed incident 2, caught twice: the stored pointer right after init
// returns, and the call into freed init text when it fires.
func TestTimebomb(t *testing.T) {
	r := moduleGuest(t).run(t, "kt_timebomb")
	var dangling, freed, oopses []line
	for _, f := range r.findings() {
		switch f.Rule {
		case "dangling-init-pointer":
			dangling = append(dangling, f)
		case "freed-init-call":
			freed = append(freed, f)
		case "oops":
			oopses = append(oopses, f)
		default:
			t.Errorf("unexpected finding %s: %s", f.Rule, f.Message)
		}
	}
	all := strings.Join(r.raw, "\n")
	if len(dangling) != 1 {
		t.Fatalf("want one dangling-init-pointer, got %d:\n%s", len(dangling), all)
	}
	if d := dangling[0]; d.Module != "kt_timebomb" || d.Location != "global_ops+0x0" || d.Function != "kt_init_helper" || d.Severity != "error" {
		t.Errorf("dangling-init-pointer = %s %s -> %s (%s), want kt_timebomb global_ops+0x0 -> kt_init_helper (error)", d.Module, d.Location, d.Function, d.Severity)
	}
	if len(freed) != 1 {
		t.Fatalf("want one freed-init-call, got %d:\n%s", len(freed), all)
	}
	f := freed[0]
	if f.Module != "kt_timebomb" || f.Function != "kt_init_helper" || !strings.HasPrefix(f.Caller, "kt_trigger_set") || f.Severity != "error" {
		t.Errorf("freed-init-call = %s %s from %s (%s), want kt_timebomb kt_init_helper from kt_trigger_set... (error)", f.Module, f.Function, f.Caller, f.Severity)
	}
	if f.Address == "" || f.Address != dangling[0].Address {
		t.Errorf("the call went to %s, but the stored pointer was %s", f.Address, dangling[0].Address)
	}
	// The call then oopses: the panic path names the same culprit.
	if len(oopses) != 1 || oopses[0].Module != "kt_timebomb" || oopses[0].Function != "kt_init_helper" {
		t.Errorf("want one oops in kt_timebomb's kt_init_helper, got %+v", oopses)
	}
	t.Logf("dangling: %s", dangling[0].Message)
	t.Logf("freed call: %s", f.Message)
	saveFixture(t, "kt_timebomb.rec", moduleGuest(t).runs["kt_timebomb-rec"])
	checkNoLoss(t, r)
}

// The control: a stored pointer to a normal function, __init used only
// during init. No finding at all.
func TestInitOKIsClean(t *testing.T) {
	r := moduleGuest(t).run(t, "kt_initok")
	if f := r.findings(); len(f) != 0 {
		t.Fatalf("kt_initok produced findings: %+v", f)
	}
	if ic := r.event("initcall"); ic == nil || ic.Module != "kt_initok" {
		t.Fatalf("kt_initok was not traced:\n%s", strings.Join(r.raw, "\n"))
	}
	checkNoLoss(t, r)
}

// saveFixture writes a base64 recording the guest printed into
// ../decoder/testdata when KT_UPDATE_FIXTURES is set, so unit tests replay
// records captured on a real kernel.
func saveFixture(t *testing.T, name string, r *run) {
	if os.Getenv("KT_UPDATE_FIXTURES") == "" {
		return
	}
	if r == nil {
		t.Fatalf("no recording %s printed by the guest", name)
	}
	data, err := base64.StdEncoding.DecodeString(strings.Join(r.raw, ""))
	if err != nil {
		t.Fatalf("decode recording %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join("..", "decoder", "testdata", name), data, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote decoder/testdata/%s (%d bytes)", name, len(data))
}
