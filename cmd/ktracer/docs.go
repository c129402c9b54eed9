package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

func init() { commands = append(commands, newManCmd) }

// newManCmd writes the man pages from the command tree itself, so flags and
// help texts never drift from the pages the package installs. Hidden: it is
// for packagers (make deb), not users.
func newManCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "man DIR",
		Short:  "Write ktracer's man pages (section 8) into DIR",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return err
			}
			root := cmd.Root()
			root.DisableAutoGenTag = true // the date would make builds differ
			// The date is SOURCE_DATE_EPOCH's when set (reproducible builds).
			h := &doc.GenManHeader{Title: "KTRACER", Section: "8", Source: "ktracer " + buildInfo().Version, Manual: "System Administration"}
			if err := doc.GenManTree(root, h, args[0]); err != nil {
				return fmt.Errorf("man pages: %w", err)
			}
			return nil
		},
	}
}
