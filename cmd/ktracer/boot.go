package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/ktracer/ktracer/boot"
	"github.com/ktracer/ktracer/decoder"
)

type bootOptions struct {
	from   []string
	bootN  string
	root   string
	format string
	out    string
	failOn string
	slow   time.Duration
	top    int
	expect []string
}

func init() { commands = append(commands, newBootCmd) }

func newBootCmd() *cobra.Command {
	var o bootOptions
	cmd := &cobra.Command{
		Use:   "boot [flags]",
		Short: "Report this boot's built-in initcalls, their levels and timing, and boot-parameter mistakes",
		Long: `Report the built-in initcalls of a boot in order (level, start, duration,
return), the slowest initcalls and the time per level, and check the rules
live tracing checks (positive-init-return, init-failed, slow-init), an oops
inside an initcall (initcall-oops), unknown boot parameters
(unknown-boot-param) and parameters that did not take effect
(boot-param-not-effective).

Built-in initcalls run before user space, so no BPF can watch them: the
kernel must have recorded them. Boot with either of
  ` + boot.Recommended[0] + `
  ` + boot.Recommended[1] + `
Without --from, ktracer reads the running kernel's log and trace buffer
(root needed) and checks /proc/cmdline against this machine. With --from it
reads saved files (a kernel log as dmesg, dmesg -T, journalctl -k or
/dev/kmsg print it, or a copy of /sys/kernel/tracing/trace) and checks only
what they say, unless --root points at that machine's tree. With --boot it
reads an earlier boot's kernel log from the systemd journal, e.g. the boot
that crashed: --boot -1.`,
		Example: "  sudo ktracer boot\n  sudo ktracer boot --expect cpus=2\n  sudo ktracer boot --format svg --out boot.svg\n  ktracer boot --from dmesg.txt --format perfetto --out boot.json\n  sudo ktracer boot --boot -1",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBoot(cmd, o)
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&o.from, "from", nil, "read a saved kernel log or trace file instead of the running kernel (at most one of each)")
	f.StringVar(&o.bootN, "boot", "", "read an earlier boot's kernel log from the systemd journal (journalctl -k -b BOOT): -1 is the previous boot, or a boot id")
	f.StringVar(&o.root, "root", "", "root of the machine the boot happened on, for /proc and /sys checks (default / without --from)")
	f.StringVarP(&o.format, "format", "f", "text", "output: "+strings.Join(boot.Formats, ", "))
	f.StringVar(&o.out, "out", "", "write the output to this file instead of stdout")
	f.StringVar(&o.failOn, "fail-on", "error", "exit 1 when a finding at or above this severity is seen: info, warning or error")
	f.DurationVar(&o.slow, "slow", 100*time.Millisecond, "initcall duration above which slow-init is reported")
	f.IntVar(&o.top, "top", 10, "how many of the slowest initcalls to list")
	cmd.AddCommand(newBootDiffCmd())
	f.StringSliceVar(&o.expect, "expect", nil, "assert the booted state, e.g. cpus=2 (CPUs online); a failed assertion is an error finding (keys: "+strings.Join(boot.ExpectKeys, ", ")+")")
	return cmd
}

func runBoot(cmd *cobra.Command, o bootOptions) error {
	failOn, err := decoder.ParseSeverity(o.failOn)
	if err != nil {
		return &exitError{exitFailure, fmt.Errorf("--fail-on: %w", err)}
	}
	if o.slow <= 0 || o.top <= 0 {
		return &exitError{exitFailure, fmt.Errorf("--slow and --top must be positive")}
	}
	if !slices.Contains(boot.Formats, o.format) {
		return &exitError{exitFailure, fmt.Errorf("--format: unknown format %q (want %s)", o.format, strings.Join(boot.Formats, ", "))}
	}
	var expect []boot.Expectation
	for _, s := range o.expect {
		e, err := boot.ParseExpectation(s)
		if err != nil {
			return &exitError{exitFailure, fmt.Errorf("--expect: %w", err)}
		}
		expect = append(expect, e)
	}
	in := boot.Input{}
	if o.root != "" {
		if st, err := os.Stat(o.root); err != nil || !st.IsDir() {
			return &exitError{exitFailure, fmt.Errorf("--root %s is not a directory", o.root)}
		}
		in.Root = os.DirFS(o.root)
	}
	if o.bootN != "" && len(o.from) > 0 {
		return &exitError{exitFailure, errors.New("--boot and --from: give one")}
	}
	var journal *exec.Cmd
	var journalErr bytes.Buffer
	if o.bootN != "" {
		// journalctl, not a journal reader linked in: the binary stays
		// static (no cgo), and journalctl knows every journal format.
		// short-monotonic keeps the kernel's own timestamps.
		journal = exec.Command("journalctl", "-k", "-b", o.bootN, "-o", "short-monotonic", "--no-pager", "-q")
		journal.Stderr = &journalErr
		out, err := journal.StdoutPipe()
		if err != nil {
			return &exitError{exitFailure, fmt.Errorf("--boot: %w", err)}
		}
		if err := journal.Start(); err != nil {
			return &exitError{exitFailure, fmt.Errorf("--boot: %w", err)}
		}
		defer journal.Process.Kill()
		in.Log, in.LogName = out, "journalctl -k -b "+o.bootN
	} else if len(o.from) > 0 {
		closers, err := fromInput(o.from, &in)
		for _, c := range closers {
			defer c()
		}
		if err != nil {
			return err
		}
	} else {
		if in.Root == nil {
			in.Root = os.DirFS("/")
		}
		log, logErr := readKernelLog()
		if logErr == nil {
			in.Log = bytes.NewReader(log)
		}
		trace, traceErr := readLiveTrace(in.Root)
		if traceErr == nil {
			in.Trace = bytes.NewReader(trace)
		}
		if logErr != nil && traceErr != nil {
			return &exitError{exitFailure, fmt.Errorf("cannot read the kernel log (%v) nor the trace buffer (%v): run as root", logErr, traceErr)}
		}
	}

	rep, err := boot.Analyze(in, boot.Options{Slow: o.slow, Top: o.top, Expect: expect})
	if journal != nil {
		if err != nil {
			journal.Process.Kill() // stopped reading: journalctl may be blocked writing
		}
		if werr := journal.Wait(); werr != nil && err == nil {
			return &exitError{exitFailure, fmt.Errorf("--boot: journalctl: %v: %s", werr, strings.TrimSpace(journalErr.String()))}
		}
	}
	if err != nil {
		return &exitError{exitFailure, err}
	}
	if err := writeOut(cmd, o.out, o.format, func(w io.Writer) error { return boot.Render(w, rep, o.format) }); err != nil {
		return err
	}
	if o.format != "text" || o.out != "" {
		// Machine formats carry no words for people: say what matters on stderr.
		c := map[decoder.Severity]int{}
		for _, f := range rep.Findings {
			c[f.Severity]++
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "ktracer boot: %d initcalls recorded by %s; findings: %d error, %d warning, %d info\n",
			len(rep.Initcalls), rep.Source, c[decoder.SeverityError], c[decoder.SeverityWarning], c[decoder.SeverityInfo])
		switch rep.Source {
		case boot.SourceNone:
			fmt.Fprintf(cmd.ErrOrStderr(), "ktracer boot: this boot was not recorded; add to the kernel command line: %s\n", boot.Recommended[0])
		case boot.SourceUnreadable:
			for _, n := range rep.Notes {
				decoder.Fprintf(cmd.ErrOrStderr(), "ktracer boot: %s\n", n)
			}
		}
	}
	if rep.Worst() >= failOn {
		return &exitError{code: exitFindings}
	}
	return nil
}

// fromInput opens --from files into in: at most one kernel log and one
// trace, told apart by their content.
func fromInput(paths []string, in *boot.Input) ([]func() error, error) {
	var closers []func() error
	for _, p := range paths {
		r, closeFn, err := openFrom(p)
		if err != nil {
			return closers, &exitError{exitFailure, fmt.Errorf("--from %s: %w", p, err)}
		}
		closers = append(closers, closeFn)
		// A trace says so near its start ("# tracer:" header, or its
		// first initcall events): look at the first MiB only.
		br := bufio.NewReaderSize(r, 1<<20)
		head, _ := br.Peek(1 << 20)
		isTrace := bytes.Contains(head, []byte("# tracer:")) || bytes.Contains(head, []byte(": initcall_start: "))
		switch {
		case isTrace && in.Trace == nil:
			in.Trace, in.TraceName = br, p
		case !isTrace && in.Log == nil:
			in.Log, in.LogName = br, p
		default:
			return closers, &exitError{exitFailure, fmt.Errorf("--from %s: already have a %s; give at most one kernel log and one trace", p, map[bool]string{true: "trace", false: "kernel log"}[isTrace])}
		}
	}
	return closers, nil
}

// openFrom opens a --from file for reading with a bound: a regular file or
// a pipe (read up to boot.MaxInputBytes, which the reader enforces), or
// /dev/kmsg, read without blocking up to its newest record. Any other
// device (/dev/zero, a tty) is refused: it has no end.
func openFrom(p string) (io.Reader, func() error, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, nil, err
	}
	switch m := st.Mode(); {
	case m.IsDir():
		return nil, nil, errors.New("a directory, not a file")
	case m&os.ModeCharDevice != 0:
		if sys, ok := st.Sys().(*syscall.Stat_t); ok && unix.Major(uint64(sys.Rdev)) == 1 && unix.Minor(uint64(sys.Rdev)) == 11 {
			return openKmsg(p)
		}
		return nil, nil, errors.New("a character device, not a file (of devices, only /dev/kmsg is read)")
	case m&os.ModeDevice != 0 || m&os.ModeSocket != 0:
		return nil, nil, errors.New("a device or socket, not a file")
	}
	// /proc/kmsg looks like a regular file but blocks until the next
	// message and takes each message away from syslogd: no file in /proc
	// or /sys is a saved log.
	var fs unix.Statfs_t
	if err := unix.Statfs(p, &fs); err == nil && (fs.Type == unix.PROC_SUPER_MAGIC || fs.Type == unix.SYSFS_MAGIC) {
		return nil, nil, errors.New("a /proc or /sys file, not a saved log (for the kernel log give /dev/kmsg, or no --from)")
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, nil, err
	}
	return f, f.Close, nil
}

// kmsgReader reads /dev/kmsg records until there is none left: the file is
// opened non-blocking, so EAGAIN means "read everything so far" and ends
// the log instead of waiting for the next message forever.
type kmsgReader struct {
	fd   int
	buf  []byte
	rest []byte
	n    int64
}

func openKmsg(p string) (io.Reader, func() error, error) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	k := &kmsgReader{fd: fd, buf: make([]byte, 16<<10)}
	return k, func() error { return unix.Close(fd) }, nil
}

func (k *kmsgReader) Read(p []byte) (int, error) {
	for len(k.rest) == 0 {
		if k.n > boot.MaxInputBytes {
			return 0, io.EOF // the reader reports the cap
		}
		n, err := unix.Read(k.fd, k.buf)
		switch {
		case err == unix.EAGAIN:
			return 0, io.EOF
		case err == unix.EPIPE:
			continue // records overwritten while reading: carry on
		case err == unix.EINTR:
			continue
		case err != nil:
			return 0, fmt.Errorf("read /dev/kmsg: %w", err)
		case n == 0:
			return 0, io.EOF
		}
		k.n += int64(n)
		k.rest = k.buf[:n]
	}
	n := copy(p, k.rest)
	k.rest = k.rest[n:]
	return n, nil
}

// readKernelLog reads the whole kernel ring buffer with syslog(2), as dmesg
// does; it needs CAP_SYSLOG when kernel.dmesg_restrict is set.
func readKernelLog() ([]byte, error) {
	n, err := unix.Klogctl(unix.SYSLOG_ACTION_SIZE_BUFFER, nil)
	if err != nil {
		return nil, fmt.Errorf("syslog size: %w", err)
	}
	buf := make([]byte, max(n, 1<<16))
	m, err := unix.Klogctl(unix.SYSLOG_ACTION_READ_ALL, buf)
	if err != nil {
		return nil, fmt.Errorf("syslog read: %w", err)
	}
	return buf[:m], nil
}

// readLiveTrace reads the trace buffer, from tracefs or its debugfs path.
func readLiveTrace(root fs.FS) ([]byte, error) {
	var firstErr error
	for _, p := range []string{"sys/kernel/tracing/trace", "sys/kernel/debug/tracing/trace"} {
		b, err := fs.ReadFile(root, p)
		if err == nil {
			return b, nil
		}
		if firstErr == nil || !errors.Is(err, fs.ErrNotExist) {
			firstErr = err
		}
	}
	return nil, firstErr
}

// writeOut renders to --out, or to standard output when it is empty.
func writeOut(cmd *cobra.Command, out, format string, render func(io.Writer) error) error {
	w := cmd.OutOrStdout()
	var file *os.File
	if out != "" {
		var err error
		if file, err = os.Create(out); err != nil {
			return &exitError{exitFailure, fmt.Errorf("--out: %w", err)}
		}
		w = file
	}
	err := render(w)
	if file != nil {
		if cerr := file.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return &exitError{exitFailure, fmt.Errorf("write %s: %w", format, err)}
	}
	return nil
}
