package boot

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ktracer/ktracer/decoder"
)

// Formats are the --format values.
var Formats = []string{"text", "json", "svg", "perfetto"}

// Render writes the report in one of Formats.
func Render(w io.Writer, r *Report, format string) error {
	switch format {
	case "text":
		return WriteText(w, r)
	case "json":
		return WriteJSON(w, r)
	case "svg":
		return WriteSVG(w, r)
	case "perfetto":
		return WritePerfetto(w, r)
	}
	return fmt.Errorf("unknown format %q (want %s)", format, strings.Join(Formats, ", "))
}

var sourceWords = map[string]string{
	SourceTrace:       "boot-time trace events (initcall:initcall_level, initcall_start, initcall_finish)",
	SourceInitcallLog: "initcall_debug lines in the kernel log",
	SourceNone:        "nothing: neither boot-time trace events nor initcall_debug",
	SourceUnreadable:  "initcall_debug lines in a log format ktracer does not read (see the note)",
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond))
}

func retText(ic Initcall) string {
	switch {
	case !ic.Finished:
		return "never returned"
	case ic.Errno != "":
		return fmt.Sprintf("%d (%s)", ic.Ret, ic.Errno)
	}
	return fmt.Sprint(ic.Ret)
}

// WriteText writes the report for people: every initcall in order, the
// summary, then the findings.
func WriteText(w io.Writer, r *Report) error {
	ew := &errWriter{w: w}
	if r.Kernel != "" {
		ew.printf("kernel:       %s\n", r.Kernel)
	}
	if r.Cmdline != "" {
		ew.printf("command line: %s\n", r.Cmdline)
	}
	ew.printf("recorded by:  %s\n", sourceWords[r.Source])
	if len(r.Initcalls) > 0 {
		ew.printf("\n")
		ew.printf("%5s  %10s  %12s  %-13s  %-15s  %s\n", "#", "start (s)", "duration", "level", "return", "function")
		for _, ic := range r.Initcalls {
			fn := ic.Function
			if ic.Module != "" {
				fn += " [" + ic.Module + "]"
			}
			ew.printf("%5d  %10.6f  %12s  %-13s  %-15s  %s\n", ic.Seq, ic.Start.Seconds(), ms(ic.Duration), ic.Level, retText(ic), fn)
		}
	}
	if len(r.Initcalls) > 0 {
		builtin, failed := 0, 0
		for _, ic := range r.Initcalls {
			if ic.Module == "" {
				builtin++
			}
			if ic.Ret < 0 {
				failed++
			}
		}
		ew.printf("\nsummary: %d built-in initcalls, %d module inits, %d returned an error; time to init %s\n",
			builtin, len(r.Initcalls)-builtin, failed, fmtDur(r.TimeToInit))
		ew.printf("\ntime per level:\n")
		tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
		decoder.Fprintf(tw, "  level\tinitcalls\tfrom (s)\tto (s)\tinitcall time\n")
		for _, l := range r.Levels {
			decoder.Fprintf(tw, "  %s\t%d\t%.6f\t%.6f\t%s\n", l.Name, l.Count, l.Start.Seconds(), l.End.Seconds(), ms(l.Duration))
		}
		tw.Flush()
		ew.printf("\nslowest built-in initcalls:\n")
		tw = tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
		for _, ic := range r.Slowest {
			decoder.Fprintf(tw, "  %s\t%s\t%s\n", ms(ic.Duration), ic.Level, ic.Function)
		}
		tw.Flush()
	}
	for _, n := range r.Notes {
		ew.printf("\nnote: %s\n", n)
	}
	if len(r.Recommend) > 0 {
		ew.printf("\nto record the next boot, add one of these to the kernel command line:\n")
		for _, p := range r.Recommend {
			ew.printf("  %s\n", p)
		}
	}
	ew.printf("\n")
	for _, e := range r.Expectations {
		verdict := "FAILED"
		if e.Held {
			verdict = "held"
		}
		got := "not readable"
		switch {
		case e.Source != "" && e.Key == "mem":
			got = fmt.Sprintf("%d MiB, from %s", e.Got>>20, e.Source)
		case e.Source != "":
			got = fmt.Sprintf("%d, from %s", e.Got, e.Source)
		}
		ew.printf("expect %s: %s (%s %s)\n", e.Expectation, verdict, e.Key, got)
	}
	for _, f := range r.Findings {
		ew.printf("%s %s: %s\n", strings.ToUpper(f.Severity.String()), f.Rule, f.Message)
	}
	c := r.counts()
	ew.printf("ktracer boot: findings: %d error, %d warning, %d info\n", c[decoder.SeverityError], c[decoder.SeverityWarning], c[decoder.SeverityInfo])
	return ew.err
}

func (r *Report) counts() map[decoder.Severity]int {
	c := map[decoder.Severity]int{}
	for _, f := range r.Findings {
		c[f.Severity]++
	}
	return c
}

// WriteJSON writes the report as one JSON document.
func WriteJSON(w io.Writer, r *Report) error {
	type jsonFinding struct {
		Finding
		Severity string `json:"severity"`
	}
	out := struct {
		*Report
		Findings []jsonFinding `json:"findings"`
		Counts   struct {
			Error   int `json:"error"`
			Warning int `json:"warning"`
			Info    int `json:"info"`
		} `json:"finding_counts"`
	}{Report: r, Findings: []jsonFinding{}}
	for _, f := range r.Findings {
		out.Findings = append(out.Findings, jsonFinding{f, f.Severity.String()})
	}
	c := r.counts()
	out.Counts.Error, out.Counts.Warning, out.Counts.Info = c[decoder.SeverityError], c[decoder.SeverityWarning], c[decoder.SeverityInfo]
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

// printf escapes every string argument (decoder.Printable): a name read
// from a log cannot forge a line or reach the terminal as an escape.
func (e *errWriter) printf(format string, a ...any) { decoder.Fprintf(e, format, a...) }
