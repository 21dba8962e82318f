package contenttest

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/namespaces"
)

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func testNamespaces(ctx context.Context, t *testing.T, s Setup) {
	a := namespaces.WithNamespace(ctx, "ns-a")
	b := namespaces.WithNamespace(ctx, "ns-b")
	data, desc := Blob(40, 1<<20)
	mustWrite(a, t, s.Store, "shared", data, desc, content.WithLabels(map[string]string{"owner": "a"}))
	_, err := s.Store.Info(b, desc.Digest)
	wantErr(t, "Info in other namespace", err, errdefs.ErrNotFound)
	_, err = s.Store.ReaderAt(b, desc)
	wantErr(t, "ReaderAt in other namespace", err, errdefs.ErrNotFound)

	// The digest is on disk: namespace b gets it without the data moving.
	cr := &countingReader{r: bytes.NewReader(data)}
	if err := content.WriteBlob(b, s.Store, "shared", cr, desc); err != nil {
		t.Fatal(err)
	}
	if cr.n != 0 {
		t.Fatalf("writing a present blob into another namespace read %d bytes, want 0", cr.n)
	}
	info, err := s.Store.Info(b, desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Labels) != 0 {
		t.Fatalf("labels leaked across namespaces: %v", info.Labels)
	}
	if _, err := s.Store.Update(b, content.Info{Digest: desc.Digest, Labels: map[string]string{"owner": "b"}}, "labels.owner"); err != nil {
		t.Fatal(err)
	}
	if ia, _ := s.Store.Info(a, desc.Digest); ia.Labels["owner"] != "a" {
		t.Fatalf("namespace a's label changed by b: %v", ia.Labels)
	}
	// Ingests are per namespace too.
	w, err := s.Store.Writer(a, content.WithRef("same-ref"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w2, err := s.Store.Writer(b, content.WithRef("same-ref"))
	if err != nil {
		t.Fatalf("same ref in another namespace: %v", err)
	}
	w2.Close()
	if sts, _ := s.Store.ListStatuses(namespaces.WithNamespace(ctx, "ns-c")); len(sts) != 0 {
		t.Fatalf("namespace c sees %d ingests, want 0", len(sts))
	}

	if err := s.Store.Delete(a, desc.Digest); err != nil {
		t.Fatal(err)
	}
	if got := readAll(b, t, s.Store, desc); !bytes.Equal(got, data) {
		t.Fatal("namespace b lost the blob when a deleted its record")
	}
}
