// Command ktracer watches the kernel's module and initcall machinery with
// eBPF and says, in plain words, when a module breaks one of its rules.
package main

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"

	"github.com/prometheus/common/version"
	"github.com/spf13/cobra"

	"github.com/ktracer/ktracer/decoder"
	"github.com/ktracer/ktracer/export"
)

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
			b := buildInfo()
			fmt.Fprintf(cmd.OutOrStdout(), "ktracer %s (revision %s, %s/%s, %s, cilium/ebpf %s)\n",
				b.Version, b.Revision, b.GoOS, b.GoArch, b.GoVersion, b.EBPFVersion)
		},
	}
}

// buildInfo is what ktracer version prints and ktracer_build_info carries.
// Version and revision are set at build time (Makefile LDFLAGS):
//
//	-X github.com/prometheus/common/version.Version=... -X ...Revision=...
//
// without them, the module version and the VCS revision Go records stand in.
func buildInfo() export.BuildInfo {
	b := export.BuildInfo{
		Version: version.Version, Revision: version.GetRevision(),
		GoOS: version.GoOS, GoArch: version.GoArch, GoVersion: version.GoVersion, EBPFVersion: "unknown",
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if b.Version == "" {
			b.Version = bi.Main.Version
		}
		for _, d := range bi.Deps {
			if d.Path == "github.com/cilium/ebpf" {
				b.EBPFVersion = d.Version
			}
		}
	}
	if b.Version == "" || b.Version == "(devel)" {
		b.Version = "devel"
	}
	if b.Revision == "" {
		b.Revision = "unknown"
	}
	return b
}
