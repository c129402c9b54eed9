package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ktracer/ktracer/decoder"
	"github.com/ktracer/ktracer/export"
	"github.com/ktracer/ktracer/tracer"
)

type watchOptions struct {
	output  string
	failOn  string
	slow    time.Duration
	linger  time.Duration
	strict  bool
	verbose bool
	methods []string
	record  string
}

func newWatchCmd() *cobra.Command {
	var o watchOptions
	cmd := &cobra.Command{
		Use:   "watch [flags] [-- command [args...]]",
		Short: "Trace module loads and initcalls live; optionally run a command under watch",
		Long: `Trace module loads and initcalls live and report broken rules.

With a command after --, ktracer attaches first, runs the command, collects
the last events, prints a summary and exits with the command's own non-zero
status, else 1 when a finding at or above --fail-on was seen, else 0.
Without a command it runs until interrupted.`,
		Example: "  sudo ktracer watch -- insmod ./mydriver.ko\n  sudo ktracer watch --output json -- modprobe mydriver",
		RunE: func(cmd *cobra.Command, args []string) error {
			return runWatch(cmd, o, args)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.output, "output", "o", "text", "output format: text or json (one object per line)")
	f.StringVar(&o.failOn, "fail-on", "error", "exit 1 when a finding at or above this severity is seen: info, warning or error")
	f.DurationVar(&o.slow, "slow", 100*time.Millisecond, "init duration above which slow-init is reported")
	f.DurationVar(&o.linger, "linger", 200*time.Millisecond, "after the command exits, wait this long for the last events")
	f.BoolVar(&o.strict, "strict", false, "fail when any hook cannot be attached, not only the required ones")
	f.BoolVarP(&o.verbose, "verbose", "v", false, "print how each hook was attached, or why not")
	f.StringVar(&o.record, "record", "", "also write every raw record to this file, for offline replay and bug reports")
	f.StringSliceVar(&o.methods, "methods", nil, "attach only by these methods (raw_tracepoint, fentry, fexit, kprobe, kretprobe); default: the best each hook allows")
	return cmd
}

func runWatch(cmd *cobra.Command, o watchOptions, args []string) error {
	failOn, err := decoder.ParseSeverity(o.failOn)
	if err != nil {
		return &exitError{exitFailure, fmt.Errorf("--fail-on: %w", err)}
	}
	if o.slow <= 0 {
		return &exitError{exitFailure, fmt.Errorf("--slow must be positive, got %s", o.slow)}
	}
	out, err := export.NewWriter(o.output, cmd.OutOrStdout(), tracer.MonoToWall())
	if err != nil {
		return &exitError{exitFailure, fmt.Errorf("--output: %w", err)}
	}
	if len(args) > 0 && cmd.ArgsLenAtDash() != 0 {
		return &exitError{exitFailure, fmt.Errorf("put the command after --: ktracer watch [flags] -- %s", args[0])}
	}

	topts := tracer.Options{Strict: o.strict}
	for _, m := range o.methods {
		method, err := tracer.ParseMethod(m)
		if err != nil {
			return &exitError{exitFailure, fmt.Errorf("--methods: %w", err)}
		}
		topts.Methods = append(topts.Methods, method)
	}
	t, err := tracer.New(topts)
	if err != nil {
		var ue *tracer.UnsupportedError
		if errors.As(err, &ue) && o.verbose && ue.Hooks != nil {
			fmt.Fprint(os.Stderr, tracer.Describe(ue.Hooks))
		}
		return &exitError{exitFailure, err}
	}
	defer t.Close()
	if o.verbose {
		fmt.Fprint(os.Stderr, tracer.Describe(t.Hooks()))
	}
	if err := out.Attached(exportHooks(t.Hooks())); err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var record io.Writer
	if o.record != "" {
		f, err := os.Create(o.record)
		if err != nil {
			return &exitError{exitFailure, fmt.Errorf("--record: %w", err)}
		}
		bw := bufio.NewWriter(f)
		defer func() { bw.Flush(); f.Close() }()
		record = bw
	}

	kernel := decoder.NewLazyKernelSymbols(func() (io.ReadCloser, error) { return os.Open("/proc/kallsyms") })
	an := decoder.NewAnalyzer(decoder.Config{SlowInit: o.slow, Kernel: kernel})
	findings := map[decoder.Severity]int{}
	var events []decoder.Event
	readDone := make(chan error, 1)
	go func() {
		readDone <- t.Read(ctx, func(raw []byte) error {
			if record != nil {
				if err := decoder.WriteRecording(record, raw); err != nil {
					return fmt.Errorf("--record: %w", err)
				}
			}
			var derr error
			events, derr = an.Handle(raw, events[:0])
			if derr != nil {
				fmt.Fprintln(os.Stderr, "ktracer: skipped record:", derr)
			}
			for i := range events {
				switch events[i].Kind {
				case decoder.KindFinding:
					findings[events[i].Severity]++
				case decoder.KindInitPointerIgnored:
					if !o.verbose {
						continue
					}
				}
				if err := out.Write(&events[i]); err != nil {
					return err
				}
			}
			return nil
		})
	}()

	status := 0
	if len(args) > 0 {
		status, err = runCommand(ctx, args)
		if err != nil {
			stop()
			<-readDone
			return &exitError{exitFailure, err}
		}
		// finit_module returns after init ran, so the records are already
		// in the ring buffer; the linger covers work the command started
		// asynchronously (udev, deferred probes).
		select {
		case <-time.After(o.linger):
		case <-ctx.Done():
		}
		if err := t.Drain(); err != nil {
			return err
		}
	}
	if err := <-readDone; err != nil {
		return err
	}

	st := an.Stats()
	counters, err := t.Counters()
	if err != nil {
		return err
	}
	if err := out.Summary(export.Summary{
		ModuleInits: st.ModuleInits, FailedInits: st.FailedInits, Findings: findings,
		Lost: counters.Lost, Corrupt: st.Corrupt, IgnoredInitPointers: st.UnattributedInitPointers,
	}); err != nil {
		return err
	}
	if counters.Lost > 0 {
		fmt.Fprintf(os.Stderr, "ktracer: %d records were lost because the ring buffer was full; findings may be missing\n", counters.Lost)
	}
	if status != 0 {
		return &exitError{code: status}
	}
	for sev, n := range findings {
		if n > 0 && sev >= failOn {
			return &exitError{code: exitFindings}
		}
	}
	return nil
}

// runCommand runs the watched command with ktracer's stdio and returns its
// exit status (128+signal when killed).
func runCommand(ctx context.Context, args []string) (int, error) {
	c := exec.Command(args[0], args[1:]...)
	c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := c.Start(); err != nil {
		return 0, fmt.Errorf("run %s: %w", args[0], err)
	}
	// Forward an interrupt to the child rather than abandoning it.
	stop := context.AfterFunc(ctx, func() { c.Process.Signal(syscall.SIGTERM) })
	defer stop()
	err := c.Wait()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	return 0, fmt.Errorf("run %s: %w", args[0], err)
}

func exportHooks(hs []tracer.HookStatus) []export.Hook {
	out := make([]export.Hook, len(hs))
	for i, h := range hs {
		out[i] = export.Hook{Name: h.Hook, Attached: h.Attached, Method: string(h.Method), Target: h.Target}
		if h.Err != nil {
			out[i].Error = h.Err.Error()
		}
	}
	return out
}
