package boot

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ktracer/ktracer/decoder"
)

func analyzeLog(t *testing.T, log string) *Report {
	t.Helper()
	r, err := Analyze(Input{Log: strings.NewReader(log), Trace: strings.NewReader("")}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func hasNote(r *Report, sub string) bool {
	for _, n := range r.Notes {
		if strings.Contains(n, sub) {
			return true
		}
	}
	return false
}

// Issue 12 item 2: a function-tracer line about an initcall_* function, or
// a trace_marker line, is someone else's output in the same buffer: skip
// it, do not abort the report.
func TestTraceForeignLinesSkipped(t *testing.T) {
	trace := `# tracer: function
     swapper/0-1       [000] .....     0.300000: initcall_level: level=core
     swapper/0-1       [000] .....     0.300100: initcall_start: func=a_init+0x0/0x10
     swapper/0-1       [000] .....     0.300150: initcall_blacklisted <-do_one_initcall
            bash-999     [001] .....    12.000000: tracing_mark_write: initcall_start: func=forged+0x0/0x10
     swapper/0-1       [000] .....     0.300200: initcall_finish: func=a_init+0x0/0x10 ret=1
`
	r, err := Analyze(Input{Trace: strings.NewReader(trace)}, Options{})
	if err != nil {
		t.Fatalf("foreign trace lines are fatal: %v", err)
	}
	if r.Source != SourceTrace || len(r.Initcalls) != 1 || r.Initcalls[0].Function != "a_init" || r.Initcalls[0].Ret != 1 {
		t.Errorf("initcalls = %+v", r.Initcalls)
	}
}

// Issue 12 item 6: a trace finish before its start (a reset or a bad clock)
// gives no negative duration.
func TestTraceFinishBeforeStart(t *testing.T) {
	trace := `     swapper/0-1       [000] .....     5.000000: initcall_start: func=a_init+0x0/0x10
     swapper/0-1       [000] .....     4.000000: initcall_finish: func=a_init+0x0/0x10 ret=0
`
	r, err := Analyze(Input{Trace: strings.NewReader(trace)}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Initcalls) != 1 || r.Initcalls[0].Duration < 0 {
		t.Fatalf("initcalls = %+v", r.Initcalls)
	}
	if !hasNote(r, "before it started") {
		t.Errorf("no note about the finish before the start: %q", r.Notes)
	}
	var b bytes.Buffer
	WritePerfetto(&b, r)
	if strings.Contains(b.String(), `"dur":-`) {
		t.Errorf("negative duration in Perfetto: %s", b.String())
	}
}

// Issue 12 item 6: usecs that overflow a Duration saturate; slow-init is
// still reported.
func TestUsecsOverflow(t *testing.T) {
	for _, us := range []string{"9223372036854775807", "99999999999999999999999"} {
		r := analyzeLog(t, "[    0.000000] Linux version 6.1.0\n[    1.000000] calling  big_init+0x0/0x10 @ 1\n[    2.000000] initcall big_init+0x0/0x10 returned 0 after "+us+" usecs\n")
		if len(r.Initcalls) != 1 || r.Initcalls[0].Duration <= 0 {
			t.Fatalf("%s: initcalls = %+v", us, r.Initcalls)
		}
		if len(findingsOf(r, decoder.RuleSlowInit)) != 1 {
			t.Errorf("%s: no slow-init: %+v", us, r.Findings)
		}
	}
	// A timestamp too big for a Duration is not one.
	r := analyzeLog(t, "[99999999999999.000000] Linux version 6.1.0\n[    1.000000] calling  a_init+0x0/0x10 @ 1\n[    1.000001] initcall a_init+0x0/0x10 returned 0 after 1 usecs\n")
	for _, ic := range r.Initcalls {
		if ic.Start < 0 || ic.Duration < 0 {
			t.Errorf("negative time: %+v", ic)
		}
	}
}

// Issue 12 item 4: initcall_debug lines printed while an oops call trace is
// being printed (another CPU, or the trace never ends) are still read.
func TestInitcallLinesInsideOopsTrace(t *testing.T) {
	log := `[    0.000000] Linux version 6.1.0
[    1.000000] calling  victim_init+0x0/0x10 @ 1
[    1.100000] BUG: kernel NULL pointer dereference, address: 0000000000000018
[    1.100001] CPU: 0 PID: 1 Comm: swapper/0 Not tainted 6.1.0 #1
[    1.100002] Call Trace:
[    1.100003]  <TASK>
[    1.100004]  victim_init+0x5/0x10
[    1.100005] calling  other_init+0x0/0x10 @ 2
[    1.100006]  do_one_initcall+0x59/0x220
[    1.300007] initcall other_init+0x0/0x10 returned 1 after 200000 usecs
[    1.300008]  kernel_init+0x16/0x120
[    1.500000] calling  late_one+0x0/0x10 @ 3
[    1.500001] initcall late_one+0x0/0x10 returned -19 after 5 usecs
`
	r := analyzeLog(t, log)
	if len(r.Initcalls) != 3 {
		t.Fatalf("initcalls: %+v", r.Initcalls)
	}
	if f := findingsOf(r, decoder.RulePositiveInitReturn); len(f) != 1 || f[0].Function != "other_init" {
		t.Errorf("positive return inside the oops trace: %+v", f)
	}
	if f := findingsOf(r, decoder.RuleSlowInit); len(f) != 1 || f[0].Function != "other_init" {
		t.Errorf("slow init inside the oops trace: %+v", f)
	}
	if f := findingsOf(r, decoder.RuleInitFailed); len(f) != 1 {
		t.Errorf("init-failed after an oops trace that never ended: %+v", f)
	}
	if f := findingsOf(r, RuleInitcallOops); len(f) != 1 || f[0].Function != "victim_init" {
		t.Errorf("initcall-oops: %+v", f)
	}
}

// Issue 12 item 3: a serial capture across a reboot holds two boots. The
// report is the last boot's, and says so; findings are not doubled.
func TestTwoBootsInOneLog(t *testing.T) {
	_, dmesg := loadFixture(t, fxOops)
	one, err := Analyze(Input{Log: bytes.NewReader(dmesg)}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	two, err := Analyze(Input{Log: bytes.NewReader(append(append([]byte("firmware noise\n"), dmesg...), dmesg...))}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(two.Initcalls) != len(one.Initcalls) || len(two.Findings) != len(one.Findings) {
		t.Errorf("two boots: %d initcalls, %d findings; one boot: %d, %d", len(two.Initcalls), len(two.Findings), len(one.Initcalls), len(one.Findings))
	}
	if !hasNote(two, "2 boots") {
		t.Errorf("no note about the two boots: %q", two.Notes)
	}
	// Time going backwards without a new boot is noticed.
	log := "[    0.000000] Linux version 6.1.0\n[    5.000000] calling  a_init+0x0/0x10 @ 1\n"
	for i := 0; i < 12; i++ {
		log += fmt.Sprintf("[    2.%06d] some message %d\n", i, i)
	}
	r := analyzeLog(t, log)
	if !hasNote(r, "backwards") {
		t.Errorf("no note about time going backwards: %q", r.Notes)
	}
}

// reformat rewrites a plain dmesg capture line by line, the way another
// tool prints the same kernel messages.
func reformat(dmesg []byte, format string) []byte {
	re := regexp.MustCompile(`^\[\s*(\d+)\.(\d+)\] ?(.*)$`)
	boot := time.Date(2026, 12, 2, 2, 43, 22, 0, time.UTC)
	var out bytes.Buffer
	for _, line := range strings.Split(strings.TrimRight(string(dmesg), "\n"), "\n") {
		m := re.FindStringSubmatch(line)
		if m == nil {
			out.WriteString(line + "\n")
			continue
		}
		sec, _ := strconv.Atoi(m[1])
		us, _ := strconv.Atoi(m[2])
		wall := boot.Add(time.Duration(sec)*time.Second + time.Duration(us)*time.Microsecond)
		mono := fmt.Sprintf("[%5d.%06d]", sec, us)
		switch format {
		case "caller": // CONFIG_PRINTK_CALLER
			fmt.Fprintf(&out, "%s[%7s] %s\n", mono, "T1", m[3])
		case "short-monotonic": // journalctl -k -o short-monotonic
			fmt.Fprintf(&out, "%s debian kernel: %s\n", mono, m[3])
		case "short": // journalctl -k
			fmt.Fprintf(&out, "%s debian kernel: %s\n", wall.Format("Jan 02 15:04:05"), m[3])
		case "dmesg-T": // dmesg -T
			fmt.Fprintf(&out, "[%s] %s\n", wall.Format("Mon Jan  2 15:04:05 2006"), m[3])
		case "kmsg": // /dev/kmsg with a caller id
			fmt.Fprintf(&out, "6,%d,%d,-,caller=T1;%s\n", out.Len(), sec*1000000+us, m[3])
		}
	}
	return out.Bytes()
}

// Issue 12 item 13: the project's own initcall_debug capture, printed the
// way real tools print it, gives the same initcalls and findings.
func TestLogFormats(t *testing.T) {
	fsys, dmesg := loadFixture(t, fxOops)
	want, err := Analyze(Input{Log: bytes.NewReader(dmesg), Root: fsys}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(want.Initcalls) < 500 {
		t.Fatalf("plain dmesg: %d initcalls", len(want.Initcalls))
	}
	for _, format := range []string{"caller", "short-monotonic", "short", "dmesg-T", "kmsg"} {
		t.Run(format, func(t *testing.T) {
			got, err := Analyze(Input{Log: bytes.NewReader(reformat(dmesg, format)), Root: fsys}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if got.Source != SourceInitcallLog || len(got.Initcalls) != len(want.Initcalls) {
				t.Fatalf("%s: %d initcalls, want %d; notes %q", got.Source, len(got.Initcalls), len(want.Initcalls), got.Notes)
			}
			for i, a := range got.Initcalls {
				b := want.Initcalls[i]
				if a.Function != b.Function || a.Module != b.Module || a.Level != b.Level || a.Ret != b.Ret || a.Duration != b.Duration || a.Finished != b.Finished || a.PID != b.PID {
					t.Fatalf("initcall %d: %+v, want %+v", i, a, b)
				}
			}
			if len(got.Findings) != len(want.Findings) {
				t.Fatalf("%d findings, want %d:\n%+v", len(got.Findings), len(want.Findings), got.Findings)
			}
			for i := range got.Findings {
				a, b := got.Findings[i], want.Findings[i]
				if a.Rule != b.Rule || a.Function != b.Function || a.Module != b.Module || a.Value != b.Value || a.Param != b.Param {
					t.Errorf("finding %d: %+v, want %+v", i, a, b)
				}
			}
			if got.Kernel != want.Kernel {
				t.Errorf("kernel %q, want %q", got.Kernel, want.Kernel)
			}
			monotonic := format == "caller" || format == "short-monotonic" || format == "kmsg"
			if monotonic && got.TimeToInit != want.TimeToInit {
				t.Errorf("time to init %v, want %v", got.TimeToInit, want.TimeToInit)
			}
			if !monotonic && !hasNote(got, "wall-clock") {
				t.Errorf("no note that the times are wall-clock: %q", got.Notes)
			}
		})
	}
}

// Issue 12 item 13: initcall lines in a format nothing reads are reported
// as such, never as "not recorded".
func TestUnrecognisedFormat(t *testing.T) {
	log := `{"__MONOTONIC_TIMESTAMP":"400002","MESSAGE":"calling  con_init+0x0/0x22c @ 0"}
{"__MONOTONIC_TIMESTAMP":"400100","MESSAGE":"initcall con_init+0x0/0x22c returned 0 after 0 usecs"}
`
	r, err := Analyze(Input{Log: strings.NewReader(log)}, Options{})
	if err != nil && !strings.Contains(err.Error(), "format") {
		t.Fatalf("error does not name the format problem: %v", err)
	}
	if err == nil {
		if hasNote(r, "neither boot-time") || len(r.Recommend) > 0 {
			t.Errorf("reported as not recorded: %q", r.Notes)
		}
		if !hasNote(r, "format") {
			t.Errorf("no note about the unread format: %q", r.Notes)
		}
	}
}

// Issue 12 item 5: a line over the cap is skipped with a note naming its
// number, not a failure of the whole report.
func TestOverlongLine(t *testing.T) {
	log := "[    0.000000] Linux version 6.1.0\n[    1.0] " + strings.Repeat("x", 2<<20) + "\n[    1.000000] calling  a_init+0x0/0x10 @ 1\n[    1.000001] initcall a_init+0x0/0x10 returned 1 after 1 usecs\n"
	r, err := Analyze(Input{Log: strings.NewReader(log), LogName: "big.txt"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Initcalls) != 1 || !hasNote(r, "big.txt line 2") {
		t.Errorf("initcalls %+v notes %q", r.Initcalls, r.Notes)
	}
}

// Issue 12 item 5: 50k calls that never return (a log cut short, a stuck
// boot) must not make matching quadratic. Not a timing assertion: the
// number of open calls scanned per return is counted.
func TestManyUnfinishedCalls(t *testing.T) {
	var b strings.Builder
	b.WriteString("[    0.000000] Linux version 6.1.0\n")
	for i := 0; i < 50000; i++ {
		fmt.Fprintf(&b, "[    1.%06d] calling  f%d+0x0/0x10 @ %d\n", i%1000000, i, i)
	}
	for i := 0; i < 50000; i++ {
		fmt.Fprintf(&b, "[    2.%06d] initcall g%d+0x0/0x10 returned 0 after 1 usecs\n", i%1000000, i)
	}
	start := time.Now()
	kl, err := parseKernelLog(strings.NewReader(b.String()), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(kl.initcalls) != 50000 {
		t.Errorf("%d initcalls", len(kl.initcalls))
	}
	// Each return looks at the open calls of its own name only.
	if kl.matchSteps > 2*50000 {
		t.Errorf("matching returns took %d steps for 50k lines: quadratic", kl.matchSteps)
	}
	t.Logf("50k unfinished calls and 50k unmatched returns: %v, %d steps", time.Since(start), kl.matchSteps)
}
