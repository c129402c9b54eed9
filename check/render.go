package check

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ktracer/ktracer/check/history"
	"github.com/ktracer/ktracer/decoder"
)

// Write presents a report: "text" for people, "json" for one JSON object
// per line (the facts read, each finding, a summary), like watch.
func Write(w io.Writer, format string, r *Report) error {
	switch format {
	case "text":
		return writeText(w, r)
	case "json":
		return writeJSON(w, r)
	}
	return fmt.Errorf("unknown output format %q (want text or json)", format)
}

// ValidFormat tells whether Write accepts format, so flags can be checked
// before any work.
func ValidFormat(format string) bool { return format == "text" || format == "json" }

type jsonKdump struct {
	Event string `json:"event"`
	KdumpFacts
}

type jsonBoot struct {
	Event    string         `json:"event"`
	BootID   string         `json:"boot_id"`
	BootTime time.Time      `json:"boot_time"`
	Pstore   PstoreState    `json:"pstore"`
	Records  []PstoreRecord `json:"pstore_records"`
	DumpDir  string         `json:"dump_dir"`
	Dumps    []Dump         `json:"dumps"`
	Ignored  []string       `json:"ignored_dump_files,omitempty"`
	// State file: recorded is false when it does not exist.
	StateFile   string         `json:"state_file"`
	Recorded    bool           `json:"recorded"`
	Boots       []history.Boot `json:"boots,omitempty"`
	UncleanEnds []jsonUnclean  `json:"unclean_ends,omitempty"`
	LastPanic   *PstoreRecord  `json:"last_panic,omitempty"`
	LastDump    *Dump          `json:"last_panic_dump,omitempty"`
	Incomplete  *Dump          `json:"incomplete_dump,omitempty"`
}

type jsonUnclean struct {
	BootID string    `json:"boot_id"`
	Start  time.Time `json:"start"`
	Before time.Time `json:"ended_before"`
}

type jsonFinding struct {
	Event       string `json:"event"`
	Rule        string `json:"rule"`
	Severity    string `json:"severity"`
	Value       *int64 `json:"value,omitempty"`
	Crashkernel string `json:"crashkernel,omitempty"`
	Panic       string `json:"panic,omitempty"`
	Module      string `json:"module,omitempty"`
	Function    string `json:"function,omitempty"`
	Message     string `json:"message"`
}

type jsonSummary struct {
	Event        string         `json:"event"`
	Findings     map[string]int `json:"findings"`
	SourceErrors int            `json:"source_errors"`
}

func writeJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // messages quote shell commands: "echo c > ..."
	if err := enc.Encode(jsonKdump{"kdump", r.Kdump}); err != nil {
		return err
	}
	b := r.Boot
	jb := jsonBoot{
		Event: "boot", BootID: b.BootID, BootTime: b.BootTime, Pstore: b.Pstore,
		Records: b.Records, DumpDir: b.DumpDir, Dumps: b.Dumps, Ignored: b.IgnoredDumps,
		StateFile: b.StateFile, Recorded: b.History != nil,
		LastPanic: b.LastPanic, LastDump: b.LastPanicDump, Incomplete: b.Incomplete,
	}
	if jb.Records == nil {
		jb.Records = []PstoreRecord{}
	}
	if jb.Dumps == nil {
		jb.Dumps = []Dump{}
	}
	if b.History != nil {
		jb.Boots = b.History.Boots
	}
	for _, u := range b.Unclean {
		jb.UncleanEnds = append(jb.UncleanEnds, jsonUnclean{u.Boot.ID, u.Boot.Start, u.Before})
	}
	if err := enc.Encode(jb); err != nil {
		return err
	}
	for _, f := range r.Findings {
		jf := jsonFinding{Event: "finding", Rule: string(f.Rule), Severity: f.Severity.String(),
			Crashkernel: f.Crashkernel, Panic: f.Panic, Module: f.Module, Function: f.Function, Message: f.Message}
		if f.Value != 0 {
			v := f.Value
			jf.Value = &v
		}
		if err := enc.Encode(jf); err != nil {
			return err
		}
	}
	for _, e := range r.Errors {
		if err := enc.Encode(struct {
			Event string `json:"event"`
			SourceError
		}{"source_error", e}); err != nil {
			return err
		}
	}
	return enc.Encode(jsonSummary{"summary", counts(r), len(r.Errors)})
}

func counts(r *Report) map[string]int {
	m := map[string]int{}
	for _, s := range []decoder.Severity{decoder.SeverityError, decoder.SeverityWarning, decoder.SeverityInfo} {
		m[s.String()] = 0
	}
	for _, f := range r.Findings {
		m[f.Severity.String()]++
	}
	return m
}

func writeText(w io.Writer, r *Report) error {
	var s strings.Builder
	k := r.Kdump
	s.WriteString("kdump: ")
	switch {
	case !k.Supported:
		s.WriteString("no kexec crash support in this kernel")
	case k.ReservedBytes == 0:
		s.WriteString("nothing reserved")
	default:
		decoder.Fprintf(&s, "%s reserved", human(k.ReservedBytes))
		for _, c := range k.CrashRegion {
			decoder.Fprintf(&s, " [%#x-%#x]", c.Start, c.End)
		}
		if k.Loaded {
			s.WriteString(", crash kernel loaded")
		} else {
			s.WriteString(", no crash kernel loaded")
		}
	}
	if len(k.Cmdline) > 0 {
		decoder.Fprintf(&s, "; command line crashkernel=%s", strings.Join(k.Cmdline, " crashkernel="))
	}
	decoder.Fprintf(&s, "; RAM %s; estimate %s, recommended crashkernel=%s\n", human(k.RAMBytes), human(k.Estimate), sizeArg(k.Recommended))

	b := r.Boot
	s.WriteString("pstore: ")
	switch {
	case !b.Pstore.Mounted && len(b.Records) == 0:
		s.WriteString("not mounted at /sys/fs/pstore")
	case b.Pstore.Backend == "":
		s.WriteString("no backend registered")
	default:
		decoder.Fprintf(&s, "backend %s", b.Pstore.Backend)
	}
	decoder.Fprintf(&s, "; %d dmesg records", len(b.Records))
	for _, rec := range b.Records {
		decoder.Fprintf(&s, "\n  %s %s %s", rec.Path, rec.Time.Format(time.RFC3339), rec.Reason)
		if rec.Panic != "" {
			decoder.Fprintf(&s, ": %s", rec.Panic)
		}
	}
	decoder.Fprintf(&s, "\ndumps in %s: %d", b.DumpDir, len(b.Dumps))
	for _, d := range b.Dumps {
		state := "complete"
		if !d.Complete {
			state = "incomplete"
		}
		decoder.Fprintf(&s, "\n  %s %s %s (%s)", d.Dir, d.Time.Format(time.RFC3339), strings.Join(d.Files, " "), state)
	}
	for _, ig := range b.IgnoredDumps {
		decoder.Fprintf(&s, "\n  not a dump: %s", ig)
	}
	if b.History == nil {
		decoder.Fprintf(&s, "\nboot history: %s does not exist (the ktracer daemon records boots)", b.StateFile)
	} else {
		decoder.Fprintf(&s, "\nboot history: %d boots recorded in %s, %d ended without a clean stop", len(b.History.Boots), b.StateFile, len(b.Unclean))
	}
	s.WriteString("\n")
	for _, f := range r.Findings {
		decoder.Fprintf(&s, "%s %s: %s\n", strings.ToUpper(f.Severity.String()), f.Rule, f.Message)
	}
	for _, e := range r.Errors {
		decoder.Fprintf(&s, "cannot read %s: %s\n", e.Source, e.Err)
	}
	c := counts(r)
	decoder.Fprintf(&s, "ktracer check: findings: %d error, %d warning, %d info", c["error"], c["warning"], c["info"])
	if len(r.Errors) > 0 {
		decoder.Fprintf(&s, "; %d sources not read, so the check is incomplete", len(r.Errors))
	}
	s.WriteString("\n")
	_, err := io.WriteString(w, s.String())
	return err
}
