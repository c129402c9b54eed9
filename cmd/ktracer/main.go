// Command ktracer watches the kernel's module and initcall machinery with
// eBPF and says, in plain words, when a module breaks one of its rules.
package main

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/ktracer/ktracer/decoder"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

// exitError carries a process exit status up to main, the only place that
// exits.
type exitError struct {
	code int
	err  error // printed when non-nil
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

// Exit statuses, documented in the README.
const (
	exitFindings = 1 // a finding at or above --fail-on
	exitFailure  = 2 // ktracer could not run: bad flags, unsupported kernel
)

// commands are the subcommands; each file adds its own in an init function,
// so subcommands can be added without touching this file.
var commands = []func() *cobra.Command{newVersionCmd}

func main() {
	root := &cobra.Command{
		Use:           "ktracer",
		Short:         "Watch kernel module loading and initcalls with eBPF and flag broken rules",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	for _, newCmd := range commands {
		root.AddCommand(newCmd())
	}
	err := root.Execute()
	if err == nil {
		return
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			decoder.Fprintf(os.Stderr, "ktracer: %v\n", ee.err) // errors quote file names and log lines
		}
		os.Exit(ee.code)
	}
	decoder.Fprintf(os.Stderr, "ktracer: %v\n", err)
	os.Exit(exitFailure)
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print ktracer's version and what it was built with",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			v, goVersion, ebpfVersion := version, "unknown", "unknown"
			if bi, ok := debug.ReadBuildInfo(); ok {
				goVersion = bi.GoVersion
				if v == "" {
					v = bi.Main.Version
				}
				for _, d := range bi.Deps {
					if d.Path == "github.com/cilium/ebpf" {
						ebpfVersion = d.Version
					}
				}
			}
			if v == "" || v == "(devel)" {
				v = "devel"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "ktracer %s (%s, cilium/ebpf %s)\n", v, goVersion, ebpfVersion)
		},
	}
}
