package export

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ktracer/ktracer/decoder"
)

// Issue 12 item 7: any user can set a task name (prctl PR_SET_NAME), and a
// module name is kernel bytes. A "\n" in either must not forge a line, and
// a terminal escape must not reach the terminal.
func TestTextWriterEscapes(t *testing.T) {
	evil := "kworker\nERROR forged-rule: pwned\x1b[2J\xff"
	evs := []*decoder.Event{
		{Kind: decoder.KindModuleLoad, Module: "mod\x1b]0;title\x07", Function: evil, Symbols: 1},
		{Kind: decoder.KindFinding, Module: "kt\nmod", Rule: decoder.RuleSlowInit, Severity: decoder.SeverityWarning, Message: "WARNING in task " + evil},
		{Kind: decoder.KindInitPointerIgnored, Module: "m", Location: evil, Function: evil, Reason: evil},
	}
	var b bytes.Buffer
	w, _ := NewWriter("text", &b, func(uint64) time.Time { return time.Unix(0, 0) })
	if err := w.Attached([]Hook{{Name: "hook\nERROR x", Attached: false}}); err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if err := w.Write(ev); err != nil {
			t.Fatal(err)
		}
	}
	out := b.String()
	if n := strings.Count(out, "\n"); n != 1+len(evs) {
		t.Errorf("%d lines for %d events and one attached line:\n%s", n, len(evs), out)
	}
	for _, bad := range []string{"\x1b", "\x07", "\xff", "\nERROR forged"} {
		if strings.Contains(out, bad) {
			t.Errorf("text output holds %q:\n%q", bad, out)
		}
	}
	if !strings.Contains(out, `kworker\nERROR forged-rule`) {
		t.Errorf("the escaped name is not shown as such:\n%s", out)
	}

	b.Reset()
	w, _ = NewWriter("json", &b, func(uint64) time.Time { return time.Unix(0, 0) })
	for _, ev := range evs {
		if err := w.Write(ev); err != nil {
			t.Fatal(err)
		}
	}
	if !utf8.Valid(b.Bytes()) {
		t.Errorf("JSON output is not valid UTF-8")
	}
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("invalid JSON line %q", line)
		}
	}
	if n := strings.Count(b.String(), "\n"); n != len(evs) {
		t.Errorf("JSON: %d lines for %d events", n, len(evs))
	}
}
