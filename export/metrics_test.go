package export

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ktracer/ktracer/decoder"
)

// initcall and finding build the events the analyzer emits for a module
// init, as in the kt_positive, kt_enodev and kt_slow e2e runs.
func initcall(module, fn string, ret int32, d time.Duration) *decoder.Event {
	return &decoder.Event{Kind: decoder.KindInitcall, Module: module, Function: fn, Ret: ret, Errno: decoder.ErrnoName(ret), Duration: d, PID: 4242}
}

func finding(ev *decoder.Event, rule decoder.Rule, value int64) *decoder.Event {
	f := *ev
	f.Kind, f.Rule, f.Severity, f.Value = decoder.KindFinding, rule, decoder.RuleSeverity[rule], value
	f.Message = "message"
	return &f
}

func feed(t *testing.T, m *Metrics, evs ...*decoder.Event) {
	t.Helper()
	for _, ev := range evs {
		if err := m.Observe(ev); err != nil {
			t.Fatal(err)
		}
	}
}

func TestMetricsCollect(t *testing.T) {
	m := NewMetrics(MetricsOptions{
		Build: BuildInfo{Version: "v1.2.3", GoVersion: "go1.26.8", EBPFVersion: "v0.22.0"},
		Self: func() SelfStats {
			return SelfStats{RecordsRead: 120, DecodeErrors: 1, LostKernel: 3, LostUser: 2, ScanTruncated: 4, Overflow: 5, OrphanSymbols: 6, RingFill: 0.25}
		},
	})
	m.SetHooks([]Hook{
		{Name: "module_load", Attached: true, Method: "raw_tracepoint", Target: "module_load"},
		{Name: "module_init_done", Attached: false, Error: "fexit do_init_module: not supported"},
	})
	pos := initcall("kt_positive", "kt_positive_init", 1, 972*time.Microsecond)
	slow := initcall("kt_slow", "kt_slow_init", 0, 319*time.Millisecond)
	enodev := initcall("kt_enodev", "kt_enodev_init", -19, 188*time.Microsecond)
	good := initcall("kt_good", "kt_good_init", 0, 421*time.Microsecond)
	feed(t, m,
		&decoder.Event{Kind: decoder.KindModuleLoad, Module: "kt_positive"}, // not counted
		pos, finding(pos, decoder.RulePositiveInitReturn, 1),
		slow, finding(slow, decoder.RuleSlowInit, int64(319*time.Millisecond)),
		enodev, finding(enodev, decoder.RuleInitFailed, -19),
		good, good,
	)
	// Startup findings: machine-wide ones keep an empty module; a second
	// report from the same source replaces the first.
	m.SetStartupFindings("check", []*decoder.Event{{Kind: decoder.KindFinding, Rule: "panic-loop", Severity: decoder.SeverityError}})
	m.SetStartupFindings("check", []*decoder.Event{{Kind: decoder.KindFinding, Rule: "kdump-not-loaded", Severity: decoder.SeverityError}})
	m.SetStartupFindings("boot", []*decoder.Event{
		{Kind: decoder.KindFinding, Rule: "unknown-boot-param", Severity: decoder.SeverityWarning},
		{Kind: decoder.KindFinding, Rule: "unknown-boot-param", Severity: decoder.SeverityWarning},
		{Kind: decoder.KindFinding, Rule: decoder.RuleSlowInit, Severity: decoder.SeverityWarning, Module: "virtio_net"},
	})

	want := `
# HELP ktracer_analyzer_overflow_total Modules or symbols not tracked because one of the analyzer's bounds was reached (8192 modules, 262144 symbols per module): findings about them are lost.
# TYPE ktracer_analyzer_overflow_total counter
ktracer_analyzer_overflow_total 5
# HELP ktracer_orphan_symbol_records_total Symbol records for a module whose load record never arrived (lost or corrupt): its function names are missing.
# TYPE ktracer_orphan_symbol_records_total counter
ktracer_orphan_symbol_records_total 6
# HELP ktracer_build_info ktracer's version and what it was built with; always 1.
# TYPE ktracer_build_info gauge
ktracer_build_info{ebpf_version="v0.22.0",goversion="go1.26.8",version="v1.2.3"} 1
# HELP ktracer_metric_collect_errors_total Samples ktracer could not build at scrape time and left out (a panic or an invalid value); each costs one sample, not the scrape.
# TYPE ktracer_metric_collect_errors_total counter
ktracer_metric_collect_errors_total 0
# HELP ktracer_findings_total Broken rules seen while ktracer runs, by rule, severity and module (empty for a built-in initcall).
# TYPE ktracer_findings_total counter
ktracer_findings_total{module="kt_enodev",rule="init-failed",severity="info"} 1
ktracer_findings_total{module="kt_positive",rule="positive-init-return",severity="error"} 1
ktracer_findings_total{module="kt_slow",rule="slow-init",severity="warning"} 1
# HELP ktracer_startup_findings Findings read once at start: source=boot (this boot's report: built-in initcalls, boot parameters), source=check (kdump, panics of earlier boots).
# TYPE ktracer_startup_findings gauge
ktracer_startup_findings{module="",rule="kdump-not-loaded",severity="error",source="check"} 1
ktracer_startup_findings{module="",rule="unknown-boot-param",severity="warning",source="boot"} 2
ktracer_startup_findings{module="virtio_net",rule="slow-init",severity="warning",source="boot"} 1
# HELP ktracer_init_pointer_scans_truncated_total Module data scans for init-text pointers that hit their bound, so a dangling pointer could be missed.
# TYPE ktracer_init_pointer_scans_truncated_total counter
ktracer_init_pointer_scans_truncated_total 4
# HELP ktracer_module_init_duration_seconds How long module init functions ran.
# TYPE ktracer_module_init_duration_seconds histogram
ktracer_module_init_duration_seconds_bucket{module="kt_enodev",le="0.0001"} 0
ktracer_module_init_duration_seconds_bucket{module="kt_enodev",le="0.001"} 1
ktracer_module_init_duration_seconds_bucket{module="kt_enodev",le="0.01"} 1
ktracer_module_init_duration_seconds_bucket{module="kt_enodev",le="0.1"} 1
ktracer_module_init_duration_seconds_bucket{module="kt_enodev",le="1"} 1
ktracer_module_init_duration_seconds_bucket{module="kt_enodev",le="10"} 1
ktracer_module_init_duration_seconds_bucket{module="kt_enodev",le="+Inf"} 1
ktracer_module_init_duration_seconds_sum{module="kt_enodev"} 0.000188
ktracer_module_init_duration_seconds_count{module="kt_enodev"} 1
ktracer_module_init_duration_seconds_bucket{module="kt_good",le="0.0001"} 0
ktracer_module_init_duration_seconds_bucket{module="kt_good",le="0.001"} 2
ktracer_module_init_duration_seconds_bucket{module="kt_good",le="0.01"} 2
ktracer_module_init_duration_seconds_bucket{module="kt_good",le="0.1"} 2
ktracer_module_init_duration_seconds_bucket{module="kt_good",le="1"} 2
ktracer_module_init_duration_seconds_bucket{module="kt_good",le="10"} 2
ktracer_module_init_duration_seconds_bucket{module="kt_good",le="+Inf"} 2
ktracer_module_init_duration_seconds_sum{module="kt_good"} 0.000842
ktracer_module_init_duration_seconds_count{module="kt_good"} 2
ktracer_module_init_duration_seconds_bucket{module="kt_positive",le="0.0001"} 0
ktracer_module_init_duration_seconds_bucket{module="kt_positive",le="0.001"} 1
ktracer_module_init_duration_seconds_bucket{module="kt_positive",le="0.01"} 1
ktracer_module_init_duration_seconds_bucket{module="kt_positive",le="0.1"} 1
ktracer_module_init_duration_seconds_bucket{module="kt_positive",le="1"} 1
ktracer_module_init_duration_seconds_bucket{module="kt_positive",le="10"} 1
ktracer_module_init_duration_seconds_bucket{module="kt_positive",le="+Inf"} 1
ktracer_module_init_duration_seconds_sum{module="kt_positive"} 0.000972
ktracer_module_init_duration_seconds_count{module="kt_positive"} 1
ktracer_module_init_duration_seconds_bucket{module="kt_slow",le="0.0001"} 0
ktracer_module_init_duration_seconds_bucket{module="kt_slow",le="0.001"} 0
ktracer_module_init_duration_seconds_bucket{module="kt_slow",le="0.01"} 0
ktracer_module_init_duration_seconds_bucket{module="kt_slow",le="0.1"} 0
ktracer_module_init_duration_seconds_bucket{module="kt_slow",le="1"} 1
ktracer_module_init_duration_seconds_bucket{module="kt_slow",le="10"} 1
ktracer_module_init_duration_seconds_bucket{module="kt_slow",le="+Inf"} 1
ktracer_module_init_duration_seconds_sum{module="kt_slow"} 0.319
ktracer_module_init_duration_seconds_count{module="kt_slow"} 1
# HELP ktracer_module_inits_total Module init functions that returned, by result: ok (0), positive (> 0, a broken rule) or failed (negative errno).
# TYPE ktracer_module_inits_total counter
ktracer_module_inits_total{module="kt_enodev",result="failed"} 1
ktracer_module_inits_total{module="kt_good",result="ok"} 2
ktracer_module_inits_total{module="kt_positive",result="positive"} 1
ktracer_module_inits_total{module="kt_slow",result="ok"} 1
# HELP ktracer_probe_attached Whether a kernel hook is attached (1) or not (0), and by which method (none when not attached).
# TYPE ktracer_probe_attached gauge
ktracer_probe_attached{hook="module_init_done",method="none"} 0
ktracer_probe_attached{hook="module_load",method="raw_tracepoint"} 1
# HELP ktracer_record_decode_errors_total Records that failed to decode and were skipped.
# TYPE ktracer_record_decode_errors_total counter
ktracer_record_decode_errors_total 1
# HELP ktracer_records_lost_total Records lost: where=kernel, the ring buffer was full; where=userspace, read but not delivered to every sink.
# TYPE ktracer_records_lost_total counter
ktracer_records_lost_total{where="kernel"} 3
ktracer_records_lost_total{where="userspace"} 2
# HELP ktracer_records_read_total Records read from the BPF ring buffer.
# TYPE ktracer_records_read_total counter
ktracer_records_read_total 120
# HELP ktracer_ringbuf_fill_ratio Fraction of the BPF ring buffer waiting to be read (0 to 1); near 1, records are about to be lost.
# TYPE ktracer_ringbuf_fill_ratio gauge
ktracer_ringbuf_fill_ratio 0.25
`
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	if err := testutil.CollectAndCompare(m, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	// The daemon's output must also pass promtool's lint rules.
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func TestMetricsBootAndKdumpFacts(t *testing.T) {
	m := NewMetrics(MetricsOptions{Build: BuildInfo{Version: "devel", GoVersion: "go1.26.8", EBPFVersion: "v0.22.0"}})
	m.SetBoot(BootFacts{TimeToInit: 1500 * time.Millisecond, BuiltinInitcalls: 612, SlowestFunction: "raid6_select_algo", SlowestDuration: 40 * time.Millisecond})
	// Seed incident 3: 128 MiB reserved on a 256 GB machine.
	m.SetKdump(KdumpFacts{CrashKernelLoaded: true, ReservedBytes: 128 << 20, RecommendedBytes: 512 << 20})
	want := `
# HELP ktracer_boot_builtin_initcalls Built-in initcalls run on this boot.
# TYPE ktracer_boot_builtin_initcalls gauge
ktracer_boot_builtin_initcalls 612
# HELP ktracer_boot_slowest_initcall_seconds Duration of this boot's slowest built-in initcall.
# TYPE ktracer_boot_slowest_initcall_seconds gauge
ktracer_boot_slowest_initcall_seconds{function="raid6_select_algo"} 0.04
# HELP ktracer_boot_time_to_init_seconds Time from kernel start to running init on this boot.
# TYPE ktracer_boot_time_to_init_seconds gauge
ktracer_boot_time_to_init_seconds 1.5
# HELP ktracer_kdump_crash_kernel_loaded Whether a crash kernel is loaded (1) or not (0).
# TYPE ktracer_kdump_crash_kernel_loaded gauge
ktracer_kdump_crash_kernel_loaded 1
# HELP ktracer_kdump_ready Whether a panic would leave a dump (1): crash kernel loaded and reservation large enough.
# TYPE ktracer_kdump_ready gauge
ktracer_kdump_ready 0
# HELP ktracer_kdump_recommended_bytes Crash kernel memory this machine needs, as ktracer check estimates it.
# TYPE ktracer_kdump_recommended_bytes gauge
ktracer_kdump_recommended_bytes 5.36870912e+08
# HELP ktracer_kdump_reserved_bytes Memory reserved for the crash kernel (crashkernel=).
# TYPE ktracer_kdump_reserved_bytes gauge
ktracer_kdump_reserved_bytes 1.34217728e+08
`
	if err := testutil.CollectAndCompare(m, strings.NewReader(want),
		"ktracer_boot_builtin_initcalls", "ktracer_boot_slowest_initcall_seconds", "ktracer_boot_time_to_init_seconds",
		"ktracer_kdump_crash_kernel_loaded", "ktracer_kdump_ready", "ktracer_kdump_recommended_bytes", "ktracer_kdump_reserved_bytes"); err != nil {
		t.Fatal(err)
	}
	// Without facts and self-metrics, only what is known is reported.
	if n := testutil.CollectAndCount(NewMetrics(MetricsOptions{})); n != 2 {
		t.Errorf("empty collector reports %d metrics, want 2 (build info, collect errors)", n)
	}
}

// A module name generator (a load loop, a fuzzer) must not grow the series
// without bound: past MaxModules, new names are counted as "other".
func TestMetricsModuleCap(t *testing.T) {
	m := NewMetrics(MetricsOptions{MaxModules: 2})
	for _, mod := range []string{"a", "b", "c", "d", "a"} {
		ev := initcall(mod, mod+"_init", 1, time.Millisecond)
		feed(t, m, ev, finding(ev, decoder.RulePositiveInitReturn, 1))
	}
	feed(t, m, initcall("", "builtin_init", 0, time.Millisecond))
	want := `
# HELP ktracer_module_inits_total Module init functions that returned, by result: ok (0), positive (> 0, a broken rule) or failed (negative errno).
# TYPE ktracer_module_inits_total counter
ktracer_module_inits_total{module="a",result="positive"} 2
ktracer_module_inits_total{module="b",result="positive"} 1
ktracer_module_inits_total{module="built-in",result="ok"} 1
ktracer_module_inits_total{module="other",result="positive"} 2
# HELP ktracer_findings_total Broken rules seen while ktracer runs, by rule, severity and module (empty for a built-in initcall).
# TYPE ktracer_findings_total counter
ktracer_findings_total{module="a",rule="positive-init-return",severity="error"} 2
ktracer_findings_total{module="b",rule="positive-init-return",severity="error"} 1
ktracer_findings_total{module="other",rule="positive-init-return",severity="error"} 2
`
	if err := testutil.CollectAndCompare(m, strings.NewReader(want), "ktracer_module_inits_total", "ktracer_findings_total"); err != nil {
		t.Fatal(err)
	}
}

// Observe runs on the reader goroutine while Collect runs on HTTP ones;
// go test -race checks the locking.
func TestMetricsConcurrentScrape(t *testing.T) {
	m := NewMetrics(MetricsOptions{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 1000; i++ {
			ev := initcall("kt_positive", "kt_positive_init", 1, time.Millisecond)
			m.Observe(ev)
			m.Observe(finding(ev, decoder.RulePositiveInitReturn, 1))
		}
	}()
	for i := 0; i < 50; i++ {
		testutil.CollectAndCount(m)
	}
	<-done
	if got := testutil.ToFloat64(onlyFindings{m}); got != 1000 {
		t.Errorf("findings = %v, want 1000", got)
	}
}

// onlyFindings narrows the collector to ktracer_findings_total, for ToFloat64.
type onlyFindings struct{ m *Metrics }

func (o onlyFindings) Describe(ch chan<- *prometheus.Desc) { ch <- descFindings }
func (o onlyFindings) Collect(ch chan<- prometheus.Metric) {
	all := make(chan prometheus.Metric, 64)
	go func() { o.m.Collect(all); close(all) }()
	for mt := range all {
		if mt.Desc() == descFindings {
			ch <- mt
		}
	}
}

// Issue 12 item 1: one module name that is not valid UTF-8 (a kernel module
// name is bytes, not text) made MustNewConstMetric panic inside Collect;
// client_golang recovered and dropped every family after it, while /metrics
// still answered 200. Every family must survive, with the name made valid.
func TestMetricsInvalidUTF8Labels(t *testing.T) {
	bad := "kt\xff\xfe_bad"
	m := NewMetrics(MetricsOptions{
		Build: BuildInfo{Version: "v1\xc3", GoVersion: "go1.26.8", EBPFVersion: "v0.22.0"},
		Self:  func() SelfStats { return SelfStats{RecordsRead: 1} },
	})
	m.SetHooks([]Hook{{Name: "module_load\xff", Attached: true, Method: "raw\x80"}})
	ev := initcall(bad, "init\xff", 1, time.Millisecond)
	feed(t, m, ev, finding(ev, decoder.RulePositiveInitReturn, 1))
	m.SetStartupFindings("boot", []*decoder.Event{{Kind: decoder.KindFinding, Rule: "slow-init", Severity: decoder.SeverityWarning, Module: bad}})
	m.SetBoot(BootFacts{TimeToInit: time.Second, BuiltinInitcalls: 3, SlowestFunction: "fn\xff", SlowestDuration: time.Millisecond})
	m.SetKdump(KdumpFacts{CrashKernelLoaded: true, ReservedBytes: 1, RecommendedBytes: 1})

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	got := map[string]bool{}
	for _, mf := range mfs {
		got[mf.GetName()] = true
		for _, mt := range mf.GetMetric() {
			for _, lp := range mt.GetLabel() {
				if !utf8.ValidString(lp.GetValue()) {
					t.Errorf("%s: label %s=%q is not valid UTF-8", mf.GetName(), lp.GetName(), lp.GetValue())
				}
			}
		}
	}
	for _, name := range []string{
		"ktracer_build_info", "ktracer_probe_attached", "ktracer_records_read_total", "ktracer_records_lost_total",
		"ktracer_record_decode_errors_total", "ktracer_init_pointer_scans_truncated_total", "ktracer_ringbuf_fill_ratio",
		"ktracer_module_inits_total", "ktracer_module_init_duration_seconds", "ktracer_findings_total",
		"ktracer_startup_findings", "ktracer_boot_time_to_init_seconds", "ktracer_boot_builtin_initcalls",
		"ktracer_boot_slowest_initcall_seconds", "ktracer_kdump_crash_kernel_loaded", "ktracer_kdump_reserved_bytes",
		"ktracer_kdump_recommended_bytes", "ktracer_kdump_ready",
	} {
		if !got[name] {
			t.Errorf("family %s missing after an invalid UTF-8 module name", name)
		}
	}
	want := `
# HELP ktracer_findings_total Broken rules seen while ktracer runs, by rule, severity and module (empty for a built-in initcall).
# TYPE ktracer_findings_total counter
ktracer_findings_total{module="kt�_bad",rule="positive-init-return",severity="error"} 1
`
	if err := testutil.CollectAndCompare(m, strings.NewReader(want), "ktracer_findings_total"); err != nil {
		t.Fatal(err)
	}
}

// A collector that panics loses the whole scrape's tail; Collect must
// recover by itself and report what it has.
func TestMetricsCollectNeverPanics(t *testing.T) {
	m := NewMetrics(MetricsOptions{Self: func() SelfStats { panic("self stats broke") }})
	if n := testutil.CollectAndCount(m); n < 1 {
		t.Errorf("Collect with a panicking Self reported %d metrics, want build info at least", n)
	}
}

// Issue 12: every way the daemon drops something is a metric. A startup
// source that fails (the check, the boot report, the history) or a check
// source that cannot be read is counted.
func TestMetricsStartupErrors(t *testing.T) {
	m := NewMetrics(MetricsOptions{})
	m.AddStartupErrors("check", 2)
	m.AddStartupErrors("boot", 1)
	m.AddStartupErrors("check", 1)
	want := `
# HELP ktracer_startup_source_errors_total Startup sources (source=check: kdump facts, pstore entries, dumps, boot history; source=boot: the boot report; source=history: recording this boot) that could not be read: what they would have said is missing.
# TYPE ktracer_startup_source_errors_total counter
ktracer_startup_source_errors_total{source="boot"} 1
ktracer_startup_source_errors_total{source="check"} 3
`
	if err := testutil.CollectAndCompare(m, strings.NewReader(want), "ktracer_startup_source_errors_total"); err != nil {
		t.Fatal(err)
	}
}
