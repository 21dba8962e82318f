package reference

import (
	"errors"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

const dg = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in, want, object, familiar string
	}{
		{"alpine", "docker.io/library/alpine:latest", "latest", "alpine:latest"},
		{"alpine:3.20", "docker.io/library/alpine:3.20", "3.20", "alpine:3.20"},
		{"library/alpine", "docker.io/library/alpine:latest", "latest", "alpine:latest"},
		{"docker.io/library/alpine:edge", "docker.io/library/alpine:edge", "edge", "alpine:edge"},
		{"user/app", "docker.io/user/app:latest", "latest", "user/app:latest"},
		{"ghcr.io/org/app:1.2", "ghcr.io/org/app:1.2", "1.2", "ghcr.io/org/app:1.2"},
		{"127.0.0.1:5000/app", "127.0.0.1:5000/app:latest", "latest", "127.0.0.1:5000/app:latest"},
		{"localhost/app:v1", "localhost/app:v1", "v1", "localhost/app:v1"},
		{"localhost:5000/a/b/c@" + dg, "localhost:5000/a/b/c@" + dg, dg, "localhost:5000/a/b/c@" + dg},
		{"app:1.2@" + dg, "docker.io/library/app:1.2@" + dg, dg, "app:1.2@" + dg},
	} {
		r, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q) = %v", tc.in, err)
			continue
		}
		if r.String() != tc.want || r.Object() != tc.object || r.Familiar() != tc.familiar {
			t.Errorf("Parse(%q) = %s (object %s, familiar %s), want %s (%s, %s)", tc.in, r, r.Object(), r.Familiar(), tc.want, tc.object, tc.familiar)
		}
	}
}

func TestParseInvalid(t *testing.T) {
	for _, tc := range []struct{ in, msg string }{
		{"", "must not be empty"},
		{" alpine", "spaces"},
		{"Alpine", "must be lowercase"},
		{"alpine:", "invalid reference format"},
		{"alpine@sha256:abc", "invalid"},
		{"a//b", "invalid reference format"},
		{strings.Repeat("a", 600), "longer than"},
		{"app:" + strings.Repeat("t", 200), "invalid reference format"},
	} {
		_, err := Parse(tc.in)
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("Parse(%.30q) = %v, want invalid argument mentioning %q", tc.in, err, tc.msg)
		}
	}
}

// FuzzParse: whatever parses prints a form that parses to the same thing.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"alpine", "ghcr.io/o/a:1", "localhost:5000/a@" + dg, "a:b@" + dg, "A", "a//b", ":"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("Parse(%q) error %v is not invalid argument", s, err)
			}
			return
		}
		r2, err := Parse(r.String())
		if err != nil || r2 != r {
			t.Fatalf("Parse(%q) = %+v; its String %q parses to %+v, %v", s, r, r.String(), r2, err)
		}
	})
}
