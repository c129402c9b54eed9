// Package check is ktracer's system-checks room: it reads what the running
// kernel and the last boot left behind (kdump reservation, pstore records,
// crash dumps, ktracer's own boot history) and applies the rules of seed
// incident 3, a panic loop that leaves no vmcore. It reads files only,
// through an fs.FS rooted at the machine's (or a test's) root directory.
package check

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"

	"github.com/ktracer/ktracer/check/history"
	"github.com/ktracer/ktracer/decoder"
)

// Rules of the check; IDs are stable, documented in the README.
const (
	RulePanicWithoutVmcore decoder.Rule = "panic-without-vmcore"
	RulePanicLoop          decoder.Rule = "panic-loop"
	RuleKdumpUndersized    decoder.Rule = "kdump-undersized"
	RuleKdumpNotLoaded     decoder.Rule = "kdump-not-loaded"
	RuleKdumpNotConfigured decoder.Rule = "kdump-not-configured"
)

// RuleSeverity is each rule's fixed severity. A machine without kdump may
// be a choice (a warning); kdump that is set up but cannot work is an error.
var RuleSeverity = map[decoder.Rule]decoder.Severity{
	RulePanicWithoutVmcore: decoder.SeverityError,
	RulePanicLoop:          decoder.SeverityError,
	RuleKdumpUndersized:    decoder.SeverityError,
	RuleKdumpNotLoaded:     decoder.SeverityError,
	RuleKdumpNotConfigured: decoder.SeverityWarning,
}

// Finding is one broken rule.
type Finding struct {
	Rule     decoder.Rule
	Severity decoder.Severity
	Message  string
	Value    int64 // kdump: the reserved bytes; panic-loop: the unclean ends
	// Crashkernel is the crashkernel= value to set (kdump rules).
	Crashkernel string
	// Panic quotes the panic (panic-without-vmcore, freed-init-call).
	Panic string
	// Module and Function name the module and its __init function
	// (freed-init-call; Function is "" when the record cannot name it).
	Module, Function string
}

func newFinding(r decoder.Rule, msg string) Finding {
	return Finding{Rule: r, Severity: RuleSeverity[r], Message: msg}
}

// Options configure a check.
type Options struct {
	// DumpDir is the crash dump directory inside the root; "" reads the
	// kdump tools' configuration (DefaultDumpDir when there is none).
	DumpDir string
	// StateDir is ktracer's state directory inside the root.
	StateDir string
	// LoopCount unclean ends within LoopWindow make a panic-loop.
	LoopCount  int
	LoopWindow time.Duration
	// Now is the check's clock; zero means time.Now.
	Now time.Time
}

// DefaultOptions are the check's defaults.
func DefaultOptions() Options {
	return Options{StateDir: history.DefaultDir, LoopCount: 3, LoopWindow: 24 * time.Hour}
}

// BootFacts is what the last boots left.
type BootFacts struct {
	BootID   string    `json:"boot_id"`
	BootTime time.Time `json:"boot_time"`
	Pstore   PstoreState
	Records  []PstoreRecord
	DumpDir  string
	Dumps    []Dump
	// IgnoredDumps are files named like dumps that are not evidence of
	// one, with the reason ("/var/crash/x/vmcore (empty)").
	IgnoredDumps []string
	// StateFile is ktracer's boot history; History is nil when the file
	// does not exist (the daemon never ran here).
	StateFile string
	History   *history.State
	Unclean   []history.UncleanEnd
	// LastPanic is the newest pstore record of a panic before this boot,
	// and LastPanicDump the dump saved for it, if any.
	LastPanic     *PstoreRecord
	LastPanicDump *Dump
	Incomplete    *Dump // an incomplete dump left for LastPanic
}

// Report is a check's result.
type Report struct {
	Kdump    KdumpFacts
	Boot     BootFacts
	Findings []Finding
	// Errors are the sources that could not be read; each fails alone,
	// and the findings come from the rest.
	Errors []SourceError
}

// SourceError is one source the check could not read.
type SourceError struct {
	Source string `json:"source"` // "kdump", "pstore /sys/fs/pstore/dmesg-ramoops-0", "boot history", ...
	Err    string `json:"error"`
}

// Worst is the highest severity found, 0 when there is no finding.
func (r *Report) Worst() decoder.Severity {
	var w decoder.Severity
	for _, f := range r.Findings {
		w = max(w, f.Severity)
	}
	return w
}

// Run checks the machine whose root is fsys.
func Run(fsys fs.FS, o Options) (*Report, error) {
	if o.LoopCount < 1 {
		return nil, fmt.Errorf("loop count must be at least 1, got %d", o.LoopCount)
	}
	if o.LoopWindow <= 0 {
		return nil, fmt.Errorf("loop window must be positive, got %s", o.LoopWindow)
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	r := &Report{}
	var err error
	if r.Kdump, err = readKdump(fsys); err != nil {
		r.Errors = append(r.Errors, SourceError{Source: "kdump", Err: err.Error()})
	} else {
		r.Findings = append(r.Findings, kdumpFindings(r.Kdump)...)
	}
	var errs []SourceError
	r.Boot, errs, err = readBoot(fsys, o)
	r.Errors = append(r.Errors, errs...)
	if err != nil {
		// Without this boot's id and start, earlier boots cannot be told
		// from this one: no boot findings, but the rest is reported.
		r.Errors = append(r.Errors, SourceError{Source: "boot", Err: err.Error()})
		return r, nil
	}
	r.Findings = append(r.Findings, bootFindings(&r.Boot, r.Kdump, o, now)...)
	if f, ok := freedInitFinding(fsys, &r.Boot); ok {
		r.Findings = append(r.Findings, f)
	}
	return r, nil
}

// slack absorbs clock differences between the crashed kernel, the crash
// kernel that saved the dump and this boot.
const slack = 5 * time.Minute

// readBoot reads what the last boots left. The sources that fail alone
// (pstore entries, the dump directory, the boot history) are in errs;
// err is for this boot's own id and start, without which nothing can be
// judged.
func readBoot(fsys fs.FS, o Options) (b BootFacts, errs []SourceError, err error) {
	id, err := fs.ReadFile(fsys, "proc/sys/kernel/random/boot_id")
	if err != nil {
		return b, nil, fmt.Errorf("read boot id: %w", err)
	}
	b.BootID = strings.TrimSpace(string(id))
	stat, err := fs.ReadFile(fsys, "proc/stat")
	if err != nil {
		return b, nil, fmt.Errorf("read /proc/stat: %w", err)
	}
	if b.BootTime, err = history.BootTime(stat); err != nil {
		return b, nil, err
	}
	b.Pstore = readPstoreState(fsys)
	b.Records, errs = readPstore(fsys)
	b.DumpDir = o.DumpDir
	if b.DumpDir == "" {
		b.DumpDir = dumpDirFromConfig(fsys)
	}
	if b.Dumps, b.IgnoredDumps, err = findDumps(fsys, b.DumpDir); err != nil {
		errs = append(errs, SourceError{Source: "dumps " + b.DumpDir, Err: err.Error()})
	}
	b.StateFile = path.Join(o.StateDir, history.FileName)
	data, err := readRegular(fsys, strings.TrimPrefix(path.Clean(b.StateFile), "/"), maxHistoryFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		errs = append(errs, SourceError{Source: "boot history " + b.StateFile, Err: err.Error()})
	default:
		st, err := history.Parse(b.StateFile, data)
		if err != nil {
			errs = append(errs, SourceError{Source: "boot history " + b.StateFile, Err: err.Error()})
			break
		}
		b.History = st
		b.Unclean = st.UncleanEnds(b.BootID, b.BootTime)
	}

	// The start of the boot before this one, when ktracer recorded it.
	var prevStart time.Time
	if b.History != nil {
		for _, h := range b.History.Boots {
			if h.ID != b.BootID && h.Start.Before(b.BootTime) {
				prevStart = h.Start
			}
		}
	}
	// The newest panic left by an earlier boot. A kernel record newer than
	// this boot is this boot's own (an oops it survived); one older than
	// the previous recorded boot is old news. systemd-pstore archives at
	// boot, so a record it archived during this boot is the last boot's.
	for i := range b.Records {
		rec := &b.Records[i]
		if !rec.isPanic() {
			continue
		}
		if rec.Archived {
			if rec.Time.Before(b.BootTime.Add(-slack)) {
				continue
			}
		} else if !rec.Time.Before(b.BootTime.Add(slack)) || (!prevStart.IsZero() && rec.Time.Before(prevStart.Add(-slack))) {
			continue
		}
		if b.LastPanic == nil || !rec.Time.Before(b.LastPanic.Time) {
			b.LastPanic = rec
		}
	}
	if b.LastPanic != nil {
		// A dump belongs to the panic when it was written between the
		// panic and this boot.
		from := b.LastPanic.Time.Add(-slack)
		if b.LastPanic.Archived {
			from = time.Time{}
			if !prevStart.IsZero() {
				from = prevStart.Add(-slack)
			}
		}
		for i := range b.Dumps {
			d := &b.Dumps[i]
			if d.Time.Before(from) || d.Time.After(b.BootTime.Add(slack)) {
				continue
			}
			if d.Complete {
				b.LastPanicDump = d
			} else {
				b.Incomplete = d
			}
		}
	}
	return b, errs, nil
}

func bootFindings(b *BootFacts, k KdumpFacts, o Options, now time.Time) []Finding {
	var out []Finding
	if p := b.LastPanic; p != nil && b.LastPanicDump == nil {
		reason := p.Panic
		if reason == "" {
			reason = "a panic (the record has no \"Kernel panic\" line)"
		} else {
			reason = fmt.Sprintf("%q", reason)
		}
		if p.Cause != "" {
			reason += fmt.Sprintf(" after %q", p.Cause)
		}
		when := "at " + p.Time.Format(time.RFC3339)
		if p.Archived {
			when = "(archived by systemd-pstore at " + p.Time.Format(time.RFC3339) + ")"
		}
		msg := fmt.Sprintf("an earlier boot panicked %s with %s (%s), and no dump was saved in %s",
			when, reason, p.Path, b.DumpDir)
		switch {
		case b.Incomplete != nil:
			msg += fmt.Sprintf(": only an incomplete one, %s, so the crash kernel started and died while saving (out of memory is the usual cause: see kdump-undersized)", path.Join(b.Incomplete.Dir, b.Incomplete.Files[0]))
		case !k.Supported || k.ReservedBytes == 0:
			msg += ": no crash kernel can run on this configuration (see kdump-not-configured)"
		case !k.Loaded:
			msg += ": no crash kernel is loaded now either (see kdump-not-loaded)"
		case k.ReservedBytes < k.Estimate:
			msg += ": the crash kernel's reservation is too small for this machine (see kdump-undersized)"
		default:
			msg += ": kdump looks configured now; check the crash kernel's console log and the dump target"
		}
		if len(b.IgnoredDumps) > 0 {
			msg += "; not counted as dumps: " + strings.Join(b.IgnoredDumps, ", ")
		}
		if !p.Archived {
			msg += fmt.Sprintf("; once read, remove the record (rm %s) so the next panic has room and this one is not reported again", p.Path)
		}
		f := newFinding(RulePanicWithoutVmcore, msg)
		f.Panic = p.Panic
		out = append(out, f)
	}
	if recent := history.Within(b.Unclean, now, o.LoopWindow); len(recent) >= o.LoopCount {
		var ids []string
		for _, e := range recent {
			ids = append(ids, fmt.Sprintf("%s (started %s)", e.Boot.ID, e.Boot.Start.Format(time.RFC3339)))
		}
		f := newFinding(RulePanicLoop, fmt.Sprintf(
			"%d boots ended without a clean stop within %s (at least %d make a loop): %s; look for their panics in pstore and the dump directory, and make kdump work so the next one leaves a dump",
			len(recent), o.LoopWindow, o.LoopCount, strings.Join(ids, ", ")))
		f.Value = int64(len(recent))
		out = append(out, f)
	}
	return out
}
