package boot

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ktracer/ktracer/decoder"
)

func ic(fn, level string, start, dur time.Duration, ret int32) Initcall {
	return Initcall{Function: fn, Level: level, Start: start, Duration: dur, Ret: ret, Errno: decoder.ErrnoName(ret), Finished: true}
}

func rep(cmdline string, ics ...Initcall) *Report {
	r := &Report{Source: SourceTrace, Cmdline: cmdline, Initcalls: ics}
	r.summarize(nil, defaultTop)
	return r
}

func TestCompareSynthetic(t *testing.T) {
	ms := time.Millisecond
	oldR := rep("console=ttyS0 maxcpus=2 quiet",
		ic("con_init", "console", 0, ms, 0),
		ic("kt_driver_init", "device", 10*ms, ms, 0), // moves to core
		ic("gone_init", "subsys", 20*ms, ms, 0),
		ic("fails_now", "fs", 30*ms, ms, 0),
		ic("slow_init", "fs", 40*ms, 10*ms, 0),    // +20ms: a regression
		ic("noise_init", "fs", 60*ms, 100*ms, 0),  // +5ms of 100: under the ratio
		ic("tiny_init", "fs", 200*ms, 100_000, 0), // 0.1 -> 0.9ms: under the floor
		ic("twice", "late", 300*ms, ms, 0),
		ic("twice", "late", 310*ms, ms, 0),
	)
	stuck := ic("hangs", "late", 400*ms, 0, 0)
	stuck.Finished = false
	newR := rep("console=ttyS0 mxcpus=2 quiet debug",
		ic("con_init", "console", 0, ms, 0),
		ic("kt_driver_init", "core", 5*ms, ms, 0),
		ic("fails_now", "fs", 30*ms, ms, -19),
		ic("slow_init", "fs", 40*ms, 30*ms, 0),
		ic("noise_init", "fs", 80*ms, 105*ms, 0),
		ic("tiny_init", "fs", 200*ms, 900_000, 0),
		ic("twice", "late", 300*ms, ms, 0),
		ic("new_init", "late", 305*ms, ms, 0),
		stuck,
	)
	newR.Findings = []Finding{{Rule: RuleUnknownBootParam, Param: "mxcpus=2", Suggest: "maxcpus"}}
	d := Compare(oldR, newR, "a", "b", DiffOptions{})

	if len(d.LevelChanged) != 1 || d.LevelChanged[0] != (LevelChange{"kt_driver_init", "", "device", "core"}) {
		t.Errorf("level changed %+v", d.LevelChanged)
	}
	var gone, came []string
	for _, x := range d.Disappeared {
		gone = append(gone, x.Function)
	}
	for _, x := range d.Appeared {
		came = append(came, x.Function)
	}
	if strings.Join(gone, " ") != "gone_init twice" || strings.Join(came, " ") != "new_init hangs" {
		t.Errorf("disappeared %v, appeared %v", gone, came)
	}
	if len(d.RetChanged) != 1 || d.RetChanged[0].Function != "fails_now" || d.RetChanged[0].Old != "0" || d.RetChanged[0].New != "-19 (ENODEV)" {
		t.Errorf("return changed %+v", d.RetChanged)
	}
	if len(d.Regressions) != 1 || d.Regressions[0].Function != "slow_init" || d.Regressions[0].Delta != 20*ms {
		t.Errorf("regressions %+v", d.Regressions)
	}
	// A lower floor lets the small ones in, largest first.
	d2 := Compare(oldR, newR, "a", "b", DiffOptions{Floor: 500 * time.Microsecond, Ratio: 1.01})
	var regs []string
	for _, r := range d2.Regressions {
		regs = append(regs, r.Function)
	}
	if strings.Join(regs, " ") != "slow_init noise_init tiny_init" {
		t.Errorf("low floor: %v", regs)
	}
	var params []string
	for _, p := range d.Params {
		s := p.Old + ">" + p.New
		if p.Unknown != nil {
			s += "?" + p.Unknown.Suggest
		}
		params = append(params, s)
	}
	if got := strings.Join(params, " "); got != "maxcpus=2> >mxcpus=2?maxcpus >debug" {
		t.Errorf("params %q", got)
	}
	var levels []string
	for _, l := range d.Levels {
		levels = append(levels, l.Level)
	}
	if strings.Join(levels, " ") != "console core subsys fs device late" {
		t.Errorf("levels %v", levels)
	}
}

func TestCompareUnrecorded(t *testing.T) {
	oldR := rep("a b", ic("x", "core", 0, 1, 0))
	newR := &Report{Source: SourceNone, Cmdline: "a c"}
	newR.summarize(nil, 1)
	d := Compare(oldR, newR, "old", "new", DiffOptions{})
	if len(d.Disappeared) != 0 || len(d.Appeared) != 0 || len(d.Notes) != 1 || !strings.Contains(d.Notes[0], "new boot's initcalls were not recorded") {
		t.Errorf("%+v", d)
	}
	if len(d.Params) != 2 {
		t.Errorf("params %+v", d.Params)
	}
}

// Two real 6.1 boots from the e2e VM: the same kernel, other parameters.
func TestCompareCaptures(t *testing.T) {
	a := analyzeFixture(t, "vm-6.1-trace-initcall_debug-mxcpus.tgz", Options{})
	b := analyzeFixture(t, "vm-6.1-trace-maxcpus-crashkernel.tgz", Options{})
	self := Compare(a, a, "a", "a", DiffOptions{})
	if len(self.LevelChanged)+len(self.Appeared)+len(self.Disappeared)+len(self.RetChanged)+len(self.Regressions)+len(self.Params) != 0 {
		t.Errorf("a boot differs from itself: %+v", self)
	}
	d := Compare(a, b, "a", "b", DiffOptions{Floor: 20 * time.Millisecond})
	if len(d.Appeared)+len(d.Disappeared)+len(d.LevelChanged) != 0 || d.Old.Initcalls != 575 || d.New.Initcalls != 575 {
		t.Errorf("same kernel, same initcalls: %d/%d, appeared %d, disappeared %d, level changed %d", d.Old.Initcalls, d.New.Initcalls, len(d.Appeared), len(d.Disappeared), len(d.LevelChanged))
	}
	for i, r := range d.Regressions {
		if r.Delta < 20*time.Millisecond || float64(r.New) < 1.25*float64(r.Old) || (i > 0 && r.Delta > d.Regressions[i-1].Delta) {
			t.Errorf("regression %d under the floor or out of order: %+v", i, r)
		}
	}
	if len(d.Regressions) == 0 {
		t.Error("no regression at all between two TCG boots")
	}
	var mx *ParamChange
	for i, p := range d.Params {
		if p.Name == "mxcpus" {
			mx = &d.Params[i]
		}
	}
	if mx == nil || mx.Old != "mxcpus=1" || mx.New != "" || mx.Unknown == nil || mx.Unknown.Suggest != "maxcpus" {
		t.Errorf("mxcpus change %+v", mx)
	}
	if len(d.Levels) != 10 || d.Levels[len(d.Levels)-1].Level != "late" {
		t.Errorf("levels %+v", d.Levels)
	}

	var text, js, svg bytes.Buffer
	for f, w := range map[string]*bytes.Buffer{"text": &text, "json": &js, "svg": &svg} {
		if err := RenderDiff(w, d, f); err != nil {
			t.Fatal(f, err)
		}
	}
	for _, want := range []string{"time to init: 3.73 s -> 3.96 s", "- mxcpus=1   WARNING unknown-boot-param (did you mean maxcpus?)", "+ crashkernel=2G", "level changed: 0", "disappeared: 0"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
	var back Diff
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.New.Initcalls != 575 || len(back.Regressions) != len(d.Regressions) {
		t.Errorf("JSON: %v %+v", err, back.New)
	}
	// The SVG: one document, two nested timelines, a bar per initcall.
	dec := xml.NewDecoder(&svg)
	svgs, titles := 0, 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("SVG: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			switch se.Name.Local {
			case "svg":
				svgs++
			case "title":
				titles++
			}
		}
	}
	if svgs != 3 || titles != 2*575 {
		t.Errorf("SVG: %d svg elements, %d bars; want 3 and %d", svgs, titles, 2*575)
	}
}

// Debian's 6.1 and 6.12 booted in the e2e VM with the same recording: an
// upgrade's diff, from the kernels' own trace events.
func TestCompareKernels(t *testing.T) {
	a := analyzeFixture(t, "vm-6.1-trace-initcall_debug-mxcpus.tgz", Options{})
	b := analyzeFixture(t, "vm-6.12-trace-initcall_debug-mxcpus.tgz", Options{})
	if a.Source != SourceTrace || b.Source != SourceTrace || !strings.Contains(b.Kernel, "6.12.") {
		t.Fatalf("fixtures: %s %s %s", a.Source, b.Source, b.Kernel)
	}
	d := Compare(a, b, "6.1", "6.12", DiffOptions{Floor: 20 * time.Millisecond})
	t.Logf("6.1 -> 6.12: %d -> %d initcalls, %d appeared, %d disappeared, %d changed level, %d changed return, %d regressions",
		d.Old.Initcalls, d.New.Initcalls, len(d.Appeared), len(d.Disappeared), len(d.LevelChanged), len(d.RetChanged), len(d.Regressions))
	// Every initcall is in exactly one of: both boots, appeared, disappeared.
	om, _ := keyed(a.Initcalls)
	nm, _ := keyed(b.Initcalls)
	both := 0
	for k := range om {
		if _, ok := nm[k]; ok {
			both++
		}
	}
	if both+len(d.Disappeared) != d.Old.Initcalls || both+len(d.Appeared) != d.New.Initcalls || len(d.Appeared) == 0 || len(d.Disappeared) == 0 {
		t.Errorf("%d in both, %d disappeared, %d appeared: does not add up to %d and %d", both, len(d.Disappeared), len(d.Appeared), d.Old.Initcalls, d.New.Initcalls)
	}
	found := false
	for _, c := range d.LevelChanged {
		if c.Old == c.New || c.Old == LevelUnknown || c.New == LevelUnknown {
			t.Errorf("not a level change: %+v", c)
		}
		found = found || c == LevelChange{Function: "intel_epb_init", Old: "subsys", New: "late"}
	}
	if !found {
		t.Errorf("intel_epb_init subsys -> late, as the two kernels record it, not found in %+v", d.LevelChanged)
	}
	// The same command line but run.sh's no_timer_check, added since.
	if len(d.Params) != 1 || d.Params[0].New != "no_timer_check" || d.Params[0].Unknown != nil {
		t.Errorf("params %+v", d.Params)
	}
}
