package boot

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ktracer/ktracer/decoder"
)

// DiffOptions tune Compare.
type DiffOptions struct {
	// Floor is the noise floor of a duration regression: an initcall counts
	// only when it got slower by at least Floor and by at least Ratio
	// (1.25: a quarter slower). 0: 1ms and 1.25.
	Floor time.Duration
	Ratio float64
	Top   int // how many regressions to list; 0: 10
}

// DiffSide is what the diff says of one boot on its own.
type DiffSide struct {
	Name       string        `json:"name"` // the file(s) it was read from
	Kernel     string        `json:"kernel,omitempty"`
	Cmdline    string        `json:"cmdline,omitempty"`
	Source     string        `json:"source"`
	Initcalls  int           `json:"initcalls"`
	TimeToInit time.Duration `json:"time_to_init_ns"`
}

// LevelChange is an initcall that runs at another level in the new boot:
// seed incident 1's "worked in development" shape.
type LevelChange struct {
	Function string `json:"function"`
	Module   string `json:"module,omitempty"`
	Old      string `json:"old_level"`
	New      string `json:"new_level"`
}

// DiffInitcall names an initcall that is in one boot only.
type DiffInitcall struct {
	Function string        `json:"function"`
	Module   string        `json:"module,omitempty"`
	Level    string        `json:"level"`
	Ret      int32         `json:"ret"`
	Duration time.Duration `json:"duration_ns"`
}

// RetChange is an initcall whose return value changed.
type RetChange struct {
	Function string `json:"function"`
	Module   string `json:"module,omitempty"`
	Level    string `json:"level"`
	Old      string `json:"old"` // retText: "0", "-19 (ENODEV)", "never returned"
	New      string `json:"new"`
}

// Regression is an initcall that got slower above the noise floor.
type Regression struct {
	Function string        `json:"function"`
	Module   string        `json:"module,omitempty"`
	Level    string        `json:"level"`
	Old      time.Duration `json:"old_ns"`
	New      time.Duration `json:"new_ns"`
	Delta    time.Duration `json:"delta_ns"`
}

// LevelDiff is one initcall level in both boots: how many initcalls, when
// it ended (time to init per level: the boot is at least that far), and its
// initcalls' summed time.
type LevelDiff struct {
	Level    string        `json:"level"`
	OldCount int           `json:"old_initcalls"`
	NewCount int           `json:"new_initcalls"`
	OldEnd   time.Duration `json:"old_end_ns"`
	NewEnd   time.Duration `json:"new_end_ns"`
	OldTime  time.Duration `json:"old_time_ns"`
	NewTime  time.Duration `json:"new_time_ns"`
}

// ParamChange is a command-line word that differs between the boots.
type ParamChange struct {
	Name string `json:"name"`
	Old  string `json:"old,omitempty"` // the word ("maxcpus=2"); "" when absent
	New  string `json:"new,omitempty"`
	// Unknown is the new boot's unknown-boot-param verdict on the new word
	// (the old boot's, for a removed word): same judgment as ktracer boot.
	Unknown *Finding `json:"unknown,omitempty"`
}

// Diff is `ktracer boot diff OLD NEW`.
type Diff struct {
	Old          DiffSide       `json:"old"`
	New          DiffSide       `json:"new"`
	LevelChanged []LevelChange  `json:"level_changed"`
	Appeared     []DiffInitcall `json:"appeared"`
	Disappeared  []DiffInitcall `json:"disappeared"`
	RetChanged   []RetChange    `json:"return_changed"`
	Regressions  []Regression   `json:"regressions"`
	Floor        time.Duration  `json:"noise_floor_ns"`
	Ratio        float64        `json:"noise_ratio"`
	Levels       []LevelDiff    `json:"levels"`
	Params       []ParamChange  `json:"cmdline_changed"`
	Notes        []string       `json:"notes,omitempty"`

	oldR, newR *Report
}

// key tells initcalls apart: function, module, and the occurrence number
// for a function run more than once.
type key struct {
	fn, mod string
	n       int
}

func keyed(ics []Initcall) (map[key]Initcall, []key) {
	m := map[key]Initcall{}
	seen := map[key]int{}
	var order []key
	for _, ic := range ics {
		k := key{ic.Function, ic.Module, 0}
		k.n = seen[k]
		seen[key{ic.Function, ic.Module, 0}]++
		m[k] = ic
		order = append(order, k)
	}
	return m, order
}

// Compare diffs two reports of Analyze. Level, return and duration
// comparisons need both boots recorded; the command line is compared
// whatever was recorded.
func Compare(oldR, newR *Report, oldName, newName string, opt DiffOptions) *Diff {
	if opt.Floor <= 0 {
		opt.Floor = time.Millisecond
	}
	if opt.Ratio < 1 {
		opt.Ratio = 1.25
	}
	if opt.Top <= 0 {
		opt.Top = defaultTop
	}
	side := func(r *Report, name string) DiffSide {
		return DiffSide{Name: name, Kernel: r.Kernel, Cmdline: r.Cmdline, Source: r.Source, Initcalls: len(r.Initcalls), TimeToInit: r.TimeToInit}
	}
	d := &Diff{Old: side(oldR, oldName), New: side(newR, newName), Floor: opt.Floor, Ratio: opt.Ratio,
		LevelChanged: []LevelChange{}, Appeared: []DiffInitcall{}, Disappeared: []DiffInitcall{}, RetChanged: []RetChange{},
		Regressions: []Regression{}, Levels: []LevelDiff{}, Params: []ParamChange{}, oldR: oldR, newR: newR}
	for _, s := range []struct {
		r    *Report
		name string
	}{{oldR, "old"}, {newR, "new"}} {
		if !s.r.Recorded() {
			d.Notes = append(d.Notes, fmt.Sprintf("the %s boot's initcalls were not recorded, so only the command lines are compared; boot with %s", s.name, recommendTrace))
		}
	}
	om, oorder := keyed(oldR.Initcalls)
	nm, norder := keyed(newR.Initcalls)
	for _, k := range oorder {
		o := om[k]
		n, ok := nm[k]
		if !ok {
			if newR.Recorded() {
				d.Disappeared = append(d.Disappeared, DiffInitcall{o.Function, o.Module, o.Level, o.Ret, o.Duration})
			}
			continue
		}
		if o.Level != n.Level && o.Level != LevelUnknown && n.Level != LevelUnknown {
			d.LevelChanged = append(d.LevelChanged, LevelChange{o.Function, o.Module, o.Level, n.Level})
		}
		if o.Ret != n.Ret || o.Finished != n.Finished {
			d.RetChanged = append(d.RetChanged, RetChange{n.Function, n.Module, n.Level, retText(o), retText(n)})
		}
		if delta := n.Duration - o.Duration; o.Finished && n.Finished && delta >= opt.Floor && float64(n.Duration) >= float64(o.Duration)*opt.Ratio {
			d.Regressions = append(d.Regressions, Regression{n.Function, n.Module, n.Level, o.Duration, n.Duration, delta})
		}
	}
	if oldR.Recorded() {
		for _, k := range norder {
			if _, ok := om[k]; !ok {
				n := nm[k]
				d.Appeared = append(d.Appeared, DiffInitcall{n.Function, n.Module, n.Level, n.Ret, n.Duration})
			}
		}
	}
	slices.SortStableFunc(d.Regressions, func(a, b Regression) int { return cmp.Compare(b.Delta, a.Delta) })
	if len(d.Regressions) > opt.Top {
		d.Regressions = d.Regressions[:opt.Top]
	}
	d.Levels = levelDiffs(oldR.Levels, newR.Levels)
	d.Params = paramChanges(oldR, newR)
	return d
}

func levelDiffs(old, new []LevelSummary) []LevelDiff {
	idx := map[string]int{}
	var out []LevelDiff
	get := func(name string) *LevelDiff {
		i, ok := idx[name]
		if !ok {
			i = len(out)
			idx[name] = i
			out = append(out, LevelDiff{Level: name})
		}
		return &out[i]
	}
	for _, l := range old {
		x := get(l.Name)
		x.OldCount, x.OldEnd, x.OldTime = l.Count, l.End, l.Duration
	}
	for _, l := range new {
		x := get(l.Name)
		x.NewCount, x.NewEnd, x.NewTime = l.Count, l.End, l.Duration
	}
	slices.SortStableFunc(out, func(a, b LevelDiff) int { return cmp.Compare(levelRank(a.Level), levelRank(b.Level)) })
	if out == nil {
		out = []LevelDiff{}
	}
	return out
}

// paramChanges lists the command-line words added, removed or changed,
// each with its boot's own unknown-boot-param verdict.
func paramChanges(oldR, newR *Report) []ParamChange {
	words := func(s string) (map[string]string, []string) {
		m := map[string]string{}
		var order []string
		ws := splitCmdline(s)
		if i := slices.Index(ws, "--"); i >= 0 {
			ws = ws[:i]
		}
		for _, w := range ws {
			name, _, _ := strings.Cut(w, "=")
			name = norm(name)
			if _, ok := m[name]; !ok {
				order = append(order, name)
			}
			m[name] = w // the last one wins, as in the kernel
		}
		return m, order
	}
	unknown := func(r *Report, w string) *Finding {
		for _, f := range r.Findings {
			if f.Rule == RuleUnknownBootParam && f.Param == w {
				f := f
				return &f
			}
		}
		return nil
	}
	om, oorder := words(oldR.Cmdline)
	nm, norder := words(newR.Cmdline)
	out := []ParamChange{}
	for _, name := range oorder {
		if _, ok := nm[name]; !ok {
			out = append(out, ParamChange{Name: name, Old: om[name], Unknown: unknown(oldR, om[name])})
		}
	}
	for _, name := range norder {
		if o, ok := om[name]; !ok || o != nm[name] {
			out = append(out, ParamChange{Name: name, Old: o, New: nm[name], Unknown: unknown(newR, nm[name])})
		}
	}
	return out
}

// DiffFormats are the --format values of boot diff.
var DiffFormats = []string{"text", "json", "svg"}

// RenderDiff writes the diff in one of DiffFormats.
func RenderDiff(w io.Writer, d *Diff, format string) error {
	switch format {
	case "text":
		return WriteDiffText(w, d)
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(d)
	case "svg":
		return WriteDiffSVG(w, d)
	}
	return fmt.Errorf("unknown format %q (want %s)", format, strings.Join(DiffFormats, ", "))
}

func signedMs(d time.Duration) string {
	return fmt.Sprintf("%+.3f ms", float64(d)/float64(time.Millisecond))
}

func fnName(fn, mod string) string {
	if mod != "" {
		return fn + " [" + mod + "]"
	}
	return fn
}

// WriteDiffText writes the diff for people.
func WriteDiffText(w io.Writer, d *Diff) error {
	ew := &errWriter{w: w}
	for _, s := range []struct {
		label string
		s     DiffSide
	}{{"old", d.Old}, {"new", d.New}} {
		ew.printf("%s: %s\n", s.label, s.s.Name)
		if s.s.Kernel != "" {
			ew.printf("  kernel:       %s\n", s.s.Kernel)
		}
		if s.s.Cmdline != "" {
			ew.printf("  command line: %s\n", s.s.Cmdline)
		}
		ew.printf("  recorded by:  %s; %d initcalls; time to init %s\n", s.s.Source, s.s.Initcalls, fmtDur(s.s.TimeToInit))
	}
	ew.printf("\ntime to init: %s -> %s (%s)\n", fmtDur(d.Old.TimeToInit), fmtDur(d.New.TimeToInit), signedMs(d.New.TimeToInit-d.Old.TimeToInit))

	ew.printf("\ncommand line: %d changed\n", len(d.Params))
	for _, p := range d.Params {
		switch {
		case p.Old == "":
			ew.printf("  + %s", p.New)
		case p.New == "":
			ew.printf("  - %s", p.Old)
		default:
			ew.printf("  ~ %s -> %s", p.Old, p.New)
		}
		if p.Unknown != nil {
			ew.printf("   WARNING unknown-boot-param")
			if p.Unknown.Suggest != "" {
				ew.printf(" (did you mean %s?)", p.Unknown.Suggest)
			}
		}
		ew.printf("\n")
	}

	if len(d.Levels) > 0 {
		ew.printf("\ntime per level (end of the level since boot; summed initcall time):\n")
		tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
		decoder.Fprintf(tw, "  level\told n\tnew n\told end (s)\tnew end (s)\tend delta\told time\tnew time\n")
		for _, l := range d.Levels {
			decoder.Fprintf(tw, "  %s\t%d\t%d\t%.6f\t%.6f\t%s\t%s\t%s\n", l.Level, l.OldCount, l.NewCount, l.OldEnd.Seconds(), l.NewEnd.Seconds(), signedMs(l.NewEnd-l.OldEnd), ms(l.OldTime), ms(l.NewTime))
		}
		tw.Flush()
	}

	ew.printf("\nlevel changed: %d\n", len(d.LevelChanged))
	for _, c := range d.LevelChanged {
		ew.printf("  %s: %s -> %s\n", fnName(c.Function, c.Module), c.Old, c.New)
	}
	ew.printf("\nreturn changed: %d\n", len(d.RetChanged))
	for _, c := range d.RetChanged {
		ew.printf("  %s (%s): %s -> %s\n", fnName(c.Function, c.Module), c.Level, c.Old, c.New)
	}
	ew.printf("\nslower by at least %s and x%.2f (the noise floor): %d shown\n", ms(d.Floor), d.Ratio, len(d.Regressions))
	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
	for _, r := range d.Regressions {
		decoder.Fprintf(tw, "  %s\t%s -> %s\t%s\t%s\n", signedMs(r.Delta), ms(r.Old), ms(r.New), r.Level, fnName(r.Function, r.Module))
	}
	tw.Flush()
	ew.printf("\ndisappeared: %d\n", len(d.Disappeared))
	for _, c := range d.Disappeared {
		ew.printf("  - %s (%s)\n", fnName(c.Function, c.Module), c.Level)
	}
	ew.printf("\nappeared: %d\n", len(d.Appeared))
	for _, c := range d.Appeared {
		ew.printf("  + %s (%s)\n", fnName(c.Function, c.Module), c.Level)
	}
	for _, n := range d.Notes {
		ew.printf("\nnote: %s\n", n)
	}
	return ew.err
}

// WriteDiffSVG draws the two boots' timelines side by side on one time
// scale (old left, new right), each as ktracer boot --format svg draws one.
func WriteDiffSVG(w io.Writer, d *Diff) error {
	end := max(svgEnd(d.oldR), svgEnd(d.newR))
	if end <= 0 {
		end = time.Second
	}
	h := func(r *Report) int { return svgTop + len(r.Levels)*svgRowH + 60 }
	height := max(h(d.oldR), h(d.newR))
	ew := &errWriter{w: w}
	ew.printf(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="%s">`+"\n", 2*svgWidth, height, 2*svgWidth, height, svgFont)
	ew.printf(`<rect width="100%%" height="100%%" fill="#ffffff"/>` + "\n")
	label := func(which string, s DiffSide) string {
		l := which + ": " + s.Name
		if rel := kernelRelease(s.Kernel); rel != "" {
			l += " (Linux " + rel + ")"
		}
		return l
	}
	if ew.err == nil {
		ew.err = writeSVG(ew.w, d.oldR, end, 0, label("old", d.Old))
	}
	if ew.err == nil {
		ew.err = writeSVG(ew.w, d.newR, end, svgWidth, label("new", d.New))
	}
	ew.printf(`<line x1="%d" y1="0" x2="%d" y2="%d" stroke="#888"/>`+"\n", svgWidth, svgWidth, height)
	ew.printf("</svg>\n")
	return ew.err
}
