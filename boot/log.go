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

// kernelLog is what the kernel log says about a boot.
type kernelLog struct {
	version   string
	cmdline   string
	unknown   []string // words of "Unknown kernel command line parameters"
	sawCmd    bool     // the "Kernel command line:" line is in the log
	wrapped   bool     // the log does not start at boot
	runInit   time.Duration
	initcalls []Initcall
	oopses    []oops
	crashFail string // "crashkernel reservation failed - ..." reason
}

// oops is one kernel oops and the lines around it that matter.
type oops struct {
	at     time.Duration
	title  string // "BUG: kernel NULL pointer dereference, address: ..."
	pid    int    // from "CPU: n PID: p Comm: ..."
	rip    string // function of the faulting instruction
	frames []string
}

// logLine is one kernel message with its timestamp.
type logLine struct {
	ts   time.Duration
	hasT bool
	msg  string
}

var (
	// "[    1.234567] msg", optionally after a syslog "<6>" priority.
	dmesgRe = regexp.MustCompile(`^(?:<\d+>)?\[\s*(\d+)\.(\d+)\]\s?(.*)$`)
	// /dev/kmsg: "6,1234,5678901,-;msg" (timestamp in µs).
	kmsgRe   = regexp.MustCompile(`^\d+,\d+,(\d+),[^;]*;(.*)$`)
	callRe   = regexp.MustCompile(`^calling  ([^+\s]+)\+0x[0-9a-f]+/0x[0-9a-f]+(?: \[([^\]]+)\])? @ (\d+)$`)
	returnRe = regexp.MustCompile(`^initcall ([^+\s]+)\+0x[0-9a-f]+/0x[0-9a-f]+(?: \[([^\]]+)\])? returned (-?\d+) after (\d+) usecs$`)
	oopsRe   = regexp.MustCompile(`^(BUG: |Oops: |general protection fault|kernel BUG at|Unable to handle kernel|BUG kernel)`)
	pidRe    = regexp.MustCompile(`^CPU: \d+ PID: (\d+) `)
	frameRe  = regexp.MustCompile(`^(\?\s+)?([A-Za-z_.][\w.]*)\+0x[0-9a-f]+/0x[0-9a-f]+`)
	ripRe    = regexp.MustCompile(`^RIP: [0-9a-f]+:([A-Za-z_.][\w.]*)\+0x`)
	unknowRe = regexp.MustCompile(`^Unknown kernel command line parameters "(.*)", will be passed to user space`)
)

func splitLogLine(s string) logLine {
	if m := dmesgRe.FindStringSubmatch(s); m != nil {
		sec, _ := strconv.ParseInt(m[1], 10, 64)
		frac := m[2]
		for len(frac) < 9 {
			frac += "0"
		}
		ns, _ := strconv.ParseInt(frac[:9], 10, 64)
		return logLine{time.Duration(sec)*time.Second + time.Duration(ns), true, m[3]}
	}
	if m := kmsgRe.FindStringSubmatch(s); m != nil {
		us, _ := strconv.ParseInt(m[1], 10, 64)
		return logLine{time.Duration(us) * time.Microsecond, true, m[2]}
	}
	return logLine{msg: s}
}

// parseKernelLog reads dmesg text (with timestamps; `dmesg`, `dmesg -r`,
// journalctl -k -o short-monotonic is not supported) or /dev/kmsg records.
func parseKernelLog(r io.Reader) (*kernelLog, error) {
	kl := &kernelLog{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	open := map[string]int{} // function@pid -> index in initcalls
	first, lines, stamped := true, 0, 0
	var cur *oops
	inTrace := false
	for sc.Scan() {
		raw := strings.TrimRight(sc.Text(), "\r")
		if raw == "" {
			continue
		}
		lines++
		l := splitLogLine(raw)
		if l.hasT {
			stamped++
		}
		msg := strings.TrimSpace(l.msg)
		if first && l.hasT {
			// A log that starts at boot starts with the version banner at
			// 0; a saved serial console may have firmware lines before it.
			first = false
			kl.wrapped = !(strings.HasPrefix(msg, "Linux version") || l.ts == 0)
		}
		if cur != nil {
			if m := pidRe.FindStringSubmatch(msg); m != nil && cur.pid == 0 {
				cur.pid, _ = strconv.Atoi(m[1])
			}
			if m := ripRe.FindStringSubmatch(msg); m != nil && cur.rip == "" {
				cur.rip = m[1]
			}
			switch {
			case msg == "Call Trace:":
				inTrace = true
				continue
			case inTrace && (msg == "<TASK>" || msg == "<IRQ>" || msg == "</IRQ>"):
				continue
			case inTrace && msg == "</TASK>", inTrace && strings.HasPrefix(msg, "---[ end trace"):
				inTrace = false
				kl.oopses = append(kl.oopses, *cur)
				cur = nil
				continue
			case inTrace:
				// Frames until </TASK>; "? foo" frames are stale stack
				// words, and the user registers after the entry frame are
				// not frames at all.
				if m := frameRe.FindStringSubmatch(msg); m != nil && m[1] == "" {
					cur.frames = append(cur.frames, m[2])
				}
				continue
			}
		}
		switch {
		case strings.HasPrefix(msg, "Linux version "):
			kl.version = msg
		case strings.HasPrefix(msg, "Kernel command line: "):
			kl.cmdline = strings.TrimPrefix(msg, "Kernel command line: ")
			kl.sawCmd = true
		case strings.HasPrefix(msg, "crashkernel reservation failed"):
			kl.crashFail = msg
		case strings.HasPrefix(msg, "Run /init as init process"), strings.HasPrefix(msg, "Run /sbin/init as init process"):
			if kl.runInit == 0 {
				kl.runInit = l.ts
			}
		}
		if m := unknowRe.FindStringSubmatch(msg); m != nil {
			kl.unknown = splitCmdline(m[1])
			continue
		}
		if m := callRe.FindStringSubmatch(msg); m != nil {
			pid, _ := strconv.Atoi(m[3])
			level := LevelUnknown
			if m[2] != "" {
				level = LevelModule
			}
			open[m[1]+"@"+m[3]] = len(kl.initcalls)
			kl.initcalls = append(kl.initcalls, Initcall{Function: m[1], Module: m[2], Level: level, Start: l.ts, PID: pid})
			continue
		}
		if m := returnRe.FindStringSubmatch(msg); m != nil {
			// The return line has no pid: close the open call of that name
			// started most recently.
			idx := -1
			for k, i := range open {
				if strings.HasPrefix(k, m[1]+"@") && i > idx {
					idx = i
				}
			}
			if idx < 0 {
				continue // its "calling" line is before the log's start
			}
			ic := &kl.initcalls[idx]
			delete(open, ic.Function+"@"+strconv.Itoa(ic.PID))
			ret, err := strconv.ParseInt(m[3], 10, 32)
			if err != nil {
				return nil, fmt.Errorf("kernel log line %d: bad initcall return %q", lines, m[3])
			}
			us, _ := strconv.ParseInt(m[4], 10, 64)
			ic.Ret, ic.Duration, ic.Finished = int32(ret), time.Duration(us)*time.Microsecond, true
			continue
		}
		if cur == nil && oopsRe.MatchString(msg) {
			cur = &oops{at: l.ts, title: msg}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read kernel log: %w", err)
	}
	if cur != nil {
		kl.oopses = append(kl.oopses, *cur)
	}
	if lines > 0 && stamped == 0 {
		return nil, fmt.Errorf("the kernel log has no timestamps (want dmesg output like \"[    0.000000] Linux version ...\"; boot with printk.time=1)")
	}
	return kl, nil
}

// splitCmdline splits a kernel command line as the kernel does
// (lib/cmdline.c next_arg): spaces separate words, double quotes group.
func splitCmdline(s string) []string {
	var out []string
	var b strings.Builder
	inQuote := false
	for _, c := range s {
		switch {
		case c == '"':
			inQuote = !inQuote
			b.WriteRune(c)
		case (c == ' ' || c == '\t' || c == '\n') && !inQuote:
			if b.Len() > 0 {
				out = append(out, b.String())
				b.Reset()
			}
		default:
			b.WriteRune(c)
		}
	}
	if b.Len() > 0 {
		out = append(out, b.String())
	}
	return out
}

func trimLine(s string) string { return strings.TrimRight(s, "\n\x00 ") }
