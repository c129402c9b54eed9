//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// explainedFindings lists findings on shipped modules that were examined and
// explained (in the README); any other finding of these rules fails the
// sweep. It is empty: none has been seen on Debian's 6.1 cloud kernel.
var explainedFindings = map[string]string{}

// precisionRules must stay silent on modules nobody here wrote, unless a
// finding is a real bug that was examined and listed above.
// load-failed too: modprobe loads each module's dependencies first, so no
// shipped module is refused before its init (0 of 1121 on 6.1).
var precisionRules = map[string]bool{"dangling-init-pointer": true, "freed-init-call": true, "load-failed": true}

// TestShippedModuleSweep modprobes every module shipped with the kernel, in
// modules.dep order, under one ktracer watch session: the proof of precision
// on code nobody here wrote, and a long session with no loss.
func TestShippedModuleSweep(t *testing.T) {
	script, err := os.ReadFile("sweep.sh")
	if err != nil {
		t.Fatal(err)
	}
	g := boot(t, string(script), func(dir string) error {
		// The whole shipped module tree, depmod'ed by setup.sh.
		if err := os.MkdirAll(filepath.Join(dir, "lib"), 0o755); err != nil {
			return err
		}
		out, err := exec.Command("cp", "-a", filepath.Join(*vmDir, "kernel", "lib", "modules"), filepath.Join(dir, "lib")).CombinedOutput()
		if err != nil {
			return fmt.Errorf("copy modules: %v: %s", err, out)
		}
		return nil
	}, "--mem", "3072", "--timeout", "1500")

	r := g.run(t, "sweep")
	stats := map[string]int{}
	for _, l := range g.run(t, "sweep-stats").raw {
		var k string
		var v int
		if _, err := fmt.Sscanf(l, "%s %d", &k, &v); err == nil {
			stats[k] = v
		}
	}
	counts := map[string]int{}
	var unexplained []string
	for _, f := range r.findings() {
		counts[f.Rule]++
		key := f.Rule + " " + f.Module + " " + f.Function
		if precisionRules[f.Rule] && explainedFindings[key] == "" {
			unexplained = append(unexplained, key+": "+f.Message)
		}
	}
	rules := make([]string, 0, len(counts))
	for k := range counts {
		rules = append(rules, k)
	}
	sort.Strings(rules)
	var table strings.Builder
	fmt.Fprintf(&table, "attempted %d, loaded %d, module inits traced %d, failed %d, in %ds\n",
		stats["attempted"], stats["loaded"], stats["initcall"], len(r.findingsOf("init-failed")), stats["seconds"])
	for _, k := range rules {
		fmt.Fprintf(&table, "  %-24s %d\n", k, counts[k])
	}
	s := r.event("summary")
	if s == nil {
		t.Fatalf("no summary:\n%s", tail(g.console, 40))
	}
	fmt.Fprintf(&table, "  lost %d, corrupt %d, ignored init pointers %d", *s.Lost, s.Corrupt, s.Ignored)
	t.Logf("shipped-module sweep:\n%s", table.String())

	if len(unexplained) > 0 {
		t.Errorf("findings on shipped modules that nobody examined (a real bug, or a false positive to fix):\n%s", strings.Join(unexplained, "\n"))
	}
	if *s.Lost != 0 || s.Corrupt != 0 {
		t.Errorf("lost %d and corrupt %d records", *s.Lost, s.Corrupt)
	}
	if stats["attempted"] < 1000 || stats["loaded"] < 900 {
		t.Errorf("the sweep did not really run: %v", stats)
	}
	// Every module in /proc/modules went live under trace, and every load
	// ended one way or the other.
	if stats["module_live"] != stats["loaded"]-stats["preloaded"] {
		t.Errorf("%d modules loaded (%d before the sweep) but %d module_live events", stats["loaded"], stats["preloaded"], stats["module_live"])
	}
	if stats["module_load"] != stats["module_live"]+len(r.findingsOf("init-failed")) {
		t.Errorf("%d module_load events, but %d live + %d failed", stats["module_load"], stats["module_live"], len(r.findingsOf("init-failed")))
	}

	for _, step := range []string{"audit100", "auditall"} {
		checkSweepAudit(t, g, step)
	}
}

// checkSweepAudit: the startup audit over the shipped modules loaded before
// it started reports nothing, names every module's __init functions, and
// explains every word it ignores, as the live scan does.
func checkSweepAudit(t *testing.T, g *guest, step string) {
	r := g.run(t, step)
	n := 0
	for _, l := range g.run(t, step+"-stats").raw {
		fmt.Sscanf(l, "module_already_loaded %d", &n)
	}
	var report strings.Builder
	for _, l := range g.runs[step+"-stderr"].rawOr() {
		if strings.Contains(l, "startup audit") {
			fmt.Fprintf(&report, "%s\n", l)
		}
	}
	fmt.Fprintf(&report, "  %d module_already_loaded events\n", n)
	reasons, examples := map[string]int{}, map[string]string{}
	for _, l := range r.lines {
		switch {
		case l.Event == "finding" && precisionRules[l.Rule] && explainedFindings[l.Rule+" "+l.Module+" "+l.Function] == "":
			t.Errorf("%s: %s in %s (%s): %s", step, l.Rule, l.Module, l.Source, l.Message)
		case l.Event == "init_pointer_ignored":
			if reasons[l.Reason] == 0 {
				examples[l.Reason] = l.Module + " " + l.Location + " -> " + l.Function
			}
			reasons[l.Reason]++
		case l.Event == "module_already_loaded" && l.Reason != "":
			fmt.Fprintf(&report, "  %s: %s\n", l.Module, l.Reason)
		}
	}
	for k, v := range reasons {
		fmt.Fprintf(&report, "  ignored %d: %s (e.g. %s)\n", v, k, examples[k])
	}
	t.Logf("%s:\n%s", step, report.String())
	if n < 50 {
		t.Errorf("%s: only %d modules audited", step, n)
	}
}
