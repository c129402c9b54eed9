package boot

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// The seeds are the real captures in testdata (their kernel logs and trace
// buffers), cut to their first 16 KiB so the fuzzer mutates something of
// a size it can explore, plus the hand-written hostile cases of
// hostile_test.go; crashers found live on in testdata/fuzz/.

func fuzzSeeds(f *testing.F, trace bool) {
	for _, fx := range []string{fxOops, fxTraceDebug} {
		fsys, dmesg := loadFixture(f, fx)
		data := dmesg
		if trace {
			tr, ok := fsys[tracePath]
			if !ok {
				continue
			}
			data = tr.Data
		}
		if len(data) > 16<<10 {
			data = data[:16<<10]
		}
		f.Add(data)
	}
}

// checkRenders runs a report through every output format and holds each
// to its own well-formedness: text has no control bytes but newlines and
// is valid UTF-8, the SVG is well-formed XML, JSON and Perfetto are valid
// JSON; no duration or start is negative.
func checkRenders(t *testing.T, r *Report) {
	for _, ic := range r.Initcalls {
		if ic.Duration < 0 || ic.Start < 0 {
			t.Fatalf("negative time: %+v", ic)
		}
	}
	var b bytes.Buffer
	if err := WriteText(&b, r); err != nil {
		t.Fatal(err)
	}
	if !utf8.Valid(b.Bytes()) {
		t.Fatalf("text output is not valid UTF-8")
	}
	for _, c := range b.String() {
		if (c < 0x20 && c != '\n') || c == 0x7f {
			t.Fatalf("control character %q in the text output", c)
		}
	}
	b.Reset()
	if err := WriteSVG(&b, r); err != nil {
		t.Fatal(err)
	}
	if err := wellFormedXML(b.Bytes()); err != nil {
		t.Fatalf("SVG: %v", err)
	}
	for _, format := range []string{"json", "perfetto"} {
		b.Reset()
		if err := Render(&b, r, format); err != nil {
			t.Fatal(err)
		}
		if !json.Valid(b.Bytes()) {
			t.Fatalf("%s output is not valid JSON", format)
		}
	}
}

// Any kernel log: Analyze either reports or says why not, and every format
// renders well-formed.
func FuzzBootLog(f *testing.F) {
	fuzzSeeds(f, false)
	for _, s := range []string{
		"[    0.000000] Linux version 6.1.0\n[    1.000000] calling  big_init+0x0/0x10 @ 1\n[    2.000000] initcall big_init+0x0/0x10 returned 0 after 9223372036854775807 usecs\n",
		"[    1.100002] Call Trace:\n[    1.100005] calling  other_init+0x0/0x10 @ 2\n",
		"Dec 02 02:43:22 debian kernel: calling  a+0x0/0x1 @ 1\n-- Boot 1 --\n[Wed Dec  2 02:43:22 2026] calling  a+0x0/0x1 @ 1\n",
		"6,1,100,-,caller=T1;calling  a+0x0/0x1 @ 1\n6,2,50,-;initcall a+0x0/0x1 returned 1 after 1 usecs\n",
		"[    0.000000][    T1] calling  evil\x1b[2J\xff+0x0/0x1 @ 1\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, log []byte) {
		r, err := Analyze(Input{Log: bytes.NewReader(log), Trace: strings.NewReader("")}, Options{})
		if err != nil {
			return
		}
		checkRenders(t, r)
	})
}

// Any trace buffer text, the same way.
func FuzzBootTrace(f *testing.F) {
	fuzzSeeds(f, true)
	f.Add([]byte("     swapper/0-1       [000] .....     5.000000: initcall_start: func=a_init+0x0/0x10\n     swapper/0-1       [000] .....     4.000000: initcall_finish: func=a_init+0x0/0x10 ret=0\n"))
	f.Add([]byte("     swapper/0-1       [000] .....     0.300150: initcall_blacklisted <-do_one_initcall\n"))
	f.Fuzz(func(t *testing.T, trace []byte) {
		r, err := Analyze(Input{Trace: bytes.NewReader(trace)}, Options{})
		if err != nil {
			return
		}
		checkRenders(t, r)
	})
}
