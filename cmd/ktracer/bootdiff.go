package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ktracer/ktracer/boot"
)

type bootDiffOptions struct {
	format string
	out    string
	floor  time.Duration
	ratio  float64
	top    int
}

func newBootDiffCmd() *cobra.Command {
	var o bootDiffOptions
	cmd := &cobra.Command{
		Use:   "diff OLD NEW",
		Short: "Compare two boots: initcall levels, appeared/disappeared, returns, slowdowns, time per level, command line",
		Long: `Compare two recorded boots, e.g. a development and a production kernel, or
the same kernel before and after an upgrade. OLD and NEW are saved files as
ktracer boot --from reads them: a kernel log, a trace, or both as LOG,TRACE.

Reported: initcalls whose level changed, that appeared or disappeared, whose
return value changed; the largest duration regressions above a noise floor
(--floor and --ratio, both must be exceeded); the end of each initcall level
and the time to init in both boots; the command-line words that differ, each
with ktracer boot's unknown-boot-param verdict in its own boot.`,
		Example: "  ktracer boot diff old-dmesg.txt new-dmesg.txt\n  ktracer boot diff --format svg --out diff.svg old.log,old.trace new.log,new.trace",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBootDiff(cmd, args[0], args[1], o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.format, "format", "f", "text", "output: "+strings.Join(boot.DiffFormats, ", "))
	f.StringVar(&o.out, "out", "", "write the output to this file instead of stdout")
	f.DurationVar(&o.floor, "floor", time.Millisecond, "noise floor: an initcall is a regression only when at least this much slower")
	f.Float64Var(&o.ratio, "ratio", 1.25, "noise floor: ... and at least this many times its old duration")
	f.IntVar(&o.top, "top", 10, "how many regressions to list")
	return cmd
}

func analyzeFrom(arg string) (*boot.Report, error) {
	var in boot.Input
	closers, err := fromInput(strings.Split(arg, ","), &in)
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	if err != nil {
		return nil, err
	}
	r, err := boot.Analyze(in, boot.Options{})
	if err != nil {
		return nil, &exitError{exitFailure, fmt.Errorf("%s: %w", arg, err)}
	}
	return r, nil
}

func runBootDiff(cmd *cobra.Command, oldArg, newArg string, o bootDiffOptions) error {
	if !slices.Contains(boot.DiffFormats, o.format) {
		return &exitError{exitFailure, fmt.Errorf("--format: unknown format %q (want %s)", o.format, strings.Join(boot.DiffFormats, ", "))}
	}
	if o.floor < 0 || o.ratio < 1 || o.top <= 0 {
		return &exitError{exitFailure, fmt.Errorf("--floor must not be negative, --ratio at least 1, --top positive")}
	}
	oldR, err := analyzeFrom(oldArg)
	if err != nil {
		return err
	}
	newR, err := analyzeFrom(newArg)
	if err != nil {
		return err
	}
	d := boot.Compare(oldR, newR, oldArg, newArg, boot.DiffOptions{Floor: o.floor, Ratio: o.ratio, Top: o.top})
	return writeOut(cmd, o.out, o.format, func(w io.Writer) error { return boot.RenderDiff(w, d, o.format) })
}
