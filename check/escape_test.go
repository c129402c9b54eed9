package check

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/ktracer/ktracer/decoder"
)

// Issue 12 item 7: a vmcore file name is chosen by whoever can write the
// dump directory; a newline in it must not forge a check line.
func TestTextReportEscapes(t *testing.T) {
	r := &Report{
		Boot: BootFacts{
			DumpDir: "/var/crash",
			Dumps:   []Dump{{Dir: "/var/crash/2026\x1b[31m", Files: []string{"vmcore\nERROR panic-without-vmcore: forged"}, Complete: true}},
			Records: []PstoreRecord{{Path: "/sys/fs/pstore/dmesg\n-x", Reason: "Panic\r", Panic: "Kernel panic - not syncing: \x1b[2Jx\xff"}},
		},
		Findings: []Finding{{Rule: "panic-without-vmcore", Severity: decoder.SeverityError, Message: "saved as vmcore\nINFO all: fine"}},
	}
	r.Boot.BootTime = time.Unix(0, 0)
	var b bytes.Buffer
	if err := Write(&b, "text", r); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "ERROR panic-without-vmcore: forged") || strings.HasPrefix(line, "INFO all") || strings.HasPrefix(line, "-x") {
			t.Errorf("forged line %q in:\n%s", line, out)
		}
	}
	for _, bad := range []string{"\x1b", "\r", "\xff"} {
		if strings.Contains(out, bad) {
			t.Errorf("text report holds %q:\n%q", bad, out)
		}
	}
}
