package identifiers

import (
	"errors"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"c1", true}, {"a.b_c-d", true}, {strings.Repeat("x", MaxLength), true},
		{"", false}, {"..", false}, {"../x", false}, {"a/b", false}, {"-a", false}, {"a--b", false}, {"a.", false},
		{strings.Repeat("x", MaxLength+1), false}, {"a b", false}, {"a\x00b", false},
	} {
		err := Validate("exec process", tc.id)
		if tc.ok != (err == nil) || (err != nil && (!errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "exec process"))) {
			t.Errorf("Validate(%q) = %v, want ok %v (or invalid argument naming what)", tc.id, err, tc.ok)
		}
	}
}
