package labels

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

func TestUpdate(t *testing.T) {
	cur := map[string]string{"a": "1", "b": "2"}
	for _, tc := range []struct {
		name  string
		next  map[string]string
		paths []string
		want  string
		err   error
	}{
		{"none", map[string]string{"a": "9"}, nil, "map[a:1 b:2]", nil},
		{"one", map[string]string{"a": "9", "b": "ignored"}, []string{"labels.a"}, "map[a:9 b:2]", nil},
		{"remove", nil, []string{"labels.b"}, "map[a:1]", nil},
		{"all", map[string]string{"z": "26"}, []string{"labels"}, "map[z:26]", nil},
		{"clear", nil, []string{"labels"}, "map[]", nil},
		{"bad-path", nil, []string{"name"}, "", errdefs.ErrInvalidArgument},
		{"too-big", map[string]string{"k": strings.Repeat("v", MaxSize)}, []string{"labels.k"}, "", errdefs.ErrInvalidArgument},
	} {
		got, err := Update(cur, tc.next, tc.paths)
		if !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
			t.Fatalf("%s: Update = %v, want %v", tc.name, err, tc.err)
		}
		if tc.err == nil && fmt.Sprint(got) != tc.want {
			t.Errorf("%s: Update = %v, want %s", tc.name, got, tc.want)
		}
	}
	if fmt.Sprint(cur) != "map[a:1 b:2]" {
		t.Fatalf("Update changed its input: %v", cur)
	}
	if err := Validate(map[string]string{"": "x"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("Validate(empty key) = %v", err)
	}
}
