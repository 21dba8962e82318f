// Package reference parses image references the way Docker users write
// them and normalises them the way registries need them:
//
//	alpine                      → docker.io/library/alpine:latest
//	ghcr.io/org/app:1.2         → ghcr.io/org/app:1.2
//	localhost:5000/app@sha256:… → localhost:5000/app@sha256:…
//	app:1.2@sha256:…            → docker.io/library/app:1.2@sha256:… (the digest wins)
//
// The grammar is distribution's, through github.com/distribution/reference;
// this package adds strata's errors and the parts a puller needs.
package reference

import (
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
	dref "github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
)

// Reference is a normalised image reference.
type Reference struct {
	// Domain is the registry host, with its port ("docker.io",
	// "127.0.0.1:5000").
	Domain string
	// Path is the repository within it ("library/alpine").
	Path string
	// Tag is "latest" when neither a tag nor a digest was given.
	Tag string
	// Digest pins the content; when set it is what is fetched.
	Digest digest.Digest
}

// MaxLength bounds a reference, as distribution does (255 for the name).
const MaxLength = 512

// Parse normalises s. It returns errdefs.ErrInvalidArgument naming the
// reference and what is wrong with it.
func Parse(s string) (Reference, error) {
	if len(s) > MaxLength {
		return Reference{}, fmt.Errorf("reference %.40q…: longer than %d bytes: %w", s, MaxLength, errdefs.ErrInvalidArgument)
	}
	if strings.TrimSpace(s) != s || s == "" {
		return Reference{}, fmt.Errorf("reference %q: must not be empty or have spaces around it: %w", s, errdefs.ErrInvalidArgument)
	}
	named, err := dref.ParseNormalizedNamed(s)
	if err != nil {
		return Reference{}, fmt.Errorf("reference %q: %w: %w", s, err, errdefs.ErrInvalidArgument)
	}
	r := Reference{Domain: dref.Domain(named), Path: dref.Path(named)}
	if t, ok := named.(dref.Tagged); ok {
		r.Tag = t.Tag()
	}
	if d, ok := named.(dref.Digested); ok {
		r.Digest = d.Digest()
		if err := r.Digest.Validate(); err != nil {
			return Reference{}, fmt.Errorf("reference %q: digest: %w: %w", s, err, errdefs.ErrInvalidArgument)
		}
	}
	if r.Tag == "" && r.Digest == "" {
		r.Tag = "latest"
	}
	return r, nil
}

// Name is the repository's full name: "docker.io/library/alpine".
func (r Reference) Name() string { return r.Domain + "/" + r.Path }

// String is the normalised reference, the name an image is stored under.
func (r Reference) String() string {
	s := r.Name()
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest.String()
	}
	return s
}

// Object is what to ask the registry for: the digest when pinned, else the
// tag.
func (r Reference) Object() string {
	if r.Digest != "" {
		return r.Digest.String()
	}
	return r.Tag
}

// Familiar is the short form people type: "alpine:latest".
func (r Reference) Familiar() string {
	named, err := dref.ParseNormalizedNamed(r.String())
	if err != nil {
		return r.String()
	}
	return dref.FamiliarString(named)
}
