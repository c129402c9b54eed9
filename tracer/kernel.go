package tracer

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ktracer/ktracer/bpf"
)

// UnsupportedError says in one line why this kernel or process cannot trace.
type UnsupportedError struct {
	Reason string
	Hooks  []HookStatus // what was tried, when attaching got that far
}

func (e *UnsupportedError) Error() string { return e.Reason }

// Paths the checks read; variables so tests can point them at fixtures.
var (
	btfPath      = "/sys/kernel/btf/vmlinux"
	lockdownPath = "/sys/kernel/security/lockdown"
	modulesPath  = "/proc/modules"
	kprobePMU    = "/sys/bus/event_source/devices/kprobe"
	paranoidPath = "/proc/sys/kernel/perf_event_paranoid"
)

const (
	capPerfmon = 38
	capBPF     = 39
)

// preflight finds what makes tracing impossible before anything is loaded,
// so the user reads the cause instead of a verifier or syscall error.
func preflight() error {
	if _, err := os.Stat(btfPath); err != nil {
		return &UnsupportedError{Reason: "the kernel has no BTF (" + btfPath + " is missing; it needs CONFIG_DEBUG_INFO_BTF=y)"}
	}
	if missing := missingCaps(); missing != "" {
		return &UnsupportedError{Reason: "ktracer needs root, or CAP_BPF and CAP_PERFMON; this process lacks " + missing}
	}
	if b, err := os.ReadFile(lockdownPath); err == nil && bytes.Contains(b, []byte("[confidentiality]")) {
		return &UnsupportedError{Reason: "kernel lockdown is in confidentiality mode, which forbids BPF from reading kernel memory (boot with lockdown=integrity or none)"}
	}
	return nil
}

// missingCaps names the effective capabilities tracing needs and this
// process lacks, or "" when it has them.
func missingCaps() string {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return "" // cannot tell; loading will say
	}
	has := func(c uint) bool { return data[c/32].Effective&(1<<(c%32)) != 0 }
	const capSysAdmin = 21
	if has(capSysAdmin) {
		return ""
	}
	var missing []string
	if !has(capBPF) {
		missing = append(missing, "CAP_BPF")
	}
	if !has(capPerfmon) {
		missing = append(missing, "CAP_PERFMON")
	}
	return strings.Join(missing, " and ")
}

// kernelGaps describes what this kernel lacks for module tracing.
func kernelGaps() string {
	var gaps []string
	if _, err := os.Stat(modulesPath); err != nil {
		gaps = append(gaps, "no loadable module support (CONFIG_MODULES is off: "+modulesPath+" is missing)")
	}
	if _, err := os.Stat(kprobePMU); err != nil {
		gaps = append(gaps, "no kprobes (CONFIG_KPROBES is off: "+kprobePMU+" is missing)")
	}
	if len(gaps) == 0 {
		return "the kernel has neither the tracepoints nor the functions ktracer attaches to (see --verbose)"
	}
	return "this kernel has " + strings.Join(gaps, " and ")
}

// Describe is a multi-line account of every hook, for --verbose output.
func Describe(hooks []HookStatus) string {
	var b strings.Builder
	for _, h := range hooks {
		if h.Attached {
			fmt.Fprintf(&b, "hook %s: %s %s", h.Hook, h.Method, h.Target)
			if h.Degraded != "" {
				fmt.Fprintf(&b, " (degraded: %s)", h.Degraded)
			}
			b.WriteString("\n")
		} else {
			fmt.Fprintf(&b, "hook %s: not attached: %s\n", h.Hook, strings.ReplaceAll(h.Err.Error(), "\n", "; "))
		}
	}
	return b.String()
}

// MonoToWall converts the kernel's CLOCK_MONOTONIC timestamps (what
// bpf_ktime_get_ns returns) to wall-clock time, by the offset between the
// two clocks now.
func MonoToWall() func(monoNS uint64) time.Time {
	var ts unix.Timespec
	now := time.Now()
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return func(uint64) time.Time { return time.Now() }
	}
	offset := now.Sub(time.Unix(0, ts.Nano()))
	return func(monoNS uint64) time.Time {
		return time.Unix(0, int64(monoNS)).Add(offset)
	}
}

// kallsymsPath is read for the addresses the panic-path programs need.
var kallsymsPath = "/proc/kallsyms"

// paramSymbols are the kernel variables whose addresses go into the params
// map: the bad-page program turns a struct page into a pfn with
// vmemmap_base, the crash program tells whether a crash kernel is loaded.
var paramSymbols = map[string]uint32{
	"vmemmap_base":      uint32(bpf.KtAddrParamPARAM_VMEMMAP_BASE),
	"kexec_crash_image": uint32(bpf.KtAddrParamPARAM_KEXEC_CRASH_IMAGE),
}

// fillParams scans kallsyms for paramSymbols. Without them the events still
// arrive, with the pfn or the crash-kernel state marked unknown.
func (t *Tracer) fillParams() {
	f, err := os.Open(kallsymsPath)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	found := 0
	for sc.Scan() && found < len(paramSymbols) {
		line := sc.Bytes()
		sp := bytes.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		idx, ok := paramSymbols[string(line[sp+1:])]
		if !ok {
			continue
		}
		addr, err := strconv.ParseUint(string(line[:bytes.IndexByte(line, ' ')]), 16, 64)
		if err != nil || addr == 0 {
			continue
		}
		if err := t.maps[bpf.KtMapParams].Put(idx, addr); err == nil {
			found++
		}
	}
}
