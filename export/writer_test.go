package export

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/ktracer/ktracer/decoder"
)

func TestTextAttachedNamesOnlyProblems(t *testing.T) {
	for _, tc := range []struct {
		hooks []Hook
		want  string
	}{
		{[]Hook{{Name: "module_load", Attached: true, Method: "raw_tracepoint"}, {Name: "warning", Attached: true, Method: "fentry"}},
			"ktracer: watching, 2 of 2 hooks attached\n"},
		{[]Hook{{Name: "module_load", Attached: true, Degraded: "first 256 symbols"}, {Name: "panic", Error: "permission denied"}},
			"ktracer: watching, 1 of 2 hooks attached; not attached: panic; degraded: module_load (first 256 symbols) (-v says why)\n"},
	} {
		var b bytes.Buffer
		w, err := NewWriter("text", &b, func(uint64) time.Time { return time.Unix(0, 0) })
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Attached(tc.hooks); err != nil {
			t.Fatal(err)
		}
		if b.String() != tc.want {
			t.Errorf("got %q, want %q", b.String(), tc.want)
		}
	}
	if _, err := NewWriter("yaml", nil, nil); err == nil {
		t.Error("NewWriter accepted an unknown format")
	}
}

// A capped symbol walk (kernels without bpf_loop) is reported, not silent.
func TestSummaryReportsTruncatedSymbolWalks(t *testing.T) {
	for format, want := range map[string]string{
		"text": "ktracer: 2 module loads sent only their first symbols",
		"json": `"truncated_symbol_walks":2`,
	} {
		var b bytes.Buffer
		w, err := NewWriter(format, &b, func(uint64) time.Time { return time.Unix(0, 0) })
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Summary(Summary{TruncatedSymbolWalks: 2}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), want) {
			t.Errorf("%s summary %q lacks %q", format, b.String(), want)
		}
	}
}

// What the startup audit found says so, in text as in JSON.
func TestStartupAuditMarked(t *testing.T) {
	clock := func(uint64) time.Time { return time.Unix(0, 0).UTC() }
	evs := []*decoder.Event{
		{Kind: decoder.KindModuleAlreadyLoaded, Module: "kt_tablebomb", Function: "kt_tablebomb_init", Symbols: 9, Location: "/lib/modules/x/extra/kt_tablebomb.ko", Source: decoder.SourceStartupAudit},
		{Kind: decoder.KindModuleAlreadyLoaded, Module: "kt_x", Reason: "no file", Source: decoder.SourceStartupAudit},
		{Kind: decoder.KindFinding, Module: "kt_tablebomb", Rule: decoder.RuleDanglingInitPointer, Severity: decoder.SeverityError, Location: "kt_table+0x28", Function: "kt_table_helper", Source: decoder.SourceStartupAudit, Message: "m"},
	}
	var text, js bytes.Buffer
	tw, _ := NewWriter("text", &text, clock)
	jw, _ := NewWriter("json", &js, clock)
	for _, ev := range evs {
		tw.Write(ev)
		jw.Write(ev)
	}
	for _, want := range []string{
		"kt_tablebomb     already loaded [startup-audit]: 9 symbols from /lib/modules/x/extra/kt_tablebomb.ko\n",
		"kt_x             already loaded [startup-audit]: 0 symbols; no file\n",
		"ERROR dangling-init-pointer [startup-audit]: m\n",
	} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
	lines := strings.Split(strings.TrimSpace(js.String()), "\n")
	for i, l := range lines {
		if !strings.Contains(l, `"source":"startup-audit"`) {
			t.Errorf("JSON line %d lacks the source: %s", i, l)
		}
	}
	if !strings.Contains(lines[0], `"event":"module_already_loaded"`) || !strings.Contains(lines[0], `"symbols":9`) || !strings.Contains(lines[0], `"function":"kt_tablebomb_init"`) {
		t.Errorf("JSON: %s", lines[0])
	}
}
