package boot

import (
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// traceLog is what the trace buffer says about a boot.
type traceLog struct {
	initcalls []Initcall
	reset     bool // the first initcall is not a console or early one
	notes     []string
}

var (
	// "  swapper/0-1   [000] .....   0.828657: initcall_level: level=pure"
	// The comm can hold spaces and dashes; the pid is the last -N before
	// the [cpu]. The flags column is absent with some trace options.
	traceRe  = regexp.MustCompile(`^\s*(.*)-(\d+)\s+(?:\(\s*[-\d]+\)\s+)?\[(\d+)\]\s+(?:\S+\s+)?(\d+)\.(\d+): (initcall_level|initcall_start|initcall_finish): (.*)$`)
	tFuncRe  = regexp.MustCompile(`^func=([^+\s]+)(?:\+0x[0-9a-f]+/0x[0-9a-f]+)?(?: \[([^\]]+)\])?(?: ret=(-?\d+))?$`)
	tLevelRe = regexp.MustCompile(`^level=(\w+)$`)
)

// parseTrace reads /sys/kernel/tracing/trace text with the initcall
// events. Lines of other tracers and events in the same buffer (the
// function tracer on initcall_* functions, trace_marker writes) are not
// ours and are skipped; a malformed initcall event is skipped with a note.
func parseTrace(r io.Reader, name string) (*traceLog, error) {
	if name == "" {
		name = "trace"
	}
	tl := &traceLog{}
	lr := newLineReader(r, name)
	level := LevelUnknown
	open := map[string]int{} // function@pid -> index
	bad, firstBad := 0, ""
	skip := func(what string) {
		if bad == 0 {
			firstBad = fmt.Sprintf("%s line %d: %s", name, lr.n, what)
		}
		bad++
	}
	for {
		line, err := lr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if strings.HasPrefix(line, "#") || !strings.Contains(line, ": initcall_") {
			continue
		}
		m := traceRe.FindStringSubmatch(line)
		if m == nil {
			continue // another tracer's line that mentions an initcall_ name
		}
		pid, _ := strconv.Atoi(m[2])
		ts, ok := stamp(m[4], m[5])
		if !ok {
			skip("timestamp out of range")
			continue
		}
		if m[6] == "initcall_level" {
			lm := tLevelRe.FindStringSubmatch(m[7])
			if lm == nil {
				skip(fmt.Sprintf("bad initcall_level %q", m[7]))
				continue
			}
			level = lm[1]
			continue
		}
		fm := tFuncRe.FindStringSubmatch(m[7])
		if fm == nil {
			skip(fmt.Sprintf("bad %s %q", m[6], m[7]))
			continue
		}
		key := fm[1] + "@" + m[2]
		if m[6] == "initcall_start" {
			ic := Initcall{Function: fm[1], Module: fm[2], Level: level, Start: ts, PID: pid}
			if ic.Module != "" {
				ic.Level = LevelModule
			}
			if len(tl.initcalls) == 0 && ic.Level != "console" && ic.Level != "early" {
				tl.reset = true
			}
			open[key] = len(tl.initcalls)
			tl.initcalls = append(tl.initcalls, ic)
			continue
		}
		i, ok := open[key]
		if !ok {
			continue // started before the buffer's first event
		}
		ret, err := strconv.ParseInt(fm[3], 10, 32)
		if err != nil {
			skip(fmt.Sprintf("bad return in %q", m[7]))
			continue
		}
		delete(open, key)
		ic := &tl.initcalls[i]
		ic.Ret, ic.Duration, ic.Finished = int32(ret), ts-ic.Start, true
		if ic.Duration < 0 {
			ic.Duration = 0
			tl.notes = append(tl.notes, fmt.Sprintf("%s line %d: %s finished before it started (the trace clock went back): its duration is unknown, shown as 0", name, lr.n, ic.Function))
		}
	}
	if bad > 0 {
		tl.notes = append(tl.notes, fmt.Sprintf("%s: %d malformed initcall events skipped; the first, %s", name, bad, firstBad))
	}
	if n := lr.skippedNote(); n != "" {
		tl.notes = append(tl.notes, n)
	}
	return tl, nil
}
