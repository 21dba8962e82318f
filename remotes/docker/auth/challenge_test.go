package auth

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

func TestParseChallenges(t *testing.T) {
	for _, tc := range []struct {
		name    string
		headers []string
		want    string
	}{
		{"bearer", []string{`Bearer realm="https://auth.example/token",service="registry.example",scope="repository:lib/alpine:pull"`},
			`[bearer map[realm:https://auth.example/token scope:repository:lib/alpine:pull service:registry.example]]`},
		{"basic", []string{`Basic realm="Registry Realm"`}, `[basic map[realm:Registry Realm]]`},
		{"two-in-one", []string{`Basic realm="a, b", Bearer realm="https://t",service=s`}, `[basic map[realm:a, b] bearer map[realm:https://t service:s]]`},
		{"two-headers", []string{`Basic realm=x`, `Bearer realm=y`}, `[basic map[realm:x] bearer map[realm:y]]`},
		{"escapes", []string{`Bearer realm="a\"b\\c"`}, `[bearer map[realm:a"b\c]]`},
		{"case-and-space", []string{`BEARER  Realm = "r" ,  Error="insufficient_scope"`}, `[bearer map[error:insufficient_scope realm:r]]`},
		{"scheme-only", []string{`Negotiate`}, `[negotiate map[]]`},
		{"empty", []string{``}, `[]`},
	} {
		got, err := ParseChallenges(tc.headers)
		if err != nil {
			t.Errorf("%s: ParseChallenges(%q) = %v", tc.name, tc.headers, err)
			continue
		}
		var parts []string
		for _, c := range got {
			parts = append(parts, fmt.Sprint(c.Scheme, " ", c.Parameters))
		}
		if s := "[" + strings.Join(parts, " ") + "]"; s != tc.want {
			t.Errorf("%s: ParseChallenges(%q) = %s, want %s", tc.name, tc.headers, s, tc.want)
		}
	}
	for _, bad := range []string{`Bearer realm="unterminated`, `=x`, strings.Repeat("a", maxHeader+1)} {
		if _, err := ParseChallenges([]string{bad}); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("ParseChallenges(%.30q) = %v, want invalid argument", bad, err)
		}
	}
}

// FuzzParseChallenges: hostile registries write this header; parsing must
// end, never panic, and return either challenges or an invalid-argument
// error.
func FuzzParseChallenges(f *testing.F) {
	for _, s := range []string{`Bearer realm="https://a/t",service="s",scope="repository:x:pull"`, `Basic realm="r"`, `a b=c, d`, `x="\\`, `,,,`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		cs, err := ParseChallenges([]string{h})
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("error %v is not invalid argument", err)
			}
			return
		}
		for _, c := range cs {
			if c.Scheme == "" || c.Parameters == nil {
				t.Fatalf("challenge %+v without scheme or parameters from %q", c, h)
			}
		}
	})
}
