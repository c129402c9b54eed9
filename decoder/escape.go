package decoder

import (
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Printable is the one escaping every text renderer uses for a value it did
// not write itself (a task name any user sets with prctl, a module or file
// name, a line of a log): control characters, C1 controls, line and
// paragraph separators, bidi overrides and invalid UTF-8 become visible
// escapes (\n, \x1b, \u202e, \xff), so a value can neither forge an output
// line nor send a terminal escape sequence. Everything else, backslash
// included, is left as is.
func Printable(s string) string {
	i := 0
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				break
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if unprintable(r, size) {
			break
		}
		i += size
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteString(`\x`)
			b.WriteString(hex2(s[i]))
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			b.WriteString(`\x`)
			b.WriteString(hex2(byte(r)))
		case unprintable(r, size):
			b.WriteString(`\u`)
			h := strconv.FormatInt(int64(r), 16)
			b.WriteString(strings.Repeat("0", 4-len(h)) + h)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func hex2(c byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[c>>4], digits[c&15]})
}

// unprintable is a non-ASCII rune Printable escapes.
func unprintable(r rune, size int) bool {
	switch {
	case r == utf8.RuneError && size == 1: // an invalid byte
		return true
	case r >= 0x80 && r <= 0x9f: // C1 controls: 0x9b is a CSI on some terminals
		return true
	case r == 0x2028 || r == 0x2029: // line and paragraph separators
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e || r == 0x200f: // bidi controls
		return true
	}
	return false
}

// Fprintf is fmt.Fprintf with every string-kinded argument (and every
// error) passed through Printable: text renderers call it, so the format
// string's own newlines are the only ones that reach the output.
func Fprintf(w io.Writer, format string, a ...any) (int, error) {
	return fmt.Fprintf(w, format, PrintableArgs(a)...)
}

// Sprintf is Fprintf into a string.
func Sprintf(format string, a ...any) string {
	return fmt.Sprintf(format, PrintableArgs(a)...)
}

// PrintableArgs returns a copy of a with strings, string-kinded values and
// errors made Printable; other values (numbers, durations, Stringers that
// may be printed with %d) are untouched.
func PrintableArgs(a []any) []any {
	out := make([]any, len(a))
	for i, v := range a {
		switch x := v.(type) {
		case string:
			out[i] = Printable(x)
		case error:
			out[i] = Printable(x.Error())
		case nil:
			out[i] = v
		default:
			if rv := reflect.ValueOf(v); rv.Kind() == reflect.String {
				out[i] = Printable(rv.String())
			} else {
				out[i] = v
			}
		}
	}
	return out
}
