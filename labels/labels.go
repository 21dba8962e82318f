// Package labels holds the rules every labelled object in strata shares
// (blobs, images, leases, namespaces, snapshots): validation and updates by
// field path, as containerd defines them.
package labels

import (
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
)

// MaxSize bounds a label's key plus value, as containerd does.
const MaxSize = 4096

// Validate returns errdefs.ErrInvalidArgument for an empty key or a label
// longer than MaxSize bytes.
func Validate(labels map[string]string) error {
	for k, v := range labels {
		if k == "" {
			return fmt.Errorf("label key must not be empty: %w", errdefs.ErrInvalidArgument)
		}
		if len(k)+len(v) > MaxSize {
			return fmt.Errorf("label %q: key and value longer than %d bytes: %w", k, MaxSize, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// Update returns current changed by the labels of next that fieldpaths name:
// "labels" replaces them all, "labels.<key>" sets (or, with no value in
// next, removes) one. No field paths change nothing. Any other field path
// is errdefs.ErrInvalidArgument.
func Update(current, next map[string]string, fieldpaths []string) (map[string]string, error) {
	out := map[string]string{}
	for k, v := range current {
		out[k] = v
	}
	for _, fp := range fieldpaths {
		switch {
		case fp == "labels":
			out = map[string]string{}
			for k, v := range next {
				out[k] = v
			}
		case strings.HasPrefix(fp, "labels.") && len(fp) > len("labels."):
			key := fp[len("labels."):]
			if v, ok := next[key]; ok && v != "" {
				out[key] = v
			} else {
				delete(out, key)
			}
		default:
			return nil, fmt.Errorf("field path %q cannot be updated: %w", fp, errdefs.ErrInvalidArgument)
		}
	}
	if len(out) == 0 {
		out = nil
	}
	return out, Validate(out)
}
