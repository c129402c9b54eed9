package export

import (
	"bytes"
	"strings"
	"testing"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ktracer/ktracer/bpf"
	"github.com/ktracer/ktracer/decoder"
)

// loadFailedEvents runs load-failed records through the decoder: an
// unknown symbol (error) and two "already loaded" (info).
func loadFailedEvents(t *testing.T) []*decoder.Event {
	t.Helper()
	a := decoder.NewAnalyzer(decoder.Config{})
	var out []*decoder.Event
	for i, c := range []struct {
		name, symbol string
		ret          int32
		facts        bpf.KtLoadFact
	}{
		{"stp", "llc_sap_close", -2, bpf.KtLoadFactLOAD_UNKNOWN_SYMBOL},
		{"dummy", "", -17, 0},
		{"dummy", "", -17, 0},
	} {
		var e bpf.KtLoadFailedEvent
		e.Hdr = bpf.KtEventHeader{Type: uint16(bpf.KtEventTypeEVENT_LOAD_FAILED), Size: uint16(unsafe.Sizeof(e)), Pid: 7, Tid: uint32(7 + i)}
		e.Ret, e.Facts = c.ret, uint32(c.facts)
		for j := 0; j < len(c.name); j++ {
			e.Name[j] = int8(c.name[j])
		}
		for j := 0; j < len(c.symbol); j++ {
			e.Symbol[j] = int8(c.symbol[j])
		}
		evs, err := a.Handle(decoder.Encode(&e), nil)
		if err != nil || len(evs) != 1 {
			t.Fatalf("record %d: %v, %d events", i, err, len(evs))
		}
		out = append(out, &evs[0])
	}
	return out
}

// Every surface carries load-failed with its per-finding severity: the
// metric's severity label, the log level, the text line.
func TestLoadFailedOnEverySurface(t *testing.T) {
	evs := loadFailedEvents(t)
	m := NewMetrics(MetricsOptions{})
	feed(t, m, evs...)
	want := `
# HELP ktracer_findings_total Broken rules seen while ktracer runs, by rule and module (built-in for built-in code, empty for a machine-wide finding).
# TYPE ktracer_findings_total counter
ktracer_findings_total{module="dummy",rule="load-failed"} 2
ktracer_findings_total{module="stp",rule="load-failed"} 1
`
	if err := testutil.CollectAndCompare(m, strings.NewReader(want), "ktracer_findings_total"); err != nil {
		t.Error(err)
	}

	var logBuf bytes.Buffer
	h, _ := NewLogHandler("logfmt", &logBuf, nil)
	log := NewEventLog(h, testClock)
	var text bytes.Buffer
	tw, _ := NewWriter("text", &text, testClock)
	for _, ev := range evs {
		if err := log.Write(ev); err != nil {
			t.Fatal(err)
		}
		tw.Write(ev)
	}
	lines := strings.Split(strings.TrimSpace(logBuf.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "level=ERROR") || !strings.Contains(lines[0], "symbol=llc_sap_close") ||
		!strings.Contains(lines[1], "level=INFO") || !strings.Contains(lines[1], `reason="already loaded"`) {
		t.Errorf("log lines:\n%s", logBuf.String())
	}
	if !strings.Contains(text.String(), "ERROR load-failed: loading stp failed before its init ran: unknown symbol llc_sap_close (ENOENT)") ||
		!strings.Contains(text.String(), "INFO load-failed: dummy is already loaded") {
		t.Errorf("text:\n%s", text.String())
	}
}
