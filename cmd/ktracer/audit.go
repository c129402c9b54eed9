package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ktracer/ktracer/audit"
	"github.com/ktracer/ktracer/decoder"
)

type auditOptions struct {
	output string
	failOn string
}

func init() { commands = append(commands, newAuditCmd) }

func newAuditCmd() *cobra.Command {
	var o auditOptions
	cmd := &cobra.Command{
		Use:   "audit [flags] FILE.ko...",
		Short: "Find where a module file keeps or reaches the address of an __init function (no kernel, no root)",
		Long: `Read kernel module files (.ko, .ko.xz, .ko.zst) and report every place
that takes the address of an __init function other than as a direct call
from init code: static initializers in data that outlives init, addresses
stored or passed at run time, and calls or tail jumps into init text from
code that outlives init. Each report says whether modpost warns too.

Exits 1 when a finding at or above --fail-on is found, 2 when a file could
not be audited (the others still are), else 0.`,
		Example: "  ktracer audit ./mydriver.ko\n  ktracer audit -o json --fail-on warning $(find /lib/modules/$(uname -r) -name '*.ko*')",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAudit(cmd, o, args)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.output, "output", "o", "text", "output format: text or json (one object per line)")
	f.StringVar(&o.failOn, "fail-on", "error", "exit 1 when a finding at or above this severity is found: info, warning or error")
	return cmd
}

func runAudit(cmd *cobra.Command, o auditOptions, files []string) error {
	failOn, err := decoder.ParseSeverity(o.failOn)
	if err != nil {
		return &exitError{exitFailure, fmt.Errorf("--fail-on: %w", err)}
	}
	w, err := audit.NewWriter(o.output, cmd.OutOrStdout())
	if err != nil {
		return &exitError{exitFailure, fmt.Errorf("--output: %w", err)}
	}
	for _, p := range files {
		fs, err := audit.File(p)
		if err := w.File(p, fs, err); err != nil {
			return &exitError{exitFailure, err}
		}
	}
	sum, err := w.Close()
	if err != nil {
		return &exitError{exitFailure, err}
	}
	if sum.Unreadable > 0 {
		return &exitError{code: exitFailure}
	}
	if w := sum.Worst(); w != 0 && w >= failOn {
		return &exitError{code: exitFindings}
	}
	return nil
}
