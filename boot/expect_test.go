package boot

import (
	"bytes"
	"strings"
	"testing"
	"testing/fstest"
)

func TestParseExpectation(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Expectation
		err  string
	}{
		{"cpus=2", Expectation{"cpus", 2}, ""},
		{" cpus=16 ", Expectation{"cpus", 16}, ""},
		{"cpus=0", Expectation{}, "not a positive count"},
		{"cpus=-1", Expectation{}, "not a positive count"},
		{"cpus=two", Expectation{}, "not a positive count"},
		{"cpus=", Expectation{}, "want KEY=VALUE"},
		{"cpus", Expectation{}, "want KEY=VALUE"},
		{"=2", Expectation{}, "want KEY=VALUE"},
		{"cpu=2", Expectation{}, `unknown key "cpu"`},
		{"mem=768M", Expectation{"mem", 768 << 20}, ""},
		{"mem=1G", Expectation{"mem", 1 << 30}, ""},
		{"mem=lots", Expectation{}, "not a positive size"},
		{"mem=0", Expectation{}, "not a positive size"},
	} {
		got, err := ParseExpectation(tc.in)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("%q: %+v, %v; want %+v", tc.in, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: error %v, want one saying %q", tc.in, err, tc.err)
		}
	}
}

func TestJudgeExpectation(t *testing.T) {
	cpus2 := Expectation{"cpus", 2}
	typo := []Finding{
		{Rule: RuleUnknownBootParam, Param: "panic_on_oops=0", Suggest: "sysctl.kernel.panic_on_oops"},
		{Rule: RuleUnknownBootParam, Param: "mxcpus=2", Suggest: "maxcpus"},
	}
	for _, tc := range []struct {
		name     string
		got      int64
		observed bool
		unknown  []Finding
		held     bool
		msg      []string
		suggest  string
	}{
		{"holds", 2, true, nil, true, nil, ""},
		{"holds despite a typo elsewhere", 2, true, typo, true, nil, ""},
		{"too many", 4, true, nil, false, []string{"expected cpus=2, but 4 CPUs are online (SRC)"}, ""},
		{"too few", 1, true, nil, false, []string{"but 1 CPUs are online"}, ""},
		{"the typo behind it", 4, true, typo, false, []string{"4 CPUs are online", `"mxcpus=2" is not a parameter`, "had no effect: did you mean maxcpus?"}, "maxcpus"},
		{"not readable", 0, false, typo, false, []string{"cannot be read", "does not pass"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, f := judgeExpectation(cpus2, tc.got, "SRC", tc.observed, tc.unknown)
			if res.Held != tc.held || res.Want != 2 || res.Key != "cpus" {
				t.Errorf("result %+v, want held=%v", res, tc.held)
			}
			if tc.held {
				if f != nil {
					t.Errorf("finding %+v for a held expectation", f)
				}
				return
			}
			if f == nil {
				t.Fatal("no finding")
			}
			if f.Rule != RuleBootExpectation || f.Param != "cpus=2" || f.Suggest != tc.suggest {
				t.Errorf("finding %+v", f)
			}
			for _, m := range tc.msg {
				if !strings.Contains(f.Message, m) {
					t.Errorf("message %q lacks %q", f.Message, m)
				}
			}
		})
	}
}

// On real captures: the machine's /sys wins, the log's "smp: Brought up"
// line serves without one (ktracer boot --from).
func TestExpectOnCaptures(t *testing.T) {
	for _, tc := range []struct {
		fixture string
		want    int64
		root    bool
		held    bool
		got     int64
		source  string
		typo    bool
	}{
		{"vm-6.1-trace-initcall_debug-mxcpus.tgz", 1, true, false, 2, "/sys/devices/system/cpu/online", true},
		{"vm-6.1-trace-initcall_debug-mxcpus.tgz", 1, false, false, 2, "kernel log (smp: Brought up ...)", true},
		{"vm-6.1-trace-initcall_debug-mxcpus.tgz", 2, false, true, 2, "kernel log (smp: Brought up ...)", false},
		{"vm-6.1-trace-maxcpus-crashkernel.tgz", 1, true, true, 1, "/sys/devices/system/cpu/online", false},
		// Seed incident 4 on a 4-vCPU guest (TestBootExpectCPUs's boots).
		{"vm-6.1-smp4-mxcpus.tgz", 2, true, false, 4, "/sys/devices/system/cpu/online", true},
		{"vm-6.1-smp4-mxcpus.tgz", 2, false, false, 4, "kernel log (smp: Brought up ...)", true},
		{"vm-6.1-smp4-maxcpus.tgz", 2, true, true, 2, "/sys/devices/system/cpu/online", false},
		{"vm-6.1-smp4-maxcpus.tgz", 2, false, true, 2, "kernel log (smp: Brought up ...)", false},
		{"vm-6.1-trace-maxcpus-crashkernel.tgz", 1, false, true, 1, "kernel log (smp: Brought up ...)", false},
	} {
		fsys, dmesg := loadFixture(t, tc.fixture)
		in := Input{Log: bytes.NewReader(dmesg)}
		if tc.root {
			in.Root = fsys
		} else {
			in.Trace = strings.NewReader("")
		}
		r, err := Analyze(in, Options{Expect: []Expectation{{"cpus", tc.want}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Expectations) != 1 {
			t.Fatalf("%s: expectations %+v", tc.fixture, r.Expectations)
		}
		e := r.Expectations[0]
		if e.Held != tc.held || e.Got != tc.got || e.Source != tc.source {
			t.Errorf("%s root=%v cpus=%d: %+v", tc.fixture, tc.root, tc.want, e)
		}
		var failed []Finding
		for _, f := range r.Findings {
			if f.Rule == RuleBootExpectation {
				failed = append(failed, f)
			}
		}
		if tc.held != (len(failed) == 0) || len(failed) > 1 {
			t.Errorf("%s: findings %+v", tc.fixture, failed)
		}
		if len(failed) == 1 {
			if (failed[0].Suggest == "maxcpus") != tc.typo || failed[0].Severity.String() != "error" {
				t.Errorf("%s: %+v", tc.fixture, failed[0])
			}
			if tc.held == false && r.Worst().String() != "error" {
				t.Errorf("worst %v", r.Worst())
			}
		}
	}
	// Nothing to read it from: the assertion fails.
	r, err := Analyze(Input{Root: fstest.MapFS{}}, Options{Expect: []Expectation{{"cpus", 2}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Expectations) != 1 || r.Expectations[0].Held || len(r.Findings) != 1 || r.Findings[0].Rule != RuleBootExpectation {
		t.Errorf("unreadable: %+v %+v", r.Expectations, r.Findings)
	}
}

func TestJudgeMem(t *testing.T) {
	lim := Expectation{"mem", 768 << 20}
	if lim.String() != "mem=768M" {
		t.Errorf("String %q", lim)
	}
	memTypo := []Finding{{Rule: RuleUnknownBootParam, Param: "mme=768M", Suggest: "mem"}, {Rule: RuleUnknownBootParam, Param: "mxcpus=2", Suggest: "maxcpus"}}
	for _, tc := range []struct {
		got  int64
		held bool
	}{{700 << 20, true}, {768 << 20, true}, {768<<20 + 1, false}, {1 << 30, false}} {
		res, f := judgeExpectation(lim, tc.got, "SRC", true, memTypo)
		if res.Held != tc.held || (f == nil) != tc.held {
			t.Errorf("MemTotal %d: %+v %+v", tc.got, res, f)
		}
		if f != nil && (f.Suggest != "mem" || !strings.Contains(f.Message, "the kernel manages 1024 MiB") && tc.got == 1<<30) {
			t.Errorf("finding %+v", f)
		}
	}
	// mem= took effect on this capture (MemTotal under 768M), not on the
	// 1 GiB guest without it.
	for _, tc := range []struct {
		fixture string
		held    bool
	}{{"vm-6.1-trace-maxcpus-crashkernel.tgz", true}, {"vm-6.1-trace-initcall_debug-mxcpus.tgz", false}} {
		r := analyzeFixture(t, tc.fixture, Options{Expect: []Expectation{lim}})
		if len(r.Expectations) != 1 || r.Expectations[0].Held != tc.held || r.Expectations[0].Source != "/proc/meminfo MemTotal" {
			t.Errorf("%s: %+v", tc.fixture, r.Expectations)
		}
		t.Logf("%s: MemTotal %d MiB", tc.fixture, r.Expectations[0].Got>>20)
	}
}
