package content_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	contentapi "github.com/containerd/containerd/api/services/content/v1"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"

	"github.com/strata-oci/strata/client"
	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/content/contenttest"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/server/servertest"
)

func TestContentWithCtr(t *testing.T) {
	d := servertest.Start(t)
	plugins := map[string]bool{}
	for _, l := range strings.Split(d.Ctr(t, "default", "plugins", "ls"), "\n") {
		if f := strings.Fields(l); len(f) >= 2 {
			plugins[f[0]+" "+f[1]] = true
		}
	}
	for _, p := range []string{"io.containerd.content.v1 content", "io.containerd.grpc.v1 content"} {
		if !plugins[p] {
			t.Errorf("ctr plugins ls lacks %s", p)
		}
	}

	data, desc := contenttest.Blob(1, 3<<20+5) // several Read chunks
	d.CtrIn(t, "default", data, "content", "ingest", "--expected-size", "3145733", "--expected-digest", desc.Digest.String(), "ingest-1")

	rows := servertest.CtrContentRows(t, d.Ctr(t, "default", "content", "ls"))
	if len(rows) != 1 || rows[0][0] != desc.Digest.String() || rows[0][1] != "3.146MB" {
		t.Fatalf("content ls rows = %q, want %s 3.146MB", rows, desc.Digest)
	}
	// Other namespaces do not see it.
	if rows := servertest.CtrContentRows(t, d.Ctr(t, "other", "content", "ls")); len(rows) != 0 {
		t.Fatalf("content ls in namespace other = %q, want none", rows)
	}

	if got := d.CtrIn(t, "default", nil, "content", "get", desc.Digest.String()); got != string(data) {
		t.Fatalf("content get returned %d bytes that differ from the %d ingested", len(got), len(data))
	}

	// Ingesting it again is not an error and adds nothing.
	d.CtrIn(t, "default", data, "content", "ingest", "--expected-digest", desc.Digest.String(), "ingest-2")

	d.Ctr(t, "default", "content", "label", desc.Digest.String(), "strata.test/a=1", "b=two")
	ctx := namespaces.WithNamespace(context.Background(), "default")
	info, err := d.Store.DB.ContentStore().Info(ctx, desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if info.Labels["strata.test/a"] != "1" || info.Labels["b"] != "two" || len(info.Labels) != 2 {
		t.Fatalf("labels after ctr content label = %v", info.Labels)
	}
	rows = servertest.CtrContentRows(t, d.Ctr(t, "default", "content", "ls"))
	// ctr prints the labels in map order.
	if len(rows) != 1 || !slices.Equal(sortedLabels(rows[0][len(rows[0])-1]), []string{"b=two", "strata.test/a=1"}) {
		t.Fatalf("content ls rows after label = %q", rows)
	}
	// A label with an empty value removes it.
	d.Ctr(t, "default", "content", "label", desc.Digest.String(), "b=")
	if info, _ = d.Store.DB.ContentStore().Info(ctx, desc.Digest); len(info.Labels) != 1 {
		t.Fatalf("labels after removing b = %v", info.Labels)
	}

	d.Ctr(t, "default", "content", "rm", desc.Digest.String())
	if rows := servertest.CtrContentRows(t, d.Ctr(t, "default", "content", "ls")); len(rows) != 0 {
		t.Fatalf("content ls after rm = %q, want none", rows)
	}
	if out, err := d.CtrResult("default", "content", "get", desc.Digest.String()); err == nil || !strings.Contains(out, "not found") {
		t.Fatalf("content get after rm = %v:\n%s\nwant not found", err, out)
	}
}

func TestContentActiveWithCtr(t *testing.T) {
	d := servertest.Start(t)
	cs := client.NewContentStore(d.Conn)
	ctx := namespaces.WithNamespace(context.Background(), "default")
	data, desc := contenttest.Blob(2, 10000)
	w, err := cs.Writer(ctx, content.WithRef("held-ingest"), content.WithDescriptor(desc))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Write(data[:4000]); err != nil {
		t.Fatal(err)
	}
	rows := servertest.CtrContentRows(t, d.Ctr(t, "default", "content", "active"))
	if len(rows) != 1 || rows[0][0] != "held-ingest" || rows[0][1] != "4kB" {
		t.Fatalf("content active rows = %q, want held-ingest 4kB", rows)
	}
	// ctr passes its argument on as a filter.
	if rows := servertest.CtrContentRows(t, d.Ctr(t, "default", "content", "active", "ref~=^held-")); len(rows) != 1 {
		t.Fatalf("content active ref~=^held- rows = %q, want 1", rows)
	}
	if rows := servertest.CtrContentRows(t, d.Ctr(t, "default", "content", "active", "ref~=^pull-")); len(rows) != 0 {
		t.Fatalf("content active ref~=^pull- rows = %q, want none", rows)
	}
	// The stream holds the ref. (ctr's ingest would wait for it forever:
	// its OpenWriter retries while the ref is locked.)
	if _, err := cs.Writer(ctx, content.WithRef("held-ingest")); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("second Writer(held-ingest) = %v, want unavailable", err)
	}
	if _, err := w.Write(data[4000:]); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx, desc.Size, desc.Digest, content.WithLabels(map[string]string{"k": "v"})); err != nil {
		t.Fatal(err)
	}
	if rows := servertest.CtrContentRows(t, d.Ctr(t, "default", "content", "active")); len(rows) != 0 {
		t.Fatalf("content active after commit = %q, want none", rows)
	}
	rows = servertest.CtrContentRows(t, d.Ctr(t, "default", "content", "ls"))
	if len(rows) != 1 || rows[0][0] != desc.Digest.String() || rows[0][len(rows[0])-1] != "k=v" {
		t.Fatalf("content ls after commit = %q, want %s with k=v", rows, desc.Digest)
	}
}

// TestContentProtocol covers what the client does not send on its own.
func TestContentProtocol(t *testing.T) {
	d := servertest.Start(t)
	api := contentapi.NewContentClient(d.Conn)
	data, desc := contenttest.Blob(3, 5000)
	cs := client.NewContentStore(d.Conn)
	ctx := namespaces.WithNamespace(context.Background(), "default")
	if err := content.WriteBlob(ctx, cs, "proto", bytes.NewReader(data), desc); err != nil {
		t.Fatal(err)
	}

	// No namespace: refused as containerd does.
	_, err := api.Info(context.Background(), &contentapi.InfoRequest{Digest: desc.Digest.String()})
	if err := errgrpc.ToNative(err); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("Info without namespace = %v, want failed precondition", err)
	}
	nctx := servertest.Context(context.Background(), "default")

	for _, tc := range []struct {
		name         string
		offset, size int64
		want         []byte
	}{
		{"all", 0, 0, data},
		{"middle", 100, 200, data[100:300]},
		{"past end", 4900, 1000, data[4900:]},
		{"negative offset", -5, 10, data[:10]},
		{"at end", 5000, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stream, err := api.Read(nctx, &contentapi.ReadContentRequest{Digest: desc.Digest.String(), Offset: tc.offset, Size: tc.size})
			if err != nil {
				t.Fatal(err)
			}
			var got []byte
			for {
				resp, err := stream.Recv()
				if err != nil {
					if err.Error() != "EOF" {
						t.Fatalf("Read(%d, %d) = %v", tc.offset, tc.size, err)
					}
					break
				}
				if want := max(tc.offset, 0) + int64(len(got)); resp.Offset != want {
					t.Fatalf("Read(%d, %d) response offset = %d, want %d", tc.offset, tc.size, resp.Offset, want)
				}
				got = append(got, resp.Data...)
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("Read(%d, %d) = %d bytes, want %d", tc.offset, tc.size, len(got), len(tc.want))
			}
		})
	}
	stream, err := api.Read(nctx, &contentapi.ReadContentRequest{Digest: desc.Digest.String(), Offset: 5001})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); !errors.Is(errgrpc.ToNative(err), errdefs.ErrOutOfRange) {
		t.Fatalf("Read past the end = %v, want out of range", err)
	}

	// A write stream must name its ref first, and may not skip ahead.
	ws, err := api.Write(nctx)
	if err != nil {
		t.Fatal(err)
	}
	ws.Send(&contentapi.WriteContentRequest{Action: contentapi.WriteAction_STAT})
	if _, err := ws.Recv(); !errors.Is(errgrpc.ToNative(err), errdefs.ErrInvalidArgument) {
		t.Fatalf("Write without ref = %v, want invalid argument", err)
	}
	ws, err = api.Write(nctx)
	if err != nil {
		t.Fatal(err)
	}
	ws.Send(&contentapi.WriteContentRequest{Action: contentapi.WriteAction_WRITE, Ref: "skip", Offset: 10, Data: []byte("x")})
	if _, err := ws.Recv(); err == nil || !strings.Contains(err.Error(), "beyond the current offset") {
		t.Fatalf("Write beyond the offset = %v, want out of range", err)
	}
	// Writing what is there with the expected digest: AlreadyExists.
	ws, err = api.Write(nctx)
	if err != nil {
		t.Fatal(err)
	}
	ws.Send(&contentapi.WriteContentRequest{Action: contentapi.WriteAction_STAT, Ref: "again", Expected: desc.Digest.String()})
	if _, err := ws.Recv(); !errors.Is(errgrpc.ToNative(err), errdefs.ErrAlreadyExists) {
		t.Fatalf("Write of a present blob = %v, want already exists", err)
	}
}

// sortedLabels splits ctr's "k=v,k=v" label column, sorted.
func sortedLabels(col string) []string {
	l := strings.Split(col, ",")
	slices.Sort(l)
	return l
}
