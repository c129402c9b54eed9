package boot

import (
	"cmp"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/ktracer/ktracer/decoder"
)

// Colours by level family, so neighbouring rows differ.
var levelColors = map[string]string{
	"console": "#7f7f7f", "security": "#7f7f7f", "early": "#8c564b",
	"pure": "#e377c2", "pure_sync": "#e377c2",
	"core": "#d62728", "core_sync": "#d62728",
	"postcore": "#ff7f0e", "postcore_sync": "#ff7f0e",
	"arch": "#bcbd22", "arch_sync": "#bcbd22",
	"subsys": "#2ca02c", "subsys_sync": "#2ca02c",
	"fs": "#17becf", "fs_sync": "#17becf", "rootfs": "#17becf",
	"device": "#1f77b4", "device_sync": "#1f77b4",
	"late": "#9467bd", "late_sync": "#9467bd",
	LevelModule: "#393b79", LevelUnknown: "#555555",
}

const (
	svgWidth   = 1200
	svgLeft    = 190 // level labels
	svgRight   = 20
	svgTop     = 74
	svgRowH    = 50
	svgLabels  = 10 // slowest initcalls labelled by name
	svgFont    = "DejaVu Sans, Helvetica, Arial, sans-serif"
	charWidth  = 6.1 // at 11px, for label placement
	svgMinBarW = 1.0 // a 20 µs initcall must still be visible
)

// WriteSVG draws the boot as a Gantt chart: one row per initcall level, one
// bar per initcall, the level's span as a pale band behind, the slowest
// initcalls named, and /init marked. Every bar has a tooltip.
func WriteSVG(w io.Writer, r *Report) error {
	return writeSVG(w, r, svgEnd(r), 0, "")
}

// svgEnd is where a report's time axis ends.
func svgEnd(r *Report) time.Duration {
	var end time.Duration
	for _, ic := range r.Initcalls {
		end = max(end, ic.Start+ic.Duration)
	}
	return max(end, r.TimeToInit)
}

// writeSVG draws r on a time axis ending at end (two boots share one);
// with a heading it is a nested <svg> at x offset xoff, titled so.
func writeSVG(w io.Writer, r *Report, end time.Duration, xoff int, heading string) error {
	ew := &errWriter{w: w}
	if end <= 0 {
		end = time.Second
	}
	plotW := float64(svgWidth - svgLeft - svgRight)
	x := func(d time.Duration) float64 { return svgLeft + plotW*float64(d)/float64(end) }
	rows := map[string]int{}
	for i, l := range r.Levels {
		rows[l.Name] = i
	}
	height := svgTop + len(r.Levels)*svgRowH + 60

	if heading != "" {
		ew.printf(`<svg x="%d" y="0" width="%d" height="%d" viewBox="0 0 %d %d">`+"\n", xoff, svgWidth, height, svgWidth, height)
	} else {
		ew.printf(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="%s">`+"\n", svgWidth, height, svgWidth, height, svgFont)
	}
	ew.printf(`<rect width="100%%" height="100%%" fill="#ffffff"/>` + "\n")
	title := "Boot timeline"
	if heading != "" {
		title = heading
	}
	if rel := kernelRelease(r.Kernel); rel != "" {
		title += ": Linux " + rel
	}
	builtin := 0
	for _, ic := range r.Initcalls {
		if ic.Module == "" {
			builtin++
		}
	}
	ew.printf(`<text x="%d" y="24" font-size="17" font-weight="bold">%s</text>`+"\n", svgLeft-170, xmlText(title))
	ew.printf(`<text x="%d" y="44" font-size="12" fill="#444">%d built-in initcalls by level, %s to /init; bar = one initcall, pale band = the level's span, the %d slowest are named; recorded by %s</text>`+"\n",
		svgLeft-170, builtin, fmtDur(r.TimeToInit), svgLabels, xmlText(r.Source))

	// Time axis with round ticks.
	step := tickStep(end)
	axisY := svgTop + len(r.Levels)*svgRowH
	for t := time.Duration(0); t <= end; t += step {
		ew.printf(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#e3e3e3"/>`+"\n", x(t), svgTop-6, x(t), axisY)
		ew.printf(`<text x="%.1f" y="%d" font-size="11" text-anchor="middle" fill="#444">%s</text>`+"\n", x(t), axisY+16, fmtDur(t))
	}
	ew.printf(`<text x="%.1f" y="%d" font-size="11" text-anchor="middle" fill="#444">time since boot</text>`+"\n", svgLeft+plotW/2, axisY+34)

	// The slowest initcalls get names.
	byDur := slices.Clone(r.Initcalls)
	slices.SortStableFunc(byDur, func(a, b Initcall) int { return int(b.Duration - a.Duration) })
	named := map[int]bool{}
	for i := 0; i < len(byDur) && i < svgLabels; i++ {
		if byDur[i].Duration > 0 {
			named[byDur[i].Seq] = true
		}
	}

	for i, l := range r.Levels {
		y := svgTop + i*svgRowH
		col := levelColors[l.Name]
		if col == "" {
			col = levelColors[LevelUnknown]
		}
		if i%2 == 0 {
			ew.printf(`<rect x="0" y="%d" width="%d" height="%d" fill="#f6f6f6"/>`+"\n", y, svgWidth, svgRowH)
		}
		ew.printf(`<text x="%d" y="%d" font-size="13" font-weight="bold" text-anchor="end" fill="%s">%s</text>`+"\n", svgLeft-10, y+20, col, xmlText(l.Name))
		ew.printf(`<text x="%d" y="%d" font-size="10" text-anchor="end" fill="#555">%d calls, %s</text>`+"\n", svgLeft-10, y+34, l.Count, fmtDur(l.Duration))
		ew.printf(`<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s" fill-opacity="0.18"/>`+"\n", x(l.Start), y+8, math.Max(x(l.End)-x(l.Start), svgMinBarW), svgRowH-16, col)
	}
	// Bars first; then labels, most important first, each at the first
	// free spot on one of two lines of its row (above and below the bars):
	// from its bar's start, ending at its bar's end, or right after it.
	type label struct {
		x, y        float64
		text, color string
		row, seq    int
		bar         [2]float64
		prio        int64
	}
	var want []label
	for _, ic := range r.Initcalls {
		row, ok := rows[ic.Level]
		if !ok {
			continue
		}
		y := svgTop + row*svgRowH
		col := levelColors[ic.Level]
		if col == "" {
			col = levelColors[LevelUnknown]
		}
		// Neighbouring initcalls alternate in shade so that each stands out.
		stroke, opacity := "", 1.0
		if ic.Seq%2 == 0 {
			opacity = 0.72
		}
		bad := ic.Ret > 0 || !ic.Finished
		switch {
		case bad:
			stroke = ` stroke="#c00000" stroke-width="2"`
		case named[ic.Seq]:
			stroke = ` stroke="#000" stroke-width="0.8"`
		}
		x0 := x(ic.Start)
		bw := math.Max(x(ic.Start+ic.Duration)-x0, svgMinBarW)
		name := ic.Function
		if ic.Module != "" {
			name += " [" + ic.Module + "]"
		}
		ew.printf(`<rect x="%.2f" y="%d" width="%.2f" height="%d" fill="%s" fill-opacity="%.2f"%s><title>%s: %s level, start %.6f s, %s, returned %s</title></rect>`+"\n",
			x0, y+13, bw, svgRowH-26, col, opacity, stroke, xmlText(name), ic.Level, ic.Start.Seconds(), fmtDur(ic.Duration), xmlText(retText(ic)))
		switch {
		case bad:
			want = append(want, label{text: fmt.Sprintf("%s returned %s", name, retText(ic)), color: "#c00000", row: row, seq: ic.Seq, bar: [2]float64{x0, x0 + bw}, prio: math.MaxInt64})
		case named[ic.Seq]:
			want = append(want, label{text: fmt.Sprintf("%s %s", name, fmtDur(ic.Duration)), color: "#111", row: row, seq: ic.Seq, bar: [2]float64{x0, x0 + bw}, prio: int64(ic.Duration)})
		}
	}
	slices.SortStableFunc(want, func(a, b label) int { return cmp.Compare(b.prio, a.prio) })
	taken := map[[2]int][][2]float64{}
	free := func(row, line int, a, b float64) bool {
		if a < svgLeft || b > svgWidth-svgRight {
			return false
		}
		for _, iv := range taken[[2]int{row, line}] {
			if a < iv[1]+8 && iv[0] < b+8 {
				return false
			}
		}
		return true
	}
	var labels []label
	for _, l := range want {
		w := float64(len(l.text)) * charWidth
		placed := false
		for _, start := range []float64{l.bar[0] + 2, l.bar[1] - w, l.bar[1] + 4, l.bar[0] - w - 4} {
			for line := 0; line < 2 && !placed; line++ {
				if free(l.row, line, start, start+w) {
					taken[[2]int{l.row, line}] = append(taken[[2]int{l.row, line}], [2]float64{start, start + w})
					l.x = start
					l.y = float64(svgTop+l.row*svgRowH) + 10
					if line == 1 {
						l.y = float64(svgTop + (l.row+1)*svgRowH - 2)
					}
					labels = append(labels, l)
					placed = true
				}
			}
			if placed {
				break
			}
		}
	}
	for _, l := range labels {
		ew.printf(`<text x="%.1f" y="%.1f" font-size="11" fill="%s" stroke="#fff" stroke-width="3" paint-order="stroke">%s</text>`+"\n", l.x, l.y, l.color, xmlText(l.text))
	}
	// The time before the first initcall after the console ones is
	// start_kernel's own setup: name it, or the empty left looks like a gap.
	for _, ic := range r.Initcalls {
		if ic.Level != "console" && ic.Start > 0 {
			ew.printf(`<rect x="%.1f" y="%d" width="%.1f" height="4" fill="#999"/>`+"\n", x(0), svgTop-8, x(ic.Start)-x(0))
			ew.printf(`<text x="%.1f" y="%d" font-size="11" fill="#444">start_kernel before the first initcall: %s</text>`+"\n", x(0), svgTop-12, fmtDur(ic.Start))
			break
		}
	}
	if r.TimeToInit > 0 {
		xi := x(r.TimeToInit)
		ew.printf(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#000" stroke-dasharray="4 3"/>`+"\n", xi, svgTop-10, xi, axisY)
		ew.printf(`<text x="%.1f" y="%d" font-size="11" text-anchor="end">/init at %s</text>`+"\n", xi-4, svgTop-12, fmtDur(r.TimeToInit))
	}
	ew.printf("</svg>\n")
	return ew.err
}

// tickStep picks 1, 2 or 5 times a power of ten so the axis has 5 to 12 ticks.
func tickStep(end time.Duration) time.Duration {
	for step := time.Microsecond; ; step *= 10 {
		for _, m := range []time.Duration{1, 2, 5} {
			if end/(step*m) <= 12 {
				return step * m
			}
		}
	}
}

func fmtDur(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%d µs", d.Microseconds())
}

// xmlText makes a value safe as SVG text or an attribute value: first
// decoder.Printable, the escaping every renderer shares (control bytes,
// invalid UTF-8), then XML's own quoting of markup characters. The result
// is valid XML 1.0 whatever the input.
func xmlText(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(decoder.Printable(s))) // writes to a Builder: cannot fail
	return b.String()
}
