package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/ktracer/ktracer/decoder"
)

// want is one expected finding, in the order File returns them.
type want struct {
	rule     decoder.Rule
	severity decoder.Severity
	kind     string
	function string
	location string
	section  string
	storedTo string
	callee   string
	modpost  bool
}

func (w want) String() string {
	return fmt.Sprintf("%s %s %s %s at %s (%s) stored=%q callee=%q modpost=%v",
		w.rule, w.severity, w.kind, w.function, w.location, w.section, w.storedTo, w.callee, w.modpost)
}

func got(f Finding) want {
	return want{f.Rule, f.Severity, f.Kind, f.Function, f.Location, f.Section, f.StoredTo, f.Callee, f.Modpost}
}

const (
	E = decoder.SeverityError
	W = decoder.SeverityWarning
)

// TestRecallAndSilence audits the e2e test modules (built against the 6.1
// headers) and real shipped modules. The modpost column is what 6.1's
// modpost printed when building the kt_audit_* modules: it warned about
// kt_audit_static_table and both kt_audit_tail references, nothing else.
func TestRecallAndSilence(t *testing.T) {
	cases := map[string][]want{
		// Static initializers in data that outlives init.
		"kt_audit_static.ko": {
			{RuleInitAddressTaken, E, KindStaticInitializer, "kt_audit_static_helper", "kt_audit_static_const+0x8", ".rodata", "kt_audit_static_const+0x8", "", false},
			{RuleInitAddressTaken, E, KindStaticInitializer, "kt_audit_static_other", "kt_audit_static_ops+0x8", ".data", "kt_audit_static_ops+0x8", "", false},
			{RuleInitAddressTaken, E, KindStaticInitializer, "kt_audit_static_helper", "kt_audit_static_table+0x8", ".data", "kt_audit_static_table+0x8", "", true},
		},
		// A runtime store into a global.
		"kt_audit_store.ko": {
			{RuleInitAddressTaken, E, KindStored, "kt_audit_store_helper", "kt_audit_store_init+0x5", ".init.text", "kt_audit_store_ops+0x8", "", false},
		},
		// Stores into elements of a table in .bss: fixed and run-time index.
		"kt_audit_table.ko": {
			{RuleInitAddressTaken, E, KindStored, "kt_audit_table_helper", "kt_audit_table_init+0x11", ".init.text", "kt_audit_tbl+0x20", "", false},
			{RuleInitAddressTaken, E, KindStored, "kt_audit_table_other", "kt_audit_table_init+0x23", ".init.text", "kt_audit_tbl", "", false},
		},
		// An address passed to another function.
		"kt_audit_pass.ko": {
			{RuleInitAddressTaken, W, KindPassed, "kt_audit_pass_helper", "kt_audit_pass_init+0x5", ".init.text", "", "kt_audit_pass_register", false},
		},
		// A tail jump and a call from code that outlives init (gcc moved
		// both into .text.unlikely: __init functions are __cold).
		"kt_audit_tail.ko": {
			{RuleCallIntoInit, E, KindTailJump, "kt_audit_tail_helper", "kt_audit_tail_dispatch.cold", ".text.unlikely", "", "", true},
			{RuleCallIntoInit, E, KindCall, "kt_audit_tail_helper", "kt_audit_tail_calls+0x8", ".text.unlikely", "", "", true},
		},
		// Seed incident 2's module.
		"kt_timebomb.ko": {
			{RuleInitAddressTaken, E, KindStored, "kt_init_helper", "kt_timebomb_init+0x11", ".init.text", "global_ops", "", false},
		},
		// Controls: __init functions only called directly.
		"kt_audit_ctl.ko": nil,
		"kt_initok.ko":    nil,
		// Shipped: static_cpu_has() in an init function jumps from
		// .altinstr_aux back into it, which is not a reference to report.
		"dm-bufio.ko": nil,
		// Shipped: the setup callback is passed to alloc_netdev_mqs().
		"sch_teql.ko": {
			{RuleInitAddressTaken, W, KindPassed, "teql_master_setup", "teql_init+0x35", ".init.text", "", "alloc_netdev_mqs", false},
		},
		// The same on 6.12: ENDBR64 at each function, __pfx_ padding.
		"sch_teql-6.12.ko.xz": {
			{RuleInitAddressTaken, W, KindPassed, "teql_master_setup", "teql_init+0x39", ".init.text", "", "alloc_netdev_mqs", false},
		},
	}
	files, _ := filepath.Glob("testdata/*.ko*")
	if len(files) != len(cases) {
		t.Errorf("%d files in testdata, %d cases", len(files), len(cases))
	}
	for name, ws := range cases {
		t.Run(name, func(t *testing.T) {
			fs, err := File(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			var gs []string
			for _, f := range fs {
				gs = append(gs, got(f).String())
				if f.File != filepath.Join("testdata", name) || f.Module == "" || f.Message == "" {
					t.Errorf("incomplete finding %+v", f)
				}
			}
			var es []string
			for _, w := range ws {
				es = append(es, w.String())
			}
			if strings.Join(gs, "\n") != strings.Join(es, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(gs, "\n"), strings.Join(es, "\n"))
			}
		})
	}
}

func TestMessages(t *testing.T) {
	fs, err := File("testdata/kt_audit_table.ko")
	if err != nil || len(fs) != 2 {
		t.Fatal(err, fs)
	}
	for i, want := range []string{
		"kt_audit_table_init+0x11 (.init.text) stores the address of __init kt_audit_table_helper into kt_audit_tbl+0x20 (.bss): it outlives init and then points into freed text (modpost: no)",
		"kt_audit_table_init+0x23 (.init.text) stores the address of __init kt_audit_table_other into kt_audit_tbl at an index computed at run time (.bss): it outlives init and then points into freed text (modpost: no)",
	} {
		if fs[i].Message != want {
			t.Errorf("message\n%s\nwant\n%s", fs[i].Message, want)
		}
	}
}

func TestUnreadable(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.ko")
	os.WriteFile(bad, []byte("not a module\n"), 0o644)
	trunc := filepath.Join(dir, "trunc.ko")
	data, _ := os.ReadFile("testdata/kt_audit_store.ko")
	os.WriteFile(trunc, data[:len(data)/2], 0o644)
	for _, p := range []string{bad, trunc, filepath.Join(dir, "missing.ko")} {
		if _, err := File(p); err == nil {
			t.Errorf("%s: no error", p)
		}
	}
}

func TestWriter(t *testing.T) {
	fs, err := File("testdata/kt_audit_store.ko")
	if err != nil {
		t.Fatal(err)
	}
	var text, js bytes.Buffer
	for format, buf := range map[string]*bytes.Buffer{"text": &text, "json": &js} {
		w, err := NewWriter(format, buf)
		if err != nil {
			t.Fatal(err)
		}
		w.File("testdata/kt_audit_store.ko", fs, nil)
		w.File("bad\x1b[31m.ko", nil, fmt.Errorf("bad\x1b[31m.ko: not an ELF file"))
		sum, err := w.Close()
		if err != nil || sum.Files != 2 || sum.Unreadable != 1 || sum.Worst() != E {
			t.Fatalf("%s: summary %+v %v", format, sum, err)
		}
	}
	wantText := "ERROR init-address-taken: testdata/kt_audit_store.ko: kt_audit_store_init+0x5 (.init.text) stores the address of __init kt_audit_store_helper into kt_audit_store_ops+0x8 (.data): it outlives init and then points into freed text (modpost: no)\n" +
		"ktracer audit: bad\\x1b[31m.ko: not an ELF file\n" +
		"ktracer audit: 2 files (1 unreadable); findings: 1 error, 0 warning, 0 info\n"
	if text.String() != wantText {
		t.Errorf("text:\n%s\nwant:\n%s", text.String(), wantText)
	}
	var events []string
	for _, l := range strings.Split(strings.TrimSpace(js.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		events = append(events, m["event"].(string))
		if m["event"] == "finding" {
			var keys []string
			for k := range m {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			if strings.Join(keys, " ") != "event file function kind location message modpost module rule section severity stored_to" {
				t.Errorf("finding keys %v", keys)
			}
			if m["stored_to"] != "kt_audit_store_ops+0x8" || m["module"] != "kt_audit_store" || m["modpost"] != false {
				t.Errorf("finding %v", m)
			}
		}
	}
	if strings.Join(events, " ") != "finding unreadable summary" {
		t.Errorf("events %v", events)
	}
	if _, err := NewWriter("yaml", &text); err == nil {
		t.Error("yaml accepted")
	}
}

func TestModpostRules(t *testing.T) {
	for _, c := range []struct {
		sec, holder string
		want        bool
	}{
		{".data", "my_table", true},
		{".data", "my_ops", false},
		{".data", "foo_driver", false},
		{".data", "__param_x", false},
		{".rodata", "my_table", false},
		{".data..read_mostly", "my_table", false},
	} {
		if got := modpostDataWarns(c.sec, c.holder); got != c.want {
			t.Errorf("data %s %s: %v", c.sec, c.holder, got)
		}
	}
	if !modpostTextWarns(".text", "f") || modpostTextWarns(".text", "f.constprop.0") || modpostTextWarns(".ref.text", "f") {
		t.Error("text rules")
	}
}

func TestClean(t *testing.T) {
	if clean("kt_init") != "kt_init" || clean("a\x1bb") != `a\x1bb` || len(clean(strings.Repeat("x", 1000))) > 300 {
		t.Error(clean("a\x1bb"))
	}
}
