// Package export presents decoder events to people and machines: text and
// JSON-lines writers here, Prometheus metrics elsewhere in the package.
package export

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/ktracer/ktracer/decoder"
)

// Hook is how one kernel hook got attached, as the writers report it.
type Hook struct {
	Name     string `json:"name"`
	Attached bool   `json:"attached"`
	Method   string `json:"method,omitempty"`
	Target   string `json:"target,omitempty"`
	Degraded string `json:"degraded,omitempty"` // what the attached variant gives up
	Error    string `json:"error,omitempty"`
}

// Summary closes a watch session.
type Summary struct {
	ModuleInits uint64
	FailedInits uint64
	Findings    map[decoder.Severity]int
	Lost        uint64 // records the kernel dropped: ring buffer full
	Corrupt     uint64 // records that failed to decode
	// Words pointing into init text that the scan found but that are not
	// function pointers held in a named data object, so not reported.
	IgnoredInitPointers uint64
	// Module loads whose symbol walk hit its bound (kernels without
	// bpf_loop keep a module's first 256 symbols): names may be missing.
	TruncatedSymbolWalks uint64
}

// Writer presents a stream of events.
type Writer interface {
	Attached(hooks []Hook) error
	Write(ev *decoder.Event) error
	Summary(s Summary) error
}

// Clock converts a kernel CLOCK_MONOTONIC timestamp to wall time.
type Clock func(monoNS uint64) time.Time

// NewWriter returns the writer for an --output format: "text" or "json".
func NewWriter(format string, w io.Writer, clock Clock) (Writer, error) {
	switch format {
	case "text":
		return &textWriter{w: w, clock: clock}, nil
	case "json":
		return &jsonWriter{enc: json.NewEncoder(w), clock: clock}, nil
	}
	return nil, fmt.Errorf("unknown output format %q (want text or json)", format)
}

// jsonLine is one JSON object per event; the fields are documented in the
// README. Fields that do not apply to an event are omitted, except ret on
// initcall events, where 0 is meaningful.
type jsonLine struct {
	Time              string `json:"time"`
	Event             string `json:"event"`
	CPU               uint32 `json:"cpu"`
	PID               uint32 `json:"pid"`
	TID               uint32 `json:"tid"`
	Module            string `json:"module,omitempty"`
	Function          string `json:"function,omitempty"`
	Address           string `json:"address,omitempty"`
	Ret               *int32 `json:"ret,omitempty"`
	Errno             string `json:"errno,omitempty"`
	DurationNS        *int64 `json:"duration_ns,omitempty"`
	Symbols           *int   `json:"symbols,omitempty"`
	Location          string `json:"location,omitempty"`
	Caller            string `json:"caller,omitempty"`
	Reason            string `json:"reason,omitempty"`
	Task              string `json:"task,omitempty"`
	Symbol            string `json:"symbol,omitempty"`
	KernelCRC         string `json:"kernel_crc,omitempty"`
	ModuleCRC         string `json:"module_crc,omitempty"`
	Vermagic          string `json:"vermagic,omitempty"`
	KernelVermagic    string `json:"kernel_vermagic,omitempty"`
	Source            string `json:"source,omitempty"`
	CrashKernelLoaded *bool  `json:"crash_kernel_loaded,omitempty"`
	Rule              string `json:"rule,omitempty"`
	Severity          string `json:"severity,omitempty"`
	Value             *int64 `json:"value,omitempty"`
	Message           string `json:"message,omitempty"`
}

type jsonWriter struct {
	enc   *json.Encoder
	clock Clock
}

func (j *jsonWriter) Attached(hooks []Hook) error {
	return j.enc.Encode(struct {
		Event string `json:"event"`
		Hooks []Hook `json:"hooks"`
	}{"attached", hooks})
}

func (j *jsonWriter) Write(ev *decoder.Event) error {
	l := jsonLine{
		Time:              j.clock(ev.MonoNS).Format(time.RFC3339Nano),
		Event:             string(ev.Kind),
		CPU:               ev.CPU,
		PID:               ev.PID,
		TID:               ev.TID,
		Module:            ev.Module,
		Function:          ev.Function,
		Errno:             ev.Errno,
		Location:          ev.Location,
		Caller:            ev.Caller,
		Reason:            ev.Reason,
		Task:              ev.Task,
		Symbol:            ev.Symbol,
		KernelCRC:         ev.KernelCRC,
		ModuleCRC:         ev.ModuleCRC,
		Vermagic:          ev.Vermagic,
		KernelVermagic:    ev.KernelVermagic,
		Source:            ev.Source,
		CrashKernelLoaded: ev.CrashKernelLoaded,
	}
	if ev.Address != 0 {
		l.Address = "0x" + strconv.FormatUint(ev.Address, 16)
	}
	switch ev.Kind {
	case decoder.KindInitcall, decoder.KindModuleInitFailed:
		l.Ret = &ev.Ret
	case decoder.KindModuleLoad, decoder.KindModuleAlreadyLoaded:
		l.Symbols = &ev.Symbols
	case decoder.KindFinding:
		l.Rule, l.Severity, l.Message = string(ev.Rule), ev.Severity.String(), ev.Message
		if ev.Rule.HasValue() {
			l.Value = &ev.Value
		}
		if ev.Rule.HasRet() {
			l.Ret = &ev.Ret
		}
	}
	if ev.Kind == decoder.KindInitcall || (ev.Kind == decoder.KindFinding && ev.Duration > 0) {
		d := ev.Duration.Nanoseconds()
		l.DurationNS = &d
	}
	return j.enc.Encode(&l)
}

func (j *jsonWriter) Summary(s Summary) error {
	return j.enc.Encode(struct {
		Event       string         `json:"event"`
		ModuleInits uint64         `json:"module_inits"`
		FailedInits uint64         `json:"failed_inits"`
		Findings    map[string]int `json:"findings"`
		Lost        uint64         `json:"lost_records"`
		Corrupt     uint64         `json:"corrupt_records"`
		Ignored     uint64         `json:"ignored_init_pointers"`
		Truncated   uint64         `json:"truncated_symbol_walks"`
	}{"summary", s.ModuleInits, s.FailedInits, severityCounts(s.Findings), s.Lost, s.Corrupt, s.IgnoredInitPointers, s.TruncatedSymbolWalks})
}

func severityCounts(m map[decoder.Severity]int) map[string]int {
	out := map[string]int{"error": 0, "warning": 0, "info": 0}
	for sev, n := range m {
		out[sev.String()] = n
	}
	return out
}

type textWriter struct {
	w     io.Writer
	clock Clock
}

func (t *textWriter) Attached(hooks []Hook) error {
	attached := 0
	var missing, degraded []string
	for _, h := range hooks {
		switch {
		case !h.Attached:
			missing = append(missing, h.Name)
		case h.Degraded != "":
			attached++
			degraded = append(degraded, h.Name+" ("+h.Degraded+")")
		default:
			attached++
		}
	}
	line := fmt.Sprintf("ktracer: watching, %d of %d hooks attached", attached, len(hooks))
	if len(missing) > 0 {
		line += "; not attached: " + strings.Join(missing, ", ")
	}
	if len(degraded) > 0 {
		line += "; degraded: " + strings.Join(degraded, ", ")
	}
	if len(missing)+len(degraded) > 0 {
		line += " (-v says why)"
	}
	_, err := decoder.Fprintf(t.w, "%s\n", line)
	return err
}

func (t *textWriter) Write(ev *decoder.Event) error {
	ts := t.clock(ev.MonoNS).Format("15:04:05.000000")
	mod := ev.Module
	if mod == "" {
		mod = "built-in"
	}
	var err error
	switch ev.Kind {
	case decoder.KindModuleLoad:
		_, err = decoder.Fprintf(t.w, "%s %-16s loading, init %s (%d symbols captured)\n", ts, mod, ev.Function, ev.Symbols)
	case decoder.KindInitcall:
		res := strconv.Itoa(int(ev.Ret))
		if ev.Errno != "" {
			res += " (" + ev.Errno + ")"
		}
		_, err = decoder.Fprintf(t.w, "%s %-16s %s returned %s after %s\n", ts, mod, ev.Function, res, formatDuration(ev.Duration))
	case decoder.KindModuleLive:
		_, err = decoder.Fprintf(t.w, "%s %-16s live\n", ts, mod)
	case decoder.KindModuleInitFailed:
		_, err = decoder.Fprintf(t.w, "%s %-16s init failed (%s), module unloaded\n", ts, mod, ev.Errno)
	case decoder.KindModuleFree:
		_, err = decoder.Fprintf(t.w, "%s %-16s freed\n", ts, mod)
	case decoder.KindFinding:
		rule := string(ev.Rule)
		if ev.Source != "" {
			rule += " [" + ev.Source + "]"
		}
		_, err = decoder.Fprintf(t.w, "%s %-16s %s %s: %s\n", ts, mod, strings.ToUpper(ev.Severity.String()), rule, ev.Message)
	case decoder.KindModuleAlreadyLoaded:
		what := fmt.Sprintf("already loaded [%s]: %d symbols", ev.Source, ev.Symbols)
		if ev.Location != "" {
			what += " from " + ev.Location
		}
		if ev.Reason != "" {
			what += "; " + ev.Reason
		}
		_, err = decoder.Fprintf(t.w, "%s %-16s %s\n", ts, mod, what)
	case decoder.KindCrashKexec, decoder.KindEmergencyRestart:
		state := "unknown"
		if ev.CrashKernelLoaded != nil {
			state = map[bool]string{true: "loaded", false: "NOT loaded"}[*ev.CrashKernelLoaded]
		}
		_, err = decoder.Fprintf(t.w, "%s %-16s %s (crash kernel %s)\n", ts, "kernel", ev.Kind, state)
	case decoder.KindInitPointerIgnored:
		src := ""
		if ev.Source != "" {
			src = " [" + ev.Source + "]"
		}
		_, err = decoder.Fprintf(t.w, "%s %-16s %s points into init text (%s): not reported, %s%s\n", ts, mod, ev.Location, ev.Function, ev.Reason, src)
	}
	return err
}

func (t *textWriter) Summary(s Summary) error {
	f := severityCounts(s.Findings)
	_, err := decoder.Fprintf(t.w, "ktracer: %d module inits (%d failed); findings: %d error, %d warning, %d info; %d records lost, %d corrupt\n",
		s.ModuleInits, s.FailedInits, f["error"], f["warning"], f["info"], s.Lost, s.Corrupt)
	if err == nil && s.TruncatedSymbolWalks > 0 {
		_, err = decoder.Fprintf(t.w, "ktracer: %d module loads sent only their first symbols (no bpf_loop on this kernel): some function names may be addresses\n", s.TruncatedSymbolWalks)
	}
	return err
}

func formatDuration(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond).String()
	case d >= time.Millisecond:
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + "ms"
	}
	return strconv.FormatFloat(float64(d)/float64(time.Microsecond), 'f', 0, 64) + "µs"
}
