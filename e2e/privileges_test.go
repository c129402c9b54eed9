//go:build e2e

package e2e

import (
	"os"
	"strings"
	"testing"
)

// Without privileges ktracer says exactly what is missing; with only
// CAP_BPF and CAP_PERFMON (not root) it traces as root would.
func TestPrivileges(t *testing.T) {
	script, err := os.ReadFile("privileges.sh")
	if err != nil {
		t.Fatal(err)
	}
	g := boot(t, string(script), nil, "--timeout", "300")

	none := g.run(t, "nocaps")
	want := "ktracer: ktracer needs root, or CAP_BPF and CAP_PERFMON; this process lacks CAP_BPF and CAP_PERFMON"
	if none.exit != 2 || len(none.raw) != 1 || none.raw[0] != want {
		t.Errorf("unprivileged: exit %d, output %q; want exit 2 and the one line %q", none.exit, none.raw, want)
	}

	caps := g.run(t, "caps")
	if caps.exit != 1 {
		var stderr []string
		if r := g.runs["caps-stderr"]; r != nil {
			stderr = r.raw
		}
		t.Errorf("CAP_BPF+CAP_PERFMON: exit %d, want 1 (the finding)\n%s\n%s", caps.exit, strings.Join(caps.raw, "\n"), strings.Join(stderr, "\n"))
	}
	// BPF links (raw tracepoints, fentry, fexit) need only CAP_BPF and
	// CAP_PERFMON. Kprobes go through perf_event_open, which Debian's
	// perf_event_paranoid=3 reserves to CAP_SYS_ADMIN: every hook, the panic
	// path's included, must attach by a BPF link, never by a kprobe.
	a := caps.event("attached")
	if a == nil {
		t.Fatalf("no attached line:\n%s", strings.Join(caps.raw, "\n"))
	}
	panicPath := map[string]bool{"bad_page": true, "panic": true, "crash_kexec": true, "emergency_restart": true}
	for _, h := range a.Hooks {
		t.Logf("hook %s: attached=%v method=%s target=%s degraded=%q", h.Name, h.Attached, h.Method, h.Target, h.Degraded)
		if !h.Attached {
			t.Errorf("hook %s did not attach with CAP_BPF+CAP_PERFMON: %s", h.Name, h.Error)
		}
		delete(panicPath, h.Name)
	}
	for h := range panicPath {
		t.Errorf("hook %s missing from the attached line", h)
	}
	f := expectOne(t, caps, "positive-init-return", "kt_positive", "kt_positive_init")
	if f.Value == nil || *f.Value != 1 {
		t.Errorf("value %v, want 1", f.Value)
	}
	checkNoLoss(t, caps)
}
