package check

import (
	"io/fs"
	"os"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/ktracer/ktracer/decoder"
)

func TestEstimate(t *testing.T) {
	for _, tc := range []struct {
		ram         uint64
		estimate    uint64
		recommended string
	}{
		{1 << 30, 96<<20 + 256<<10, "256M"},
		{16 << 30, 100 << 20, "256M"},  // RHEL 9's table: 4G-64G:256M
		{256 << 30, 160 << 20, "512M"}, // RHEL 9: 64G-:512M; the seed: 512M
		{1 << 40, 352 << 20, "1G"},
	} {
		if got := CrashEstimate(tc.ram); got != tc.estimate {
			t.Errorf("CrashEstimate(%s) = %d, want %d", human(tc.ram), got, tc.estimate)
		}
		if got := sizeArg(RecommendedCrashkernel(tc.ram)); got != tc.recommended {
			t.Errorf("RecommendedCrashkernel(%s) = %s, want %s", human(tc.ram), got, tc.recommended)
		}
	}
	// The seed's reservation was sized for a machine of up to 128 GiB.
	if got := LargestRAMFor(128 << 20); got != 128<<30 {
		t.Errorf("LargestRAMFor(128M) = %s, want 128 GiB", human(got))
	}
	if got := LargestRAMFor(64 << 20); got != 0 {
		t.Errorf("LargestRAMFor(64M) = %s, want 0", human(got))
	}
}

// The seed's machine before its upgrade: 16 GiB with crashkernel=128M and a
// crash kernel loaded. The control: no kdump finding.
func TestKdump16GiBIsEnough(t *testing.T) {
	k, err := readKdump(os.DirFS("testdata/root-16G"))
	if err != nil {
		t.Fatal(err)
	}
	const ram = 0x9ec00 + 0x7fedf000 + 14<<30
	if k.RAMBytes != ram || k.ReservedBytes != 128<<20 || !k.Loaded || !k.Supported {
		t.Fatalf("facts: RAM %d reserved %d loaded %v supported %v, want %d, 128 MiB, loaded, supported", k.RAMBytes, k.ReservedBytes, k.Loaded, k.Supported, ram)
	}
	if len(k.CrashRegion) != 1 || k.CrashRegion[0] != (Region{0x77000000, 0x7effffff}) {
		t.Errorf("crash regions = %+v", k.CrashRegion)
	}
	if f := kdumpFindings(k); len(f) != 0 {
		t.Fatalf("16 GiB with 128M: findings %+v, want none", f)
	}
}

// The seed's machine after its upgrade: 256 GiB, still crashkernel=128M.
func TestKdump256GiBUndersized(t *testing.T) {
	k, err := readKdump(os.DirFS("testdata/root-256G"))
	if err != nil {
		t.Fatal(err)
	}
	f := kdumpFindings(k)
	if len(f) != 1 || f[0].Rule != RuleKdumpUndersized {
		t.Fatalf("findings = %+v, want one kdump-undersized", f)
	}
	got := f[0]
	if got.Severity != decoder.SeverityError || got.Value != 128<<20 || got.Crashkernel != "512M" {
		t.Errorf("finding = %s value %d crashkernel %s, want error 128 MiB 512M", got.Severity, got.Value, got.Crashkernel)
	}
	for _, want := range []string{
		"128 MiB reserved for the crash kernel covers a machine of at most 128 GiB",
		"this one has 256 GiB of RAM",
		"needs about 160 MiB",
		"put crashkernel=512M on the kernel command line",
		"echo c > /proc/sysrq-trigger",
	} {
		if !strings.Contains(got.Message, want) {
			t.Errorf("message lacks %q:\n%s", want, got.Message)
		}
	}
}

// Without root, /proc/iomem shows every address as zero: the reservation
// comes from kexec_crash_size and the RAM from MemTotal.
func TestKdumpWithoutRoot(t *testing.T) {
	fsys := dirMap(t, "testdata/root-256G")
	zero := regexp.MustCompile(`[0-9a-f]+-[0-9a-f]+ :`)
	fsys["proc/iomem"].Data = zero.ReplaceAll(fsys["proc/iomem"].Data, []byte("00000000-00000000 :"))
	k, err := readKdump(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if k.ReservedBytes != 128<<20 || k.RAMBytes != 261886264<<10+128<<20 || k.CrashRegion != nil {
		t.Fatalf("reserved %d RAM %d regions %v, want 128 MiB, MemTotal+128 MiB, none", k.ReservedBytes, k.RAMBytes, k.CrashRegion)
	}
	if f := kdumpFindings(k); len(f) != 1 || f[0].Rule != RuleKdumpUndersized || f[0].Crashkernel != "512M" {
		t.Fatalf("findings = %+v, want one kdump-undersized 512M", f)
	}
}

// The real capture from the 6.1 guest booted with crashkernel=64M and no
// crash kernel loaded.
func TestKdumpVMCapture(t *testing.T) {
	k, err := readKdump(vmRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	const ram = 0x9ec00 + 0x3fedf000 // System RAM in the guest's iomem
	if k.RAMBytes != ram || k.ReservedBytes != 64<<20 || k.KexecCrashSize != 64<<20 || k.Loaded {
		t.Fatalf("facts: RAM %d reserved %d kexec_crash_size %d loaded %v", k.RAMBytes, k.ReservedBytes, k.KexecCrashSize, k.Loaded)
	}
	if len(k.Cmdline) != 1 || k.Cmdline[0] != "64M" {
		t.Errorf("cmdline crashkernel = %v, want [64M]", k.Cmdline)
	}
	f := kdumpFindings(k)
	if len(f) != 2 || f[0].Rule != RuleKdumpUndersized || f[1].Rule != RuleKdumpNotLoaded {
		t.Fatalf("findings = %+v, want kdump-undersized, kdump-not-loaded", f)
	}
	if f[1].Crashkernel != "" || !strings.Contains(f[1].Message, "64 MiB is reserved for a crash kernel but none is loaded") {
		t.Errorf("kdump-not-loaded: %+v", f[1])
	}
}

func TestKdumpNotConfigured(t *testing.T) {
	noCrash := func(fsys fstest.MapFS) {
		fsys["proc/cmdline"].Data = []byte("console=ttyS0 panic=-1 quiet\n")
		fsys["sys/kernel/kexec_crash_size"].Data = []byte("0\n")
		fsys["proc/iomem"].Data = regexp.MustCompile(`(?m)^.*Crash kernel\n`).ReplaceAll(fsys["proc/iomem"].Data, nil)
	}
	for _, tc := range []struct {
		name   string
		modify func(fstest.MapFS)
		want   string
	}{
		{"no crashkernel", noCrash, "no memory is reserved for a crash kernel (no crashkernel= on the command line)"},
		{"reservation failed", func(fsys fstest.MapFS) {
			noCrash(fsys)
			fsys["proc/cmdline"].Data = []byte("console=ttyS0 crashkernel=384M-2G:128M\n")
		}, "crashkernel=384M-2G:128M is on the command line but the kernel reserved nothing"},
		{"no kexec", func(fsys fstest.MapFS) {
			delete(fsys, "sys/kernel/kexec_crash_size")
			delete(fsys, "sys/kernel/kexec_crash_loaded")
		}, "this kernel cannot run kdump: /sys/kernel/kexec_crash_loaded is missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := dirMap(t, "testdata/root-256G")
			tc.modify(fsys)
			k, err := readKdump(fsys)
			if err != nil {
				t.Fatal(err)
			}
			f := kdumpFindings(k)
			if len(f) != 1 || f[0].Rule != RuleKdumpNotConfigured || f[0].Severity != decoder.SeverityWarning || f[0].Crashkernel != "512M" {
				t.Fatalf("findings = %+v, want one kdump-not-configured warning recommending 512M", f)
			}
			if !strings.Contains(f[0].Message, tc.want) || !strings.Contains(f[0].Message, "crashkernel=512M") {
				t.Errorf("message lacks %q:\n%s", tc.want, f[0].Message)
			}
		})
	}
}

func TestKdumpBadInput(t *testing.T) {
	for _, tc := range []struct {
		file, data, want string
	}{
		{"proc/iomem", "00000000-00000fff Reserved\n", `/proc/iomem: bad line "00000000-00000fff Reserved"`},
		{"proc/iomem", "zzzz-0fff : Reserved\n", `/proc/iomem: bad range in "zzzz-0fff : Reserved"`},
		{"sys/kernel/kexec_crash_size", "lots\n", `/sys/kernel/kexec_crash_size: not a number: "lots"`},
	} {
		fsys := dirMap(t, "testdata/root-16G")
		fsys[tc.file].Data = []byte(tc.data)
		if _, err := readKdump(fsys); err == nil || err.Error() != tc.want {
			t.Errorf("%s %q: err = %v, want %s", tc.file, tc.data, err, tc.want)
		}
	}
	fsys := dirMap(t, "testdata/root-16G")
	delete(fsys, "proc/cmdline")
	if _, err := readKdump(fsys); err == nil || !strings.HasPrefix(err.Error(), "read /proc/cmdline: ") {
		t.Errorf("missing cmdline: err = %v", err)
	}
}

// dirMap loads a fixture tree into a MapFS that tests can change.
func dirMap(t *testing.T, dir string) fstest.MapFS {
	t.Helper()
	m := fstest.MapFS{}
	root := os.DirFS(dir)
	err := fs.WalkDir(root, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(root, p)
		m[p] = &fstest.MapFile{Data: data, Mode: 0o444}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// vmRoot lays the flat capture from the guest out as a root.
func vmRoot(t *testing.T) fstest.MapFS {
	t.Helper()
	m := fstest.MapFS{}
	for name, p := range map[string]string{
		"meminfo": "proc/meminfo", "iomem": "proc/iomem", "cmdline": "proc/cmdline", "stat": "proc/stat",
		"boot_id":          "proc/sys/kernel/random/boot_id",
		"kexec_crash_size": "sys/kernel/kexec_crash_size", "kexec_crash_loaded": "sys/kernel/kexec_crash_loaded",
	} {
		data, err := os.ReadFile("testdata/vm-crashkernel-64M/" + name)
		if err != nil {
			t.Fatal(err)
		}
		m[p] = &fstest.MapFile{Data: data, Mode: 0o444}
	}
	return m
}

// crashkernel=X,high with its ,low part: two regions, both reserved for the
// crash kernel. kexec_crash_size counts only the high one.
func TestKdumpHighAndLow(t *testing.T) {
	fsys := dirMap(t, "testdata/root-256G")
	fsys["proc/cmdline"].Data = []byte("console=ttyS0 crashkernel=512M,high crashkernel=256M,low\n")
	fsys["sys/kernel/kexec_crash_size"].Data = []byte("536870912\n")
	iomem := strings.Replace(string(fsys["proc/iomem"].Data), "  77000000-7effffff : Crash kernel\n", "  6f000000-7effffff : Crash kernel\n", 1)
	fsys["proc/iomem"].Data = []byte(iomem + "  3fe0000000-3fffffffff : Crash kernel\n")
	k, err := readKdump(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if k.ReservedBytes != 768<<20 || len(k.CrashRegion) != 2 || strings.Join(k.Cmdline, " ") != "512M,high 256M,low" {
		t.Fatalf("reserved %d regions %v cmdline %v, want 768 MiB in two regions", k.ReservedBytes, k.CrashRegion, k.Cmdline)
	}
	if f := kdumpFindings(k); len(f) != 0 {
		t.Fatalf("findings = %+v, want none", f)
	}
}

// One judgment: KdumpVerdict is ready exactly when ktracer check reports no
// kdump finding, and its reason is always one of the fixed set.
func TestKdumpVerdictMatchesFindings(t *testing.T) {
	base := KdumpFacts{Supported: true, Loaded: true, Cmdline: []string{"384M-:128M"}, RAMBytes: 16 << 30, ReservedBytes: 128 << 20}
	cases := map[string]func(*KdumpFacts){
		KdumpReady:             func(*KdumpFacts) {},
		KdumpUnsupported:       func(k *KdumpFacts) { k.Supported = false },
		KdumpNotReserved:       func(k *KdumpFacts) { k.Cmdline, k.ReservedBytes = nil, 0 },
		KdumpReservationFailed: func(k *KdumpFacts) { k.ReservedBytes = 0 },
		KdumpUndersized:        func(k *KdumpFacts) { k.RAMBytes = 256 << 30 },
		KdumpNotLoaded:         func(k *KdumpFacts) { k.Loaded = false },
	}
	for want, mod := range cases {
		k := base
		mod(&k)
		k.Estimate, k.Recommended = CrashEstimate(k.RAMBytes), RecommendedCrashkernel(k.RAMBytes)
		ready, reason := KdumpVerdict(k)
		if reason != want {
			t.Errorf("%s: reason %q", want, reason)
		}
		if found := len(kdumpFindings(k)) > 0; ready == found {
			t.Errorf("%s: ready %v but findings %+v", want, ready, kdumpFindings(k))
		}
	}
	if len(cases) != len(KdumpReasons) {
		t.Errorf("KdumpReasons has %d reasons, the test %d", len(KdumpReasons), len(cases))
	}
}
