package export

import (
	"sort"
	"sync"
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
	RingFill      float64 // fraction of the ring buffer waiting to be read
}

// BuildInfo labels ktracer_build_info.
type BuildInfo struct {
	Version     string
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

// KdumpFacts is what ktracer check knows about crash dumping.
type KdumpFacts struct {
	CrashKernelLoaded bool   // /sys/kernel/kexec_crash_loaded
	ReservedBytes     uint64 // /sys/kernel/kexec_crash_size
	RecommendedBytes  uint64 // the estimate for this machine's RAM
}

// Ready is what an operator wants to know: a crash would leave a dump.
func (k KdumpFacts) Ready() bool {
	return k.CrashKernelLoaded && k.ReservedBytes > 0 && k.ReservedBytes >= k.RecommendedBytes
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
	durs     map[string]*histogram
	findings map[findingKey]uint64
	startup  map[startupKey]int
	boot     *BootFacts
	kdump    *KdumpFacts
}

type initKey struct{ module, result string }

type findingKey struct {
	rule     decoder.Rule
	severity decoder.Severity
	module   string
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
		"ktracer's version and what it was built with; always 1.", []string{"version", "goversion", "ebpf_version"}, nil)
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
	descRingFill = prometheus.NewDesc("ktracer_ringbuf_fill_ratio",
		"Fraction of the BPF ring buffer waiting to be read (0 to 1); near 1, records are about to be lost.", nil, nil)
	descModuleInits = prometheus.NewDesc("ktracer_module_inits_total",
		"Module init functions that returned, by result: ok (0), positive (> 0, a broken rule) or failed (negative errno).", []string{"module", "result"}, nil)
	descInitDuration = prometheus.NewDesc("ktracer_module_init_duration_seconds",
		"How long module init functions ran.", []string{"module"}, nil)
	descFindings = prometheus.NewDesc("ktracer_findings_total",
		"Broken rules seen while ktracer runs, by rule, severity and module (empty for a built-in initcall).", []string{"rule", "severity", "module"}, nil)

	descStartupFindings = prometheus.NewDesc("ktracer_startup_findings",
		"Findings read once at start: source=boot (this boot's report: built-in initcalls, boot parameters), source=check (kdump, panics of earlier boots).", []string{"source", "rule", "severity", "module"}, nil)

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
	descKdumpReady = prometheus.NewDesc("ktracer_kdump_ready",
		"Whether a panic would leave a dump (1): crash kernel loaded and reservation large enough.", nil, nil)
)

var allDescs = []*prometheus.Desc{
	descBuildInfo, descProbeAttached, descRecordsRead, descRecordsLost, descDecodeErrors,
	descScanTruncated, descRingFill, descModuleInits, descInitDuration, descFindings, descStartupFindings,
	descBootTimeToInit, descBootInitcalls, descBootSlowest,
	descKdumpLoaded, descKdumpReserved, descKdumpRecommended, descKdumpReady,
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
		durs:     map[string]*histogram{},
		findings: map[findingKey]uint64{},
		startup:  map[startupKey]int{},
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
		m.startup[startupKey{source, findingKey{f.Rule, f.Severity, m.moduleLabel(f.Module, true)}}]++
	}
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
		m.findings[findingKey{ev.Rule, ev.Severity, m.moduleLabel(ev.Module, true)}]++
		return nil
	}
	mod := m.moduleLabel(ev.Module, false)
	result := "ok"
	switch {
	case ev.Ret > 0:
		result = "positive"
	case ev.Ret < 0:
		result = "failed"
	}
	m.inits[initKey{mod, result}]++
	h := m.durs[mod]
	if h == nil {
		h = &histogram{buckets: make([]uint64, len(InitDurationBuckets))}
		m.durs[mod] = h
	}
	s := ev.Duration.Seconds()
	h.count++
	h.sum += s
	if i := sort.SearchFloat64s(InitDurationBuckets, s); i < len(h.buckets) {
		h.buckets[i]++ // SearchFloat64s finds the first bound >= s: le semantics
	}
	return nil
}

// moduleLabel bounds the module label. A finding without a module (a
// built-in initcall, a machine-wide one such as kdump) keeps it empty.
func (m *Metrics) moduleLabel(name string, finding bool) string {
	if name == "" {
		if finding {
			return ""
		}
		return BuiltinModule
	}
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

// Collect reports the current values.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	b := m.opts.Build
	ch <- prometheus.MustNewConstMetric(descBuildInfo, prometheus.GaugeValue, 1, b.Version, b.GoVersion, b.EBPFVersion)
	if m.opts.Self != nil {
		s := m.opts.Self()
		ch <- prometheus.MustNewConstMetric(descRecordsRead, prometheus.CounterValue, float64(s.RecordsRead))
		ch <- prometheus.MustNewConstMetric(descRecordsLost, prometheus.CounterValue, float64(s.LostKernel), "kernel")
		ch <- prometheus.MustNewConstMetric(descRecordsLost, prometheus.CounterValue, float64(s.LostUser), "userspace")
		ch <- prometheus.MustNewConstMetric(descDecodeErrors, prometheus.CounterValue, float64(s.DecodeErrors))
		ch <- prometheus.MustNewConstMetric(descScanTruncated, prometheus.CounterValue, float64(s.ScanTruncated))
		ch <- prometheus.MustNewConstMetric(descRingFill, prometheus.GaugeValue, s.RingFill)
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	for _, h := range m.hooks {
		v, method := 0.0, "none"
		if h.Attached {
			v, method = 1, h.Method
		}
		ch <- prometheus.MustNewConstMetric(descProbeAttached, prometheus.GaugeValue, v, h.Name, method)
	}
	for k, n := range m.inits {
		ch <- prometheus.MustNewConstMetric(descModuleInits, prometheus.CounterValue, float64(n), k.module, k.result)
	}
	for mod, h := range m.durs {
		cum := make(map[float64]uint64, len(InitDurationBuckets))
		var c uint64
		for i, le := range InitDurationBuckets {
			c += h.buckets[i]
			cum[le] = c
		}
		ch <- prometheus.MustNewConstHistogram(descInitDuration, h.count, h.sum, cum, mod)
	}
	for k, n := range m.findings {
		ch <- prometheus.MustNewConstMetric(descFindings, prometheus.CounterValue, float64(n), string(k.rule), k.severity.String(), k.module)
	}
	for k, n := range m.startup {
		ch <- prometheus.MustNewConstMetric(descStartupFindings, prometheus.GaugeValue, float64(n), k.source, string(k.rule), k.severity.String(), k.module)
	}
	if bf := m.boot; bf != nil {
		ch <- prometheus.MustNewConstMetric(descBootTimeToInit, prometheus.GaugeValue, bf.TimeToInit.Seconds())
		ch <- prometheus.MustNewConstMetric(descBootInitcalls, prometheus.GaugeValue, float64(bf.BuiltinInitcalls))
		if bf.SlowestFunction != "" {
			ch <- prometheus.MustNewConstMetric(descBootSlowest, prometheus.GaugeValue, bf.SlowestDuration.Seconds(), bf.SlowestFunction)
		}
	}
	if k := m.kdump; k != nil {
		ch <- prometheus.MustNewConstMetric(descKdumpLoaded, prometheus.GaugeValue, boolFloat(k.CrashKernelLoaded))
		ch <- prometheus.MustNewConstMetric(descKdumpReserved, prometheus.GaugeValue, float64(k.ReservedBytes))
		ch <- prometheus.MustNewConstMetric(descKdumpRecommended, prometheus.GaugeValue, float64(k.RecommendedBytes))
		ch <- prometheus.MustNewConstMetric(descKdumpReady, prometheus.GaugeValue, boolFloat(k.Ready()))
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
