package check

import (
	"errors"
	"fmt"
	"io/fs"
	"math/bits"
	"strconv"
	"strings"
)

// The crash-kernel estimate (seed incident 3: crashkernel=128M sized for
// 16 GB, makedumpfile out of memory at 256 GB). The reservation must hold:
//
//   - the crash kernel itself, its initramfs and what it needs to reach
//     userspace: 64 MiB, the low end of the seed's "64-128 MB on its own"
//     (Debian's kdump initramfs is built with MODULES=dep, so small);
//   - makedumpfile's page bitmaps: 1 byte per 4 KiB page of the crashed
//     machine's RAM (the seed's figure, 64 MiB for 256 GiB; makedumpfile's
//     two bitmaps are 2 bits a page, the rest is its page-descriptor cache);
//   - I/O and filtering buffers: 32 MiB.
//
// Below that estimate, the crash kernel is expected to fail: kdump-undersized.
// The value recommended for crashkernel= doubles the estimate for headroom
// and rounds up to a power of two; that gives 256M for 16 GiB and 512M for
// 256 GiB, the same as RHEL 9's default table (1G-4G:192M,4G-64G:256M,
// 64G-:512M) and the seed's "512M or more" for 256 GB. Debian's kdump-tools
// reserves 128M whatever the RAM (crashkernel=384M-:128M), which the
// estimate accepts up to 128 GiB.
const (
	crashBase      = 64 << 20
	crashIOBuffers = 32 << 20
	pageSize       = 4096
	minRecommended = 128 << 20
)

// CrashEstimate is the minimum reservation for a machine with ram bytes.
func CrashEstimate(ram uint64) uint64 {
	return crashBase + crashIOBuffers + ram/pageSize
}

// RecommendedCrashkernel is the reservation to put on the command line.
func RecommendedCrashkernel(ram uint64) uint64 {
	want := max(2*CrashEstimate(ram), minRecommended)
	return 1 << (64 - bits.LeadingZeros64(want-1))
}

// LargestRAMFor is the most RAM a reservation of reserved bytes covers by
// the estimate: it tells for what machine a reservation was sized.
func LargestRAMFor(reserved uint64) uint64 {
	if reserved <= crashBase+crashIOBuffers {
		return 0
	}
	return (reserved - crashBase - crashIOBuffers) * pageSize
}

// Region is a physical address range from /proc/iomem.
type Region struct {
	Start uint64 `json:"start"`
	End   uint64 `json:"end"` // inclusive, as iomem prints it
}

func (r Region) size() uint64 { return r.End - r.Start + 1 }

// KdumpFacts is what the kernel says about kdump.
type KdumpFacts struct {
	// Supported is false when the kernel has no kexec crash support:
	// /sys/kernel/kexec_crash_loaded is missing.
	Supported   bool     `json:"supported"`
	Cmdline     []string `json:"cmdline_crashkernel,omitempty"` // crashkernel= values on the command line
	CrashRegion []Region `json:"crash_regions,omitempty"`       // "Crash kernel" in /proc/iomem
	// ReservedBytes is the reservation: the iomem regions when their
	// addresses are visible (root), else /sys/kernel/kexec_crash_size.
	ReservedBytes  uint64 `json:"reserved_bytes"`
	KexecCrashSize uint64 `json:"kexec_crash_size"`
	Loaded         bool   `json:"loaded"` // /sys/kernel/kexec_crash_loaded
	// RAMBytes is the machine's RAM: "System RAM" in /proc/iomem (which
	// includes the reservation), else MemTotal plus the reservation.
	RAMBytes    uint64 `json:"ram_bytes"`
	RAMSource   string `json:"ram_source"`
	Estimate    uint64 `json:"estimate_bytes"`
	Recommended uint64 `json:"recommended_bytes"`
	CoversRAM   uint64 `json:"reservation_covers_ram_bytes"`
}

// readKdump reads the kdump facts from a root.
func readKdump(fsys fs.FS) (KdumpFacts, error) {
	var k KdumpFacts
	cmdline, err := fs.ReadFile(fsys, "proc/cmdline")
	if err != nil {
		return k, fmt.Errorf("read /proc/cmdline: %w", err)
	}
	for _, arg := range strings.Fields(string(cmdline)) {
		if v, ok := strings.CutPrefix(arg, "crashkernel="); ok {
			k.Cmdline = append(k.Cmdline, v)
		}
	}
	loaded, err := fs.ReadFile(fsys, "sys/kernel/kexec_crash_loaded")
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return k, fmt.Errorf("read /sys/kernel/kexec_crash_loaded: %w", err)
	default:
		k.Supported = true
		k.Loaded = strings.TrimSpace(string(loaded)) == "1"
	}
	if size, err := fs.ReadFile(fsys, "sys/kernel/kexec_crash_size"); err == nil {
		if k.KexecCrashSize, err = strconv.ParseUint(strings.TrimSpace(string(size)), 10, 64); err != nil {
			return k, fmt.Errorf("/sys/kernel/kexec_crash_size: not a number: %q", strings.TrimSpace(string(size)))
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return k, fmt.Errorf("read /sys/kernel/kexec_crash_size: %w", err)
	}

	iomem, err := fs.ReadFile(fsys, "proc/iomem")
	if err != nil {
		return k, fmt.Errorf("read /proc/iomem: %w", err)
	}
	ram, crash, visible, err := parseIomem(string(iomem))
	if err != nil {
		return k, err
	}
	k.CrashRegion = crash
	if visible {
		for _, r := range crash {
			k.ReservedBytes += r.size()
		}
		k.RAMBytes, k.RAMSource = ram, "/proc/iomem System RAM"
	} else {
		// Without root, iomem shows zeros for every address.
		k.CrashRegion = nil
		k.ReservedBytes = k.KexecCrashSize
		meminfo, err := fs.ReadFile(fsys, "proc/meminfo")
		if err != nil {
			return k, fmt.Errorf("read /proc/meminfo: %w", err)
		}
		total, err := memTotal(string(meminfo))
		if err != nil {
			return k, err
		}
		k.RAMBytes, k.RAMSource = total+k.ReservedBytes, "/proc/meminfo MemTotal + reservation"
	}
	if k.ReservedBytes == 0 {
		k.ReservedBytes = k.KexecCrashSize
	}
	k.Estimate = CrashEstimate(k.RAMBytes)
	k.Recommended = RecommendedCrashkernel(k.RAMBytes)
	k.CoversRAM = LargestRAMFor(k.ReservedBytes)
	return k, nil
}

// parseIomem sums the top-level System RAM ranges and lists the Crash
// kernel ranges. visible is false when the addresses are hidden (zeros).
func parseIomem(s string) (ram uint64, crash []Region, visible bool, err error) {
	for line := range strings.SplitSeq(s, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		rng, name, ok := strings.Cut(line, " : ")
		if !ok {
			return 0, nil, false, fmt.Errorf("/proc/iomem: bad line %q", line)
		}
		lo, hi, ok := strings.Cut(strings.TrimSpace(rng), "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if !ok || err1 != nil || err2 != nil || end < start {
			return 0, nil, false, fmt.Errorf("/proc/iomem: bad range in %q", line)
		}
		if end != 0 {
			visible = true
		}
		r := Region{start, end}
		topLevel := !strings.HasPrefix(line, " ")
		switch strings.TrimSpace(name) {
		case "System RAM":
			if topLevel {
				ram += r.size()
			}
		case "Crash kernel":
			crash = append(crash, r)
		}
	}
	return ram, crash, visible, nil
}

func memTotal(s string) (uint64, error) {
	for line := range strings.SplitSeq(s, "\n") {
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/meminfo: bad MemTotal %q", strings.TrimSpace(v))
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("/proc/meminfo has no MemTotal line")
}

// testAdvice closes every kdump finding: a configuration that was never
// tested is the seed's lesson.
const testAdvice = "then, in a maintenance window, test it: echo c > /proc/sysrq-trigger, and check that a dump appears in the dump directory"

// Kdump readiness reasons: the fixed set the daemon's ktracer_kdump_ready
// carries in its reason label, in the order KdumpVerdict checks them.
const (
	KdumpReady             = "ready"              // a panic would leave a dump
	KdumpUnsupported       = "kernel-unsupported" // no kexec crash support in this kernel
	KdumpNotReserved       = "not-reserved"       // no crashkernel= at all
	KdumpReservationFailed = "reservation-failed" // crashkernel= given, nothing reserved
	KdumpUndersized        = "undersized"         // reserved less than the estimate
	KdumpNotLoaded         = "not-loaded"         // reserved, but no crash kernel loaded
)

// KdumpReasons lists every reason KdumpVerdict can give.
var KdumpReasons = []string{KdumpReady, KdumpUnsupported, KdumpNotReserved, KdumpReservationFailed, KdumpUndersized, KdumpNotLoaded}

// kdumpProblems is the one judgment of whether a panic would leave a
// dump: ktracer check's findings and the daemon's ktracer_kdump_ready both
// come from it. Empty means ready.
func kdumpProblems(k KdumpFacts) []string {
	switch {
	case !k.Supported:
		return []string{KdumpUnsupported}
	case k.ReservedBytes == 0 && len(k.Cmdline) == 0:
		return []string{KdumpNotReserved}
	case k.ReservedBytes == 0:
		return []string{KdumpReservationFailed}
	}
	var p []string
	if k.ReservedBytes < k.Estimate {
		p = append(p, KdumpUndersized)
	}
	if !k.Loaded {
		p = append(p, KdumpNotLoaded)
	}
	return p
}

// KdumpVerdict says whether a panic would leave a dump and, if not, the
// first reason (one of KdumpReasons); ready exactly when ktracer check
// reports no kdump finding.
func KdumpVerdict(k KdumpFacts) (ready bool, reason string) {
	if p := kdumpProblems(k); len(p) > 0 {
		return false, p[0]
	}
	return true, KdumpReady
}

// kdumpFindings applies the kdump rules.
func kdumpFindings(k KdumpFacts) []Finding {
	rec := "crashkernel=" + sizeArg(k.Recommended)
	setIt := fmt.Sprintf("put %s on the kernel command line (Debian/Ubuntu: in GRUB_CMDLINE_LINUX_DEFAULT, e.g. /etc/default/grub.d/kdump-tools.cfg, then update-grub; RHEL/Fedora: grubby --update-kernel=ALL --args=%s) and reboot", rec, rec)
	withValue := func(fs []Finding) []Finding {
		for i := range fs {
			fs[i].Crashkernel = sizeArg(k.Recommended)
		}
		return fs
	}
	var out []Finding
	for _, problem := range kdumpProblems(k) {
		switch problem {
		case KdumpUnsupported:
			return withValue([]Finding{newFinding(RuleKdumpNotConfigured,
				"this kernel cannot run kdump: /sys/kernel/kexec_crash_loaded is missing (CONFIG_KEXEC_CORE/CONFIG_CRASH_DUMP off), so a panic leaves no dump; boot a kernel built with them, "+setIt+", "+testAdvice)})
		case KdumpNotReserved:
			return withValue([]Finding{newFinding(RuleKdumpNotConfigured, fmt.Sprintf(
				"no memory is reserved for a crash kernel (no crashkernel= on the command line), so a panic leaves no dump; install kdump-tools (Debian) or kdump-utils (RHEL) so a crash kernel is loaded at boot, for %s of RAM %s, %s",
				human(k.RAMBytes), setIt, testAdvice))})
		case KdumpReservationFailed:
			return withValue([]Finding{newFinding(RuleKdumpNotConfigured, fmt.Sprintf(
				"crashkernel=%s is on the command line but the kernel reserved nothing (dmesg | grep -i crashkernel says why: a range form like 384M-:128M matches no range for %s of RAM, or no free memory at the requested place); %s, %s",
				strings.Join(k.Cmdline, " crashkernel="), human(k.RAMBytes), setIt, testAdvice))})
		case KdumpUndersized:
			f := newFinding(RuleKdumpUndersized, fmt.Sprintf(
				"%s reserved for the crash kernel covers a machine of at most %s by the estimate, but this one has %s of RAM: the crash kernel needs about %s (64 MiB kernel and initramfs + 1 byte per 4 KiB page for makedumpfile's bitmaps + 32 MiB buffers) and will run out of memory before the dump is saved; %s, %s",
				human(k.ReservedBytes), human(k.CoversRAM), human(k.RAMBytes), human(k.Estimate), setIt, testAdvice))
			f.Value = int64(k.ReservedBytes)
			out = append(out, withValue([]Finding{f})...)
		case KdumpNotLoaded:
			f := newFinding(RuleKdumpNotLoaded, fmt.Sprintf(
				"%s is reserved for a crash kernel but none is loaded (/sys/kernel/kexec_crash_loaded is 0), so a panic reboots without a dump: load one at every boot (Debian: apt install kdump-tools, USE_KDUMP=1 in /etc/default/kdump-tools, systemctl enable --now kdump-tools, check with kdump-config show; RHEL: systemctl enable --now kdump, check with kdumpctl status), %s",
				human(k.ReservedBytes), testAdvice))
			f.Value = int64(k.ReservedBytes)
			out = append(out, f)
		}
	}
	return out
}

// sizeArg writes bytes the way crashkernel= takes them: 512M, 1G.
func sizeArg(b uint64) string {
	if b >= 1<<30 && b%(1<<30) == 0 {
		return strconv.FormatUint(b>>30, 10) + "G"
	}
	return strconv.FormatUint((b+(1<<20)-1)>>20, 10) + "M"
}

// human writes a size for people: 128 MiB, 256 GiB, 1.5 GiB.
func human(b uint64) string {
	switch {
	case b >= 1<<30:
		return strings.TrimSuffix(fmt.Sprintf("%.1f", float64(b)/(1<<30)), ".0") + " GiB"
	case b >= 1<<20:
		return strings.TrimSuffix(fmt.Sprintf("%.1f", float64(b)/(1<<20)), ".0") + " MiB"
	}
	return fmt.Sprintf("%d KiB", b>>10)
}
