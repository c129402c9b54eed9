package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"

	"github.com/ktracer/ktracer/decoder"
	"github.com/ktracer/ktracer/export"
	"github.com/ktracer/ktracer/tracer"
)

// traceOptions are the flags every tracing command shares.
type traceOptions struct {
	strict  bool
	verbose bool
	methods []string
	record  string
	// startupAudit recovers the modules loaded before ktracer started.
	startupAudit bool
}

func addTraceFlags(f *pflag.FlagSet, o *traceOptions) {
	f.BoolVar(&o.strict, "strict", false, "fail when any hook cannot be attached, not only the required ones")
	f.BoolVarP(&o.verbose, "verbose", "v", false, "print how each hook was attached, or why not, and init pointers not reported")
	f.StringVar(&o.record, "record", "", "also write every raw record to this file, for offline replay and bug reports")
	f.BoolVar(&o.startupAudit, "startup-audit", true, "at start, recover the modules already loaded (their __init names and former init text, from sysfs and their files) and scan their data for pointers into freed init text")
	f.StringSliceVar(&o.methods, "methods", nil, "attach only by these methods (raw_tracepoint, fentry, fexit, kprobe, kretprobe); default: the best each hook allows")
}

// session wires one tracer through the analyzer to the event sinks: the
// data path bpf -> tracer -> decoder -> export that watch and daemon share.
type session struct {
	t        *tracer.Tracer
	an       *decoder.Analyzer
	verbose  bool
	sinks    []func(*decoder.Event) error
	record   *bufio.Writer
	recFile  *os.File
	findings map[decoder.Severity]int
	events   []decoder.Event
}

// newSession attaches the tracer. Its errors are exitErrors, ready for main.
func newSession(o traceOptions, cfg decoder.Config) (*session, error) {
	topts := tracer.Options{Strict: o.strict}
	for _, m := range o.methods {
		method, err := tracer.ParseMethod(m)
		if err != nil {
			return nil, &exitError{exitFailure, fmt.Errorf("--methods: %w", err)}
		}
		topts.Methods = append(topts.Methods, method)
	}
	s := &session{verbose: o.verbose, findings: map[decoder.Severity]int{}}
	if o.record != "" {
		f, err := os.Create(o.record)
		if err != nil {
			return nil, &exitError{exitFailure, fmt.Errorf("--record: %w", err)}
		}
		s.recFile, s.record = f, bufio.NewWriter(f)
	}
	t, err := tracer.New(topts)
	if err != nil {
		s.closeRecord()
		var ue *tracer.UnsupportedError
		if errors.As(err, &ue) && o.verbose && ue.Hooks != nil {
			fmt.Fprint(os.Stderr, tracer.Describe(ue.Hooks))
		}
		return nil, &exitError{exitFailure, err}
	}
	if o.verbose {
		fmt.Fprint(os.Stderr, tracer.Describe(t.Hooks()))
	}
	if cfg.Kernel == nil {
		cfg.Kernel = decoder.NewLazyKernelSymbols(func() (io.ReadCloser, error) { return os.Open("/proc/kallsyms") })
	}
	s.t, s.an = t, decoder.NewAnalyzer(cfg)
	return s, nil
}

// addSink sends every event (findings included) to fn, in order.
func (s *session) addSink(fn func(*decoder.Event) error) { s.sinks = append(s.sinks, fn) }

// run reads records until ctx is done or the tracer is drained.
func (s *session) run(ctx context.Context) error {
	return s.t.Read(ctx, s.handle)
}

func (s *session) handle(raw []byte) error {
	if s.record != nil {
		if err := decoder.WriteRecording(s.record, raw); err != nil {
			return fmt.Errorf("--record: %w", err)
		}
	}
	var err error
	s.events, err = s.an.Handle(raw, s.events[:0])
	if err != nil {
		fmt.Fprintln(os.Stderr, "ktracer: skipped record:", err)
	}
	return s.emit(s.events)
}

// emit hands events to the sinks; the quiet kinds only with --verbose.
func (s *session) emit(events []decoder.Event) error {
	for i := range events {
		ev := &events[i]
		switch ev.Kind {
		case decoder.KindFinding:
			s.findings[ev.Severity]++
		case decoder.KindInitPointerIgnored:
			if !s.verbose {
				continue
			}
		case decoder.KindModuleAlreadyLoaded:
			// Said always when something could not be recovered.
			if !s.verbose && ev.Reason == "" {
				continue
			}
		}
		for _, sink := range s.sinks {
			if err := sink(ev); err != nil {
				return err
			}
		}
	}
	return nil
}

// hooks reports how each hook attached, for writers and metrics.
func (s *session) hooks() []export.Hook { return exportHooks(s.t.Hooks()) }

// summary totals the session, including the records the kernel dropped.
func (s *session) summary() (export.Summary, error) {
	st := s.an.Stats()
	counters, err := s.t.Counters()
	return export.Summary{
		ModuleInits: st.ModuleInits, FailedInits: st.FailedInits, Findings: s.findings,
		Lost: counters.Lost, Corrupt: st.Corrupt, IgnoredInitPointers: st.UnattributedInitPointers,
		TruncatedSymbolWalks: counters.SymbolsTruncated,
	}, err
}

// worstAtLeast reports whether a finding at or above sev was seen.
func (s *session) worstAtLeast(sev decoder.Severity) bool {
	for got, n := range s.findings {
		if n > 0 && got >= sev {
			return true
		}
	}
	return false
}

func (s *session) closeRecord() {
	if s.record != nil {
		s.record.Flush()
		s.recFile.Close()
		s.record = nil
	}
}

// close detaches everything and flushes the recording.
func (s *session) close() {
	s.closeRecord()
	s.t.Close()
}

func exportHooks(hs []tracer.HookStatus) []export.Hook {
	out := make([]export.Hook, len(hs))
	for i, h := range hs {
		out[i] = export.Hook{Name: h.Hook, Attached: h.Attached, Method: string(h.Method), Target: h.Target, Degraded: h.Degraded}
		if h.Err != nil && !h.Attached {
			out[i].Error = h.Err.Error()
		}
	}
	return out
}
