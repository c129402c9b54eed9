package export

import (
	"bytes"
	"strings"
	"testing"
	"time"
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
