package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/ktracer/ktracer/check"
	"github.com/ktracer/ktracer/decoder"
)

type checkOptions struct {
	check.Options
	root   string
	output string
	failOn string
}

func init() { commands = append(commands, newCheckCmd) }

func newCheckCmd() *cobra.Command {
	o := checkOptions{Options: check.DefaultOptions()}
	cmd := &cobra.Command{
		Use:   "check [flags]",
		Short: "Check kdump readiness and what the last boots left: panics in pstore, dumps, unclean ends",
		Long: `Check that a kernel panic on this machine would leave evidence, and whether
the last boots left any: the crash kernel's reservation against this
machine's RAM, whether a crash kernel is loaded, panic logs kept by pstore,
crash dumps in the dump directory, and ktracer's own boot history.

Exits 1 when a finding at or above --fail-on is found, 2 when the check
could not run or a source could not be read (an unreadable or corrupt
file: the report still comes out and lists it), else 0.`,
		Example: "  sudo ktracer check\n  sudo ktracer check --output json --fail-on warning",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCheck(cmd, o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.output, "output", "o", "text", "output format: text or json (one object per line)")
	f.StringVar(&o.failOn, "fail-on", "error", "exit 1 when a finding at or above this severity is found: info, warning or error")
	f.StringVar(&o.root, "root", "/", "read the machine's files (/proc, /sys, /var, /etc) under this directory")
	f.StringVar(&o.DumpDir, "dump-dir", "", "crash dump directory (default: KDUMP_COREDIR from /etc/default/kdump-tools, path from /etc/kdump.conf, else /var/crash)")
	f.StringVar(&o.StateDir, "state-dir", o.StateDir, "ktracer's state directory, holding the boot history")
	f.IntVar(&o.LoopCount, "loop-count", o.LoopCount, "this many boots ending without a clean stop within --loop-window make a panic-loop")
	f.DurationVar(&o.LoopWindow, "loop-window", o.LoopWindow, "the window for --loop-count")
	return cmd
}

func runCheck(cmd *cobra.Command, o checkOptions) error {
	failOn, err := decoder.ParseSeverity(o.failOn)
	if err != nil {
		return &exitError{exitFailure, fmt.Errorf("--fail-on: %w", err)}
	}
	if !check.ValidFormat(o.output) {
		return &exitError{exitFailure, fmt.Errorf("--output: unknown output format %q (want text or json)", o.output)}
	}
	for name, p := range map[string]string{"--dump-dir": o.DumpDir, "--state-dir": o.StateDir} {
		if p != "" && !filepath.IsAbs(p) {
			return &exitError{exitFailure, fmt.Errorf("%s must be an absolute path (inside --root), got %q", name, p)}
		}
	}
	if o.LoopCount < 1 {
		return &exitError{exitFailure, fmt.Errorf("--loop-count must be at least 1, got %d", o.LoopCount)}
	}
	if o.LoopWindow <= 0 {
		return &exitError{exitFailure, fmt.Errorf("--loop-window must be positive, got %s", o.LoopWindow)}
	}
	if st, err := os.Stat(o.root); err != nil || !st.IsDir() {
		return &exitError{exitFailure, fmt.Errorf("--root %s is not a directory", o.root)}
	}
	r, err := check.Run(os.DirFS(o.root), o.Options)
	if err != nil {
		return &exitError{exitFailure, err}
	}
	if err := check.Write(cmd.OutOrStdout(), o.output, r); err != nil {
		return &exitError{exitFailure, err}
	}
	if w := r.Worst(); w != 0 && w >= failOn {
		return &exitError{code: exitFindings}
	}
	if len(r.Errors) > 0 {
		// The report is out; say on stderr that it is incomplete.
		return &exitError{exitFailure, fmt.Errorf("check: %d sources could not be read (listed in the report)", len(r.Errors))}
	}
	return nil
}
