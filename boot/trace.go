package boot

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// traceLog is what the trace buffer says about a boot.
type traceLog struct {
	initcalls []Initcall
	reset     bool // the first initcall is not a console or early one
}

var (
	// "  swapper/0-1   [000] .....   0.828657: initcall_level: level=pure"
	// The comm can hold spaces and dashes; the pid is the last -N before
	// the [cpu]. The flags column is absent with some trace options.
	traceRe  = regexp.MustCompile(`^\s*(.*)-(\d+)\s+(?:\(\s*[-\d]+\)\s+)?\[(\d+)\]\s+(?:\S+\s+)?(\d+)\.(\d+): (initcall_level|initcall_start|initcall_finish): (.*)$`)
	tFuncRe  = regexp.MustCompile(`^func=([^+\s]+)(?:\+0x[0-9a-f]+/0x[0-9a-f]+)?(?: \[([^\]]+)\])?(?: ret=(-?\d+))?$`)
	tLevelRe = regexp.MustCompile(`^level=(\w+)$`)
)

// parseTrace reads /sys/kernel/tracing/trace text with the initcall events.
func parseTrace(r io.Reader) (*traceLog, error) {
	tl := &traceLog{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	level := LevelUnknown
	open := map[string]int{} // function@pid -> index
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if strings.HasPrefix(line, "#") || !strings.Contains(line, ": initcall_") {
			continue
		}
		m := traceRe.FindStringSubmatch(line)
		if m == nil {
			return nil, fmt.Errorf("trace line %d: not an initcall event: %q", n, line)
		}
		pid, _ := strconv.Atoi(m[2])
		sec, _ := strconv.ParseInt(m[4], 10, 64)
		frac := (m[5] + "000000000")[:9]
		ns, _ := strconv.ParseInt(frac, 10, 64)
		ts := time.Duration(sec)*time.Second + time.Duration(ns)
		if m[6] == "initcall_level" {
			lm := tLevelRe.FindStringSubmatch(m[7])
			if lm == nil {
				return nil, fmt.Errorf("trace line %d: bad initcall_level %q", n, m[7])
			}
			level = lm[1]
			continue
		}
		fm := tFuncRe.FindStringSubmatch(m[7])
		if fm == nil {
			return nil, fmt.Errorf("trace line %d: bad %s %q", n, m[6], m[7])
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
		delete(open, key)
		ret, err := strconv.ParseInt(fm[3], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("trace line %d: bad return in %q", n, m[7])
		}
		ic := &tl.initcalls[i]
		ic.Ret, ic.Duration, ic.Finished = int32(ret), ts-ic.Start, true
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read trace: %w", err)
	}
	return tl, nil
}
