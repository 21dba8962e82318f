package engine

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/strata-oci/strata/containers"
	"github.com/strata-oci/strata/labels"
	"github.com/strata-oci/strata/leases"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/testutil/storetest"
	"github.com/strata-oci/strata/wiring"
)

// TestResolve: full IDs, names and unique ID prefixes resolve as in
// docker; an ambiguous prefix names the IDs it starts; a name taken is
// refused before anything is made.
func TestResolve(t *testing.T) {
	st, _ := storetest.Open(t)
	ctx := namespaces.WithNamespace(context.Background(), "test")
	cs := st.DB.Containers()
	for id, name := range map[string]string{"abc111": "web", "abc222": "db", "def333": "abc222x"} {
		if _, err := cs.Create(ctx, containers.Container{ID: id, Labels: map[string]string{labels.ContainerName: name},
			Runtime: containers.RuntimeInfo{Name: "io.containerd.runc.v2"}, Spec: &anypb.Any{TypeUrl: SpecTypeURL, Value: []byte("{}")}}); err != nil {
			t.Fatal(err)
		}
	}
	e := New(Config{Store: testStore{st}})
	for _, tc := range []struct{ ref, want string }{
		{"abc111", "abc111"}, {"web", "abc111"}, {"abc2", "abc222"}, {"d", "def333"}, {"abc222x", "def333"},
	} {
		c, err := e.Resolve(ctx, tc.ref)
		if err != nil || c.ID != tc.want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", tc.ref, c.ID, err, tc.want)
		}
	}
	if _, err := e.Resolve(ctx, "abc"); !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "abc111") || !strings.Contains(err.Error(), "abc222") {
		t.Errorf("Resolve(abc) = %v, want ambiguous naming both", err)
	}
	if _, err := e.Resolve(ctx, "nosuch"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Resolve(nosuch) = %v, want not found", err)
	}
	before, _ := cs.List(ctx)
	if _, err := e.Create(ctx, CreateOptions{Name: "web", Network: NetworkNone}); !errors.Is(err, errdefs.ErrAlreadyExists) || !strings.Contains(err.Error(), `"web"`) {
		t.Errorf("Create with a name taken = %v, want already exists", err)
	}
	if _, err := e.Create(ctx, CreateOptions{Name: "bad name", Network: NetworkNone}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Create with a bad name = %v, want invalid argument", err)
	}
	if after, _ := cs.List(ctx); len(after) != len(before) {
		t.Errorf("containers after refused creates: %d, want %d", len(after), len(before))
	}
}

// testStore is a store opened in the test as the engine takes it.
type testStore struct{ *wiring.Store }

func (s testStore) Containers() containers.Store { return s.DB.Containers() }
func (s testStore) Leases() leases.Manager       { return s.DB.Leases() }
