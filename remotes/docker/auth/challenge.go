// Package auth handles registry authentication: parsing WWW-Authenticate
// challenges (RFC 7235) and, later, fetching and caching tokens.
package auth

import (
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
)

// Scheme is an authentication scheme a registry asks for.
type Scheme string

// The schemes registries use.
const (
	Basic  Scheme = "basic"
	Bearer Scheme = "bearer"
)

// Challenge is one challenge of a WWW-Authenticate header: a scheme and its
// parameters (realm, service, scope, error …), names lower-cased.
type Challenge struct {
	Scheme     Scheme
	Parameters map[string]string
}

// maxHeader bounds what is parsed: a hostile registry must not make us
// work on megabytes of header.
const maxHeader = 16 << 10

// ParseChallenges parses the values of WWW-Authenticate headers. Several
// challenges may share one header, separated by commas; quoted strings may
// hold commas and escaped quotes. It returns errdefs.ErrInvalidArgument for
// a header it cannot make sense of.
func ParseChallenges(headers []string) ([]Challenge, error) {
	var out []Challenge
	for _, h := range headers {
		if len(h) > maxHeader {
			return nil, fmt.Errorf("WWW-Authenticate header of %d bytes exceeds %d: %w", len(h), maxHeader, errdefs.ErrInvalidArgument)
		}
		p := &parser{s: h}
		for {
			p.skipSpaceAndCommas()
			if p.done() {
				break
			}
			scheme := p.token()
			if scheme == "" {
				return nil, fmt.Errorf("WWW-Authenticate %q: expected an auth scheme at %d: %w", h, p.i, errdefs.ErrInvalidArgument)
			}
			c := Challenge{Scheme: Scheme(strings.ToLower(scheme)), Parameters: map[string]string{}}
			for {
				save := p.i
				p.skipSpaceAndCommas()
				name := p.token()
				p.skipSpace()
				if name == "" || !p.consume('=') {
					// The next challenge's scheme, or the end.
					p.i = save
					break
				}
				p.skipSpace()
				var value string
				if p.peek() == '"' {
					v, ok := p.quoted()
					if !ok {
						return nil, fmt.Errorf("WWW-Authenticate %q: unterminated quoted string: %w", h, errdefs.ErrInvalidArgument)
					}
					value = v
				} else {
					value = p.token()
				}
				c.Parameters[strings.ToLower(name)] = value
			}
			out = append(out, c)
		}
	}
	return out, nil
}

type parser struct {
	s string
	i int
}

func (p *parser) done() bool { return p.i >= len(p.s) }

func (p *parser) peek() byte {
	if p.done() {
		return 0
	}
	return p.s[p.i]
}

func (p *parser) consume(c byte) bool {
	if p.peek() == c && !p.done() {
		p.i++
		return true
	}
	return false
}

func (p *parser) skipSpace() {
	for !p.done() && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *parser) skipSpaceAndCommas() {
	for !p.done() && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == ',') {
		p.i++
	}
}

// token reads an RFC 7230 token (and the base64 characters of token68).
func (p *parser) token() string {
	start := p.i
	for !p.done() && isTokenChar(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i]
}

func isTokenChar(c byte) bool {
	if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~/:", c) >= 0
}

// quoted reads a quoted string, undoing backslash escapes.
func (p *parser) quoted() (string, bool) {
	p.i++ // the opening quote
	var b strings.Builder
	for !p.done() {
		c := p.s[p.i]
		p.i++
		switch c {
		case '"':
			return b.String(), true
		case '\\':
			if p.done() {
				return "", false
			}
			b.WriteByte(p.s[p.i])
			p.i++
		default:
			b.WriteByte(c)
		}
	}
	return "", false
}
