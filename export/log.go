package export

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/ktracer/ktracer/decoder"
)

// NewLogHandler returns a slog handler for a --log.format: "json" (one
// object per line) or "logfmt" (key=value). Times are RFC 3339 with
// nanoseconds in both, as in watch --output json.
func NewLogHandler(format string, w io.Writer, level slog.Leveler) (slog.Handler, error) {
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey && len(groups) == 0 && a.Value.Kind() == slog.KindTime {
			return slog.String(slog.TimeKey, a.Value.Time().UTC().Format(time.RFC3339Nano))
		}
		return a
	}}
	switch format {
	case "json":
		return slog.NewJSONHandler(w, opts), nil
	case "logfmt":
		return slog.NewTextHandler(w, opts), nil
	}
	return nil, fmt.Errorf("unknown log format %q (want json or logfmt)", format)
}

// ParseLogLevel reads debug, info, warn or error.
func ParseLogLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("unknown log level %q (want debug, info, warn or error)", s)
	}
	return l, nil
}

// EventLog writes one structured log line per event and finding, with the
// fields of watch --output json (event, module, function, rule, ...), plus
// slog's level and a short msg. The record's time is the event's time.
type EventLog struct {
	h     slog.Handler
	clock Clock
}

// NewEventLog logs events through h.
func NewEventLog(h slog.Handler, clock Clock) *EventLog { return &EventLog{h: h, clock: clock} }

// Attached logs one line per hook: how it attached, or why it did not.
func (l *EventLog) Attached(hooks []Hook) error {
	for _, hk := range hooks {
		level, msg := slog.LevelInfo, "hook attached"
		attrs := []slog.Attr{slog.String("event", "attached"), slog.String("hook", hk.Name), slog.Bool("attached", hk.Attached)}
		if hk.Attached {
			attrs = append(attrs, slog.String("method", hk.Method), slog.String("target", hk.Target))
		} else {
			level, msg = slog.LevelWarn, "hook not attached"
			attrs = append(attrs, slog.String("error", hk.Error))
		}
		if err := l.emit(time.Now(), level, msg, attrs); err != nil {
			return err
		}
	}
	return nil
}

// Write logs one event; it is a session sink. Its error is the log
// writer's (disk full, closed pipe).
func (l *EventLog) Write(ev *decoder.Event) error {
	level := slog.LevelInfo
	switch {
	case ev.Kind == decoder.KindInitPointerIgnored:
		level = slog.LevelDebug
	case ev.Kind == decoder.KindFinding && ev.Severity == decoder.SeverityError:
		level = slog.LevelError
	case ev.Kind == decoder.KindFinding && ev.Severity == decoder.SeverityWarning:
		level = slog.LevelWarn
	}
	return l.emit(l.clock(ev.MonoNS), level, summary(ev), eventAttrs(ev))
}

func (l *EventLog) emit(t time.Time, level slog.Level, msg string, attrs []slog.Attr) error {
	if !l.h.Enabled(context.Background(), level) {
		return nil
	}
	r := slog.NewRecord(t, level, msg, 0)
	r.AddAttrs(attrs...)
	return l.h.Handle(context.Background(), r)
}

// eventAttrs mirrors jsonLine in writer.go field for field (log_test.go
// holds them to it), so one query language fits watch and the daemon.
func eventAttrs(ev *decoder.Event) []slog.Attr {
	a := []slog.Attr{
		slog.String("event", string(ev.Kind)),
		slog.Uint64("cpu", uint64(ev.CPU)),
		slog.Uint64("pid", uint64(ev.PID)),
		slog.Uint64("tid", uint64(ev.TID)),
	}
	str := func(k, v string) {
		if v != "" {
			a = append(a, slog.String(k, v))
		}
	}
	str("module", ev.Module)
	str("function", ev.Function)
	if ev.Address != 0 {
		str("address", "0x"+strconv.FormatUint(ev.Address, 16))
	}
	withRet := ev.Kind == decoder.KindInitcall || ev.Kind == decoder.KindModuleInitFailed ||
		(ev.Kind == decoder.KindFinding && ev.Rule.HasRet())
	if withRet {
		a = append(a, slog.Int("ret", int(ev.Ret)))
	}
	str("errno", ev.Errno)
	if ev.Kind == decoder.KindInitcall || (ev.Kind == decoder.KindFinding && ev.Duration > 0) {
		a = append(a, slog.Int64("duration_ns", ev.Duration.Nanoseconds()))
	}
	if ev.Kind == decoder.KindModuleLoad || ev.Kind == decoder.KindModuleAlreadyLoaded {
		a = append(a, slog.Int("symbols", ev.Symbols))
	}
	str("location", ev.Location)
	str("caller", ev.Caller)
	str("reason", ev.Reason)
	str("task", ev.Task)
	str("symbol", ev.Symbol)
	str("kernel_crc", ev.KernelCRC)
	str("module_crc", ev.ModuleCRC)
	str("vermagic", ev.Vermagic)
	str("kernel_vermagic", ev.KernelVermagic)
	if ev.CrashKernelLoaded != nil {
		a = append(a, slog.Bool("crash_kernel_loaded", *ev.CrashKernelLoaded))
	}
	str("source", ev.Source)
	if ev.Kind == decoder.KindFinding {
		str("rule", string(ev.Rule))
		str("severity", ev.Severity.String())
		if ev.Rule.HasValue() {
			a = append(a, slog.Int64("value", ev.Value))
		}
		str("message", ev.Message)
	}
	return a
}

// summary is the short msg a person reads in journalctl; the detail is in
// the fields.
func summary(ev *decoder.Event) string {
	mod := ev.Module
	if mod == "" {
		mod = BuiltinModule
	}
	switch ev.Kind {
	case decoder.KindModuleLoad:
		return mod + " loading"
	case decoder.KindInitcall:
		return ev.Function + " returned " + strconv.Itoa(int(ev.Ret))
	case decoder.KindModuleLive:
		return mod + " live"
	case decoder.KindModuleInitFailed:
		return mod + " init failed"
	case decoder.KindModuleFree:
		return mod + " freed"
	case decoder.KindFinding:
		return string(ev.Rule) + " in " + mod
	case decoder.KindInitPointerIgnored:
		return "init pointer not reported in " + mod
	case decoder.KindModuleAlreadyLoaded:
		return mod + " already loaded"
	}
	return string(ev.Kind)
}

// LogFile is a log file that can be reopened, so logrotate can move it and
// send SIGHUP. Writes and Reopen may come from different goroutines.
type LogFile struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

// OpenLogFile opens path for appending, creating it 0640.
func OpenLogFile(path string) (*LogFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, err
	}
	return &LogFile{path: path, f: f}, nil
}

func (l *LogFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Write(p)
}

// Reopen opens the path afresh; on failure the old file is kept, so no
// line is lost to a transient error.
func (l *LogFile) Reopen() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	l.mu.Lock()
	old := l.f
	l.f = f
	l.mu.Unlock()
	return old.Close()
}

// Close closes the file.
func (l *LogFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}
