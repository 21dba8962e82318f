package contenttest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/content"
)

func testDelete(ctx context.Context, t *testing.T, s Setup) {
	data, desc := Blob(11, 1000)
	mustWrite(ctx, t, s.Store, "del", data, desc)
	if err := s.Store.Delete(ctx, desc.Digest); err != nil {
		t.Fatal(err)
	}
	_, err := s.Store.Info(ctx, desc.Digest)
	wantErr(t, "Info after Delete", err, errdefs.ErrNotFound)
	_, err = s.Store.ReaderAt(ctx, desc)
	wantErr(t, "ReaderAt after Delete", err, errdefs.ErrNotFound)
	err = s.Store.Delete(ctx, desc.Digest)
	wantErr(t, "second Delete", err, errdefs.ErrNotFound)
}

func testWalk(ctx context.Context, t *testing.T, s Setup) {
	var descs []ocispec.Descriptor
	for i := 0; i < 5; i++ {
		data, desc := Blob(int64(20+i), 100*(i+1))
		mustWrite(ctx, t, s.Store, fmt.Sprintf("walk-%d", i), data, desc)
		descs = append(descs, desc)
	}
	count := func(fs ...string) int {
		t.Helper()
		n := 0
		if err := s.Store.Walk(ctx, func(content.Info) error { n++; return nil }, fs...); err != nil {
			t.Fatalf("Walk(%q) = %v", fs, err)
		}
		return n
	}
	for _, tc := range []struct {
		name    string
		filters []string
		want    int
	}{
		{"all", nil, 5},
		{"digest", []string{"digest==" + descs[2].Digest.String()}, 1},
		{"size", []string{"size==300"}, 1},
		{"or", []string{"size==100", "size==500"}, 2},
		{"and-none", []string{"size==100,digest==" + descs[1].Digest.String()}, 0},
		{"not", []string{"size!=100"}, 4},
	} {
		if got := count(tc.filters...); got != tc.want {
			t.Errorf("Walk(%q) found %d, want %d", tc.filters, got, tc.want)
		}
	}
	if err := s.Store.Walk(ctx, func(content.Info) error { return nil }, "size=="); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Walk with bad filter = %v, want invalid argument", err)
	}
	stop := errors.New("stop")
	if err := s.Store.Walk(ctx, func(content.Info) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("Walk returning error = %v, want it passed back", err)
	}
}

func testListStatuses(ctx context.Context, t *testing.T, s Setup) {
	for _, ref := range []string{"pull-a", "pull-b", "push-a"} {
		w, err := s.Store.Writer(ctx, content.WithRef(ref))
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(ref))
		w.Close()
	}
	sts, err := s.Store.ListStatuses(ctx, `ref~=^pull-`)
	if err != nil {
		t.Fatal(err)
	}
	if len(sts) != 2 {
		t.Fatalf("ListStatuses(ref~=^pull-) = %d, want 2", len(sts))
	}
	for _, st := range sts {
		if st.Offset != int64(len(st.Ref)) {
			t.Errorf("status %q offset %d, want %d", st.Ref, st.Offset, len(st.Ref))
		}
	}
}

func testBadInput(ctx context.Context, t *testing.T, s Setup) {
	_, err := s.Store.Writer(ctx)
	wantErr(t, "Writer without ref", err, errdefs.ErrInvalidArgument)
	_, err = s.Store.Info(ctx, "sha256:nothex")
	wantErr(t, "Info(bad digest)", err, errdefs.ErrInvalidArgument)
	_, err = s.Store.Writer(ctx, content.WithRef("x"), content.WithDescriptor(ocispec.Descriptor{Digest: "md5:abc"}))
	if err == nil {
		t.Fatal("Writer with a malformed expected digest succeeded")
	}
}

func testLabels(ctx context.Context, t *testing.T, s Setup) {
	data, desc := Blob(30, 500)
	mustWrite(ctx, t, s.Store, "labels", data, desc, content.WithLabels(map[string]string{"a": "1", "b": "2"}))
	info, err := s.Store.Info(ctx, desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if info.Labels["a"] != "1" || info.Labels["b"] != "2" {
		t.Fatalf("labels after commit = %v", info.Labels)
	}
	// One field path changes one label and leaves the rest.
	info, err = s.Store.Update(ctx, content.Info{Digest: desc.Digest, Labels: map[string]string{"a": "10", "b": "ignored", "c": "3"}}, "labels.a", "labels.c")
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"a": "10", "b": "2", "c": "3"}; fmt.Sprint(info.Labels) != fmt.Sprint(want) {
		t.Fatalf("Update(labels.a, labels.c) labels = %v, want %v", info.Labels, want)
	}
	// A field path with no value removes the label.
	info, err = s.Store.Update(ctx, content.Info{Digest: desc.Digest}, "labels.b")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := info.Labels["b"]; ok {
		t.Fatalf("labels.b still present after removal: %v", info.Labels)
	}
	// "labels" replaces the whole set.
	info, err = s.Store.Update(ctx, content.Info{Digest: desc.Digest, Labels: map[string]string{"z": "26"}}, "labels")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(info.Labels) != "map[z:26]" {
		t.Fatalf("Update(labels) = %v, want map[z:26]", info.Labels)
	}
	if info.UpdatedAt.Before(info.CreatedAt) {
		t.Fatalf("UpdatedAt %v before CreatedAt %v", info.UpdatedAt, info.CreatedAt)
	}
	_, err = s.Store.Update(ctx, content.Info{Digest: desc.Digest}, "size")
	wantErr(t, "Update(size)", err, errdefs.ErrInvalidArgument)
	_, err = s.Store.Update(ctx, content.Info{Digest: desc.Digest, Labels: map[string]string{"big": string(make([]byte, 5000))}}, "labels.big")
	wantErr(t, "Update with oversized label", err, errdefs.ErrInvalidArgument)
	_, other := Blob(31, 10)
	_, err = s.Store.Update(ctx, content.Info{Digest: other.Digest}, "labels")
	wantErr(t, "Update(absent blob)", err, errdefs.ErrNotFound)

	n := 0
	if err := s.Store.Walk(ctx, func(content.Info) error { n++; return nil }, `labels."z"==26`); err != nil || n != 1 {
		t.Fatalf(`Walk(labels."z"==26) = %d, %v; want 1`, n, err)
	}
}
