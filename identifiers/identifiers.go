// Package identifiers is containerd's rule for the ids clients give
// (core/identifiers), which ctr and the CRI apply before they ask:
// letters and digits, separated by single '.', '_' or '-', at most 76
// characters. Such an id is one path component and never "." or "..",
// so shims and the runtime may name files and directories after it.
package identifiers

import (
	"fmt"
	"regexp"

	"github.com/containerd/errdefs"
)

// MaxLength is the longest id.
const MaxLength = 76

var re = regexp.MustCompile(`^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$`)

// Validate returns nil when id is an identifier, and otherwise
// errdefs.ErrInvalidArgument naming what it identifies ("container",
// "exec process"), the id and the rule it breaks.
func Validate(what, id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%s id must not be empty: %w", what, errdefs.ErrInvalidArgument)
	case len(id) > MaxLength:
		return fmt.Errorf("%s %q: id longer than %d characters: %w", what, id, MaxLength, errdefs.ErrInvalidArgument)
	case !re.MatchString(id):
		return fmt.Errorf("%s %q: id must be letters and digits separated by single '.', '_' or '-': %w", what, id, errdefs.ErrInvalidArgument)
	}
	return nil
}
