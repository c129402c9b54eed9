package decoder

import (
	"errors"
	"strings"
	"testing"
)

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"":                     "",
		"kt_positive":          "kt_positive",
		"naïve µs → ok":        "naïve µs → ok",
		`back\slash`:           `back\slash`,
		"a\nb":                 `a\nb`,
		"\r\t\x00\x1b[2J\x7f":  `\r\t\x00\x1b[2J\x7f`,
		"bad\xff\xfe":          `bad\xff\xfe`,
		"c1\u009b31m":          `c1\u009b31m`,
		"bidi\u202eevil\u2066": `bidi\u202eevil\u2066`,
		"sep\u2028x":           `sep\u2028x`,
		"truncated \xe2\x82":   `truncated \xe2\x82`,
	} {
		if got := Printable(in); got != want {
			t.Errorf("Printable(%q) = %q, want %q", in, got, want)
		}
	}
	type name string
	got := Sprintf("%s|%s|%v|%d|%-6s|", "a\nb", name("c\x1bd"), errors.New("e\nf"), 42, Rule("r\n"))
	if want := `a\nb|c\x1bd|e\nf|42|r\n   |`; got != want {
		t.Errorf("Sprintf = %q, want %q", got, want)
	}
	if strings.Contains(got, "\n") {
		t.Error("newline left")
	}
}
