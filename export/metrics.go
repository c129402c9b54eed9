package export

import (
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ktracer/ktracer/decoder"
)

// Label values used when the real value would be unbounded or absent.
const (
	// BuiltinModule labels initcalls that belong to no module (built-in).
	BuiltinModule = "built-in"
	// OtherModule collects modules beyond MetricsOptions.MaxModules, so a
	// load loop with generated names cannot grow the series without bound.
	OtherModule = "other"
)

// DefaultMaxModules is well above the ~100-300 distinct modules a
// distribution kernel loads, and keeps a runaway bounded.
const DefaultMaxModules = 500

// InitDurationBuckets are the init duration histogram buckets, in seconds:
// decades around the default 100ms slow-init threshold, which is a bucket
// boundary so the histogram and the rule agree.
var InitDurationBuckets = []float64{0.0001, 0.001, 0.01, 0.1, 1, 10}

// SelfStats is ktracer's own health, read at scrape time.
type SelfStats struct {
	RecordsRead   uint64  // records taken from the ring buffer
	DecodeErrors  uint64  // records that failed to decode
	LostKernel    uint64  // records the BPF side could not reserve: ring buffer full
	LostUser      uint64  // records read but dropped in user space (a sink failed)
	ScanTruncated uint64  // init-pointer data scans that hit their bound
	Overflow      uint64  // modules or symbols not tracked: the analyzer's bounds were reached
	OrphanSymbols uint64  // symbol records for a module never announced (its load record was lost)
	RingFill      float64 // fraction of the ring buffer waiting to be read
}

// BuildInfo labels ktracer_build_info.
type BuildInfo struct {
	Version     string
	Revision    string // VCS commit
	GoOS        string
	GoArch      string
	GoVersion   string
	EBPFVersion string
}

// BootFacts is what the boot report (ktracer boot) knows about this boot.
// It is read once at start; see Metrics.SetBoot.
type BootFacts struct {
	TimeToInit       time.Duration // kernel start to running init
	BuiltinInitcalls int
	SlowestFunction  string // the slowest built-in initcall
	SlowestDuration  time.Duration
}

// KdumpFacts is what ktracer check knows about crash dumping, and its
// verdict: export does not judge readiness itself (check.KdumpVerdict
// does), so the metric and the command never disagree.
type KdumpFacts struct {
	CrashKernelLoaded bool   // /sys/kernel/kexec_crash_loaded
	ReservedBytes     uint64 // /sys/kernel/kexec_crash_size
	RecommendedBytes  uint64 // the crashkernel= ktracer check recommends
	Ready             bool   // a panic would leave a dump
	Reason            string // why not, from a fixed set (check.KdumpReasons); "ready" when Ready
}

// MetricsOptions configures a Metrics collector.
type MetricsOptions struct {
	Build      BuildInfo
	MaxModules int              // distinct module label values; <= 0 means DefaultMaxModules
	Self       func() SelfStats // may be nil (no self-metrics)
}

// Metrics is ktracer's prometheus.Collector: it counts the events it is fed
// (Observe, from the single reader goroutine) and reports them when scraped
// (Collect, from HTTP goroutines), so its state is guarded by mu.
type Metrics struct {
	opts MetricsOptions

	mu       sync.Mutex
	hooks    []Hook
	modules  map[string]bool // module label values handed out so far
	inits    map[initKey]uint64
	lastDur  map[string]time.Duration // per module: its last init's duration
	dur      histogram                // every init, unlabelled
	findings map[findingKey]uint64
	startup  map[startupKey]int
	boot     *BootFacts
	kdump    *KdumpFacts
	srcErrs  map[string]uint64 // startup source -> errors

	collectErrors atomic.Uint64
}

type initKey struct{ module, result string }

// findingKey has no severity: it follows from the rule, and a severity
// label would collide with the one Alertmanager routes on (the alerting
// rules set their own).
type findingKey struct {
	rule   decoder.Rule
	module string
}

type startupKey struct {
	source string
	findingKey
}

type histogram struct {
	count   uint64
	sum     float64
	buckets []uint64 // per bucket, not cumulative
}

var (
	descBuildInfo = prometheus.NewDesc("ktracer_build_info",
		"ktracer's version and what it was built with; always 1.", []string{"version", "revision", "goos", "goarch", "goversion", "ebpf_version"}, nil)
	descProbeAttached = prometheus.NewDesc("ktracer_probe_attached",
		"Whether a kernel hook is attached (1) or not (0), and by which method (none when not attached).", []string{"hook", "method"}, nil)
	descRecordsRead = prometheus.NewDesc("ktracer_records_read_total",
		"Records read from the BPF ring buffer.", nil, nil)
	descRecordsLost = prometheus.NewDesc("ktracer_records_lost_total",
		"Records lost: where=kernel, the ring buffer was full; where=userspace, read but not delivered to every sink.", []string{"where"}, nil)
	descDecodeErrors = prometheus.NewDesc("ktracer_record_decode_errors_total",
		"Records that failed to decode and were skipped.", nil, nil)
	descScanTruncated = prometheus.NewDesc("ktracer_init_pointer_scans_truncated_total",
		"Module data scans for init-text pointers that hit their bound, so a dangling pointer could be missed.", nil, nil)
	descOverflow = prometheus.NewDesc("ktracer_analyzer_overflow_total",
		"Modules or symbols not tracked because one of the analyzer's bounds was reached (8192 modules, 262144 symbols per module): findings about them are lost.", nil, nil)
	descOrphanSymbols = prometheus.NewDesc("ktracer_orphan_symbol_records_total",
		"Symbol records for a module whose load record never arrived (lost or corrupt): its function names are missing.", nil, nil)
	descRingFill = prometheus.NewDesc("ktracer_ringbuf_fill_ratio",
		"Fraction of the BPF ring buffer waiting to be read (0 to 1); near 1, records are about to be lost.", nil, nil)
	descModuleInits = prometheus.NewDesc("ktracer_module_inits_total",
		"Module init functions that returned, by result: ok (0), positive (> 0, a broken rule) or failed (negative errno).", []string{"module", "result"}, nil)
	descInitDuration = prometheus.NewDesc("ktracer_module_init_duration_seconds",
		"How long module init functions ran, all modules together (per module: ktracer_module_init_last_duration_seconds).", nil, nil)
	descInitLastDuration = prometheus.NewDesc("ktracer_module_init_last_duration_seconds",
		"How long the last init function of each module ran; an init runs about once per boot, so one gauge per module says what a histogram per module would.", []string{"module"}, nil)
	descFindings = prometheus.NewDesc("ktracer_findings_total",
		"Broken rules seen while ktracer runs, by rule and module (built-in for built-in code, empty for a machine-wide finding).", []string{"rule", "module"}, nil)

	descStartupFindings = prometheus.NewDesc("ktracer_startup_findings",
		"Findings read once at start: source=boot (this boot's report: built-in initcalls, boot parameters), source=check (kdump, panics of earlier boots).", []string{"source", "rule", "module"}, nil)

	descBootTimeToInit = prometheus.NewDesc("ktracer_boot_time_to_init_seconds",
		"Time from kernel start to running init on this boot.", nil, nil)
	descBootInitcalls = prometheus.NewDesc("ktracer_boot_builtin_initcalls",
		"Built-in initcalls run on this boot.", nil, nil)
	descBootSlowest = prometheus.NewDesc("ktracer_boot_slowest_initcall_seconds",
		"Duration of this boot's slowest built-in initcall.", []string{"function"}, nil)
	descKdumpLoaded = prometheus.NewDesc("ktracer_kdump_crash_kernel_loaded",
		"Whether a crash kernel is loaded (1) or not (0).", nil, nil)
	descKdumpReserved = prometheus.NewDesc("ktracer_kdump_reserved_bytes",
		"Memory reserved for the crash kernel (crashkernel=).", nil, nil)
	descKdumpRecommended = prometheus.NewDesc("ktracer_kdump_recommended_bytes",
		"Crash kernel memory this machine needs, as ktracer check estimates it.", nil, nil)
	descStartupErrors = prometheus.NewDesc("ktracer_startup_source_errors_total",
		"Startup sources (source=check: kdump facts, pstore entries, dumps, boot history; source=boot: the boot report; source=history: recording this boot) that could not be read: what they would have said is missing.", []string{"source"}, nil)
	descCollectErrors = prometheus.NewDesc("ktracer_metric_collect_errors_total",
		"Samples ktracer could not build at scrape time and left out (a panic or an invalid value); each costs one sample, not the scrape.", nil, nil)
	descKdumpReady = prometheus.NewDesc("ktracer_kdump_ready",
		"Whether a panic would leave a dump (1) or not (0), as ktracer check judges it; reason says why not (ready, kernel-unsupported, not-reserved, reservation-failed, undersized, not-loaded).", []string{"reason"}, nil)
)

var allDescs = []*prometheus.Desc{
	descBuildInfo, descProbeAttached, descRecordsRead, descRecordsLost, descDecodeErrors,
	descScanTruncated, descOverflow, descOrphanSymbols, descRingFill, descModuleInits, descInitDuration, descInitLastDuration, descFindings, descStartupFindings,
	descBootTimeToInit, descBootInitcalls, descBootSlowest,
	descKdumpLoaded, descKdumpReserved, descKdumpRecommended, descKdumpReady, descCollectErrors, descStartupErrors,
}

// NewMetrics returns an empty collector; register it on the daemon's own
// registry.
func NewMetrics(opts MetricsOptions) *Metrics {
	if opts.MaxModules <= 0 {
		opts.MaxModules = DefaultMaxModules
	}
	return &Metrics{
		opts:     opts,
		modules:  map[string]bool{},
		inits:    map[initKey]uint64{},
		lastDur:  map[string]time.Duration{},
		dur:      histogram{buckets: make([]uint64, len(InitDurationBuckets))},
		findings: map[findingKey]uint64{},
		startup:  map[startupKey]int{},
		srcErrs:  map[string]uint64{},
	}
}

// SetHooks records how the hooks attached.
func (m *Metrics) SetHooks(hooks []Hook) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.hooks = append([]Hook(nil), hooks...)
}

// SetBoot publishes the boot report's facts (ktracer_boot_*). Until it is
// called those metrics are absent, not zero: absent means unknown.
func (m *Metrics) SetBoot(b BootFacts) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.boot = &b
}

// SetKdump publishes ktracer check's kdump facts (ktracer_kdump_*).
func (m *Metrics) SetKdump(k KdumpFacts) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.kdump = &k
}

// SetStartupFindings publishes the findings a startup source (source
// "boot", "check" or "startup-audit") read, replacing that source's earlier ones. They are a
// gauge, not ktracer_findings_total: they describe this boot or the ones
// before it, once, rather than count what happens while ktracer runs.
func (m *Metrics) SetStartupFindings(source string, findings []*decoder.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.startup {
		if k.source == source {
			delete(m.startup, k)
		}
	}
	for _, f := range findings {
		m.startup[startupKey{source, findingKey{f.Rule, m.findingModule(f)}}]++
	}
}

// AddStartupErrors counts n errors of a startup source ("check", "boot",
// "history"): a source that failed, or parts of it that could not be read.
func (m *Metrics) AddStartupErrors(source string, n int) {
	if n <= 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.srcErrs[source] += uint64(n)
}

// Observe counts one event; it is a session sink and never fails.
func (m *Metrics) Observe(ev *decoder.Event) error {
	switch ev.Kind {
	case decoder.KindInitcall, decoder.KindFinding:
	default:
		return nil
	}
	if ev.Source != "" {
		return nil // a startup source's: SetStartupFindings counts it
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if ev.Kind == decoder.KindFinding {
		m.findings[findingKey{ev.Rule, m.findingModule(ev)}]++
		return nil
	}
	mod := m.moduleLabel(ev.Module)
	result := "ok"
	switch {
	case ev.Ret > 0:
		result = "positive"
	case ev.Ret < 0:
		result = "failed"
	}
	m.inits[initKey{mod, result}]++
	m.lastDur[mod] = ev.Duration
	s := ev.Duration.Seconds()
	h := &m.dur
	h.count++
	h.sum += s
	if i := sort.SearchFloat64s(InitDurationBuckets, s); i < len(h.buckets) {
		h.buckets[i]++ // SearchFloat64s finds the first bound >= s: le semantics
	}
	return nil
}

// findingModule is a finding's module label: the module, "built-in" for
// code built into the kernel (a function but no module: the same spelling
// as ktracer_module_inits_total), and empty for a machine-wide finding
// about no code at all (kdump, a panic loop, a boot parameter).
func (m *Metrics) findingModule(ev *decoder.Event) string {
	if ev.Module == "" && ev.Function == "" {
		return ""
	}
	return m.moduleLabel(ev.Module)
}

// moduleLabel bounds the module label; code without a module is built-in.
func (m *Metrics) moduleLabel(name string) string {
	if name == "" {
		return BuiltinModule
	}
	name = LabelValue(name) // before the cap, so two invalid spellings share one series
	if m.modules[name] {
		return name
	}
	if len(m.modules) >= m.opts.MaxModules {
		return OtherModule
	}
	m.modules[name] = true
	return name
}

// Describe sends every metric the collector may report; which of them exist
// (self-metrics, boot and kdump facts) is decided at scrape time.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

// Collect reports the current values. It never panics: label values are
// made valid UTF-8 (a module name is kernel bytes, not text), a sample that
// still cannot be built is skipped and counted in
// ktracer_metric_collect_errors_total, and a panic in a callback is
// recovered here, so one bad value costs one sample, never the families
// after it (client_golang would drop the rest of the scrape and still
// answer 200).
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	e := emitter{ch: ch, errs: &m.collectErrors}
	defer func() {
		if r := recover(); r != nil {
			m.collectErrors.Add(1)
		}
	}()
	e.metric(descCollectErrors, prometheus.CounterValue, float64(m.collectErrors.Load()))
	b := m.opts.Build
	e.metric(descBuildInfo, prometheus.GaugeValue, 1, b.Version, b.Revision, b.GoOS, b.GoArch, b.GoVersion, b.EBPFVersion)
	if m.opts.Self != nil {
		m.collectSelf(e)
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	for _, h := range m.hooks {
		v, method := 0.0, "none"
		if h.Attached {
			v, method = 1, h.Method
		}
		e.metric(descProbeAttached, prometheus.GaugeValue, v, h.Name, method)
	}
	for k, n := range m.inits {
		e.metric(descModuleInits, prometheus.CounterValue, float64(n), k.module, k.result)
	}
	for mod, d := range m.lastDur {
		e.metric(descInitLastDuration, prometheus.GaugeValue, d.Seconds(), mod)
	}
	cum := make(map[float64]uint64, len(InitDurationBuckets))
	var c uint64
	for i, le := range InitDurationBuckets {
		c += m.dur.buckets[i]
		cum[le] = c
	}
	e.histogram(descInitDuration, m.dur.count, m.dur.sum, cum)
	for k, n := range m.findings {
		e.metric(descFindings, prometheus.CounterValue, float64(n), string(k.rule), k.module)
	}
	for src, n := range m.srcErrs {
		e.metric(descStartupErrors, prometheus.CounterValue, float64(n), src)
	}
	for k, n := range m.startup {
		e.metric(descStartupFindings, prometheus.GaugeValue, float64(n), k.source, string(k.rule), k.module)
	}
	if bf := m.boot; bf != nil {
		e.metric(descBootTimeToInit, prometheus.GaugeValue, bf.TimeToInit.Seconds())
		e.metric(descBootInitcalls, prometheus.GaugeValue, float64(bf.BuiltinInitcalls))
		if bf.SlowestFunction != "" {
			e.metric(descBootSlowest, prometheus.GaugeValue, bf.SlowestDuration.Seconds(), bf.SlowestFunction)
		}
	}
	if k := m.kdump; k != nil {
		e.metric(descKdumpLoaded, prometheus.GaugeValue, boolFloat(k.CrashKernelLoaded))
		e.metric(descKdumpReserved, prometheus.GaugeValue, float64(k.ReservedBytes))
		e.metric(descKdumpRecommended, prometheus.GaugeValue, float64(k.RecommendedBytes))
		e.metric(descKdumpReady, prometheus.GaugeValue, boolFloat(k.Ready), k.Reason)
	}
}

// collectSelf reports the self-metrics; a panic in the Self callback loses
// them alone.
func (m *Metrics) collectSelf(e emitter) {
	defer func() {
		if r := recover(); r != nil {
			m.collectErrors.Add(1)
		}
	}()
	s := m.opts.Self()
	e.metric(descRecordsRead, prometheus.CounterValue, float64(s.RecordsRead))
	e.metric(descRecordsLost, prometheus.CounterValue, float64(s.LostKernel), "kernel")
	e.metric(descRecordsLost, prometheus.CounterValue, float64(s.LostUser), "userspace")
	e.metric(descDecodeErrors, prometheus.CounterValue, float64(s.DecodeErrors))
	e.metric(descScanTruncated, prometheus.CounterValue, float64(s.ScanTruncated))
	e.metric(descOverflow, prometheus.CounterValue, float64(s.Overflow))
	e.metric(descOrphanSymbols, prometheus.CounterValue, float64(s.OrphanSymbols))
	e.metric(descRingFill, prometheus.GaugeValue, s.RingFill)
}

// emitter builds const metrics without Must: label values go through
// LabelValue, and a sample that fails anyway is counted, not sent.
type emitter struct {
	ch   chan<- prometheus.Metric
	errs *atomic.Uint64
}

func (e emitter) metric(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
	for i := range labels {
		labels[i] = LabelValue(labels[i])
	}
	mt, err := prometheus.NewConstMetric(d, t, v, labels...)
	if err != nil {
		e.errs.Add(1)
		return
	}
	e.ch <- mt
}

func (e emitter) histogram(d *prometheus.Desc, count uint64, sum float64, buckets map[float64]uint64, labels ...string) {
	for i := range labels {
		labels[i] = LabelValue(labels[i])
	}
	mt, err := prometheus.NewConstHistogram(d, count, sum, buckets, labels...)
	if err != nil {
		e.errs.Add(1)
		return
	}
	e.ch <- mt
}

// LabelValue makes a label value valid UTF-8, replacing each invalid byte
// run with U+FFFD, the way Prometheus requires label values to be.
func LabelValue(s string) string {
	return strings.ToValidUTF8(s, "\uFFFD")
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
