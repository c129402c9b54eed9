package check

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/ktracer/ktracer/check/history"
	"github.com/ktracer/ktracer/decoder"
)

// The guest's boot (btime in the captured /proc/stat, its boot id) and the
// time of the previous boot's panic record, one second before.
var (
	bootTime  = captured("stat", func(b []byte) any { t, _ := history.BootTime(b); return t }).(time.Time)
	panicTime = bootTime.Add(-time.Second)
	vmBootID  = captured("boot_id", func(b []byte) any { return strings.TrimSpace(string(b)) }).(string)
)

func captured(name string, parse func([]byte) any) any {
	b, err := os.ReadFile("testdata/vm-crashkernel-64M/" + name)
	if err != nil {
		panic(err)
	}
	return parse(b)
}

// vmAfterPanic is the guest's second boot: the captured /proc and /sys
// files, pstore mounted with the panic record, a crash kernel reserved and
// loaded, so that only boot-history findings remain.
func vmAfterPanic(t *testing.T) fstest.MapFS {
	fsys := dirMap(t, "testdata/root-16G")
	fsys["sys/fs/pstore/dmesg-ramoops-0"] = &fstest.MapFile{Data: realRamoops(t), ModTime: panicTime}
	fsys["proc/mounts"] = &fstest.MapFile{Data: []byte("pstore /sys/fs/pstore pstore rw,relatime 0 0\n")}
	fsys["sys/module/pstore/parameters/backend"] = &fstest.MapFile{Data: []byte("ramoops\n")}
	return fsys
}

func run(t *testing.T, fsys fstest.MapFS, o Options) *Report {
	t.Helper()
	if o.LoopCount == 0 {
		d := DefaultOptions()
		o.LoopCount, o.LoopWindow, o.StateDir = d.LoopCount, d.LoopWindow, d.StateDir
	}
	if o.Now.IsZero() {
		o.Now = bootTime.Add(time.Minute)
	}
	r, err := Run(fsys, o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func rules(r *Report) string {
	var s []string
	for _, f := range r.Findings {
		s = append(s, string(f.Rule))
	}
	return strings.Join(s, ",")
}

func TestPanicWithoutVmcore(t *testing.T) {
	r := run(t, vmAfterPanic(t), Options{})
	if rules(r) != "panic-without-vmcore" {
		t.Fatalf("findings = %s, want panic-without-vmcore", rules(r))
	}
	f := r.Findings[0]
	want := `an earlier boot panicked at ` + panicTime.Format(time.RFC3339) + ` with "Kernel panic - not syncing: sysrq triggered crash" (/sys/fs/pstore/dmesg-ramoops-0), and no dump was saved in /var/crash: kdump looks configured now; check the crash kernel's console log and the dump target; once read, remove the record (rm /sys/fs/pstore/dmesg-ramoops-0) so the next panic has room and this one is not reported again`
	if f.Message != want || f.Panic != sysrqPanic || f.Severity != decoder.SeverityError {
		t.Fatalf("finding = %s %q\n%s\nwant\n%s", f.Severity, f.Panic, f.Message, want)
	}
	if r.Boot.BootID != vmBootID || !r.Boot.BootTime.Equal(bootTime) || !r.Boot.Pstore.Mounted || r.Boot.Pstore.Backend != "ramoops" {
		t.Errorf("boot facts = %+v", r.Boot)
	}
}

func TestPanicDumpMatching(t *testing.T) {
	for _, tc := range []struct {
		name    string
		files   map[string]time.Time
		rules   string
		mention string
	}{
		{"dump saved between the panic and this boot", map[string]time.Time{"var/crash/202611260418/dump.202611260418": panicTime.Add(30 * time.Second)}, "", ""},
		{"dump within the clock slack", map[string]time.Time{"var/crash/x/vmcore": panicTime.Add(-4 * time.Minute)}, "", ""},
		{"only an older dump", map[string]time.Time{"var/crash/202611250000/dump.202611250000": panicTime.Add(-24 * time.Hour)}, "panic-without-vmcore", "no dump was saved in /var/crash: kdump looks"},
		{"only an incomplete dump", map[string]time.Time{"var/crash/202611260418/dump-incomplete": panicTime.Add(time.Second)}, "panic-without-vmcore", "only an incomplete one, /var/crash/202611260418/dump-incomplete"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := vmAfterPanic(t)
			for p, mt := range tc.files {
				fsys[p] = &fstest.MapFile{ModTime: mt, Data: []byte("KDUMP   \x06\x00")}
			}
			r := run(t, fsys, Options{})
			if rules(r) != tc.rules {
				t.Fatalf("findings = %q, want %q", rules(r), tc.rules)
			}
			if tc.mention != "" && !strings.Contains(r.Findings[0].Message, tc.mention) {
				t.Errorf("message lacks %q:\n%s", tc.mention, r.Findings[0].Message)
			}
		})
	}
}

// Which pstore records are an earlier boot's panic.
func TestWhichPanicCounts(t *testing.T) {
	t.Run("a record newer than this boot is this boot's own", func(t *testing.T) {
		fsys := vmAfterPanic(t)
		fsys["sys/fs/pstore/dmesg-ramoops-0"].ModTime = bootTime.Add(10 * time.Minute)
		if r := run(t, fsys, Options{Now: bootTime.Add(11 * time.Minute)}); rules(r) != "" {
			t.Fatalf("findings = %s, want none", rules(r))
		}
	})
	t.Run("a record older than the previous recorded boot is old news", func(t *testing.T) {
		fsys := vmAfterPanic(t)
		fsys["var/lib/ktracer/boots.json"] = stateFile(t, history.Boot{ID: "prev", Start: panicTime.Add(time.Hour * -1), Clean: true})
		fsys["sys/fs/pstore/dmesg-ramoops-0"].ModTime = panicTime.Add(-2 * time.Hour)
		if r := run(t, fsys, Options{}); rules(r) != "" {
			t.Fatalf("findings = %s, want none", rules(r))
		}
	})
	t.Run("the newest of several panics", func(t *testing.T) {
		fsys := vmAfterPanic(t)
		old := strings.Replace(string(realRamoops(t)), "sysrq triggered crash", "Fatal exception", 1)
		fsys["sys/fs/pstore/dmesg-ramoops-1"] = &fstest.MapFile{Data: []byte(old), ModTime: panicTime.Add(-time.Hour)}
		r := run(t, fsys, Options{})
		if rules(r) != "panic-without-vmcore" || r.Findings[0].Panic != sysrqPanic || len(r.Boot.Records) != 2 {
			t.Fatalf("findings = %s %q, records %d", rules(r), r.Findings[0].Panic, len(r.Boot.Records))
		}
	})
	t.Run("systemd-pstore archived it during this boot", func(t *testing.T) {
		fsys := vmAfterPanic(t)
		delete(fsys, "sys/fs/pstore/dmesg-ramoops-0")
		fsys["var/lib/systemd/pstore/dmesg-ramoops-0"] = &fstest.MapFile{Data: realRamoops(t), ModTime: bootTime.Add(3 * time.Second)}
		r := run(t, fsys, Options{})
		if rules(r) != "panic-without-vmcore" || !strings.Contains(r.Findings[0].Message, "panicked (archived by systemd-pstore at "+bootTime.Add(3*time.Second).Format(time.RFC3339)+")") {
			t.Fatalf("findings = %s %+v", rules(r), r.Findings)
		}
	})
	t.Run("systemd-pstore archived it in an earlier boot", func(t *testing.T) {
		fsys := vmAfterPanic(t)
		delete(fsys, "sys/fs/pstore/dmesg-ramoops-0")
		fsys["var/lib/systemd/pstore/dmesg-ramoops-0"] = &fstest.MapFile{Data: realRamoops(t), ModTime: bootTime.Add(-48 * time.Hour)}
		if r := run(t, fsys, Options{}); rules(r) != "" {
			t.Fatalf("findings = %s, want none", rules(r))
		}
	})
}

func stateFile(t *testing.T, boots ...history.Boot) *fstest.MapFile {
	t.Helper()
	for i := range boots {
		if boots[i].Seen.IsZero() {
			boots[i].Seen = boots[i].Start.Add(time.Minute)
		}
	}
	data, err := json.Marshal(history.State{Version: 1, Boots: boots})
	if err != nil {
		t.Fatal(err)
	}
	return &fstest.MapFile{Data: data}
}

func TestPanicLoop(t *testing.T) {
	h := time.Hour
	// Three boots before this one ended unclean, 1 h apart; the oldest
	// ended (the next boot started) 3 h before this boot.
	boots := []history.Boot{
		{ID: "clean", Start: bootTime.Add(-30 * h), Clean: true, End: bootTime.Add(-29 * h)},
		{ID: "u1", Start: bootTime.Add(-4 * h)},
		{ID: "u2", Start: bootTime.Add(-3 * h)},
		{ID: "u3", Start: bootTime.Add(-2 * h)},
		{ID: "u4", Start: bootTime.Add(-1 * h)},
	}
	for _, tc := range []struct {
		name   string
		count  int
		window time.Duration
		now    time.Time
		want   int64 // unclean ends in the window; 0 for no finding
	}{
		{"four in 24h", 3, 24 * h, bootTime, 4},
		{"window starts at u1's end", 3, 3 * h, bootTime, 4},
		{"window starts just after u1's end", 3, 3*h - time.Nanosecond, bootTime, 3},
		{"two in the window, three needed", 3, h + time.Nanosecond, bootTime, 0},
		{"count 2", 2, h, bootTime, 2},
		{"all long ago", 3, 24 * h, bootTime.Add(48 * h), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := dirMap(t, "testdata/root-16G")
			fsys["var/lib/ktracer/boots.json"] = stateFile(t, boots...)
			r := run(t, fsys, Options{LoopCount: tc.count, LoopWindow: tc.window, StateDir: "/var/lib/ktracer", Now: tc.now})
			if len(r.Boot.Unclean) != 4 {
				t.Fatalf("unclean ends = %+v, want u1-u4", r.Boot.Unclean)
			}
			if tc.want == 0 {
				if rules(r) != "" {
					t.Fatalf("findings = %s, want none", rules(r))
				}
				return
			}
			if rules(r) != "panic-loop" || r.Findings[0].Value != tc.want || r.Findings[0].Severity != decoder.SeverityError {
				t.Fatalf("findings = %s %+v, want panic-loop with %d", rules(r), r.Findings, tc.want)
			}
		})
	}
	// The message names the boots.
	fsys := dirMap(t, "testdata/root-16G")
	fsys["var/lib/ktracer/boots.json"] = stateFile(t, boots...)
	r := run(t, fsys, Options{Now: bootTime})
	if want := "4 boots ended without a clean stop within 24h0m0s (at least 3 make a loop): u1 (started " + bootTime.Add(-4*h).Format(time.RFC3339) + "), u2"; !strings.HasPrefix(r.Findings[0].Message, want) {
		t.Errorf("message: %s", r.Findings[0].Message)
	}
}

func TestCorruptStateFileIsAnError(t *testing.T) {
	fsys := dirMap(t, "testdata/root-16G")
	fsys["var/lib/ktracer/boots.json"] = &fstest.MapFile{Data: []byte("{")}
	// An error of its own source (issue 12 item 10): the rest still comes out.
	r, err := Run(fsys, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Errors) != 1 || r.Errors[0].Source != "boot history /var/lib/ktracer/boots.json" || r.Errors[0].Err != "/var/lib/ktracer/boots.json: corrupt state file: unexpected EOF (remove it to start a new history)" {
		t.Fatalf("errors = %+v", r.Errors)
	}
	if r.Kdump.RAMBytes == 0 {
		t.Errorf("no kdump facts beside the corrupt history")
	}
}

func TestJSONOutput(t *testing.T) {
	fsys := vmAfterPanic(t)
	fsys["sys/kernel/kexec_crash_loaded"].Data = []byte("0\n")
	r := run(t, fsys, Options{})
	var buf bytes.Buffer
	if err := Write(&buf, "json", r); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	var events []string
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("bad line %q: %v", l, err)
		}
		ev := m["event"].(string)
		if ev == "finding" {
			ev += ":" + m["rule"].(string)
		}
		events = append(events, ev)
	}
	if got := strings.Join(events, " "); got != "kdump boot finding:kdump-not-loaded finding:panic-without-vmcore summary" {
		t.Fatalf("events = %s\n%s", got, buf.String())
	}
	for _, want := range []string{`"reserved_bytes":134217728`, `"loaded":false`, `"panic":"Kernel panic - not syncing: sysrq triggered crash"`, `"findings":{"error":2,"info":0,"warning":0}`, `"last_panic":{"path":"/sys/fs/pstore/dmesg-ramoops-0"`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("JSON lacks %s:\n%s", want, buf.String())
		}
	}
	buf.Reset()
	if err := Write(&buf, "text", r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"kdump: 128 MiB reserved [0x77000000-0x7effffff], no crash kernel loaded; command line crashkernel=128M; RAM 16 GiB; estimate 100 MiB, recommended crashkernel=256M\n",
		"pstore: backend ramoops; 1 dmesg records\n  /sys/fs/pstore/dmesg-ramoops-0 " + panicTime.Format(time.RFC3339) + " Panic: Kernel panic - not syncing: sysrq triggered crash\n",
		"ERROR kdump-not-loaded: ",
		"ERROR panic-without-vmcore: ",
		"ktracer check: findings: 2 error, 0 warning, 0 info\n",
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, buf.String())
		}
	}
	if err := Write(&buf, "yaml", r); err == nil {
		t.Error("Write(yaml) succeeded")
	}
}
