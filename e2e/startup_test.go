//go:build e2e

package e2e

import (
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// buildRebuilt puts the other builds of kt_tablebomb (-DKT_REBUILT: the
// same module, another build-id) and kt_timebomb (-DKT_BIG_INIT) into dir.
func buildRebuilt(t *testing.T, vmdir, dir string) error {
	// Built by setup.sh with the suite's own compiler (e2e/modules/Makefile):
	// kt_tablebomb with another build-id, kt_timebomb with a large init text.
	if err := os.MkdirAll(filepath.Join(dir, "rebuilt"), 0o755); err != nil {
		return err
	}
	for _, m := range []string{"kt_tablebomb.ko", "kt_timebomb.ko"} {
		ko, err := os.ReadFile(filepath.Join(vmdir, "modules", "rebuilt", m))
		if err != nil {
			return fmt.Errorf("the other build of %s (setup.sh builds it): %w", m, err)
		}
		if err := os.WriteFile(filepath.Join(dir, "rebuilt", m), ko, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// daemonLines parses a daemon's JSON log lines.
func daemonLines(t *testing.T, raw []string) []map[string]any {
	var out []map[string]any
	for _, l := range raw {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// TestStartupAudit: modules loaded before ktracer starts (as udev loads
// them) are audited when it starts; a later call into their freed init
// text is named in another session; a daemon restart loses nothing; a .ko
// rebuilt after loading is detected and no name is taken from it.
// It runs on every kernel of -matrix whose test modules build (the trixie
// kernel's do not with bookworm's gcc: TestStartupAuditShipped covers it).
func TestStartupAudit(t *testing.T) {
	script, err := os.ReadFile("startup.sh")
	if err != nil {
		t.Fatal(err)
	}
	payload := buildPayload(t)
	for _, suite := range strings.Split(*matrixKernels, ",") {
		t.Run(suite, func(t *testing.T) {
			k := prepareKernel(t, suite)
			if k.unbuilt != "" {
				t.Logf("%s: no test modules (%s): TestStartupAuditShipped covers this kernel", k.kver, firstLine(k.unbuilt))
				return
			}
			if _, panics := k.coreGaps()["kt_timebomb"]; panics {
				// The script's triggers call freed init text, which panics
				// this kernel (int3-filled init text, see knownCoreGaps):
				// its audit is proven by TestStartupAuditShipped and its
				// load-time finding by the matrix's core steps.
				t.Logf("%s: a call into freed init text panics this kernel: TestStartupAuditShipped covers its audit", k.kver)
				return
			}
			dir := t.TempDir()
			if out, err := exec.Command("cp", "-a", payload+"/.", dir).CombinedOutput(); err != nil {
				t.Fatalf("copy payload: %v %s", err, out)
			}
			if err := buildRebuilt(t, k.vmdir, dir); err != nil {
				t.Fatal(err)
			}
			startupAudit(t, runGuest(t, k.vmdir, dir, string(script), "--timeout", "900"))
		})
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func startupAudit(t *testing.T, g *guest) {

	if *captureDir != "" {
		saveCapture(t, g.run(t, "capture").raw, *captureDir)
	}

	// 1. The audit of a fresh watch session.
	a := g.run(t, "audit")
	t.Logf("audit stderr:\n%s", strings.Join(g.runs["audit-stderr"].rawOr(), "\n"))
	var found bool
	for _, f := range a.findingsOf("dangling-init-pointer") {
		if f.Module == "kt_tablebomb" {
			found = true
			if f.Location != "kt_table+0x28" || f.Function != "kt_table_helper" || f.Source != "startup-audit" || strings.Contains(f.Message, "reused") {
				t.Errorf("audit finding: location %q function %q source %q, want kt_table+0x28, kt_table_helper, startup-audit: %s", f.Location, f.Function, f.Source, f.Message)
			}
		} else {
			t.Errorf("unexpected dangling-init-pointer in %s: %s", f.Module, f.Message)
		}
	}
	if !found {
		t.Errorf("the startup audit did not find kt_table[2].fn:\n%s", strings.Join(a.raw, "\n"))
	}
	for _, l := range a.lines {
		if l.Event == "module_already_loaded" && (l.Module == "kt_tablebomb" || l.Module == "kt_good") && l.Reason != "" {
			t.Errorf("%s: names not recovered: %s", l.Module, l.Reason)
		}
	}

	// 2. The daemon, restarted between load and trigger.
	d1 := g.run(t, "daemon1")
	t.Logf("daemon1: %s", strings.Join(d1.raw, "; "))
	state := strings.Join(g.run(t, "daemon1-state").raw, "")
	if !strings.Contains(state, `"kt_init_helper"`) {
		t.Errorf("the daemon's state lacks kt_timebomb's __init names: %s", state)
	}
	d2 := g.run(t, "daemon2")
	t.Logf("daemon2: %s", strings.Join(d2.raw, "; "))
	var named bool
	for _, l := range daemonLines(t, g.run(t, "daemon2-log").raw) {
		if l["event"] == "attached" {
			continue
		}
		if l["rule"] == "freed-init-call" {
			if l["module"] == "kt_timebomb" && l["function"] == "kt_init_helper" && strings.HasPrefix(fmt.Sprint(l["caller"]), "kt_trigger_set") {
				named = true
			} else {
				t.Errorf("restarted daemon: freed-init-call %v", l)
			}
		}
		if l["rule"] == "oops" {
			t.Logf("restarted daemon's oops: %s", l["message"])
			if strings.Contains(fmt.Sprint(l["message"]), "in 0xffff") {
				t.Errorf("restarted daemon's oops is not named: %s", l["message"])
			}
		}
	}
	if !named {
		for _, step := range []string{"daemon1-state", "daemon2-rec", "daemon2-kallsyms", "daemon2-sections"} {
			t.Logf("%s:\n%s", step, strings.Join(g.runs[step].rawOr(), "\n"))
		}
		t.Errorf("the restarted daemon did not name the call into kt_timebomb's freed init text:\n%s\nstderr:\n%s",
			strings.Join(g.run(t, "daemon2-log").raw, "\n"), strings.Join(g.run(t, "daemon-stderr").raw, "\n"))
	}

	// 3. The trigger, in a separate watch session.
	tr := g.run(t, "trigger")
	calls := tr.findingsOf("freed-init-call")
	// The caller is kt_tablebomb's code that made the call (gcc puts it
	// in kt_trigger_set's cold part or keeps kt_tablebomb_call).
	namedCaller := func(c string) bool {
		return strings.HasPrefix(c, "kt_trigger_set") || strings.HasPrefix(c, "kt_tablebomb_call")
	}
	if len(calls) != 1 || calls[0].Module != "kt_tablebomb" || calls[0].Function != "kt_table_helper" || !namedCaller(calls[0].Caller) {
		t.Errorf("trigger: want one freed-init-call in kt_tablebomb, kt_table_helper, called from kt_tablebomb's code; got:\n%s", strings.Join(tr.raw, "\n"))
	} else {
		t.Logf("freed-init-call: %s", calls[0].Message)
	}
	oopses := tr.findingsOf("oops")
	for _, o := range oopses {
		t.Logf("oops: %s", o.Message)
		if !strings.Contains(o.Message, "in kt_table_helper [kt_tablebomb], called from ") || !namedCaller(strings.TrimPrefix(o.Caller, "")) {
			t.Errorf("the oops is not named: %s", o.Message)
		}
	}
	if want := hookAttached(tr, "oops_page_fault"); (len(oopses) == 1) != want {
		t.Errorf("%d oops findings; the oops_page_fault hook attached: %v", len(oopses), want)
	}

	// 4. The .ko rebuilt after loading.
	rb := g.run(t, "rebuilt")
	var said bool
	for _, l := range rb.lines {
		if l.Event == "module_already_loaded" && l.Module == "kt_tablebomb" {
			said = strings.Contains(l.Reason, "another build")
			t.Logf("rebuilt: %s", l.Reason)
		}
	}
	if !said {
		t.Errorf("the rebuilt kt_tablebomb.ko was not detected:\n%s", strings.Join(rb.raw, "\n"))
	}
	for _, l := range rb.raw {
		if strings.Contains(l, "kt_table_helper") || strings.Contains(l, "kt_table+0x") {
			t.Errorf("a name from the rebuilt file was printed: %s", l)
		}
	}
}

var captureDir = flag.String("capture", "", "save the guest's captured sysfs files (TestStartupAudit) under this directory")

func (r *run) rawOr() []string {
	if r == nil {
		return nil
	}
	return r.raw
}

// saveCapture unpacks the guest's base64 tarball of sysfs and /proc files.
func saveCapture(t *testing.T, raw []string, dir string) {
	b, err := base64.StdEncoding.DecodeString(strings.Join(raw, ""))
	if err != nil {
		t.Errorf("capture: %v", err)
		return
	}
	os.MkdirAll(dir, 0o755)
	f := filepath.Join(dir, "capture.tgz")
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Error(err)
		return
	}
	if out, err := exec.Command("tar", "xzf", f, "-C", dir).CombinedOutput(); err != nil {
		t.Errorf("capture: %v %s", err, out)
	}
	os.Remove(f)
}

// shippedForAudit are shipped modules that load without hardware on
// Debian's 5.10, 6.1 and 6.12 cloud kernels (.ko, .ko, .ko.xz).
var shippedForAudit = []string{"dummy", "veth", "xt_mark", "bonding"}

// TestStartupAuditShipped: on the -vmdir kernel, with only shipped modules
// (the test modules do not build for trixie with bookworm's gcc): modules
// loaded before ktracer are recovered from their files, their init
// functions named (never a __pfx_ padding symbol), nothing reported.
func TestStartupAuditShipped(t *testing.T) {
	var s strings.Builder
	s.WriteString("set -u\n")
	for _, m := range shippedForAudit {
		fmt.Fprintf(&s, "/payload/bin/modprobe %s; echo \"KT-OUT:load:%s $?\"\n", m, m)
	}
	s.WriteString(`echo "KT-OUT:load:exit:0"
sleep 1
ktracer watch --verbose --output json -- true >/tmp/audit.out 2>/tmp/audit.err
echo "KT-OUT:audit:exit:$?"
sed 's/^/KT-OUT:audit:/' /tmp/audit.out
sed 's/^/KT-OUT:audit-stderr:/' /tmp/audit.err
echo "KT-OUT:audit-stderr:exit:0"
`)
	args := []string{"--timeout", "600"}
	for _, m := range shippedForAudit {
		args = append(args, "--kmod", m)
	}
	payload := buildPayload(t)
	for _, suite := range strings.Split(*matrixKernels, ",") {
		t.Run(suite, func(t *testing.T) {
			k := prepareKernel(t, suite)
			startupAuditShipped(t, runGuest(t, k.vmdir, payload, s.String(), args...))
		})
	}
}

func startupAuditShipped(t *testing.T, g *guest) {
	t.Logf("load: %s", strings.Join(g.run(t, "load").raw, "; "))
	for _, l := range g.run(t, "audit-stderr").raw {
		if strings.Contains(l, "startup audit") {
			t.Log(l)
		}
	}
	r := g.run(t, "audit")
	if r.exit != 0 {
		t.Errorf("watch exited %d", r.exit)
	}
	seen := map[string]bool{}
	for _, l := range r.lines {
		switch {
		case l.Event == "finding":
			t.Errorf("finding on a shipped module: %s %s: %s", l.Rule, l.Module, l.Message)
		case l.Event == "module_already_loaded":
			seen[l.Module] = true
			t.Logf("%s: init %s at %s, %d symbols from %s %s", l.Module, l.Function, l.Address, deref(l.Symbols), l.Location, l.Reason)
			if l.Reason != "" || l.Function == "" || strings.HasPrefix(l.Function, "__pfx_") || l.Address == "" || deref(l.Symbols) == 0 {
				t.Errorf("%s not recovered: %+v", l.Module, l)
			}
		}
	}
	for _, m := range shippedForAudit {
		if !seen[m] {
			t.Errorf("%s: no module_already_loaded event", m)
		}
	}
}

func deref(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

// hookAttached tells whether a watch run's attached line says hook attached.
func hookAttached(r *run, hook string) bool {
	if a := r.event("attached"); a != nil {
		for _, h := range a.Hooks {
			if h.Name == hook {
				return h.Attached
			}
		}
	}
	return false
}
