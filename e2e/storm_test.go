//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestStorm: 1000 load/unload cycles of one module, and 8 modules loaded at
// once by 8 tasks for 20 rounds. Every init must be accounted for and
// attributed to its own module, with no record lost (the 4 MiB ring buffer
// holds thousands of symbol records; the reader keeps up).
func TestStorm(t *testing.T) {
	script, err := os.ReadFile("storm.sh")
	if err != nil {
		t.Fatal(err)
	}
	g := boot(t, string(script), nil, "--timeout", "1500", "--mem", "1024")

	stats := func(step string) map[string]int {
		out := map[string]int{}
		for _, l := range g.run(t, step+"-stats").raw {
			var k string
			var v int
			if _, err := fmt.Sscanf(l, "%s %d", &k, &v); err == nil {
				out[k] = v
			}
		}
		return out
	}
	// initcalls maps "module function ret" to its count.
	initcalls := func(step string) map[string]int {
		out := map[string]int{}
		for _, l := range g.runs[step+"-initcalls"].raw {
			var n int
			var mod, fn, ret string
			if _, err := fmt.Sscanf(l, "%d %s %s %s", &n, &mod, &fn, &ret); err == nil {
				out[mod+" "+fn+" "+ret] = n
			}
		}
		return out
	}
	noLoss := func(step string) {
		r := g.run(t, step)
		s := r.event("summary")
		if s == nil || s.Lost == nil {
			t.Fatalf("%s: no summary", step)
		}
		if *s.Lost != 0 || s.Corrupt != 0 {
			t.Errorf("%s: %d records lost, %d corrupt", step, *s.Lost, s.Corrupt)
		}
	}

	// 1. cycles
	if r := g.run(t, "cycles"); r.exit != 0 {
		t.Errorf("cycles: watch exit %d\n%s", r.exit, strings.Join(g.runs["cycles-stderr"].raw, "\n"))
	}
	st := stats("cycles")
	ic := initcalls("cycles")
	t.Logf("cycles: %v in %ds, initcalls %v", st, st["seconds"], ic)
	if ic["kt_good kt_good_init 0"] != 1000 || len(ic) != 1 {
		t.Errorf("cycles: want exactly 1000 initcalls of kt_good_init, got %v", ic)
	}
	for _, k := range []string{"module_load", "module_live", "module_free"} {
		if st[k] != 1000 {
			t.Errorf("cycles: %d %s events, want 1000", st[k], k)
		}
	}
	noLoss("cycles")

	// 2. parallel: 8 modules per round, 20 rounds.
	st = stats("parallel")
	ic = initcalls("parallel")
	t.Logf("parallel: %v in %ds, initcalls %v", st, st["seconds"], ic)
	want := map[string]int{
		"kt_good kt_good_init 0":         20,
		"kt_slow kt_slow_init 0":         20,
		"kt_positive kt_positive_init 1": 20,
		"kt_enodev kt_enodev_init -19":   20,
		"kt_initok kt_initok_init 0":     20,
		"kt_warn kt_warn_init 0":         20,
		"kt_oops kt_oops_init 0":         20,
		"kt_badpage kt_badpage_init 0":   20,
	}
	for k, n := range want {
		if ic[k] != n {
			t.Errorf("parallel: %q seen %d times, want %d", k, ic[k], n)
		}
	}
	if len(ic) != len(want) {
		t.Errorf("parallel: initcalls attributed otherwise: %v", ic)
	}
	if st["module_load"] != 160 || st["module_live"] != 140 || st["module_init_failed"] != 20 {
		t.Errorf("parallel: load %d live %d failed %d, want 160, 140, 20", st["module_load"], st["module_live"], st["module_init_failed"])
	}
	noLoss("parallel")

	// 3. stopped: SIGINT while the output was stalled and the ring buffer
	// held the rest; every load must still be reported.
	st = stats("stopped")
	ic = initcalls("stopped")
	t.Logf("stopped: %v, initcalls %v", st, ic)
	if ic["kt_good kt_good_init 0"] != 200 || st["module_free"] != 200 {
		t.Errorf("stopped: %d initcalls and %d module_free reported after SIGINT, want 200 each", ic["kt_good kt_good_init 0"], st["module_free"])
	}
	noLoss("stopped")
}
