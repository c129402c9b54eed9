package main

import (
	"context"
	"errors"
	"fmt"
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
	traceOptions
	output string
	failOn string
	slow   time.Duration
	linger time.Duration
}

func init() { commands = append(commands, newWatchCmd) }

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
	addTraceFlags(f, &o.traceOptions)
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

	s, err := newSession(o.traceOptions, decoder.Config{SlowInit: o.slow})
	if err != nil {
		return err
	}
	defer s.close()
	if err := out.Attached(s.hooks()); err != nil {
		return err
	}
	s.addSink(out.Write)
	if o.startupAudit {
		line, _, err := s.startupAudit("/", nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, "ktracer:", err)
		} else {
			fmt.Fprintln(os.Stderr, "ktracer:", line)
		}
	}

	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first signal drains what the kernel already sent; a second one
	// kills, as usual, should the output be stuck.
	context.AfterFunc(ctx, stop)
	readDone := make(chan error, 1)
	go func() { readDone <- s.run(ctx) }()

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
		if err := s.t.Drain(); err != nil {
			return err
		}
	}
	if err := <-readDone; err != nil {
		return err
	}

	sum, err := s.summary()
	if err != nil {
		return err
	}
	if err := out.Summary(sum); err != nil {
		return err
	}
	if sum.Lost > 0 {
		fmt.Fprintf(os.Stderr, "ktracer: %d records were lost because the ring buffer was full; findings may be missing\n", sum.Lost)
	}
	if status != 0 {
		return &exitError{code: status}
	}
	if s.worstAtLeast(failOn) {
		return &exitError{code: exitFindings}
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
