package boot

import (
	"bufio"
	"fmt"
	"io"
	"math"
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
	smpCPUs   int    // "smp: Brought up 1 node, 4 CPUs": CPUs up at boot
	// unreadFormat: initcall_debug lines are there, in a format not read.
	unreadFormat bool
	notes        []string // what limits what the log says, in words

	matchSteps int // open calls looked at to match returns (a test holds it linear)
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
	ts    time.Duration // since boot: monotonic when hasT, else from wall
	hasT  bool          // the kernel's own monotonic timestamp
	wall  time.Time     // a wall-clock prefix (journalctl -k, dmesg -T, syslog)
	known bool          // some line format was recognised
	msg   string
}

var (
	prioRe = regexp.MustCompile(`^<\d+>`)
	// "[    1.234567] msg": dmesg, and journalctl -o short-monotonic.
	monoRe = regexp.MustCompile(`^\[\s*(\d+)\.(\d+)\]`)
	// /dev/kmsg: "6,1234,5678901,-;msg" or "...,-,caller=T1;msg" (µs).
	kmsgRe = regexp.MustCompile(`^\d+,\d+,(\d+),[^;]*;(.*)$`)
	// CONFIG_PRINTK_CALLER: "[    T1]" or "[    C0]" after the time.
	callerRe = regexp.MustCompile(`^ ?\[\s*[TC]\d+\]`)
	// journalctl's "hostname kernel: " after its time prefix.
	journalHostRe = regexp.MustCompile(`^ ?\S+ kernel: `)
	// dmesg -T: "[Wed Dec  2 02:43:22 2026] msg".
	dmesgTRe = regexp.MustCompile(`^\[((?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \d]\d \d\d:\d\d:\d\d \d{4})\] ?`)
	// journalctl -k (short, short-precise) and syslog files:
	// "Dec 02 02:43:22[.123456] hostname kernel: msg".
	syslogRe = regexp.MustCompile(`^((?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \d]\d \d\d:\d\d:\d\d(?:\.\d+)?) \S+ kernel: `)
	// journalctl -o short-iso / short-iso-precise and RFC 3339 syslog.
	isoRe = regexp.MustCompile(`^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?) \S+ kernel: `)

	callRe   = regexp.MustCompile(`^calling  ([^+\s]+)\+0x[0-9a-f]+/0x[0-9a-f]+(?: \[([^\]]+)\])? @ (\d+)$`)
	returnRe = regexp.MustCompile(`^initcall ([^+\s]+)\+0x[0-9a-f]+/0x[0-9a-f]+(?: \[([^\]]+)\])? returned (-?\d+) after (\d+) usecs$`)
	// The same anywhere in a line: initcall_debug output in a line format
	// not read here. PCI fixups print "pci 0000:00:1f.0: calling  quirk_...".
	anyInitcallRe = regexp.MustCompile(`(^|[^:] |[^ ])(calling  [^+\s]+\+0x[0-9a-f]+/0x[0-9a-f]+|initcall [^+\s]+\+0x[0-9a-f]+/0x[0-9a-f]+(?: \[[^\]]+\])? returned -?\d+ after \d+ usecs)`)
	oopsRe        = regexp.MustCompile(`^(BUG: |Oops: |general protection fault|kernel BUG at|Unable to handle kernel|BUG kernel)`)
	pidRe         = regexp.MustCompile(`^CPU: \d+ PID: (\d+) `)
	frameRe       = regexp.MustCompile(`^(\?\s+)?([A-Za-z_.][\w.]*)\+0x[0-9a-f]+/0x[0-9a-f]+`)
	ripRe         = regexp.MustCompile(`^RIP: [0-9a-f]+:([A-Za-z_.][\w.]*)\+0x`)
	unknowRe      = regexp.MustCompile(`^Unknown kernel command line parameters "(.*)", will be passed to user space`)
)

// maxDuration is what an out-of-range time saturates to.
const maxDuration = time.Duration(math.MaxInt64)

// stamp reads "seconds.fraction" as a Duration; ok is false when it does
// not fit one (a corrupt or hostile line).
func stamp(secs, frac string) (time.Duration, bool) {
	sec, err := strconv.ParseInt(secs, 10, 64)
	if err != nil || sec > int64(maxDuration/time.Second)-1 {
		return 0, false
	}
	frac = (frac + "000000000")[:9]
	ns, _ := strconv.ParseInt(frac, 10, 64)
	return time.Duration(sec)*time.Second + time.Duration(ns), true
}

// usecs reads a microsecond count, saturating at maxDuration.
func usecs(s string) (d time.Duration, saturated bool) {
	us, err := strconv.ParseUint(s, 10, 64)
	if err != nil || us > uint64(maxDuration/time.Microsecond) {
		return maxDuration, true
	}
	return time.Duration(us) * time.Microsecond, false
}

// splitLogLine takes the prefix a tool put before a kernel message: dmesg's
// "[    1.234567] ", a printk caller id "[    T1] ", /dev/kmsg's record
// header, journalctl's "[    1.234567] host kernel: " (short-monotonic) or
// "Dec 02 02:43:22 host kernel: " (short), dmesg -T's "[Wed Dec  2 ...] ",
// a syslog file's wall-clock prefix before dmesg's own.
func splitLogLine(s string) logLine {
	s = prioRe.ReplaceAllLiteralString(s, "")
	if m := kmsgRe.FindStringSubmatch(s); m != nil {
		l := logLine{known: true, msg: m[2]}
		if d, sat := usecs(m[1]); !sat {
			l.ts, l.hasT = d, true
		}
		return l
	}
	var l logLine
	if m := dmesgTRe.FindStringSubmatch(s); m != nil {
		l.wall, _ = time.Parse("Mon Jan _2 15:04:05 2006", m[1])
		l.known, s = true, s[len(m[0]):]
	} else if m := syslogRe.FindStringSubmatch(s); m != nil {
		l.wall, _ = time.Parse("Jan _2 15:04:05.999999999", m[1])
		l.known, s = true, s[len(m[0]):]
	} else if m := isoRe.FindStringSubmatch(s); m != nil {
		l.wall = parseISO(m[1])
		l.known, s = true, s[len(m[0]):]
	}
	if m := monoRe.FindStringSubmatch(s); m != nil {
		l.ts, l.hasT = stamp(m[1], m[2])
		l.known, s = true, s[len(m[0]):]
		if c := callerRe.FindString(s); c != "" {
			s = s[len(c):]
		}
		if l.wall.IsZero() {
			if h := journalHostRe.FindString(s); h != "" {
				s = s[len(h):]
			}
		}
	} else if !l.wall.IsZero() {
		if c := callerRe.FindString(s); c != "" {
			s = s[len(c):]
		}
	}
	l.msg = strings.TrimPrefix(s, " ")
	return l
}

func parseISO(s string) time.Time {
	s = strings.Replace(s, ",", ".", 1)
	for _, layout := range []string{"2006-01-02T15:04:05.999999999Z07:00", "2006-01-02T15:04:05.999999999Z0700", "2006-01-02T15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t
		}
	}
	return time.Time{}
}

// Input bounds: a kernel log is a few MiB (log_buf_len=4M is generous); a
// printk record is at most 1 KiB, a trace line a few KiB.
const (
	MaxInputBytes = 256 << 20
	MaxLineBytes  = 1 << 20
)

// lineReader reads lines with both bounds: a longer line is skipped and
// remembered, more input than MaxInputBytes is an error naming the line.
type lineReader struct {
	r        *bufio.Reader
	name     string
	n        int   // lines read
	total    int64 // bytes read
	long     int   // lines skipped for their length
	firstBig int   // the first of them
}

func newLineReader(r io.Reader, name string) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, 64<<10), name: name}
}

// next returns the next line without its newline; io.EOF at the end.
func (lr *lineReader) next() (string, error) {
	for {
		var buf []byte
		tooLong := false
		for {
			frag, err := lr.r.ReadSlice('\n')
			lr.total += int64(len(frag))
			if lr.total > MaxInputBytes {
				return "", fmt.Errorf("%s: more than %d MiB (at line %d): give a smaller extract", lr.name, MaxInputBytes>>20, lr.n+1)
			}
			if !tooLong {
				if len(buf)+len(frag) > MaxLineBytes+1 {
					tooLong, buf = true, nil
				} else {
					buf = append(buf, frag...)
				}
			}
			if err == bufio.ErrBufferFull {
				continue
			}
			if err != nil && err != io.EOF {
				return "", fmt.Errorf("read %s: %w", lr.name, err)
			}
			if err == io.EOF && len(frag) == 0 && len(buf) == 0 && !tooLong {
				return "", io.EOF
			}
			break
		}
		lr.n++
		if tooLong {
			if lr.long == 0 {
				lr.firstBig = lr.n
			}
			lr.long++
			continue
		}
		return strings.TrimRight(string(buf), "\r\n"), nil
	}
}

// skippedNote says which lines were too long to read, or "".
func (lr *lineReader) skippedNote() string {
	if lr.long == 0 {
		return ""
	}
	return fmt.Sprintf("%s line %d: longer than %d MiB, skipped (%d such lines): not a kernel message", lr.name, lr.firstBig, MaxLineBytes>>20, lr.long)
}

// parseKernelLog reads a kernel log as dmesg, dmesg -T, /dev/kmsg,
// journalctl -k (short, short-monotonic, short-iso) or a syslog file prints
// it, with or without printk caller ids. A log holding several boots (a
// serial capture across reboots) gives the last one, and a note.
func parseKernelLog(r io.Reader, name string) (*kernelLog, error) {
	if name == "" {
		name = "kernel log"
	}
	lr := newLineReader(r, name)
	var (
		kl                              = &kernelLog{}
		open                            = map[string][]int{} // function -> indexes of its open calls
		first                           = true
		stamped, wallOnly, known, lines int
		bootWall                        time.Time
		cur                             *oops
		inTrace                         bool
		prevTS                          time.Duration
		backwards                       int // first line where time went back and stayed
		backStart, backRun              int
		boots, bootLine                 = 1, 0
		unread                          []int // lines with initcall_debug output in no known format
		unreadFirst                     string
		saturated                       []string
	)
	newBoot := func() {
		boots++
		bootLine = lr.n
		kl = &kernelLog{matchSteps: kl.matchSteps}
		open = map[string][]int{}
		first, cur, inTrace, prevTS, backwards, bootWall = true, nil, false, 0, 0, time.Time{}
		backStart, backRun = 0, 0
		stamped, wallOnly, known, lines = 0, 0, 0, 0
		unread, saturated = nil, nil
	}
	for {
		raw, err := lr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if raw == "" {
			continue
		}
		if strings.HasPrefix(raw, "-- Boot ") && strings.HasSuffix(raw, " --") {
			if lines > 0 {
				newBoot() // journalctl's separator between boots
			}
			continue
		}
		l := splitLogLine(raw)
		msg := strings.TrimSpace(l.msg)
		if strings.HasPrefix(msg, "Linux version ") && lines > 0 && (stamped > 0 || wallOnly > 0) {
			newBoot()
		}
		lines++
		if l.known {
			known++
		}
		switch {
		case l.hasT:
			stamped++
			// A line or two stepping back is normal: the early clock when
			// the TSC is found unstable, a secondary CPU's clock before it
			// is synchronised. Time that stays back is not: logs of
			// different boots or sources are mixed.
			if l.ts < prevTS-time.Second {
				if backStart == 0 {
					backStart = lr.n
				}
				if backRun++; backRun == 10 && backwards == 0 {
					backwards = backStart
				}
			} else {
				backStart, backRun = 0, 0
			}
			prevTS = max(prevTS, l.ts)
		case !l.wall.IsZero():
			wallOnly++
			if bootWall.IsZero() {
				bootWall = l.wall
			}
			if d := l.wall.Sub(bootWall); d > 0 {
				l.ts = d
			}
		}
		if first && (l.hasT || !l.wall.IsZero()) {
			// A log that starts at boot starts with the version banner at
			// 0; a saved serial console may have firmware lines before it.
			first = false
			kl.wrapped = !(strings.HasPrefix(msg, "Linux version") || (l.hasT && l.ts == 0))
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
				// words. Anything else (the user registers after the entry
				// frame, another CPU's initcall_debug line) is read as
				// usual below.
				if m := frameRe.FindStringSubmatch(msg); m != nil {
					if m[1] == "" {
						cur.frames = append(cur.frames, m[2])
					}
					continue
				}
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
		if m := smpRe.FindStringSubmatch(msg); m != nil {
			kl.smpCPUs, _ = strconv.Atoi(m[1])
			continue
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
			open[m[1]] = append(open[m[1]], len(kl.initcalls))
			kl.initcalls = append(kl.initcalls, Initcall{Function: m[1], Module: m[2], Level: level, Start: l.ts, PID: pid})
			continue
		}
		if m := returnRe.FindStringSubmatch(msg); m != nil {
			// The return line has no pid: close the open call of that name
			// started most recently.
			stack := open[m[1]]
			kl.matchSteps++
			if len(stack) == 0 {
				continue // its "calling" line is before the log's start
			}
			idx := stack[len(stack)-1]
			if len(stack) == 1 {
				delete(open, m[1])
			} else {
				open[m[1]] = stack[:len(stack)-1]
			}
			ic := &kl.initcalls[idx]
			ret, err := strconv.ParseInt(m[3], 10, 32)
			if err != nil {
				kl.notes = append(kl.notes, fmt.Sprintf("%s line %d: return value %s of %s does not fit an int: taken as unknown", name, lr.n, m[3], m[1]))
				continue
			}
			d, sat := usecs(m[4])
			if sat {
				saturated = append(saturated, fmt.Sprintf("%s (line %d)", m[1], lr.n))
			}
			ic.Ret, ic.Duration, ic.Finished = int32(ret), d, true
			continue
		}
		if !l.known {
			if m := anyInitcallRe.FindStringIndex(raw); m != nil {
				if len(unread) == 0 {
					unreadFirst = raw
				}
				unread = append(unread, lr.n)
			}
		}
		if cur == nil && oopsRe.MatchString(msg) {
			cur = &oops{at: l.ts, title: msg}
		}
	}
	if cur != nil {
		kl.oopses = append(kl.oopses, *cur)
	}
	if n := lr.skippedNote(); n != "" {
		kl.notes = append(kl.notes, n)
	}
	if boots > 1 {
		kl.notes = append(kl.notes, fmt.Sprintf("%s holds %d boots (a capture across reboots): this report is of the last one, from line %d; give one boot's log (journalctl -k -b N) to see an earlier one", name, boots, bootLine))
	}
	if backwards > 0 {
		kl.notes = append(kl.notes, fmt.Sprintf("%s line %d: time goes backwards without a new boot: lines from different sources are mixed, so start times may be wrong", name, backwards))
	}
	for _, s := range saturated {
		kl.notes = append(kl.notes, fmt.Sprintf("%s: the \"after N usecs\" of %s is beyond %s: shown as that", name, s, maxDuration))
	}
	if len(unread) > 0 && len(kl.initcalls) == 0 {
		kl.notes = append(kl.notes, fmt.Sprintf("%s has initcall_debug output in a line format ktracer does not read (%d lines, first at line %d: %q): convert it to dmesg form (\"[    1.234567] calling  ...\"), or use dmesg, journalctl -k -o short-monotonic, or /dev/kmsg", name, len(unread), unread[0], truncate(unreadFirst, 120)))
		kl.unreadFormat = true
	}
	recognised := known > 0 || kl.version != "" || kl.sawCmd || len(kl.initcalls) > 0
	if lines > 0 && !recognised && !kl.unreadFormat {
		return nil, fmt.Errorf("%s has no timestamps and no kernel message ktracer knows (want dmesg output like \"[    0.000000] Linux version ...\"; boot with printk.time=1)", name)
	}
	switch {
	case stamped == 0 && wallOnly > 0:
		kl.notes = append(kl.notes, fmt.Sprintf("%s has wall-clock times (journalctl -k, dmesg -T), not the kernel's monotonic timestamps: start times are wall-clock offsets from its first line and the time to init is approximate; durations are the kernel's own \"after N usecs\". For exact times use dmesg or journalctl -k -o short-monotonic", name))
	case stamped == 0 && len(kl.initcalls) > 0:
		kl.notes = append(kl.notes, fmt.Sprintf("%s has no timestamps: start times and the time to init are unknown; durations are the kernel's own \"after N usecs\"", name))
	}
	return kl, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
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
