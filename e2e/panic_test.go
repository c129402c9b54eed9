//go:build e2e

package e2e

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"testing"
)

// onlyFinding returns the run's one finding, which must have this rule.
func onlyFinding(t *testing.T, r *run, rule string) line {
	t.Helper()
	f := r.findings()
	if len(f) != 1 || f[0].Rule != rule {
		t.Fatalf("want exactly one %s finding, got %d:\n%s", rule, len(f), strings.Join(r.raw, "\n"))
	}
	t.Logf("%s: %s", rule, f[0].Message)
	return f[0]
}

// A NULL dereference in a module at run time: the oops names the module,
// the function and the faulting address, and the kernel survives it.
func TestOops(t *testing.T) {
	r := moduleGuest(t).run(t, "kt_oops")
	f := onlyFinding(t, r, "oops")
	if f.Module != "kt_oops" || !strings.HasPrefix(f.Function, "kt_oops_handle+0x") || f.Reason != "page fault" || f.Severity != "error" {
		t.Errorf("oops = %s %s %s %s", f.Module, f.Function, f.Reason, f.Severity)
	}
	// kt_oops_state->count: NULL + 0x18, with the error code the kernel's
	// own oops printed.
	var code int
	for _, l := range moduleGuest(t).runs["kt_oops-dmesg"].raw {
		if i := strings.Index(l, "error_code(0x"); i >= 0 {
			fmt.Sscanf(l[i+len("error_code("):], "%v", &code)
		}
	}
	if want := fmt.Sprintf("address 0x18 (error code 0x%x: ", code); !strings.Contains(f.Message, want) {
		t.Errorf("message lacks %q: %s", want, f.Message)
	}
	// gcc moves the unlikely path into kt_oops_trigger_set.cold.
	if !strings.HasPrefix(f.Caller, "kt_oops_trigger_set") || f.Task != "sh" {
		t.Errorf("caller %q task %q, want kt_oops_trigger_set... and sh", f.Caller, f.Task)
	}
	checkNoLoss(t, r)
}

// A WARN_ON: its file and line, and the function that issued it.
func TestWarning(t *testing.T) {
	r := moduleGuest(t).run(t, "kt_warn")
	f := onlyFinding(t, r, "warning")
	line := sourceLine(t, "modules/kt_warn.c", "WARN_ON(kt_warn_refs == 0)")
	if f.Module != "kt_warn" || !strings.HasPrefix(f.Function, "kt_warn_release+0x") || f.Severity != "warning" {
		t.Errorf("warning = %s %s %s", f.Module, f.Function, f.Severity)
	}
	if want := fmt.Sprintf("kt_warn.c:%d", line); !strings.HasSuffix(f.Location, want) {
		t.Errorf("location %q, want ...%s", f.Location, want)
	}
	if r.exit != 0 {
		t.Errorf("watch exit = %d, want 0 (a warning is below --fail-on error)", r.exit)
	}
	checkNoLoss(t, r)
}

// "BUG: Bad page state": the pfn the module itself printed, the kernel's
// reason, and the module function that freed the page.
func TestBadPage(t *testing.T) {
	g := moduleGuest(t)
	r := g.run(t, "kt_badpage")
	f := onlyFinding(t, r, "bad-page")
	var pfn int64
	for _, l := range g.runs["kt_badpage-dmesg"].raw {
		if i := strings.Index(l, "freeing pfn "); i >= 0 {
			fmt.Sscanf(l[i+len("freeing pfn "):], "%v", &pfn)
		}
	}
	if pfn == 0 || f.Value == nil || *f.Value != pfn {
		t.Errorf("pfn = %v, want %#x as kt_badpage printed it", f.Value, pfn)
	}
	if f.Module != "kt_badpage" || !strings.HasPrefix(f.Function, "kt_badpage_") || f.Reason != "non-NULL mapping" || f.Severity != "error" {
		t.Errorf("bad-page = %s %s %q %s", f.Module, f.Function, f.Reason, f.Severity)
	}
	checkNoLoss(t, r)
}

// sourceLine finds the line number of text in a source file.
func sourceLine(t *testing.T, path, text string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		if strings.Contains(sc.Text(), text) {
			return n
		}
	}
	t.Fatalf("%q not in %s", text, path)
	return 0
}
