//go:build e2e

package e2e

import (
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// bootParams records the boot both ways (ktracer boot prefers the trace)
// and has seed incident 4's typo.
const bootParams = "trace_event=initcall:initcall_level,initcall:initcall_start,initcall:initcall_finish trace_clock=global initcall_debug mxcpus=1"

// bootReport is the JSON of `ktracer boot --format json`.
type bootReport struct {
	Kernel    string `json:"kernel"`
	Source    string `json:"source"`
	Initcalls []struct {
		Seq      int    `json:"seq"`
		Function string `json:"function"`
		Module   string `json:"module"`
		Level    string `json:"level"`
		Ret      int32  `json:"ret"`
		Finished bool   `json:"finished"`
	} `json:"initcalls"`
	Levels []struct {
		Level     string `json:"level"`
		Initcalls int    `json:"initcalls"`
	} `json:"levels"`
	TimeToInit   int64 `json:"time_to_init_ns"`
	Expectations []struct {
		Key    string `json:"key"`
		Want   int64  `json:"want"`
		Got    int64  `json:"got"`
		Source string `json:"source"`
		Held   bool   `json:"held"`
	} `json:"expectations"`
	Findings []struct {
		Rule       string   `json:"rule"`
		Severity   string   `json:"severity"`
		Function   string   `json:"function"`
		Module     string   `json:"module"`
		Level      string   `json:"level"`
		Param      string   `json:"param"`
		Suggestion string   `json:"suggestion"`
		Sources    []string `json:"sources"`
		Value      int64    `json:"value"`
		Message    string   `json:"message"`
	} `json:"findings"`
}

// parseBootReport reads the report the guest printed in base64 (whole, so
// that no console message can land inside it).
func parseBootReport(t *testing.T, g *guest, step string) *bootReport {
	t.Helper()
	var rep bootReport
	if err := json.Unmarshal(decodeStep(t, g, step), &rep); err != nil {
		t.Fatalf("ktracer boot --format json: %v", err)
	}
	return &rep
}

func addGuestLib(dir string) error {
	// What an installed kernel has in /lib/modules: the built-in modules'
	// modinfo, one of the sources of known parameters.
	kver, err := os.ReadFile(filepath.Join(*vmDir, "KVER"))
	if err != nil {
		return err
	}
	k := strings.TrimSpace(string(kver))
	b, err := os.ReadFile(filepath.Join(*vmDir, "kernel", "lib", "modules", k, "modules.builtin.modinfo"))
	if err != nil {
		return err
	}
	d := filepath.Join(dir, "lib", "modules", k)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(d, "modules.builtin.modinfo"), b, 0o644)
}

func guestScript(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func decodeStep(t *testing.T, g *guest, step string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(strings.Join(g.run(t, step).raw, ""))
	if err != nil {
		t.Fatalf("%s: %v", step, err)
	}
	return b
}

// The issue-5 acceptance test: on a real boot, every built-in initcall with
// its level, mxcpus flagged with maxcpus suggested, an SVG and a Perfetto
// trace with one slice per initcall.
func TestBootReport(t *testing.T) {
	t.Parallel()
	g := boot(t, guestScript(t, "boot-guest.sh"), addGuestLib, "--append", bootParams, "--timeout", "300")

	rep := parseBootReport(t, g, "json-file")
	calling := g.run(t, "calling")
	if len(calling.raw) != 1 {
		t.Fatalf("calling count: %q", calling.raw)
	}
	nCalling, err := strconv.Atoi(strings.TrimSpace(calling.raw[0]))
	if err != nil {
		t.Fatal(err)
	}
	builtin := 0
	for _, ic := range rep.Initcalls {
		if ic.Module != "" {
			continue
		}
		builtin++
		if ic.Level == "" || ic.Level == "unknown" {
			t.Errorf("initcall %d %s has no level", ic.Seq, ic.Function)
		}
	}
	t.Logf("source %s: %d initcalls, %d built in; the log has %d calling lines; time to init %.3fs", rep.Source, len(rep.Initcalls), builtin, nCalling, float64(rep.TimeToInit)/1e9)
	if rep.Source != "trace" {
		t.Errorf("source = %s, want trace", rep.Source)
	}
	// No module is loaded in this guest, so every calling line is a
	// built-in initcall.
	if builtin != nCalling || builtin != len(rep.Initcalls) || builtin < 500 {
		t.Errorf("%d built-in initcalls (%d in all), the log has %d calling lines", builtin, len(rep.Initcalls), nCalling)
	}
	var levels []string
	for _, l := range rep.Levels {
		levels = append(levels, l.Level)
	}
	if want := "console early pure core postcore arch subsys fs device late"; strings.Join(levels, " ") != want {
		t.Errorf("levels = %v, want %s", levels, want)
	}

	var unknown, positive int
	for _, f := range rep.Findings {
		switch f.Rule {
		case "unknown-boot-param":
			unknown++
			switch f.Param {
			case "mxcpus=1":
				if f.Suggestion != "maxcpus" || f.Severity != "warning" || strings.Join(f.Sources, ",") != "kernel-log,cmdline-check" {
					t.Errorf("mxcpus finding = %+v", f)
				}
			case "panic_on_oops=0":
				// run.sh passes it, but 6.1 has it only as a sysctl.
				if f.Suggestion != "sysctl.kernel.panic_on_oops" {
					t.Errorf("panic_on_oops finding = %+v", f)
				}
			default:
				t.Errorf("unexpected unknown-boot-param %+v", f)
			}
		case "positive-init-return":
			// 6.1's set_hardened_usercopy returns 1: a real one.
			positive++
			if f.Function != "set_hardened_usercopy" || f.Level != "late" || f.Value != 1 {
				t.Errorf("positive-init-return = %+v", f)
			}
		case "initcall-oops", "boot-param-not-effective":
			t.Errorf("unexpected %s: %s", f.Rule, f.Message)
		}
	}
	if unknown != 2 || positive != 1 {
		t.Errorf("%d unknown-boot-param, %d positive-init-return; want 2 and 1", unknown, positive)
	}
	if e := g.run(t, "json").exit; e != 1 {
		t.Errorf("exit = %d, want 1 (an error finding)", e)
	}
	text := strings.Join(g.run(t, "text").raw, "\n")
	if !strings.Contains(text, "WARNING unknown-boot-param:") || !strings.Contains(text, "did you mean maxcpus?") {
		t.Errorf("text report lacks the mxcpus warning:\n%s", tail(text, 30))
	}

	// The SVG: well-formed, one bar (with its tooltip) per initcall.
	if e := g.run(t, "svg").exit; e != 1 {
		t.Errorf("svg step exit = %d, want 1", e)
	}
	svg := decodeStep(t, g, "svg-file")
	dec := xml.NewDecoder(strings.NewReader(string(svg)))
	titles, root := 0, ""
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("SVG: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if root == "" {
				root = se.Name.Space + " " + se.Name.Local
			}
			if se.Name.Local == "title" {
				titles++
			}
		}
	}
	if root != "http://www.w3.org/2000/svg svg" || titles != len(rep.Initcalls) {
		t.Errorf("SVG root %q with %d bars, want svg with %d", root, titles, len(rep.Initcalls))
	}

	// Perfetto: Chrome trace-event JSON, one complete slice per initcall.
	var pf struct {
		TraceEvents []struct {
			Name string   `json:"name"`
			Ph   string   `json:"ph"`
			Dur  *float64 `json:"dur"`
		} `json:"traceEvents"`
	}
	if err := json.Unmarshal(decodeStep(t, g, "perfetto-file"), &pf); err != nil {
		t.Fatalf("Perfetto JSON: %v", err)
	}
	n := 0
	for i, e := range pf.TraceEvents {
		if e.Ph == "X" {
			if e.Dur == nil || e.Name != rep.Initcalls[n].Function {
				t.Errorf("slice %d = %+v, want %s with a duration", i, e, rep.Initcalls[n].Function)
			}
			n++
		}
	}
	if n != len(rep.Initcalls) {
		t.Errorf("%d slices, want %d", n, len(rep.Initcalls))
	}
}

// Seed incident 1: an oops inside an initcall, found in a saved log.
func TestBootInitcallOops(t *testing.T) {
	t.Parallel()
	g := boot(t, guestScript(t, "boot-oops.sh"), nil, "--append", "initcall_debug", "--timeout", "300")
	r := g.run(t, "oops")
	rep := parseBootReport(t, g, "oops-json")
	if rep.Source != "initcall_debug" {
		t.Errorf("source = %s, want initcall_debug", rep.Source)
	}
	var oops []int
	for i, f := range rep.Findings {
		if f.Rule == "initcall-oops" {
			oops = append(oops, i)
		}
	}
	if len(oops) != 1 {
		t.Fatalf("want one initcall-oops, got %d: %+v\n%s", len(oops), rep.Findings, strings.Join(r.raw, "\n"))
	}
	f := rep.Findings[oops[0]]
	if f.Function != "kt_oops_init" || f.Module != "kt_oops_init" || f.Level != "module" || f.Severity != "error" {
		t.Errorf("initcall-oops = %+v", f)
	}
	if !strings.Contains(f.Message, "kt_oops_net_stats_init") || !strings.Contains(f.Message, "heuristic") {
		t.Errorf("message: %s", f.Message)
	}
	t.Logf("initcall-oops: %s", f.Message)
	if r.exit != 1 {
		t.Errorf("exit = %d, want 1", r.exit)
	}
	// The control: the built-in initcalls of the same boot all returned.
	for _, ic := range rep.Initcalls {
		if !ic.Finished && ic.Function != "kt_oops_init" {
			t.Errorf("%s has no return", ic.Function)
		}
	}
}

// Seed incident 4, complete: a 4-vCPU guest booted with mxcpus=2 (a typo)
// and with maxcpus=2. ktracer boot flags the typo with maxcpus suggested,
// and --expect cpus=2 fails on the typo'd boot (4 CPUs online) and holds
// on the correct one. With KT_SAVE_CAPTURE=DIR each boot is also saved as
// a boot/testdata-style fixture DIR/vm-<kver>-smp4-<param>.tgz.
func TestBootExpectCPUs(t *testing.T) {
	script := guestScript(t, "boot-expect.sh") + guestScript(t, "boot-capture.sh")
	for _, tc := range []struct {
		param  string
		online string
		held   bool
	}{
		{"mxcpus=2", "0-3", false},
		{"maxcpus=2", "0-1", true},
	} {
		t.Run(tc.param, func(t *testing.T) {
			g := boot(t, script, addGuestLib, "--smp", "4", "--timeout", "400",
				"--append", tc.param)
			if on := strings.Join(g.run(t, "online").raw, ""); on != tc.online {
				t.Errorf("online CPUs %q, want %q", on, tc.online)
			}
			rep := parseBootReport(t, g, "expect-json")
			if len(rep.Expectations) != 1 {
				t.Fatalf("expectations = %+v", rep.Expectations)
			}
			e := rep.Expectations[0]
			t.Logf("%s: expect cpus=2: held=%v got=%d from %s", tc.param, e.Held, e.Got, e.Source)
			wantGot := map[bool]int64{false: 4, true: 2}[tc.held]
			if e.Key != "cpus" || e.Want != 2 || e.Held != tc.held || e.Got != wantGot || e.Source != "/sys/devices/system/cpu/online" {
				t.Errorf("expectation = %+v, want held=%v got=%d", e, tc.held, wantGot)
			}
			var typo, failed int
			for _, f := range rep.Findings {
				switch f.Rule {
				case "unknown-boot-param":
					if f.Param == "mxcpus=2" {
						typo++
						if f.Suggestion != "maxcpus" {
							t.Errorf("mxcpus finding = %+v", f)
						}
					}
				case "boot-expectation-failed":
					failed++
					t.Logf("finding: %s", f.Message)
					if f.Severity != "error" || f.Value != 4 || !strings.Contains(f.Message, "mxcpus=2") || f.Suggestion != "maxcpus" {
						t.Errorf("boot-expectation-failed = %+v", f)
					}
				case "boot-param-not-effective":
					t.Errorf("unexpected %+v", f)
				}
			}
			wantTypo := map[bool]int{false: 1, true: 0}[tc.held]
			if typo != wantTypo || failed != wantTypo {
				t.Errorf("%d mxcpus findings and %d failed expectations, want %d of each", typo, failed, wantTypo)
			}
			// The exit status: 1 on the typo (the failed expectation is an
			// error); 0 on the correct boot, whose only finding is run.sh's
			// panic_on_oops=0 (a warning). The boot is not recorded with
			// initcall events on purpose: 6.1's set_hardened_usercopy
			// returns 1, an error finding that would hide the verdict.
			wantExit := map[bool]int{false: 1, true: 0}[tc.held]
			if x := g.run(t, "expect").exit; x != wantExit {
				t.Errorf("ktracer boot --expect cpus=2 exit = %d, want %d", x, wantExit)
			}
			text := strings.Join(g.run(t, "expect-text").raw, "\n")
			want := map[bool]string{false: "expect cpus=2: FAILED (cpus 4, from /sys/devices/system/cpu/online)", true: "expect cpus=2: held (cpus 2, from /sys/devices/system/cpu/online)"}[tc.held]
			if !strings.Contains(text, want) {
				t.Errorf("text lacks %q:\n%s", want, tail(text, 12))
			} else {
				t.Logf("text: %s", want)
			}
			if dir := os.Getenv("KT_SAVE_CAPTURE"); dir != "" {
				var lines []string
				for _, l := range g.run(t, "fixture").raw {
					lines = append(lines, l)
				}
				b, err := base64.StdEncoding.DecodeString(strings.Join(lines, ""))
				if err != nil {
					t.Fatalf("fixture: %v", err)
				}
				kver, _ := os.ReadFile(filepath.Join(*vmDir, "KVER"))
				name := filepath.Join(dir, "vm-"+strings.TrimSpace(string(kver))+"-smp4-"+strings.TrimSuffix(tc.param, "=2")+".tgz")
				if err := os.WriteFile(name, b, 0o644); err != nil {
					t.Fatal(err)
				}
				t.Logf("saved %s", name)
			}
		})
	}
}
