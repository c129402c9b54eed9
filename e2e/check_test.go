//go:build e2e

package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// checkLine is one object of `ktracer check --output json`.
type checkLine struct {
	Event       string `json:"event"`
	Rule        string `json:"rule"`
	Severity    string `json:"severity"`
	Value       *int64 `json:"value"`
	Crashkernel string `json:"crashkernel"`
	Panic       string `json:"panic"`
	Message     string `json:"message"`
	// kdump facts
	Supported     *bool  `json:"supported"`
	ReservedBytes uint64 `json:"reserved_bytes"`
	Loaded        bool   `json:"loaded"`
	RAMBytes      uint64 `json:"ram_bytes"`
	// boot facts
	Pstore struct {
		Mounted bool   `json:"mounted"`
		Backend string `json:"backend"`
	} `json:"pstore"`
	Records []struct {
		Path    string `json:"path"`
		Backend string `json:"backend"`
		Reason  string `json:"reason"`
		Panic   string `json:"panic"`
	} `json:"pstore_records"`
	Dumps []struct {
		Dir      string `json:"dir"`
		Complete bool   `json:"complete"`
	} `json:"dumps"`
	Findings map[string]int `json:"findings"`
}

func checkLines(t *testing.T, r *run) (facts map[string]checkLine, findings []checkLine) {
	t.Helper()
	facts = map[string]checkLine{}
	for _, raw := range r.raw {
		if !strings.HasPrefix(raw, "{") {
			continue
		}
		var l checkLine
		if err := json.Unmarshal([]byte(raw), &l); err != nil {
			t.Fatalf("bad JSON line %q: %v", raw, err)
		}
		if l.Event == "finding" {
			findings = append(findings, l)
		} else {
			facts[l.Event] = l
		}
	}
	for _, e := range []string{"kdump", "boot", "summary"} {
		if _, ok := facts[e]; !ok {
			t.Fatalf("no %s line:\n%s", e, strings.Join(r.raw, "\n"))
		}
	}
	return facts, findings
}

// wantRules asserts exactly these findings, in order.
func wantRules(t *testing.T, r *run, findings []checkLine, rules ...string) {
	t.Helper()
	var got []string
	for _, f := range findings {
		got = append(got, f.Rule)
	}
	if strings.Join(got, ",") != strings.Join(rules, ",") {
		t.Fatalf("findings = %v, want %v:\n%s", got, rules, strings.Join(r.raw, "\n"))
	}
}

// checkStep runs `ktracer check ARGS` in the guest as one step.
func checkStep(step, args string) string {
	return fmt.Sprintf(`ktracer check %[2]s >/tmp/%[1]s.out 2>/tmp/%[1]s.err
echo "KT-OUT:%[1]s:exit:$?"
sed 's/^/KT-OUT:%[1]s:/' /tmp/%[1]s.out
sed 's/^/KT-OUT:%[1]s-stderr:/' /tmp/%[1]s.err
`, step, args)
}

// ramoops in 1 MiB of RAM that the kernel leaves alone (memmap=1M$ADDR
// marks it reserved). The address is below QEMU's -initrd, which QEMU
// reloads near the top of RAM on every reset.
const (
	ramoopsAddr   = "0x30000000"
	ramoopsParams = "mem_address=" + ramoopsAddr + " mem_size=0x100000 record_size=0x20000 ecc=1"
)

// Seed incident 3 on a real kernel: the guest panics with ramoops loaded and
// no crash kernel; QEMU resets it with RAM kept, and on the second boot
// `ktracer check` finds the panic in pstore and no dump. The second boot
// panics again from an oops, and the third finds that newest panic.
func TestCheckPanicWithoutVmcore(t *testing.T) {
	var s strings.Builder
	s.WriteString("set -u\nmount -t pstore pstore /sys/fs/pstore\n")
	s.WriteString("/payload/bin/modprobe ramoops " + ramoopsParams + " || echo KT-OUT:ramoops:exit:1\n")
	// Boots are told apart by the records ramoops kept: none on the first,
	// the panic's on the second, an oops record and a panic record on the
	// third (ramoops writes from its first record again on every boot, so
	// they replace the first panic's).
	s.WriteString("n=$(ls /sys/fs/pstore | grep -c '^dmesg-')\n")
	s.WriteString("if [ \"$n\" -ge 2 ]; then\n")
	s.WriteString(checkStep("after-oops-panic", "--output json"))
	s.WriteString("for f in /sys/fs/pstore/dmesg-*; do base64 $f | sed \"s|^|KT-OUT:oops-panic-$(basename $f):|\"; done\n")
	s.WriteString("exit 0\nfi\n")
	s.WriteString("if [ \"$n\" -eq 1 ]; then\n")
	s.WriteString(checkStep("after-panic", "--output json"))
	s.WriteString(checkStep("after-panic-text", ""))
	s.WriteString("for f in /sys/fs/pstore/dmesg-*; do base64 $f | sed \"s|^|KT-OUT:pstore-$(basename $f):|\"; done\n")
	// The crash kernel of a dump would have written these before this boot;
	// now is within minutes of it, which the check allows for clocks. A
	// dump counts only with a dump header (makedumpfile's "KDUMP   ").
	s.WriteString("mkdir -p /var/crash/202611260418 && echo 'KDUMP   x' > /var/crash/202611260418/dump-incomplete\n")
	s.WriteString(checkStep("incomplete-dump", "--output json"))
	s.WriteString("mv /var/crash/202611260418/dump-incomplete /var/crash/202611260418/dump.202611260418\n")
	s.WriteString(checkStep("with-dump", "--output json"))
	// Second panic, from an oops: kt_timebomb calls its freed __init
	// helper (seed incident 2), and panic_on_oops turns the oops into a
	// panic whose record names the BUG line as the cause.
	s.WriteString("echo 1 > /proc/sys/kernel/panic_on_oops\n")
	s.WriteString("sh -c '/payload/bin/insmod /payload/modules/kt_timebomb.ko && sleep 1 && echo 1 > /sys/module/kt_timebomb/parameters/trigger'\n")
	s.WriteString("echo KT-OUT:oops-did-not-panic:exit:1\nexit 1\nfi\n")
	// First boot: the control, then the panic. panic=-1 resets at once.
	s.WriteString(checkStep("before-panic", "--output json"))
	s.WriteString(checkStep("before-panic-fail-on-warning", "--output json --fail-on warning"))
	s.WriteString("echo c > /proc/sysrq-trigger\n")
	g := boot(t, s.String(), nil, "--reboot", "--kmod", "ramoops", "--append", "memmap=1M$"+ramoopsAddr, "--timeout", "300")

	// First boot, no crash kernel: kdump-not-configured, a warning, and
	// nothing in pstore yet.
	r := g.run(t, "before-panic")
	facts, findings := checkLines(t, r)
	wantRules(t, r, findings, "kdump-not-configured")
	if f := findings[0]; f.Severity != "warning" || f.Crashkernel != "256M" || !strings.Contains(f.Message, "crashkernel=256M") || !strings.Contains(f.Message, "echo c > /proc/sysrq-trigger") {
		t.Errorf("kdump-not-configured = %s %q: want a warning recommending crashkernel=256M and a sysrq test\n%s", f.Severity, f.Crashkernel, f.Message)
	}
	if b := facts["boot"]; !b.Pstore.Mounted || b.Pstore.Backend != "ramoops" || len(b.Records) != 0 {
		t.Errorf("first boot pstore = %+v, %d records; want mounted, ramoops, none", b.Pstore, len(b.Records))
	}
	if r.exit != 0 {
		t.Errorf("check exit = %d, want 0 (a warning is below --fail-on error)", r.exit)
	}
	if r := g.run(t, "before-panic-fail-on-warning"); r.exit != 1 {
		t.Errorf("check --fail-on warning exit = %d, want 1", r.exit)
	}

	// Second boot: the panic was kept by ramoops.
	r = g.run(t, "after-panic")
	facts, findings = checkLines(t, r)
	wantRules(t, r, findings, "kdump-not-configured", "panic-without-vmcore")
	f := findings[1]
	const panicMsg = "Kernel panic - not syncing: sysrq triggered crash"
	if f.Severity != "error" || f.Panic != panicMsg || !strings.Contains(f.Message, `"`+panicMsg+`"`) || !strings.Contains(f.Message, "/sys/fs/pstore/dmesg-ramoops-0") {
		t.Errorf("panic-without-vmcore = %s panic %q: want error quoting %q from /sys/fs/pstore/dmesg-ramoops-0\n%s", f.Severity, f.Panic, panicMsg, f.Message)
	}
	if rec := facts["boot"].Records; len(rec) != 1 || rec[0].Reason != "Panic" || rec[0].Backend != "ramoops" || rec[0].Panic != panicMsg {
		t.Errorf("pstore records = %+v, want one ramoops Panic record", rec)
	}
	if r.exit != 1 {
		t.Errorf("check exit = %d, want 1 (an error finding)", r.exit)
	}
	t.Logf("panic-without-vmcore: %s", f.Message)
	txt := g.run(t, "after-panic-text")
	if !strings.Contains(strings.Join(txt.raw, "\n"), "ERROR panic-without-vmcore: ") || txt.exit != 1 {
		t.Errorf("text output (exit %d) has no ERROR panic-without-vmcore line:\n%s", txt.exit, strings.Join(txt.raw, "\n"))
	}
	t.Logf("ktracer check, text:\n%s", strings.Join(txt.raw, "\n"))

	// An incomplete dump is still no dump, and says so.
	r = g.run(t, "incomplete-dump")
	_, findings = checkLines(t, r)
	wantRules(t, r, findings, "kdump-not-configured", "panic-without-vmcore")
	if !strings.Contains(findings[1].Message, "/var/crash/202611260418/dump-incomplete") {
		t.Errorf("panic-without-vmcore does not name the incomplete dump: %s", findings[1].Message)
	}
	// The control: with the dump saved, the panic is accounted for.
	r = g.run(t, "with-dump")
	facts, findings = checkLines(t, r)
	wantRules(t, r, findings, "kdump-not-configured")
	if d := facts["boot"].Dumps; len(d) != 1 || !d[0].Complete || d[0].Dir != "/var/crash/202611260418" {
		t.Errorf("dumps = %+v, want one complete in /var/crash/202611260418", d)
	}
	saveCheckFixture(t, g, "pstore-dmesg-ramoops-0", "pstore/dmesg-ramoops-0")

	// Third boot: the newest panic is the oops's, and its cause is quoted.
	r = g.run(t, "after-oops-panic")
	facts, findings = checkLines(t, r)
	wantRules(t, r, findings, "kdump-not-configured", "panic-without-vmcore")
	f = findings[1]
	if f.Panic != "Kernel panic - not syncing: Fatal exception" || !strings.Contains(f.Message, `after "BUG: unable to handle page fault for address: `) {
		t.Errorf("panic-without-vmcore after the oops: panic %q\n%s", f.Panic, f.Message)
	}
	var reasons []string
	for _, rec := range facts["boot"].Records {
		reasons = append(reasons, rec.Reason)
	}
	if strings.Join(reasons, ",") != "Oops,Panic" {
		t.Errorf("pstore record reasons = %v, want Oops,Panic (oldest first)", reasons)
	}
	t.Logf("after the oops: %s", f.Message)
	for _, n := range []string{"dmesg-ramoops-0", "dmesg-ramoops-1"} {
		saveCheckFixture(t, g, "oops-panic-"+n, "pstore/oops-panic/"+n)
	}
}

// A reservation with no crash kernel loaded, on a real kernel. 64M on a
// 1 GiB guest is also below the estimate (96.25 MiB).
func TestCheckKdumpNotLoaded(t *testing.T) {
	var s strings.Builder
	s.WriteString("set -u\n")
	s.WriteString(checkStep("crashkernel-64M", "--output json"))
	for _, f := range []string{"/proc/meminfo", "/proc/iomem", "/proc/cmdline", "/proc/stat", "/proc/sys/kernel/random/boot_id", "/sys/kernel/kexec_crash_size", "/sys/kernel/kexec_crash_loaded"} {
		fmt.Fprintf(&s, "base64 %s | sed 's|^|KT-OUT:cap-%s:|'\n", f, filepath.Base(f))
	}
	g := boot(t, s.String(), nil, "--append", "crashkernel=64M", "--timeout", "200")
	r := g.run(t, "crashkernel-64M")
	facts, findings := checkLines(t, r)
	wantRules(t, r, findings, "kdump-undersized", "kdump-not-loaded")
	k := facts["kdump"]
	if k.ReservedBytes != 64<<20 || k.Loaded || k.Supported == nil || !*k.Supported {
		t.Errorf("kdump facts: reserved %d loaded %v supported %v, want 64 MiB, not loaded, supported", k.ReservedBytes, k.Loaded, k.Supported)
	}
	for _, f := range findings {
		if f.Severity != "error" || f.Value == nil || *f.Value != 64<<20 {
			t.Errorf("%s: severity %s value %v, want error, 64 MiB", f.Rule, f.Severity, f.Value)
		}
	}
	if f := findings[0]; f.Crashkernel != "256M" || !strings.Contains(f.Message, "crashkernel=256M") {
		t.Errorf("kdump-undersized recommends %q, want 256M: %s", f.Crashkernel, f.Message)
	}
	if !strings.Contains(findings[1].Message, "kexec_crash_loaded is 0") || !strings.Contains(findings[1].Message, "echo c > /proc/sysrq-trigger") {
		t.Errorf("kdump-not-loaded message: %s", findings[1].Message)
	}
	if r.exit != 1 {
		t.Errorf("check exit = %d, want 1", r.exit)
	}
	for _, name := range []string{"meminfo", "iomem", "cmdline", "stat", "boot_id", "kexec_crash_size", "kexec_crash_loaded"} {
		saveCheckFixture(t, g, "cap-"+name, "vm-crashkernel-64M/"+name)
	}
}

// saveCheckFixture writes a base64 file the guest printed into
// ../check/testdata when KT_UPDATE_FIXTURES is set. After an update,
// regenerate the sized trees: cd check/testdata && sh mksized.sh.
func saveCheckFixture(t *testing.T, g *guest, step, name string) {
	if os.Getenv("KT_UPDATE_FIXTURES") == "" {
		return
	}
	r := g.runs[step]
	if r == nil {
		t.Fatalf("the guest printed no %s", step)
	}
	data, err := base64.StdEncoding.DecodeString(strings.Join(r.raw, ""))
	if err != nil {
		t.Fatalf("decode %s: %v", step, err)
	}
	p := filepath.Join("..", "check", "testdata", name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote check/testdata/%s (%d bytes)", name, len(data))
}
