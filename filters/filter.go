package filters

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Adaptor exposes an object's fields to a filter.
//
// Field returns the value at fieldpath and whether the object has that
// field; an absent field should give "". Field must not modify fieldpath,
// which is never empty.
type Adaptor interface {
	Field(fieldpath []string) (value string, present bool)
}

// AdapterFunc is an Adaptor made of a function.
type AdapterFunc func(fieldpath []string) (string, bool)

// Field calls fn.
func (fn AdapterFunc) Field(fieldpath []string) (string, bool) {
	return fn(fieldpath)
}

// Filter selects objects. A Filter is safe for concurrent use.
type Filter interface {
	Match(a Adaptor) bool
}

// Always matches everything. It is what Parse returns for "".
var Always Filter = always{}

type always struct{}

func (always) Match(Adaptor) bool { return true }
func (always) String() string     { return "" }

// LabelField is the usual Adaptor answer for a label map. For a fieldpath
// ["labels", k1, k2...] it returns labels["k1.k2..."], so labels.a.b and
// labels."a.b" find the same label; for any other fieldpath, including
// ["labels"] alone, it reports the field absent, as containerd's stores do.
func LabelField(labels map[string]string, fieldpath []string) (string, bool) {
	if len(fieldpath) < 2 || fieldpath[0] != "labels" {
		return "", false
	}
	v, ok := labels[strings.Join(fieldpath[1:], ".")]
	return v, ok
}

// anyOf matches if any of its filters matches; ParseAll builds it.
type anyOf []Filter

func (fs anyOf) Match(a Adaptor) bool {
	for _, f := range fs {
		if f.Match(a) {
			return true
		}
	}
	return false
}

// selectors matches if all of its selectors match; Parse builds it.
type selectors []selector

func (ss selectors) Match(a Adaptor) bool {
	for _, s := range ss {
		if !s.Match(a) {
			return false
		}
	}
	return true
}

// String returns the canonical spelling of the filter.
func (ss selectors) String() string {
	var b strings.Builder
	for i, s := range ss {
		if i > 0 {
			b.WriteByte(',')
		}
		s.writeTo(&b)
	}
	return b.String()
}

type operator int

const (
	present operator = iota
	equal
	notEqual
	matches
)

func (op operator) String() string {
	switch op {
	case present:
		return ""
	case equal:
		return "=="
	case notEqual:
		return "!="
	case matches:
		return "~="
	}
	return fmt.Sprintf("operator(%d)", int(op))
}

type selector struct {
	fieldpath []string
	op        operator
	value     string
	re        *regexp.Regexp // op == matches
}

// Match applies the selector. != and ~= read an absent field as "", as
// containerd does (its adaptors return "" for absent fields and it compares
// the value without looking at presence): name!=foo matches objects without
// a name and name~=^$ matches them too.
func (s selector) Match(a Adaptor) bool {
	v, ok := a.Field(s.fieldpath)
	if !ok {
		v = ""
	}
	switch s.op {
	case present:
		return ok
	case equal:
		return ok && v == s.value
	case notEqual:
		return v != s.value
	case matches:
		return s.re.MatchString(v)
	}
	return false
}

func (s selector) writeTo(b *strings.Builder) {
	for i, f := range s.fieldpath {
		if i > 0 {
			b.WriteByte('.')
		}
		if isName(f) {
			b.WriteString(f)
		} else {
			writeQuoted(b, f)
		}
	}
	if s.op == present {
		return
	}
	b.WriteString(s.op.String())
	if isPlain(s.value) {
		b.WriteString(s.value)
	} else {
		writeQuoted(b, s.value)
	}
}

// isName reports whether f can be written as an unquoted field name.
func isName(f string) bool {
	if f == "" {
		return false
	}
	for _, r := range f {
		if !isNameChar(r) {
			return false
		}
	}
	return true
}

// isPlain reports whether v can be written as an unquoted value. It is
// stricter than the parser about the first character.
func isPlain(v string) bool {
	if v == "" || !utf8.ValidString(v) {
		return false
	}
	switch v[0] {
	case '.', '"', '/', '|', '=', '!', '~':
		return false
	}
	for _, r := range v {
		if !isValueChar(r) {
			return false
		}
	}
	return true
}

// writeQuoted writes s as a "-quoted string that scans back to s, whatever
// bytes s holds.
func writeQuoted(b *strings.Builder, s string) {
	const hex = "0123456789abcdef"
	b.WriteByte('"')
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteByte(byte(r))
		case r >= 0x20 && r < 0x7f:
			b.WriteByte(byte(r))
		case r < utf8.RuneSelf || r == utf8.RuneError && size == 1:
			b.WriteString(`\x`)
			b.WriteByte(hex[s[i]>>4])
			b.WriteByte(hex[s[i]&0xf])
		case r != utf8.RuneError && unicode.IsPrint(r):
			b.WriteString(s[i : i+size])
		case r <= 0xffff:
			fmt.Fprintf(b, `\u%04x`, r)
		default:
			fmt.Fprintf(b, `\U%08x`, r)
		}
		i += size
	}
	b.WriteByte('"')
}
