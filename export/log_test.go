package export

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ktracer/ktracer/decoder"
)

var testClock Clock = func(mono uint64) time.Time { return time.Unix(1795000000, int64(mono)).UTC() }

// logEvents covers every event kind, with the fields the analyzer sets.
func logEvents() []*decoder.Event {
	base := decoder.Event{MonoNS: 254914660, CPU: 1, PID: 111, TID: 111, Module: "kt_positive"}
	with := func(f func(e *decoder.Event)) *decoder.Event { e := base; f(&e); return &e }
	ic := with(func(e *decoder.Event) {
		e.Kind, e.Function, e.Address, e.Ret, e.Duration = decoder.KindInitcall, "kt_positive_init", 0xffffffffc04d2000, 1, 1111510
	})
	return []*decoder.Event{
		with(func(e *decoder.Event) {
			e.Kind, e.Function, e.Address, e.Symbols = decoder.KindModuleLoad, "kt_positive_init", 0xffffffffc04d2000, 23
		}),
		ic,
		finding(ic, decoder.RulePositiveInitReturn, 1),
		with(func(e *decoder.Event) { e.Kind = decoder.KindModuleLive }),
		with(func(e *decoder.Event) { e.Kind, e.Ret, e.Errno = decoder.KindModuleInitFailed, -19, "ENODEV" }),
		with(func(e *decoder.Event) { e.Kind = decoder.KindModuleFree }),
		with(func(e *decoder.Event) {
			e.Kind, e.Rule, e.Severity, e.Function, e.Caller = decoder.KindFinding, decoder.RuleFreedInitCall, decoder.SeverityError, "0xffffffffc04d2010", "kt_timebomb_trigger+0x1c/0x40"
			e.Message = "called into freed init text"
		}),
		with(func(e *decoder.Event) {
			e.Kind, e.Rule, e.Severity, e.Ret, e.Errno, e.Value = decoder.KindFinding, decoder.RuleLoadFailed, decoder.SeverityError, -22, "EINVAL", -22
			e.Reason, e.Symbol, e.KernelCRC, e.ModuleCRC = "symbol version mismatch", "kmemdup", "0x1b2d2a09", "0xe4d2d5f6"
			e.Vermagic, e.KernelVermagic, e.Task = "6.1.0 SMP", "6.1.0 SMP preempt", "insmod"
			e.Message = "loading kt_badcrc failed before its init ran"
		}),
		with(func(e *decoder.Event) {
			e.Kind, e.Location, e.Function, e.Reason = decoder.KindInitPointerIgnored, "buf+0x8", "kt_x_init", "not in a sized object"
		}),
		with(func(e *decoder.Event) {
			e.Kind, e.Symbols, e.Location, e.Source = decoder.KindModuleAlreadyLoaded, 14, "/lib/modules/6.1.0-57-cloud-amd64/extra/kt_tablebomb.ko", decoder.SourceStartupAudit
		}),
		with(func(e *decoder.Event) {
			e.Kind, e.Rule, e.Severity, e.Function, e.Location, e.Source = decoder.KindFinding, decoder.RuleDanglingInitPointer, decoder.SeverityError, "kt_table_helper", "kt_table+0x28", decoder.SourceStartupAudit
			e.Message = "kt_table+0x28 holds a pointer to kt_table_helper"
		}),
		with(func(e *decoder.Event) {
			e.Kind, e.Rule, e.Severity, e.Function, e.Task = decoder.KindFinding, decoder.RuleOops, decoder.SeverityError, "kt_table_helper", "sh"
			e.Message = "oops"
		}),
	}
}

// The daemon's JSON log lines carry exactly watch --output json's fields
// and values, plus slog's level and msg.
func TestEventLogMatchesWatchJSON(t *testing.T) {
	var logBuf, watchBuf bytes.Buffer
	h, err := NewLogHandler("json", &logBuf, slog.LevelDebug)
	if err != nil {
		t.Fatal(err)
	}
	log := NewEventLog(h, testClock)
	watch, _ := NewWriter("json", &watchBuf, testClock)
	for _, ev := range logEvents() {
		if err := log.Write(ev); err != nil {
			t.Fatal(err)
		}
		watch.Write(ev)
	}
	logLines := strings.Split(strings.TrimSpace(logBuf.String()), "\n")
	watchLines := strings.Split(strings.TrimSpace(watchBuf.String()), "\n")
	if len(logLines) != len(watchLines) {
		t.Fatalf("%d log lines, %d watch lines", len(logLines), len(watchLines))
	}
	for i := range logLines {
		var got, want map[string]any
		if err := json.Unmarshal([]byte(logLines[i]), &got); err != nil {
			t.Fatalf("log line %q: %v", logLines[i], err)
		}
		json.Unmarshal([]byte(watchLines[i]), &want)
		if got["level"] == nil || got["msg"] == nil {
			t.Errorf("log line lacks level or msg: %s", logLines[i])
		}
		delete(got, "level")
		delete(got, "msg")
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		if string(g) != string(w) {
			t.Errorf("event %d fields differ from watch --output json:\n log:   %s\n watch: %s", i, g, w)
		}
	}
}

func TestEventLogLevelsAndLogfmt(t *testing.T) {
	var buf bytes.Buffer
	h, _ := NewLogHandler("logfmt", &buf, slog.LevelInfo)
	log := NewEventLog(h, testClock)
	for _, ev := range logEvents() {
		log.Write(ev)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	// At info, the ignored init pointer (debug) is not written.
	if len(lines) != len(logEvents())-1 {
		t.Fatalf("want %d lines, got:\n%s", len(logEvents())-1, buf.String())
	}
	want := `time=2026-11-18T11:06:40.25491466Z level=ERROR msg="positive-init-return in kt_positive" event=finding cpu=1 pid=111 tid=111 module=kt_positive function=kt_positive_init address=0xffffffffc04d2000 ret=1 duration_ns=1111510 rule=positive-init-return severity=error value=1 message=message`
	if lines[2] != want {
		t.Errorf("finding line:\n got: %s\nwant: %s", lines[2], want)
	}
}

func TestEventLogAttached(t *testing.T) {
	var buf bytes.Buffer
	h, _ := NewLogHandler("json", &buf, slog.LevelInfo)
	NewEventLog(h, testClock).Attached([]Hook{
		{Name: "module_load", Attached: true, Method: "raw_tracepoint", Target: "module_load"},
		{Name: "exec_fault", Error: "kprobe page_fault_oops: not found"},
	})
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 2 || lines[0]["method"] != "raw_tracepoint" || lines[1]["level"] != "WARN" || lines[1]["error"] != "kprobe page_fault_oops: not found" {
		t.Errorf("attached lines: %s", buf.String())
	}
}

func TestLogFormatAndLevelErrors(t *testing.T) {
	if _, err := NewLogHandler("xml", &bytes.Buffer{}, slog.LevelInfo); err == nil || !strings.Contains(err.Error(), `unknown log format "xml"`) {
		t.Errorf("xml: %v", err)
	}
	if _, err := ParseLogLevel("loud"); err == nil {
		t.Error("level loud accepted")
	}
	if l, err := ParseLogLevel("warn"); err != nil || l != slog.LevelWarn {
		t.Errorf("warn: %v %v", l, err)
	}
}

// logrotate renames the file and sends SIGHUP: lines before go to the
// renamed file, lines after to a new one at the path.
func TestLogFileReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ktracer.log")
	f, err := OpenLogFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Write([]byte("before\n"))
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("still old\n"))
	if err := f.Reopen(); err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("after\n"))
	old, _ := os.ReadFile(path + ".1")
	cur, _ := os.ReadFile(path)
	if string(old) != "before\nstill old\n" || string(cur) != "after\n" {
		t.Errorf("rotated %q, current %q", old, cur)
	}
	if _, err := OpenLogFile(filepath.Join(dir, "missing", "x.log")); err == nil {
		t.Error("a log file in a missing directory opened")
	}
}
