package audit

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/ktracer/ktracer/decoder"
)

// Writer presents audit results as they come, file by file: "text" (one
// line per finding, "SEVERITY rule: message", as watch and check print
// them) or "json" (one object per line).
type Writer struct {
	format string
	w      io.Writer
	enc    *json.Encoder
	sum    Summary
}

// Summary closes an audit.
type Summary struct {
	Files      int
	Unreadable int
	Findings   map[decoder.Severity]int
}

// Worst is the highest severity found, 0 when none.
func (s Summary) Worst() decoder.Severity {
	var w decoder.Severity
	for sev, n := range s.Findings {
		if n > 0 && sev > w {
			w = sev
		}
	}
	return w
}

// ValidFormat tells whether NewWriter accepts format.
func ValidFormat(format string) bool { return format == "text" || format == "json" }

// NewWriter returns the writer for an --output format.
func NewWriter(format string, w io.Writer) (*Writer, error) {
	if !ValidFormat(format) {
		return nil, fmt.Errorf("unknown output format %q (want text or json)", format)
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return &Writer{format: format, w: w, enc: enc, sum: Summary{Findings: map[decoder.Severity]int{}}}, nil
}

type jsonFinding struct {
	Event    string `json:"event"`
	File     string `json:"file"`
	Module   string `json:"module,omitempty"`
	Rule     string `json:"rule"`
	Severity string `json:"severity"`
	Kind     string `json:"kind"`
	Function string `json:"function"`
	Location string `json:"location"`
	Section  string `json:"section"`
	StoredTo string `json:"stored_to,omitempty"`
	Callee   string `json:"callee,omitempty"`
	Modpost  bool   `json:"modpost"`
	Message  string `json:"message"`
}

// File writes the result of auditing one file: its findings, or why it
// could not be audited.
func (w *Writer) File(path string, fs []Finding, err error) error {
	w.sum.Files++
	if err != nil {
		w.sum.Unreadable++
		if w.format == "json" {
			return w.enc.Encode(struct {
				Event   string `json:"event"`
				File    string `json:"file"`
				Message string `json:"message"`
			}{"unreadable", clean(path), clean(err.Error())})
		}
		_, err := fmt.Fprintf(w.w, "ktracer audit: %s\n", clean(err.Error()))
		return err
	}
	for _, f := range fs {
		w.sum.Findings[f.Severity]++
		if w.format == "json" {
			if err := w.enc.Encode(jsonFinding{"finding", clean(path), f.Module, string(f.Rule), f.Severity.String(),
				f.Kind, f.Function, f.Location, f.Section, f.StoredTo, f.Callee, f.Modpost, f.Message}); err != nil {
				return err
			}
			continue
		}
		if _, err := fmt.Fprintf(w.w, "%s %s: %s: %s\n", strings.ToUpper(f.Severity.String()), f.Rule, clean(path), f.Message); err != nil {
			return err
		}
	}
	return nil
}

// Close writes the summary and returns it.
func (w *Writer) Close() (Summary, error) {
	c := map[string]int{"error": 0, "warning": 0, "info": 0}
	for sev, n := range w.sum.Findings {
		c[sev.String()] += n
	}
	var err error
	if w.format == "json" {
		err = w.enc.Encode(struct {
			Event      string         `json:"event"`
			Files      int            `json:"files"`
			Unreadable int            `json:"unreadable"`
			Findings   map[string]int `json:"findings"`
		}{"summary", w.sum.Files, w.sum.Unreadable, c})
	} else {
		_, err = fmt.Fprintf(w.w, "ktracer audit: %d files (%d unreadable); findings: %d error, %d warning, %d info\n",
			w.sum.Files, w.sum.Unreadable, c["error"], c["warning"], c["info"])
	}
	return w.sum, err
}
