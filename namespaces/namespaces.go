// Package namespaces carries the namespace of a request on its context and
// validates namespace names.
//
// A namespace isolates the images, content records, snapshot keys and leases of
// one client from another's. It is not a security boundary: blobs and committed
// snapshots with the same digest or chain ID are shared on disk.
package namespaces

import (
	"context"
	"fmt"
	"os"
	"regexp"

	"github.com/containerd/errdefs"
)

// Default is the namespace used when none is given.
const Default = "default"

// EnvVar names the environment variable that overrides the CLI's default
// namespace.
const EnvVar = "STRATA_NAMESPACE"

const maxLength = 76

// Same rule as containerd's identifiers, so that names move between the two.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$`)

type key struct{}

// WithNamespace returns a context that carries namespace.
func WithNamespace(ctx context.Context, namespace string) context.Context {
	return context.WithValue(ctx, key{}, namespace)
}

// Namespace returns the namespace carried by ctx, if any.
func Namespace(ctx context.Context) (string, bool) {
	ns, ok := ctx.Value(key{}).(string)
	return ns, ok && ns != ""
}

// NamespaceRequired returns the valid namespace carried by ctx. It returns
// errdefs.ErrFailedPrecondition when there is none and
// errdefs.ErrInvalidArgument when the name is not valid.
func NamespaceRequired(ctx context.Context) (string, error) {
	ns, ok := Namespace(ctx)
	if !ok {
		return "", fmt.Errorf("namespace is required: %w", errdefs.ErrFailedPrecondition)
	}
	if err := Validate(ns); err != nil {
		return "", err
	}
	return ns, nil
}

// Validate returns errdefs.ErrInvalidArgument, naming the reason, when name is
// not a valid namespace name.
func Validate(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("namespace name must not be empty: %w", errdefs.ErrInvalidArgument)
	case len(name) > maxLength:
		return fmt.Errorf("namespace %q: longer than %d characters: %w", name, maxLength, errdefs.ErrInvalidArgument)
	case !nameRE.MatchString(name):
		return fmt.Errorf("namespace %q: must be letters and digits separated by single '.', '_' or '-': %w", name, errdefs.ErrInvalidArgument)
	}
	return nil
}

// FromEnv returns the namespace named by $STRATA_NAMESPACE, or Default.
func FromEnv() string {
	if ns := os.Getenv(EnvVar); ns != "" {
		return ns
	}
	return Default
}

// Store creates, labels, lists and deletes namespaces.
type Store interface {
	// Create returns errdefs.ErrAlreadyExists when name exists.
	Create(ctx context.Context, name string, labels map[string]string) error
	Labels(ctx context.Context, name string) (map[string]string, error)
	// SetLabel sets one label; an empty value removes it.
	SetLabel(ctx context.Context, name, key, value string) error
	List(ctx context.Context) ([]string, error)
	// Delete returns errdefs.ErrFailedPrecondition when the namespace still
	// holds anything.
	Delete(ctx context.Context, name string) error
}
