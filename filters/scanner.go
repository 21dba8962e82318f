package filters

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// eof is what scanner.peek returns at the end of the input.
const eof = -1

type tokenKind int

const (
	tokenEOF      tokenKind = iota
	tokenName               // unquoted field name
	tokenPlain              // unquoted value
	tokenQuoted             // quoted string; text keeps the delimiters
	tokenOperator           // a run of '=', '!' and '~'
	tokenComma              // ","
	tokenDot                // "."
	tokenOther              // any other single character
)

type token struct {
	kind  tokenKind
	pos   int    // byte offset of the token in the input
	text  string // the token as written
	value string // tokenQuoted: the decoded string
}

// scanner splits a filter string into tokens. It has no state besides its
// offset: whether a word is a field name or a value depends only on where the
// parser is, so the parser says which one it wants.
type scanner struct {
	input string
	off   int
}

// peek returns the character at the current offset without consuming it:
// eof at the end, utf8.RuneError for invalid UTF-8.
func (s *scanner) peek() (r rune, size int) {
	if s.off >= len(s.input) {
		return eof, 0
	}
	return utf8.DecodeRuneInString(s.input[s.off:])
}

// scan skips white space and returns the next token. With value set, a word
// is scanned as an unquoted value instead of a field name.
func (s *scanner) scan(value bool) (token, error) {
	for {
		r, size := s.peek()
		if !unicode.IsSpace(r) {
			break
		}
		s.off += size
	}

	start := s.off
	r, size := s.peek()
	switch {
	case r == eof:
		return token{kind: tokenEOF, pos: start}, nil
	case isIllegal(r):
		return token{}, s.illegal(start)
	case isQuote(r):
		return s.scanQuoted(r)
	case r == ',':
		s.off += size
		return token{kind: tokenComma, pos: start, text: ","}, nil
	case r == '.':
		s.off += size
		return token{kind: tokenDot, pos: start, text: "."}, nil
	case isOperatorChar(r):
		s.skip(isOperatorChar)
		return token{kind: tokenOperator, pos: start, text: s.input[start:s.off]}, nil
	case value:
		// containerd takes any first character here, even one that may not
		// continue a value (a control character, say).
		s.off += size
		s.skip(isValueChar)
		return token{kind: tokenPlain, pos: start, text: s.input[start:s.off]}, nil
	case isNameChar(r):
		s.skip(isNameChar)
		return token{kind: tokenName, pos: start, text: s.input[start:s.off]}, nil
	default:
		s.off += size
		return token{kind: tokenOther, pos: start, text: s.input[start:s.off]}, nil
	}
}

func (s *scanner) skip(ok func(rune) bool) {
	for {
		r, size := s.peek()
		if r == eof || !ok(r) {
			return
		}
		s.off += size
	}
}

// scanQuoted scans a string delimited by quote and decodes its escapes.
func (s *scanner) scanQuoted(quote rune) (token, error) {
	start := s.off
	s.off++ // every quote character is one byte
	var b strings.Builder
	for {
		r, size := s.peek()
		switch {
		case r == eof || r == '\n':
			return token{}, s.errorf(start, "unterminated %s-quoted string", string(quote))
		case isIllegal(r):
			return token{}, s.illegal(s.off)
		case r == quote:
			s.off += size
			return token{kind: tokenQuoted, pos: start, text: s.input[start:s.off], value: b.String()}, nil
		case r == '\\':
			if err := s.scanEscape(&b, quote); err != nil {
				return token{}, err
			}
		default:
			b.WriteString(s.input[s.off : s.off+size])
			s.off += size
		}
	}
}

// scanEscape decodes the escape sequence at the offset into b. The escapes
// are Go's, with \' and \" replaced by a backslash before the delimiter.
func (s *scanner) scanEscape(b *strings.Builder, quote rune) error {
	start := s.off
	s.off++ // the backslash
	r, size := s.peek()
	if isIllegal(r) {
		return s.illegal(s.off)
	}
	s.off += size
	switch r {
	case 'a':
		b.WriteByte('\a')
	case 'b':
		b.WriteByte('\b')
	case 'f':
		b.WriteByte('\f')
	case 'n':
		b.WriteByte('\n')
	case 'r':
		b.WriteByte('\r')
	case 't':
		b.WriteByte('\t')
	case 'v':
		b.WriteByte('\v')
	case '\\', quote:
		b.WriteByte(byte(r))
	case '0', '1', '2', '3', '4', '5', '6', '7':
		s.off--
		v, ok := s.digits(8, 3)
		if !ok || v > 0xff {
			return s.errorf(start, "invalid octal escape %s", s.input[start:s.off])
		}
		b.WriteByte(byte(v))
	case 'x':
		v, ok := s.digits(16, 2)
		if !ok {
			return s.errorf(start, "invalid hex escape %s", s.input[start:s.off])
		}
		b.WriteByte(byte(v))
	case 'u', 'U':
		n := 4
		if r == 'U' {
			n = 8
		}
		v, ok := s.digits(16, n)
		if !ok || v > unicode.MaxRune {
			return s.errorf(start, "invalid Unicode escape %s", s.input[start:s.off])
		}
		// A surrogate half becomes U+FFFD, as in containerd, which encodes
		// it with utf8.EncodeRune.
		b.WriteRune(rune(v))
	default:
		if r == eof {
			return s.errorf(start, "unterminated %s-quoted string", string(quote))
		}
		return s.errorf(start, "invalid escape: backslash before %q", s.input[start+1:s.off])
	}
	return nil
}

// digits consumes n digits in base and returns their value; ok is false if
// fewer than n follow, in which case only those are consumed.
func (s *scanner) digits(base, n int) (v uint32, ok bool) {
	for range n {
		if s.off >= len(s.input) {
			return 0, false
		}
		d := digitValue(s.input[s.off])
		if d >= base {
			return 0, false
		}
		v = v*uint32(base) + uint32(d)
		s.off++
	}
	return v, true
}

func digitValue(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return 16
}

// unexpected reports the character at pos, which is not what want names.
func (s *scanner) unexpected(pos int, want string) error {
	if pos >= len(s.input) {
		return s.errorf(pos, "expected %s", want)
	}
	r, _ := utf8.DecodeRuneInString(s.input[pos:])
	if isIllegal(r) {
		return s.illegal(pos)
	}
	return s.errorf(pos, "expected %s, found %q", want, string(r))
}

// illegal reports the NUL, invalid UTF-8 or U+FFFD at pos; containerd
// rejects all three wherever they are.
func (s *scanner) illegal(pos int) error {
	r, size := utf8.DecodeRuneInString(s.input[pos:])
	switch {
	case r == 0:
		return s.errorf(pos, "NUL character")
	case size == 1:
		return s.errorf(pos, "invalid UTF-8")
	default:
		return s.errorf(pos, "U+FFFD character")
	}
}

func (s *scanner) errorf(pos int, format string, args ...any) error {
	return &SyntaxError{Input: s.input, Offset: pos, Msg: fmt.Sprintf(format, args...)}
}

func isIllegal(r rune) bool { return r == 0 || r == utf8.RuneError }

func isQuote(r rune) bool { return r == '"' || r == '/' || r == '|' }

func isOperatorChar(r rune) bool { return r == '=' || r == '!' || r == '~' }

func isNameChar(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '_' || r == '-'
}

// isValueChar reports whether r may continue an unquoted value.
func isValueChar(r rune) bool {
	return r != ',' && !isIllegal(r) && !unicode.IsSpace(r) && unicode.IsGraphic(r)
}
