package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/ktracer/ktracer/boot"
	"github.com/ktracer/ktracer/check"
	"github.com/ktracer/ktracer/check/history"
	"github.com/ktracer/ktracer/decoder"
	"github.com/ktracer/ktracer/export"
	"github.com/ktracer/ktracer/tracer"
)

// defaultListenAddress is loopback only: exposing kernel module activity to
// the network is the operator's decision. 19436 lies outside the Prometheus
// exporter range 9100-9999, which is fully allocated, and is not in
// /etc/services.
const defaultListenAddress = "127.0.0.1:19436"

type daemonOptions struct {
	traceOptions
	stateDir   string
	root       string
	listen     []string
	webConfig  string
	logFormat  string
	logLevel   string
	logFile    string
	slow       time.Duration
	maxModules int
}

// daemonStart is what a startup source gets: boot report and ktracer check
// results are read once when the daemon starts.
type daemonStart struct {
	Options  daemonOptions
	Metrics  *export.Metrics      // SetBoot, SetKdump
	Registry *prometheus.Registry // for a source's own collector
	Log      *slog.Logger
	// Findings publishes a source's findings (ktracer_startup_findings
	// {source=...}) and logs each like a live one; MonoNS 0 is taken as now.
	Findings func(source string, findings []*decoder.Event)
	// AtCleanStop runs f when the daemon stops on SIGTERM/SIGINT.
	AtCleanStop func(f func() error)
}

// daemonSources are run in order at start, after the hooks are attached.
// More can be added from other files:
//
//	func init() { daemonSources = append(daemonSources, mySource) }
//
// A source that fails is logged and skipped: the live tracing still runs.
var daemonSources = []func(*daemonStart) error{checkSource, historySource, bootSource}

// checkSource publishes ktracer check's kdump facts and findings (panic
// without vmcore, panic loop, kdump sizing), read before this boot is
// added to the history so the previous boots are judged as they ended.
func checkSource(d *daemonStart) error {
	opts := check.DefaultOptions()
	if d.Options.stateDir != "" {
		opts.StateDir = d.Options.stateDir
	}
	r, err := check.Run(os.DirFS(d.Options.root), opts)
	if err != nil {
		d.Metrics.AddStartupErrors("check", 1)
		return fmt.Errorf("ktracer check: %w", err)
	}
	d.Metrics.AddStartupErrors("check", len(r.Errors))
	ready, reason := check.KdumpVerdict(r.Kdump)
	d.Metrics.SetKdump(export.KdumpFacts{
		CrashKernelLoaded: r.Kdump.Loaded,
		ReservedBytes:     r.Kdump.ReservedBytes,
		RecommendedBytes:  r.Kdump.Recommended,
		Ready:             ready,
		Reason:            reason,
	})
	var evs []*decoder.Event
	for _, f := range r.Findings {
		evs = append(evs, &decoder.Event{Kind: decoder.KindFinding, Rule: f.Rule, Severity: f.Severity, Value: f.Value, Message: f.Message})
	}
	d.Findings("check", evs)
	for _, e := range r.Errors {
		d.Log.Warn("ktracer check: a source could not be read; the rest is reported", "source", e.Source, "error", e.Err)
	}
	return nil
}

// historySource records this boot in the state file, and its clean end on
// SIGTERM; a boot that never gets one ended in a panic or a reset, which
// the next start's check counts towards a panic loop.
func historySource(d *daemonStart) error {
	if d.Options.stateDir == "" {
		return nil
	}
	rec, _, err := history.Start(d.Options.hostPath(d.Options.stateDir))
	if err != nil {
		return fmt.Errorf("boot history (--state-dir %s): %w", d.Options.stateDir, err)
	}
	d.AtCleanStop(rec.MarkClean)
	return nil
}

// bootSource publishes the boot report: time to init, built-in initcalls,
// the slowest one, and its findings (built-in inits, boot parameters).
func bootSource(d *daemonStart) error {
	in := boot.Input{Root: os.DirFS(d.Options.root)}
	if b, err := readKernelLog(); err == nil {
		in.Log = bytes.NewReader(b)
	}
	if b, err := readLiveTrace(in.Root); err == nil {
		in.Trace = bytes.NewReader(b)
	}
	r, err := boot.Analyze(in, boot.Options{Slow: d.Options.slow})
	if err != nil {
		d.Metrics.AddStartupErrors("boot", 1)
		return fmt.Errorf("boot report: %w", err)
	}
	if r.Recorded() {
		facts := export.BootFacts{TimeToInit: r.TimeToInit}
		for _, ic := range r.Initcalls {
			if ic.Module != "" {
				continue
			}
			facts.BuiltinInitcalls++
			if ic.Duration > facts.SlowestDuration {
				facts.SlowestFunction, facts.SlowestDuration = ic.Function, ic.Duration
			}
		}
		d.Metrics.SetBoot(facts)
	} else {
		d.Log.Info("no boot record: ktracer_boot_* metrics are absent", "notes", strings.Join(r.Notes, "; "))
	}
	var evs []*decoder.Event
	for _, f := range r.Findings {
		evs = append(evs, &decoder.Event{Kind: decoder.KindFinding, Rule: f.Rule, Severity: f.Severity, Module: f.Module, Function: f.Function, Value: f.Value, Message: f.Message})
	}
	d.Findings("boot", evs)
	return nil
}

func init() { commands = append(commands, newDaemonCmd) }

func newDaemonCmd() *cobra.Command {
	var o daemonOptions
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Trace module loads and initcalls continuously; serve Prometheus metrics and log every event",
		Long: `Attach every hook live tracing has and keep them attached until SIGTERM.

Metrics are served on --web.listen-address at /metrics, health at /healthz;
TLS and basic auth come from --web.config.file (the Prometheus exporter-toolkit
format). Every event and finding is logged as one structured line to stderr
(for journald) or --log.file, which SIGHUP reopens. Under systemd
(Type=notify) readiness is signalled once all hooks are attached.`,
		Example: "  sudo ktracer daemon\n  sudo ktracer daemon --web.listen-address :19436 --web.config.file /etc/ktracer/web.yml --log.format json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDaemon(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&o.listen, "web.listen-address", []string{defaultListenAddress}, "addresses to serve /metrics and /healthz on (repeatable)")
	f.StringVar(&o.webConfig, "web.config.file", "", "TLS and basic auth configuration (exporter-toolkit web config file)")
	f.StringVar(&o.logFormat, "log.format", "logfmt", "log line format: logfmt or json")
	f.StringVar(&o.logLevel, "log.level", "info", "least severe log level written: debug, info, warn or error")
	f.StringVar(&o.logFile, "log.file", "", "write the log to this file instead of stderr; SIGHUP reopens it")
	f.DurationVar(&o.slow, "slow", 100*time.Millisecond, "init duration above which slow-init is reported")
	f.StringVar(&o.stateDir, "state-dir", history.DefaultDir, "keep the boot history (panic-loop detection) and the __init names of modules loaded while running (init-symbols.json, read back after a restart) here, inside --root; empty: do not")
	f.StringVar(&o.root, "root", "/", "the host's root directory: its /proc, /sys (kdump, pstore), /lib/modules and --state-dir are read under it (a container with the host mounted at /host: --root=/host)")
	f.IntVar(&o.maxModules, "metrics.max-modules", export.DefaultMaxModules, "distinct module label values; further modules are counted as module=\"other\"")
	addTraceFlags(f, &o.traceOptions)
	return cmd
}

// runDaemon checks everything that can be wrong with the configuration
// before attaching anything, so a bad flag leaves nothing half-started.
func runDaemon(ctx context.Context, o daemonOptions) error {
	fail := func(format string, a ...any) error { return &exitError{exitFailure, fmt.Errorf(format, a...)} }
	if o.slow <= 0 {
		return fail("--slow must be positive, got %s", o.slow)
	}
	if o.maxModules <= 0 {
		return fail("--metrics.max-modules must be positive, got %d", o.maxModules)
	}
	level, err := export.ParseLogLevel(o.logLevel)
	if err != nil {
		return fail("--log.level: %w", err)
	}
	if len(o.listen) == 0 {
		return fail("--web.listen-address: at least one address is needed")
	}
	if o.webConfig != "" {
		if err := web.Validate(o.webConfig); err != nil {
			return fail("--web.config.file %s: %w", o.webConfig, err)
		}
	}
	if _, err := export.NewLogHandler(o.logFormat, io.Discard, level); err != nil {
		return fail("--log.format: %w", err) // before --log.file creates a file
	}
	var logOut io.Writer = os.Stderr
	var logFile *export.LogFile
	if o.logFile != "" {
		if logFile, err = export.OpenLogFile(o.logFile); err != nil {
			return fail("--log.file: %w", err)
		}
		defer logFile.Close()
		logOut = logFile
	}
	handler, err := export.NewLogHandler(o.logFormat, logOut, level)
	if err != nil {
		return fail("--log.format: %w", err)
	}
	log := slog.New(handler)
	// The boot history is written after attaching: find an unusable state
	// directory now, before any probe exists.
	if st, err := os.Stat(o.root); err != nil || !st.IsDir() || !filepath.IsAbs(o.root) {
		return fail("--root %s is not an absolute path to a directory", o.root)
	}
	if o.stateDir != "" && !filepath.IsAbs(o.stateDir) {
		return fail("--state-dir must be an absolute path (inside --root), got %q", o.stateDir)
	}
	if o.stateDir != "" {
		if err := checkWritableDir(o.hostPath(o.stateDir)); err != nil {
			return fail("--state-dir: %w", err)
		}
	}

	// Listen before attaching: a port in use is a config error, reported
	// before any probe exists.
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for _, addr := range o.listen {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return fail("--web.listen-address: %w", err)
		}
		listeners = append(listeners, l)
	}

	s, err := newSession(o.traceOptions, decoder.Config{SlowInit: o.slow})
	if err != nil {
		return err
	}
	defer s.close()
	events := export.NewEventLog(handler, tracer.MonoToWall())
	if err := events.Attached(s.hooks()); err != nil {
		return fail("log: %w", err)
	}

	// The reader goroutine publishes the analyzer's counters here; the
	// analyzer itself is not safe to read from HTTP goroutines.
	var records, corrupt, lostUser, overflow, orphans atomic.Uint64
	metrics := export.NewMetrics(export.MetricsOptions{
		Build:      buildInfo(),
		MaxModules: o.maxModules,
		Self: func() export.SelfStats {
			c, err := s.t.Counters()
			if err != nil {
				log.Warn("cannot read the BPF counters", "error", err)
			}
			return export.SelfStats{
				RecordsRead: records.Load() + corrupt.Load(), DecodeErrors: corrupt.Load(),
				LostKernel: c.Lost, LostUser: lostUser.Load(), ScanTruncated: c.ScanTruncated,
				Overflow: overflow.Load(), OrphanSymbols: orphans.Load(),
				RingFill: s.t.RingBufferFill(),
			}
		},
	})
	metrics.SetHooks(s.hooks())
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// A log line that cannot be written must not stop the tracing: it is
	// counted as lost in user space, and said once on stderr.
	var warnedLog atomic.Bool
	logEvent := func(ev *decoder.Event) error {
		if err := events.Write(ev); err != nil {
			lostUser.Add(1)
			if !warnedLog.Swap(true) {
				fmt.Fprintln(os.Stderr, "ktracer: cannot write the log, events are being dropped:", err)
			}
		}
		return nil
	}
	s.addSink(metrics.Observe)
	s.addSink(logEvent)
	stateDir := ""
	if o.stateDir != "" {
		stateDir = o.hostPath(o.stateDir)
	}
	initState := newInitState(o.root, stateDir, log)
	s.addSink(func(ev *decoder.Event) error {
		if ev.Kind == decoder.KindModuleLive || ev.Kind == decoder.KindModuleFree {
			initState.save(s.an)
		}
		return nil
	})

	var atCleanStop []func() error
	start := &daemonStart{Options: o, Metrics: metrics, Registry: reg, Log: log,
		Findings: func(source string, evs []*decoder.Event) {
			metrics.SetStartupFindings(source, evs)
			for _, ev := range evs {
				if ev.MonoNS == 0 {
					ev.MonoNS = monoNow()
				}
				logEvent(ev)
			}
		},
		AtCleanStop: func(f func() error) { atCleanStop = append(atCleanStop, f) },
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	var reading atomic.Bool
	reading.Store(true)
	readDone := make(chan error, 1)
	go func() {
		defer reading.Store(false)
		// On this goroutine: the analyzer is not shared.
		if o.startupAudit {
			line, findings, err := s.startupAudit(o.root, initState.load())
			if err != nil {
				log.Warn("startup audit failed; continuing with live tracing", "error", err)
			} else {
				log.Info(line)
				// ktracer_startup_findings{source="startup-audit"}: a
				// restart must not count the same finding again.
				metrics.SetStartupFindings(decoder.SourceStartupAudit, findings)
			}
			initState.save(s.an)
		}
		readDone <- s.t.Read(ctx, func(raw []byte) error {
			err := s.handle(raw)
			st := s.an.Stats()
			records.Store(st.Records)
			corrupt.Store(st.Corrupt)
			overflow.Store(st.Overflow)
			orphans.Store(st.OrphanSymbols)
			return err
		})
	}()

	server, err := export.NewServer(export.ServerOptions{
		Gatherer: reg, Version: buildInfo().Version, ErrorLog: handler,
		Healthy: func() error {
			if !reading.Load() {
				return errors.New("not reading the ring buffer")
			}
			return nil
		},
	})
	if err != nil {
		return fail("%w", err)
	}
	serveDone := make(chan error, 1)
	go func() {
		serveDone <- web.ServeMultiple(export.ServerListeners(server, listeners), server, &web.FlagConfig{WebListenAddresses: &o.listen, WebConfigFile: &o.webConfig}, log)
	}()

	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		log.Warn("cannot notify systemd of readiness", "error", err)
	}
	log.Info("ktracer daemon ready", "listen", o.listen)

	// After READY: systemd holds udev back until then, and these only add
	// facts about the past. Metrics and the log are safe to share.
	sourcesDone := make(chan struct{})
	go func() {
		defer close(sourcesDone)
		t0 := time.Now()
		for _, src := range daemonSources {
			if err := src(start); err != nil {
				log.Warn("startup source failed; continuing with live tracing", "error", err)
			}
		}
		log.Info("boot report and checks read", "took", time.Since(t0).Round(time.Millisecond).String())
	}()

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	var runErr error
loop:
	for {
		select {
		case <-hup:
			if logFile == nil {
				log.Info("SIGHUP: no --log.file to reopen")
				continue
			}
			if err := logFile.Reopen(); err != nil {
				log.Error("SIGHUP: cannot reopen the log file; still writing to the old one", "file", o.logFile, "error", err)
				continue
			}
			log.Info("SIGHUP: log file reopened", "file", o.logFile)
		case <-ctx.Done():
			break loop
		case err := <-readDone:
			readDone <- err // collected again below
			runErr = fmt.Errorf("reading stopped: %w", err)
			if err == nil {
				runErr = errors.New("reading stopped")
			}
			break loop
		case err := <-serveDone:
			runErr = fmt.Errorf("web server: %w", err)
			serveDone <- nil
			break loop
		}
	}

	// Stop serving first (Collect reads the tracer), then stop reading,
	// then detach (deferred s.close).
	daemon.SdNotify(false, daemon.SdNotifyStopping)
	log.Info("stopping")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	server.Shutdown(shutdownCtx)
	stop()
	if err := <-readDone; err != nil && runErr == nil {
		runErr = err
	}
	if runErr != nil {
		return &exitError{exitFailure, runErr}
	}
	<-sourcesDone // atCleanStop is complete
	for _, f := range atCleanStop {
		if err := f(); err != nil {
			log.Error("clean stop", "error", err)
		}
	}
	log.Info("detached")
	return nil
}

// hostPath is p (absolute) on the host, under --root.
func (o daemonOptions) hostPath(p string) string {
	return filepath.Join(o.root, p)
}

func monoNow() uint64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}

// checkWritableDir creates dir if needed and proves a file can be written
// there, as the boot history's atomic rename will need.
func checkWritableDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".ktracer-write-test-*")
	if err != nil {
		return err
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}
