package check

import (
	"os"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// The records ramoops kept when kt_timebomb (e2e/modules) called its freed
// __init helper on Debian sid's 7.2.13 kernel: "Oops: int3" at an address
// the kernel could not name, then "Fatal exception in interrupt". Captured
// in the VM by e2e (TestKernelMatrix's sid leg); the module is the one
// that ran there, debug info stripped.
const (
	sidKver   = "7.2.13+deb14-cloud-amd64"
	int3Panic = "Kernel panic - not syncing: Fatal exception in interrupt"
)

func int3Record(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile("testdata/pstore/int3-sid/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestPstoreInt3Trap(t *testing.T) {
	when := time.Date(2026, 12, 2, 3, 51, 54, 0, time.UTC)
	r := parsePstore("/sys/fs/pstore/dmesg-ramoops-1", "dmesg-ramoops-1", when, int3Record(t, "dmesg-ramoops-1"))
	if r.Panic != int3Panic || r.Cause != "Oops: int3: 0000 [#1] SMP NOPTI" {
		t.Fatalf("panic %q cause %q", r.Panic, r.Cause)
	}
	want := Int3Trap{RIP: "0xffffffffc0407011", Address: 0xffffffffc0407011, Int3Fill: true,
		Caller: "kt_trigger_set.cold+0x33/0x55 [kt_timebomb]", CallerModule: "kt_timebomb", Kernel: sidKver}
	if r.Int3 == nil || *r.Int3 != want {
		t.Fatalf("int3 trap = %+v\nwant        %+v", r.Int3, want)
	}
	// The oops record (no panic in it) and 6.1's sysrq panic have none.
	if o := parsePstore("/p", "dmesg-ramoops-0", when, int3Record(t, "dmesg-ramoops-0")); o.Int3 != nil {
		t.Errorf("oops record: int3 trap %+v kept without a panic", o.Int3)
	}
	if s := parsePstore("/p", "dmesg-ramoops-0", when, realRamoops(t)); s.Int3 != nil {
		t.Errorf("sysrq panic: int3 trap %+v", s.Int3)
	}
}

// int3Root is a machine after the reboot: the records in pstore, and the
// module's file in modules.dep when withModule.
func int3Root(t *testing.T, record []byte, withModule bool) fstest.MapFS {
	fsys := fstest.MapFS{
		"proc/sys/kernel/random/boot_id":  {Data: []byte("35af2458-4526-461c-b4ed-08756ed04a76\n")},
		"proc/sys/kernel/osrelease":       {Data: []byte(sidKver + "\n")},
		"proc/stat":                       {Data: []byte("cpu 1 2 3\nbtime 1796183518\n")}, // 2026-12-02T03:51:58Z
		"sys/fs/pstore/dmesg-ramoops-0":   {Data: int3Record(t, "dmesg-ramoops-0"), ModTime: time.Date(2026, 12, 2, 3, 51, 54, 122133000, time.UTC)},
		"sys/fs/pstore/dmesg-ramoops-1":   {Data: record, ModTime: time.Date(2026, 12, 2, 3, 51, 54, 163859000, time.UTC)},
		"lib/modules/" + sidKver + "/.ok": {Data: nil},
	}
	if withModule {
		fsys["lib/modules/"+sidKver+"/modules.dep"] = &fstest.MapFile{Data: []byte("kernel/fs/xfs/xfs.ko.xz:\nextra/kt_timebomb.ko:\n")}
		fsys["lib/modules/"+sidKver+"/extra/kt_timebomb.ko"] = &fstest.MapFile{Data: int3Record(t, "kt_timebomb.ko")}
	}
	return fsys
}

func freedInitFindings(t *testing.T, fsys fstest.MapFS) []Finding {
	t.Helper()
	o := DefaultOptions()
	o.Now = time.Date(2026, 12, 2, 3, 53, 0, 0, time.UTC)
	r, err := Run(fsys, o)
	if err != nil {
		t.Fatal(err)
	}
	var out []Finding
	panics := 0
	for _, f := range r.Findings {
		switch f.Rule {
		case RuleFreedInitCall:
			out = append(out, f)
		case RulePanicWithoutVmcore:
			panics++
		}
	}
	if panics != 1 {
		t.Errorf("want the panic-without-vmcore finding too, got %+v", r.Findings)
	}
	return out
}

func TestFreedInitCallFromRealInt3Panic(t *testing.T) {
	t.Run("module file found", func(t *testing.T) {
		fs := freedInitFindings(t, int3Root(t, int3Record(t, "dmesg-ramoops-1"), true))
		if len(fs) != 1 {
			t.Fatalf("want one freed-init-call, got %+v", fs)
		}
		f := fs[0]
		if f.Severity.String() != "error" || f.Module != "kt_timebomb" || f.Panic != int3Panic {
			t.Errorf("finding = %+v", f)
		}
		for _, want := range []string{"0xffffffffc0407011", "kt_trigger_set.cold+0x33/0x55 [kt_timebomb]",
			"/lib/modules/" + sidKver + "/extra/kt_timebomb.ko keeps the address of __init kt_init_helper (stored in global_ops by kt_timebomb_init+0x15)",
			"/sys/fs/pstore/dmesg-ramoops-1"} {
			if !strings.Contains(f.Message, want) {
				t.Errorf("message lacks %q:\n%s", want, f.Message)
			}
		}
		// The record alone cannot name the function (the kernel had
		// dropped the symbols of the freed init text); the module's file
		// keeps one __init address, the function named.
		if f.Function != "kt_init_helper" {
			t.Errorf("function %q, want kt_init_helper from the module's file", f.Function)
		}
	})
	t.Run("module file missing", func(t *testing.T) {
		fs := freedInitFindings(t, int3Root(t, int3Record(t, "dmesg-ramoops-1"), false))
		if len(fs) != 1 || fs[0].Module != "kt_timebomb" || fs[0].Function != "" || !strings.Contains(fs[0].Message, "the module's file could not be read") {
			t.Fatalf("want one freed-init-call saying the file is missing, got %+v", fs)
		}
	})
}

// The same kernel names the address when ktracer watched the module's load
// (TestKernelMatrix's sid leg, whose second boot saved these records):
// "RIP: 0010:kt_init_helper+0x1/0x30 [kt_timebomb]", after a page-fault
// oops of kt_oops and a WARN in the same record.
func TestFreedInitCallNamedRIP(t *testing.T) {
	data, err := os.ReadFile("testdata/pstore/int3-sid-named/dmesg-ramoops-2")
	if err != nil {
		t.Fatal(err)
	}
	r := parsePstore("/p", "dmesg-ramoops-2", time.Now(), data)
	want := Int3Trap{RIP: "kt_init_helper+0x1/0x30 [kt_timebomb]", Function: "kt_init_helper", Offset: 1, Module: "kt_timebomb", Int3Fill: true,
		Caller: "kt_trigger_set.cold+0x33/0x55 [kt_timebomb]", CallerModule: "kt_timebomb", Kernel: sidKver}
	if r.Panic != int3Panic || r.Int3 == nil || *r.Int3 != want {
		t.Fatalf("panic %q int3 trap = %+v\nwant %+v", r.Panic, r.Int3, want)
	}
	named := string(data)
	for _, c := range []struct {
		name, rip  string
		withModule bool
		want       string // "" for no finding
	}{
		{"init function confirmed", "kt_init_helper+0x1/0x30", true, "kt_init_helper is an __init function, in .init.text (confirmed from /lib/modules/" + sidKver + "/extra/kt_timebomb.ko)"},
		{"not confirmed", "kt_init_helper+0x1/0x30", false, "not confirmed that kt_init_helper is an __init function"},
		// Edited copies: the file says kt_trigger_set is no __init function.
		{"not init", "kt_trigger_set+0x1/0x30", true, ""},
		// Not the first byte: an int3 inside a live function is something else.
		{"not first byte", "kt_init_helper+0x5/0x30", false, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := strings.ReplaceAll(named, "kt_init_helper+0x1/0x30", c.rip)
			fs := freedInitFindings(t, int3Root(t, []byte(rec), c.withModule))
			if c.want == "" {
				if len(fs) != 0 {
					t.Fatalf("want no freed-init-call, got %+v", fs)
				}
				return
			}
			if len(fs) != 1 || fs[0].Function != "kt_init_helper" || fs[0].Module != "kt_timebomb" || !strings.Contains(fs[0].Message, c.want) {
				t.Fatalf("want freed-init-call kt_timebomb kt_init_helper saying %q, got %+v", c.want, fs)
			}
		})
	}
}
