package boot

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ktracer/ktracer/decoder"
)

// hostileReport holds names no kernel should print but a log can hold:
// control bytes, invalid UTF-8, markup.
func hostileReport() *Report {
	evil := "evil\n<x>&\"'\x01\x1b[2J\xff\xfe\u202e"
	r := &Report{
		Kernel:  "Linux version 6.1.0\x1b[31m (x) #1",
		Cmdline: "quiet\nERROR forged: yes",
		Source:  SourceInitcallLog,
		Initcalls: []Initcall{
			{Seq: 1, Function: evil, Level: "core", Start: time.Millisecond, Duration: 200 * time.Millisecond, Ret: 1, Finished: true},
			{Seq: 2, Function: "ok_init", Module: "mod\x00\x7f", Level: "module", Start: 300 * time.Millisecond, Duration: time.Millisecond, Finished: false},
		},
		Levels:   []LevelSummary{{Name: "core", Count: 1}, {Name: "module", Count: 1}},
		Notes:    []string{"note\nERROR forged: note"},
		Findings: []Finding{{Rule: decoder.RulePositiveInitReturn, Severity: decoder.SeverityError, Function: evil, Message: evil + " returned 1"}},
	}
	r.Slowest = r.Initcalls[:1]
	return r
}

// Issue 12 item 7: every boot report format survives hostile names.
func TestRenderEscapes(t *testing.T) {
	r := hostileReport()
	var b bytes.Buffer
	if err := WriteText(&b, r); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, bad := range []string{"\x1b", "\x01", "\x00", "\x7f", "\xff", "\u202e"} {
		if strings.Contains(out, bad) {
			t.Errorf("text holds %q", bad)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "ERROR forged") || strings.HasPrefix(line, "<x>") {
			t.Errorf("forged line %q", line)
		}
	}

	b.Reset()
	if err := WriteSVG(&b, r); err != nil {
		t.Fatal(err)
	}
	if err := wellFormedXML(b.Bytes()); err != nil {
		t.Errorf("SVG is not well-formed XML: %v", err)
	}

	for _, f := range []func(io.Writer, *Report) error{WriteJSON, WritePerfetto} {
		b.Reset()
		if err := f(&b, r); err != nil {
			t.Fatal(err)
		}
		if !utf8.Valid(b.Bytes()) || !json.Valid(b.Bytes()) {
			t.Errorf("JSON output not valid UTF-8 JSON")
		}
	}
}

// wellFormedXML parses the whole document with encoding/xml, which rejects
// characters XML 1.0 forbids and invalid UTF-8.
func wellFormedXML(b []byte) error {
	if !utf8.Valid(b) {
		return errors.New("not valid UTF-8")
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if cd, ok := tok.(xml.CharData); ok {
			for _, c := range string(cd) {
				if c < 0x20 && c != '\n' && c != '\t' && c != '\r' {
					return errors.New("control character in text")
				}
			}
		}
	}
}
