package metadatatest

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/strata-oci/strata/containers"
	"github.com/strata-oci/strata/namespaces"
)

// RunContainers runs the container store suite.
func RunContainers(t *testing.T, open Open) {
	run(t, open, []test{
		{"CreateGet", testContainerCreateGet},
		{"Invalid", testContainerInvalid},
		{"ListFilters", testContainerList},
		{"Update", testContainerUpdate},
		{"UpdateInvalid", testContainerUpdateInvalid},
		{"Delete", testContainerDelete},
		{"NamespaceIsolation", testContainerNamespaces},
	})
}

func anyOf(typeURL, value string) *anypb.Any {
	return &anypb.Any{TypeUrl: typeURL, Value: []byte(value)}
}

const specType = "types.containerd.io/opencontainers/runtime-spec/1/Spec"

func container(id string) containers.Container {
	return containers.Container{
		ID:          id,
		Labels:      map[string]string{"k": "v"},
		Image:       "docker.io/library/busybox:latest",
		Runtime:     containers.RuntimeInfo{Name: "io.containerd.runc.v2", Options: anyOf("containerd.runc.v1.Options", "opts")},
		Spec:        anyOf(specType, `{"ociVersion":"1.2.0"}`),
		Snapshotter: "overlayfs",
		SnapshotKey: id + "-root",
		SandboxID:   "pod1",
		Extensions:  map[string]*anypb.Any{"ext": anyOf("x.y/z", "e")},
	}
}

// sameContainer compares everything but the times.
func sameContainer(got, want containers.Container) bool {
	if got.ID != want.ID || got.Image != want.Image || got.Snapshotter != want.Snapshotter ||
		got.SnapshotKey != want.SnapshotKey || got.SandboxID != want.SandboxID ||
		got.Runtime.Name != want.Runtime.Name || !proto.Equal(got.Runtime.Options, want.Runtime.Options) ||
		!proto.Equal(got.Spec, want.Spec) || len(got.Labels) != len(want.Labels) || len(got.Extensions) != len(want.Extensions) {
		return false
	}
	for k, v := range want.Labels {
		if got.Labels[k] != v {
			return false
		}
	}
	for k, v := range want.Extensions {
		if !proto.Equal(got.Extensions[k], v) {
			return false
		}
	}
	return true
}

func testContainerCreateGet(ctx context.Context, t *testing.T, s Setup) {
	c := container("c1")
	created, err := s.Containers.Create(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if created.CreatedAt.IsZero() || !created.UpdatedAt.Equal(created.CreatedAt) {
		t.Fatalf("Create times = %v, %v", created.CreatedAt, created.UpdatedAt)
	}
	got, err := s.Containers.Get(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if !sameContainer(got, c) || !got.CreatedAt.Equal(created.CreatedAt) {
		t.Fatalf("Get = %+v, want %+v", got, created)
	}
	if _, err := s.Containers.Create(ctx, container("c1")); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("second Create = %v, want already exists", err)
	}
	if _, err := s.Containers.Get(ctx, "nothere"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Get(absent) = %v, want not found", err)
	}
	// The least a client gives: id, runtime name and spec.
	min := containers.Container{ID: "min", Runtime: containers.RuntimeInfo{Name: "io.containerd.runc.v2"}, Spec: anyOf(specType, "{}")}
	if _, err := s.Containers.Create(ctx, min); err != nil {
		t.Fatal(err)
	}
	got, err = s.Containers.Get(ctx, "min")
	if err != nil || !sameContainer(got, min) {
		t.Fatalf("Get(min) = %+v, %v; want %+v", got, err, min)
	}
}

func testContainerInvalid(ctx context.Context, t *testing.T, s Setup) {
	for _, tc := range []struct {
		name string
		edit func(*containers.Container)
	}{
		{"no id", func(c *containers.Container) { c.ID = "" }},
		{"bad id", func(c *containers.Container) { c.ID = "a/b" }},
		{"id too long", func(c *containers.Container) { c.ID = string(make([]byte, 77)) }},
		{"no runtime", func(c *containers.Container) { c.Runtime.Name = "" }},
		{"no spec", func(c *containers.Container) { c.Spec = nil }},
		{"key without snapshotter", func(c *containers.Container) { c.Snapshotter = "" }},
		{"empty label key", func(c *containers.Container) { c.Labels = map[string]string{"": "v"} }},
		{"label too long", func(c *containers.Container) { c.Labels = map[string]string{"k": string(make([]byte, 4096))} }},
		{"empty extension name", func(c *containers.Container) { c.Extensions = map[string]*anypb.Any{"": anyOf("a/b", "")} }},
	} {
		c := container("bad")
		tc.edit(&c)
		if _, err := s.Containers.Create(ctx, c); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Create(%s) = %v, want invalid argument", tc.name, err)
		}
	}
	if cs, err := s.Containers.List(ctx); err != nil || len(cs) != 0 {
		t.Fatalf("List after refused creates = %d containers, %v; want none", len(cs), err)
	}
}

func testContainerList(ctx context.Context, t *testing.T, s Setup) {
	for _, id := range []string{"b", "a", "c"} {
		c := container(id)
		c.Labels = map[string]string{"name": id}
		if id == "c" {
			c.Image = "other:1"
			c.Runtime.Name = "io.containerd.runsc.v1"
		}
		if _, err := s.Containers.Create(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		filters []string
		want    []string
	}{
		{nil, []string{"a", "b", "c"}},
		{[]string{"id==b"}, []string{"b"}},
		{[]string{"labels.name==a", "labels.name==c"}, []string{"a", "c"}},
		{[]string{`image==other:1`}, []string{"c"}},
		{[]string{`runtime.name==io.containerd.runc.v2`}, []string{"a", "b"}},
		{[]string{`snapshotter==overlayfs,id~=^[ab]$`}, []string{"a", "b"}},
		{[]string{"labels.absent"}, nil},
	} {
		cs, err := s.Containers.List(ctx, tc.filters...)
		if err != nil {
			t.Fatalf("List(%q): %v", tc.filters, err)
		}
		var ids []string
		for _, c := range cs {
			ids = append(ids, c.ID)
		}
		if !slices.Equal(ids, tc.want) {
			t.Errorf("List(%q) = %q, want %q", tc.filters, ids, tc.want)
		}
	}
	if _, err := s.Containers.List(ctx, "id=="); err == nil || !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("List(bad filter) = %v, want invalid argument", err)
	}
}

func testContainerUpdate(ctx context.Context, t *testing.T, s Setup) {
	orig := container("u")
	created, err := s.Containers.Create(ctx, orig)
	if err != nil {
		t.Fatal(err)
	}
	next := container("u")
	next.Labels = map[string]string{"k": "v2", "new": "1"}
	next.Image = "img:2"
	next.Spec = anyOf(specType, `{"ociVersion":"1.2.1"}`)
	next.Snapshotter = "native"
	next.SnapshotKey = "other"
	next.SandboxID = "pod2"
	next.Extensions = map[string]*anypb.Any{"ext2": anyOf("x.y/z", "f")}

	// One label, as ctr containers label does.
	got, err := s.Containers.Update(ctx, containers.Container{ID: "u", Labels: map[string]string{"new": "1"}}, "labels.new")
	if err != nil {
		t.Fatal(err)
	}
	want := orig
	want.Labels = map[string]string{"k": "v", "new": "1"}
	if !sameContainer(got, want) || !got.CreatedAt.Equal(created.CreatedAt) || got.UpdatedAt.Before(created.UpdatedAt) {
		t.Fatalf("Update(labels.new) = %+v, want %+v", got, want)
	}
	// A label path with no value removes the label.
	if got, err = s.Containers.Update(ctx, containers.Container{ID: "u"}, "labels.new"); err != nil {
		t.Fatal(err)
	}
	if _, ok := got.Labels["new"]; ok || got.Labels["k"] != "v" {
		t.Fatalf("Update(labels.new, no value) labels = %v, want k=v only", got.Labels)
	}
	// No field paths, as containerd's Go client updates: labels, spec,
	// image, snapshot key and extensions; the snapshotter and runtime
	// must not change.
	if _, err := s.Containers.Update(ctx, next); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("Update() changing the snapshotter = %v, want invalid argument", err)
	}
	next.Snapshotter = orig.Snapshotter
	next.Runtime.Name = "io.containerd.runsc.v1"
	if _, err := s.Containers.Update(ctx, next); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("Update() changing the runtime = %v, want invalid argument", err)
	}
	next.Runtime = orig.Runtime
	if got, err = s.Containers.Update(ctx, next); err != nil {
		t.Fatal(err)
	}
	want = next
	want.SandboxID = orig.SandboxID
	if !sameContainer(got, want) {
		t.Fatalf("Update() = %+v, want %+v", got, want)
	}
	// Named, the snapshotter and runtime change too.
	next.Snapshotter = "native"
	next.Runtime = containers.RuntimeInfo{Name: "io.containerd.runsc.v1"}
	if got, err = s.Containers.Update(ctx, next, "snapshotter", "runtime"); err != nil {
		t.Fatal(err)
	}
	want.Snapshotter, want.Runtime = "native", next.Runtime
	if !sameContainer(got, want) {
		t.Fatalf("Update(snapshotter, snapshotkey) = %+v, want %+v", got, want)
	}
	// One extension.
	if got, err = s.Containers.Update(ctx, containers.Container{ID: "u", Extensions: map[string]*anypb.Any{"e3": anyOf("a/b", "g")}}, "extensions.e3"); err != nil {
		t.Fatal(err)
	}
	if len(got.Extensions) != 2 || got.Extensions["e3"] == nil || got.Extensions["ext2"] == nil {
		t.Fatalf("Update(extensions.e3) extensions = %v, want ext2 and e3", got.Extensions)
	}
	stored, err := s.Containers.Get(ctx, "u")
	if err != nil || !sameContainer(stored, got) {
		t.Fatalf("Get after updates = %+v, %v; want %+v", stored, err, got)
	}
}

func testContainerUpdateInvalid(ctx context.Context, t *testing.T, s Setup) {
	orig, err := s.Containers.Create(ctx, container("u"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Containers.Update(ctx, container("absent")); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Update(absent) = %v, want not found", err)
	}
	for _, tc := range []struct {
		name  string
		c     containers.Container
		paths []string
	}{
		{"unknown field", container("u"), []string{"bogus"}},
		{"id", container("u"), []string{"id"}},
		{"no spec", containers.Container{ID: "u"}, []string{"spec"}},
		{"no runtime", containers.Container{ID: "u"}, []string{"runtime"}},
		{"key without snapshotter", containers.Container{ID: "u"}, []string{"snapshotter"}},
		{"bad label", containers.Container{ID: "u", Labels: map[string]string{"k": string(make([]byte, 5000))}}, []string{"labels.k"}},
	} {
		if _, err := s.Containers.Update(ctx, tc.c, tc.paths...); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Update(%s) = %v, want invalid argument", tc.name, err)
		}
	}
	got, err := s.Containers.Get(ctx, "u")
	if err != nil || !sameContainer(got, orig) || !got.UpdatedAt.Equal(orig.UpdatedAt) {
		t.Fatalf("after refused updates Get = %+v, %v; want it unchanged, %+v", got, err, orig)
	}
}

func testContainerDelete(ctx context.Context, t *testing.T, s Setup) {
	if _, err := s.Containers.Create(ctx, container("d")); err != nil {
		t.Fatal(err)
	}
	if err := s.Containers.Delete(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Containers.Get(ctx, "d"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Get after Delete = %v, want not found", err)
	}
	if err := s.Containers.Delete(ctx, "d"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("second Delete = %v, want not found", err)
	}
	// The id is free again.
	if _, err := s.Containers.Create(ctx, container("d")); err != nil {
		t.Fatal(err)
	}
}

func testContainerNamespaces(ctx context.Context, t *testing.T, s Setup) {
	if _, err := s.Containers.Create(ctx, container("same")); err != nil {
		t.Fatal(err)
	}
	other := namespaces.WithNamespace(ctx, "other")
	if _, err := s.Containers.Get(other, "same"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Get from another namespace = %v, want not found", err)
	}
	if _, err := s.Containers.Create(other, container("same")); err != nil {
		t.Fatalf("Create of the same id in another namespace: %v", err)
	}
	if err := s.Containers.Delete(other, "same"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Containers.Get(ctx, "same"); err != nil {
		t.Fatalf("Get after the other namespace's Delete: %v", err)
	}
	if cs, err := s.Containers.List(other); err != nil || len(cs) != 0 {
		t.Fatalf("List(other) = %d, %v; want none", len(cs), err)
	}
}
