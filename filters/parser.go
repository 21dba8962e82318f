package filters

import (
	"fmt"
	"regexp"

	"github.com/containerd/errdefs"
)

// SyntaxError describes a filter string that does not parse. It wraps
// errdefs.ErrInvalidArgument, and Err when that is set.
type SyntaxError struct {
	Input  string // the filter string
	Offset int    // byte offset in Input where the problem is
	Msg    string // what is wrong
	Err    error  // the cause, if another package found it (regexp); may be nil
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("filters: parse %q: %s at %d", e.Input, e.Msg, e.Offset)
}

// Unwrap returns errdefs.ErrInvalidArgument and the cause, if any.
func (e *SyntaxError) Unwrap() []error {
	if e.Err == nil {
		return []error{errdefs.ErrInvalidArgument}
	}
	return []error{errdefs.ErrInvalidArgument, e.Err}
}

// Parse parses a filter string (grammar in the package doc). The empty
// string gives Always. The returned filter's String method gives the
// canonical spelling, which parses to the same filter. A string that does
// not parse gives a *SyntaxError, which wraps errdefs.ErrInvalidArgument.
func Parse(s string) (Filter, error) {
	if s == "" {
		return Always, nil
	}
	p := parser{scanner: scanner{input: s}}
	ss, err := p.parse()
	if err != nil {
		return nil, err // not ss: a nil selectors in a Filter is not a nil Filter
	}
	return ss, nil
}

// ParseAll parses each string in ss and returns a filter that matches an
// object if any of them does: a list is an OR of ANDs. No strings, or any
// empty string, give a filter that matches everything. Every string is
// parsed; the first that does not parse gives a *SyntaxError, which wraps
// errdefs.ErrInvalidArgument.
func ParseAll(ss ...string) (Filter, error) {
	var (
		fs       anyOf
		matchAll = len(ss) == 0
	)
	for _, s := range ss {
		f, err := Parse(s)
		if err != nil {
			return nil, err
		}
		if s == "" {
			matchAll = true
		}
		fs = append(fs, f)
	}
	switch {
	case matchAll:
		return Always, nil
	case len(fs) == 1:
		return fs[0], nil
	}
	return fs, nil
}

type parser struct {
	scanner scanner
}

func (p *parser) parse() (selectors, error) {
	var ss selectors
	for {
		s, err := p.selector()
		if err != nil {
			return nil, err
		}
		ss = append(ss, s)

		// No white space before a comma or at the end: containerd's parser
		// looks at the next character without skipping any.
		switch r, size := p.scanner.peek(); r {
		case eof:
			return ss, nil
		case ',':
			p.scanner.off += size
		default:
			return nil, p.scanner.unexpected(p.scanner.off, `"," or end of filter`)
		}
	}
}

func (p *parser) selector() (selector, error) {
	fieldpath, err := p.fieldpath()
	if err != nil {
		return selector{}, err
	}
	if r, _ := p.scanner.peek(); r == eof || r == ',' {
		return selector{fieldpath: fieldpath, op: present}, nil
	}

	tok, err := p.scanner.scan(false)
	if err != nil {
		return selector{}, err
	}
	var op operator
	switch {
	case tok.kind != tokenOperator:
		return selector{}, p.unexpected(tok, "operator (==, !=, ~=)")
	case tok.text == "==":
		op = equal
	case tok.text == "!=":
		op = notEqual
	case tok.text == "~=":
		op = matches
	default:
		return selector{}, p.scanner.errorf(tok.pos, "unknown operator %q, want ==, != or ~=", tok.text)
	}

	tok, err = p.scanner.scan(true)
	if err != nil {
		return selector{}, err
	}
	s := selector{fieldpath: fieldpath, op: op}
	switch tok.kind {
	case tokenPlain:
		s.value = tok.text
	case tokenQuoted:
		if tok.text[0] != '"' && op != matches {
			return selector{}, p.scanner.errorf(tok.pos, "%s-quoted value after %s, only ~= takes / or | quotes", tok.text[:1], op)
		}
		s.value = tok.value
	default:
		return selector{}, p.unexpected(tok, "value")
	}
	if op == matches {
		// containerd compiles the expression at match time and lets a bad
		// one match nothing; failing here tells the caller why.
		s.re, err = regexp.Compile(s.value)
		if err != nil {
			return selector{}, &SyntaxError{Input: p.scanner.input, Offset: tok.pos, Msg: "invalid regexp: " + err.Error(), Err: err}
		}
	}
	return s, nil
}

func (p *parser) fieldpath() ([]string, error) {
	var fieldpath []string
	for {
		tok, err := p.scanner.scan(false)
		if err != nil {
			return nil, err
		}
		switch tok.kind {
		case tokenName:
			fieldpath = append(fieldpath, tok.text)
		case tokenQuoted:
			if tok.text[0] != '"' {
				return nil, p.scanner.errorf(tok.pos, "%s-quoted field, fields take only \" quotes", tok.text[:1])
			}
			fieldpath = append(fieldpath, tok.value)
		default:
			return nil, p.unexpected(tok, "field")
		}
		if r, size := p.scanner.peek(); r == '.' {
			p.scanner.off += size
			continue
		}
		return fieldpath, nil
	}
}

func (p *parser) unexpected(tok token, want string) error {
	if tok.kind == tokenEOF {
		return p.scanner.errorf(tok.pos, "expected %s", want)
	}
	return p.scanner.errorf(tok.pos, "expected %s, found %q", want, tok.text)
}
