package boot

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ktracer/ktracer/decoder"
)

// The fixtures are real captures made by e2e/boot-capture.sh in the VM
// (Debian's 6.1 cloud kernel under QEMU, booted by e2e/vm/run.sh, which
// adds panic_on_oops=0 to every command line).
const (
	fxTraceDebug = "vm-6.1-trace-initcall_debug-mxcpus.tgz" // trace events + initcall_debug, mxcpus=1 panic_on_oops=0
	fxTraceCrash = "vm-6.1-trace-maxcpus-crashkernel.tgz"   // trace events, maxcpus=1 crashkernel=2G mem=768M nr_cpus=2
	fxOops       = "vm-6.1-initcall_debug-oops.tgz"         // initcall_debug, kt_oops_init oopsed in its init
	fxTraceReset = "vm-6.1-trace-reset-by-clock-switch.tgz" // trace events without trace_clock=, initcall_debug
	fxPlain      = "vm-6.1-not-recorded.tgz"                // neither mechanism; possible_cpus=2 nr_cpus=1
)

func findingsOf(r *Report, rule decoder.Rule) []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if f.Rule == rule {
			out = append(out, f)
		}
	}
	return out
}

func levelCounts(r *Report) map[string]int {
	m := map[string]int{}
	for _, l := range r.Levels {
		m[l.Name] = l.Count
	}
	return m
}

// The Debian 6.1 boot from the trace events: every initcall, with the
// kernel's own level names.
func TestTraceBoot(t *testing.T) {
	r := analyzeFixture(t, fxTraceDebug, Options{})
	if r.Source != SourceTrace || len(r.Initcalls) != 575 {
		t.Fatalf("source %s with %d initcalls, want trace with 575", r.Source, len(r.Initcalls))
	}
	want := map[string]int{"console": 4, "early": 30, "pure": 5, "core": 48, "postcore": 25, "arch": 22, "subsys": 107, "fs": 77, "device": 160, "late": 97}
	if got := levelCounts(r); !mapsEqual(got, want) {
		t.Errorf("initcalls per level = %v, want %v", got, want)
	}
	first, last := r.Initcalls[0], r.Initcalls[len(r.Initcalls)-1]
	if first.Function != "con_init" || first.Level != "console" || first.Seq != 1 {
		t.Errorf("first initcall = %+v, want con_init at console level", first)
	}
	if last.Function != "balloon_wait_finish" || last.Ret != -19 || last.Errno != "ENODEV" || last.Level != "late" {
		t.Errorf("last initcall = %+v, want balloon_wait_finish late -19 ENODEV", last)
	}
	if r.TimeToInit != 3732469*time.Microsecond {
		t.Errorf("time to init = %s, want 3.732469s (\"Run /init as init process\")", r.TimeToInit)
	}
	// The trace has the duration from its own timestamps: acpi_init
	// started at 1.140963 and finished at 1.326993 in this capture.
	if s := r.Slowest[0]; s.Function != "crypto_algapi_init" || s.Duration != 571655*time.Microsecond {
		t.Errorf("slowest = %s %s, want crypto_algapi_init 571.655ms", s.Function, s.Duration)
	}
	if len(r.Slowest) != 10 || len(r.Notes) != 0 {
		t.Errorf("%d slowest, notes %q; want 10 and no notes", len(r.Slowest), r.Notes)
	}
	if f := findingsOf(r, RuleInitcallOops); len(f) != 0 {
		t.Errorf("initcall-oops on a clean boot: %+v", f)
	}
}

// A real built-in positive return: set_hardened_usercopy, a late_initcall
// of 6.1, returns 1.
func TestBuiltinPositiveReturn(t *testing.T) {
	r := analyzeFixture(t, fxTraceDebug, Options{})
	f := findingsOf(r, decoder.RulePositiveInitReturn)
	if len(f) != 1 {
		t.Fatalf("want one positive-init-return, got %+v", f)
	}
	if f[0].Function != "set_hardened_usercopy" || f[0].Level != "late" || f[0].Value != 1 || f[0].Severity != decoder.SeverityError || f[0].Module != "" {
		t.Errorf("finding = %+v", f[0])
	}
	if r.Findings[0].Rule != decoder.RulePositiveInitReturn {
		t.Errorf("errors are not listed first: %s", r.Findings[0].Rule)
	}
	if got := len(findingsOf(r, decoder.RuleInitFailed)); got != 33 {
		t.Errorf("%d init-failed, want 33", got)
	}
	slow := findingsOf(r, decoder.RuleSlowInit)
	var names []string
	for _, s := range slow {
		names = append(names, s.Function)
	}
	want := []string{"acpi_init", "init_kprobe_trace", "crypto_kdf108_init", "cubictcp_register", "load_system_certificate_list", "crypto_algapi_init"}
	if !slices.Equal(names, want) {
		t.Errorf("slow-init = %v, want %v", names, want)
	}
	// The control: a higher threshold, no slow-init at all.
	if r2 := analyzeFixture(t, fxTraceDebug, Options{Slow: time.Second}); len(findingsOf(r2, decoder.RuleSlowInit)) != 0 {
		t.Errorf("slow-init above a 1s threshold")
	}
}

// The same boot from its initcall_debug lines alone: the same initcalls in
// the same order, levels from the __initcall symbols in kallsyms agreeing
// with the trace's initcall_level events.
func TestInitcallDebugMatchesTrace(t *testing.T) {
	fsys, dmesg := loadFixture(t, fxTraceDebug)
	tr := analyzeFixture(t, fxTraceDebug, Options{})
	lg, err := Analyze(Input{Log: bytes.NewReader(dmesg), Trace: strings.NewReader(""), Root: fsys}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if lg.Source != SourceInitcallLog || len(lg.Initcalls) != len(tr.Initcalls) {
		t.Fatalf("log: %s with %d initcalls, trace has %d", lg.Source, len(lg.Initcalls), len(tr.Initcalls))
	}
	// The log's "calling" lines include 6 PCI fixups ("pci 0000:00:1f.0:
	// calling  quirk_..."), which are not initcalls.
	if n := bytes.Count(dmesg, []byte("] calling  ")); n != 575 {
		t.Errorf("the log has %d initcall_debug calling lines, want 575", n)
	}
	// The trace names levels without _sync and rootfs; kallsyms is finer.
	coarse := strings.NewReplacer("_sync", "", "rootfs", "fs")
	for i := range lg.Initcalls {
		a, b := lg.Initcalls[i], tr.Initcalls[i]
		if a.Function != b.Function || a.Ret != b.Ret || coarse.Replace(a.Level) != b.Level {
			t.Fatalf("initcall %d: log %s %s %d, trace %s %s %d", i+1, a.Function, a.Level, a.Ret, b.Function, b.Level, b.Ret)
		}
	}
	if got := levelCounts(lg); got["rootfs"] != 3 || got["late_sync"] != 6 || got[LevelUnknown] != 0 {
		t.Errorf("kallsyms levels: %v, want 3 rootfs, 6 late_sync, none unknown", got)
	}
	// Without kallsyms the levels are unknown, and the report says why.
	lg2, err := Analyze(Input{Log: bytes.NewReader(dmesg)}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := levelCounts(lg2); got[LevelUnknown] != 575 || len(lg2.Notes) != 1 || !strings.Contains(lg2.Notes[0], "levels are unknown") {
		t.Errorf("without kallsyms: %v, notes %q", got, lg2.Notes)
	}
}

// Seed incident 4: mxcpus=1, reported by the kernel and by the independent
// cmdline check, with maxcpus suggested; panic_on_oops=0 is a sysctl.
func TestUnknownBootParam(t *testing.T) {
	r := analyzeFixture(t, fxTraceDebug, Options{})
	f := findingsOf(r, RuleUnknownBootParam)
	if len(f) != 2 {
		t.Fatalf("want 2 unknown-boot-param, got %+v", f)
	}
	both := []string{"kernel-log", "cmdline-check"}
	if f[0].Param != "panic_on_oops=0" || f[0].Suggest != "sysctl.kernel.panic_on_oops" || !slices.Equal(f[0].Sources, both) {
		t.Errorf("first = %+v", f[0])
	}
	if f[1].Param != "mxcpus=1" || f[1].Suggest != "maxcpus" || !slices.Equal(f[1].Sources, both) || f[1].Severity != decoder.SeverityWarning {
		t.Errorf("second = %+v", f[1])
	}
	if !strings.Contains(f[1].Message, "did you mean maxcpus?") {
		t.Errorf("message %q has no suggestion", f[1].Message)
	}
	// The independent check alone, as without the kernel log: the same two.
	fsys, _ := loadFixture(t, fxTraceDebug)
	r2, err := Analyze(Input{Root: fsys}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	f2 := findingsOf(r2, RuleUnknownBootParam)
	if len(f2) != 2 || f2[0].Param != "panic_on_oops=0" || f2[1].Param != "mxcpus=1" || f2[1].Suggest != "maxcpus" || !slices.Equal(f2[1].Sources, []string{"cmdline-check"}) {
		t.Errorf("cmdline check alone = %+v", f2)
	}
}

// The control for parameter checks: possible_cpus= is an early_param of
// 6.1 that its kernel-parameters.txt does not document. The kernel accepted
// it, and its verdict wins over the documented list; only the check alone
// (no log) flags it. nr_cpus=1 took effect: no boot-param-not-effective.
func TestKernelVerdictWins(t *testing.T) {
	r := analyzeFixture(t, fxPlain, Options{})
	f := findingsOf(r, RuleUnknownBootParam)
	if len(f) != 1 || f[0].Param != "panic_on_oops=0" {
		t.Errorf("unknown-boot-param = %+v, want only panic_on_oops=0", f)
	}
	if f := findingsOf(r, RuleBootParamNotEffective); len(f) != 0 {
		t.Errorf("boot-param-not-effective = %+v", f)
	}
	fsys, _ := loadFixture(t, fxPlain)
	r2, err := Analyze(Input{Root: fsys}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var params []string
	for _, f := range findingsOf(r2, RuleUnknownBootParam) {
		params = append(params, f.Param)
	}
	if !slices.Equal(params, []string{"panic_on_oops=0", "possible_cpus=2"}) {
		t.Errorf("cmdline check alone = %v", params)
	}
}

// Neither mechanism: say so, and print the parameters to add.
func TestNotRecorded(t *testing.T) {
	r := analyzeFixture(t, fxPlain, Options{})
	if r.Source != SourceNone || len(r.Initcalls) != 0 || !slices.Equal(r.Recommend, Recommended) {
		t.Fatalf("source %s, %d initcalls, recommend %q", r.Source, len(r.Initcalls), r.Recommend)
	}
	var b bytes.Buffer
	if err := WriteText(&b, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"recorded by:  nothing", "  trace_event=initcall:initcall_level,initcall:initcall_start,initcall:initcall_finish trace_clock=global\n", "  initcall_debug log_buf_len=4M\n"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text output lacks %q:\n%s", want, b.String())
		}
	}
}

// Without trace_clock=, the kernel switched the trace clock at
// late_initcall and the buffer lost every earlier event: the log is used.
func TestTraceResetFallsBackToLog(t *testing.T) {
	r := analyzeFixture(t, fxTraceReset, Options{})
	if r.Source != SourceInitcallLog || len(r.Initcalls) != 575 {
		t.Fatalf("source %s with %d initcalls, want initcall_debug with 575", r.Source, len(r.Initcalls))
	}
	if len(r.Notes) != 1 || !strings.Contains(r.Notes[0], "holds only 1 of the 575") || !strings.Contains(r.Notes[0], "trace_clock=global") {
		t.Errorf("notes = %q", r.Notes)
	}
}

// Seed incidents 3 and 4's advice: assert the post-boot state.
// crashkernel=2G could not be reserved in 1 GiB; maxcpus=1, nr_cpus=2 and
// mem=768M took effect (the controls).
func TestBootParamNotEffective(t *testing.T) {
	r := analyzeFixture(t, fxTraceCrash, Options{})
	f := findingsOf(r, RuleBootParamNotEffective)
	if len(f) != 1 {
		t.Fatalf("want one boot-param-not-effective, got %+v", f)
	}
	if f[0].Param != "crashkernel=2G" || f[0].Severity != decoder.SeverityError || !strings.Contains(f[0].Message, "crashkernel reservation failed - No suitable area found.") {
		t.Errorf("finding = %+v", f[0])
	}
	// The same machine state against limits it does not meet.
	fsys, dmesg := loadFixture(t, fxTraceCrash)
	fsys["proc/cmdline"].Data = []byte("maxcpus=1 nr_cpus=1 mem=512M crashkernel=2G\n")
	fsys["sys/devices/system/cpu/online"].Data = []byte("0-1\n")
	r2, err := Analyze(Input{Log: bytes.NewReader(dmesg), Root: fsys}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var params []string
	for _, f := range findingsOf(r2, RuleBootParamNotEffective) {
		params = append(params, f.Param)
	}
	if want := []string{"maxcpus=1", "nr_cpus=1", "mem=512M", "crashkernel=2G"}; !slices.Equal(params, want) {
		t.Errorf("not effective = %v, want %v", params, want)
	}
}

// Seed incident 1's shape: kt_oops_init oopses while its init runs; the
// log has "calling" and no "returned".
func TestInitcallOops(t *testing.T) {
	r := analyzeFixture(t, fxOops, Options{})
	f := findingsOf(r, RuleInitcallOops)
	if len(f) != 1 {
		t.Fatalf("want one initcall-oops, got %+v", f)
	}
	o := f[0]
	if o.Function != "kt_oops_init" || o.Module != "kt_oops_init" || o.Level != LevelModule || o.Severity != decoder.SeverityError || len(o.Reaches) != 0 {
		t.Errorf("finding = %+v", o)
	}
	for _, want := range []string{"BUG: kernel NULL pointer dereference, address: 0000000000000018", "call trace kt_oops_net_stats_init <- do_one_initcall <- do_init_module", "heuristic"} {
		if !strings.Contains(o.Message, want) {
			t.Errorf("message lacks %q: %s", want, o.Message)
		}
	}
	last := r.Initcalls[len(r.Initcalls)-1]
	if last.Finished || last.Function != "kt_oops_init" || last.PID != 104 {
		t.Errorf("last initcall = %+v, want the unfinished kt_oops_init of pid 104", last)
	}
	// The control: the clean boot has no initcall-oops (TestTraceBoot).
}

// The later-level reach of the heuristic, on the real level table: a core
// initcall whose call trace is in net_dev_* code reaches net_dev_init,
// which runs at subsys level.
func TestOopsReachesLaterLevel(t *testing.T) {
	fsys, _ := loadFixture(t, fxTraceDebug)
	r := &Report{table: kallsymsLevels(fsys)}
	got := r.laterReach("core", []string{"mydriver_net_stats_init", "net_dev_queue_stats", "mydriver_core_init", "do_one_initcall"}, 0)
	if !slices.Equal(got, []string{"net_dev_init (subsys)"}) {
		t.Errorf("reach = %q", got)
	}
	// At device level net_dev_init has run: nothing later is reached.
	if got := r.laterReach("device", []string{"net_dev_queue_stats"}, 0); len(got) != 0 {
		t.Errorf("reach from device = %q", got)
	}
}

func TestSymbolLevel(t *testing.T) {
	for _, c := range []struct{ sym, fn, level string }{
		{"__initcall__kmod_core__391_2229_init_hw_perf_eventsearly", "init_hw_perf_events", "early"},
		{"__initcall__kmod_dev__1613_11668_net_dev_init4", "net_dev_init", "subsys"},
		{"__initcall__kmod_intel_pstate__1_2_intel_pstate_init6", "intel_pstate_init", "device"},
		{"__initcall__kmod_x__1_2_foo7s", "foo", "late_sync"},
		{"__initcall__kmod_x__1_2_populate_rootfsrootfs", "populate_rootfs", "rootfs"},
		{"__initcall__kmod_x__1_2_con_initcon", "con_init", "console"},
		{"__initcall_foo_init16", "foo_init1", "device"},
	} {
		fn, level, ok := symbolLevel(c.sym)
		if !ok || fn != c.fn || level != c.level {
			t.Errorf("%s -> %q %q %v, want %q %q", c.sym, fn, level, ok, c.fn, c.level)
		}
	}
	for _, bad := range []string{"__initcall_start", "__initcall0_start", "__initcall__kmod_x", "foo"} {
		if _, _, ok := symbolLevel(bad); ok {
			t.Errorf("%s parsed as an initcall", bad)
		}
	}
}

func TestHelpers(t *testing.T) {
	if got := nearest("mxcpus", []string{"maxcpus", "nr_cpus", "possible_cpus", "nosmp"}); got != "maxcpus" {
		t.Errorf("nearest(mxcpus) = %q", got)
	}
	if got := nearest("qiuet", []string{"quiet", "quirks"}); got != "quiet" {
		t.Errorf("nearest(qiuet) = %q (a swap is one edit)", got)
	}
	if got := nearest("zzzzzzzz", []string{"quiet", "maxcpus"}); got != "" {
		t.Errorf("nearest(zzzzzzzz) = %q, want nothing", got)
	}
	if got := splitCmdline(`a=1  dyndbg="file x.c +p" -- b`); !slices.Equal(got, []string{"a=1", `dyndbg="file x.c +p"`, "--", "b"}) {
		t.Errorf("splitCmdline = %q", got)
	}
	for s, want := range map[string]int64{"768M": 768 << 20, "2G": 2 << 30, "4096": 4096, "0x1000k": 4096 << 10} {
		if got, err := memparse(s); err != nil || got != want {
			t.Errorf("memparse(%s) = %d, %v", s, got, err)
		}
	}
	if _, err := memparse("512M-2G:64M"); err == nil {
		t.Errorf("memparse of a range did not fail")
	}
}

// Bad input gets a clear error naming the problem.
func TestBadInput(t *testing.T) {
	// A malformed initcall event is skipped with a note naming its line
	// (issue 12: one bad line does not fail the report).
	r, err := Analyze(Input{Trace: strings.NewReader("# tracer: nop\n  sh-1 [000] ..... 1.0: initcall_start: garbage\n")}, Options{})
	if err != nil || !hasNote(r, "trace line 2") {
		t.Errorf("corrupt trace: %v, %+v", err, r)
	}
	_, err = Analyze(Input{Log: strings.NewReader("root:x:0:0:root:/root:/bin/bash\n")}, Options{})
	if err == nil || !strings.Contains(err.Error(), "no kernel message ktracer knows") {
		t.Errorf("not a kernel log: %v", err)
	}
	_, err = Analyze(Input{Log: errReader{}}, Options{})
	if err == nil || !strings.Contains(err.Error(), "read kernel log") {
		t.Errorf("read error: %v", err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("boom") }

// The picture and the Perfetto trace: well-formed, one bar / slice per
// initcall.
func TestRenderSVGAndPerfetto(t *testing.T) {
	r := analyzeFixture(t, fxTraceDebug, Options{})
	var svg bytes.Buffer
	if err := WriteSVG(&svg, r); err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(&svg)
	bars, texts := 0, []string{}
	inText := false
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v", err)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			inText = e.Name.Local == "text"
			if e.Name.Local == "title" {
				bars++
			}
		case xml.CharData:
			if inText {
				texts = append(texts, string(e))
			}
		case xml.EndElement:
			inText = false
		}
	}
	if bars != 575 {
		t.Errorf("%d bars with a tooltip, want 575", bars)
	}
	all := strings.Join(texts, "\n")
	for _, want := range []string{"Boot timeline: Linux 6.1.0-56-cloud-amd64", "crypto_algapi_init 571.7 ms", "set_hardened_usercopy returned 1", "/init at 3.73 s", "subsys"} {
		if !strings.Contains(all, want) {
			t.Errorf("SVG text lacks %q", want)
		}
	}

	var pf bytes.Buffer
	if err := WritePerfetto(&pf, r); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		TraceEvents []struct {
			Name string         `json:"name"`
			Ph   string         `json:"ph"`
			Ts   float64        `json:"ts"`
			Dur  *float64       `json:"dur"`
			TID  int            `json:"tid"`
			Args map[string]any `json:"args"`
		} `json:"traceEvents"`
	}
	if err := json.Unmarshal(pf.Bytes(), &doc); err != nil {
		t.Fatalf("Perfetto JSON: %v", err)
	}
	slicesN, tracks := 0, map[string]bool{}
	for _, e := range doc.TraceEvents {
		switch e.Ph {
		case "X":
			slicesN++
			if e.Dur == nil || *e.Dur < 0 {
				t.Errorf("slice %s has no duration", e.Name)
			}
			if e.Name == "acpi_init" && (e.Args["level"] != "subsys" || *e.Dur != 186030) {
				t.Errorf("acpi_init slice = %+v dur %v", e.Args, *e.Dur)
			}
		case "M":
			if e.Name == "thread_name" {
				tracks[e.Args["name"].(string)] = true
			}
		}
	}
	if slicesN != 575 || len(tracks) != 10 {
		t.Errorf("%d slices on %d tracks, want 575 on 10 (one per level)", slicesN, len(tracks))
	}
}

func TestJSONReport(t *testing.T) {
	r := analyzeFixture(t, fxOops, Options{})
	var b bytes.Buffer
	if err := Render(&b, r, "json"); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Source    string `json:"source"`
		Initcalls []struct {
			Function string `json:"function"`
			Level    string `json:"level"`
		} `json:"initcalls"`
		Findings []struct {
			Rule     string `json:"rule"`
			Severity string `json:"severity"`
			Function string `json:"function"`
		} `json:"findings"`
		Counts struct{ Error, Warning, Info int } `json:"finding_counts"`
	}
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Source != "initcall_debug" || len(doc.Initcalls) != 576 || doc.Findings[0].Severity != "error" {
		t.Errorf("json: source %s, %d initcalls, first finding %+v", doc.Source, len(doc.Initcalls), doc.Findings[0])
	}
	if doc.Counts.Error != 2 || doc.Findings[1].Rule != "initcall-oops" || doc.Findings[1].Function != "kt_oops_init" {
		t.Errorf("json: counts %+v, findings %+v", doc.Counts, doc.Findings[:2])
	}
	if err := Render(io.Discard, r, "xml"); err == nil {
		t.Errorf("unknown format accepted")
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// The whole report on a real boot of 575 initcalls, from both the trace
// and the kernel log, with the parameter checks; then the text and SVG.
func BenchmarkAnalyzeRealBoot(b *testing.B) {
	fsys, dmesg := loadFixture(b, fxTraceDebug)
	b.ReportAllocs()
	for b.Loop() {
		r, err := Analyze(Input{Log: bytes.NewReader(dmesg), Root: fsys}, Options{})
		if err != nil || len(r.Initcalls) != 575 {
			b.Fatal(err)
		}
		if err := WriteText(io.Discard, r); err != nil {
			b.Fatal(err)
		}
		if err := WriteSVG(io.Discard, r); err != nil {
			b.Fatal(err)
		}
	}
}

// A kernel log that no longer starts at boot: the report says so. Built
// from the real capture by dropping its first half, as a wrapped ring
// buffer does.
func TestWrappedLog(t *testing.T) {
	_, dmesg := loadFixture(t, fxOops)
	lines := bytes.SplitAfter(dmesg, []byte("\n"))
	r, err := Analyze(Input{Log: bytes.NewReader(bytes.Join(lines[len(lines)/2:], nil))}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, n := range r.Notes {
		found = found || strings.Contains(n, "log_buf_len=4M")
	}
	if !found {
		t.Errorf("no note about the wrapped log: %q", r.Notes)
	}
	// The whole log is not wrapped.
	if r := analyzeFixture(t, fxOops, Options{}); len(r.Notes) != 0 {
		t.Errorf("notes on a complete log: %q", r.Notes)
	}
}
