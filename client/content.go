package client

import (
	"context"
	"errors"
	"fmt"
	"io"

	contentapi "github.com/containerd/containerd/api/services/content/v1"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/leases"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/protoconv"
)

// contentChunk bounds the data of one Write message, well below the
// daemon's message limit.
const contentChunk = 1 << 20

// ContentStore is a content.Store over the content service. Every call
// needs a namespace on its context (namespaces.WithNamespace).
type ContentStore struct {
	client contentapi.ContentClient
}

var _ content.Store = (*ContentStore)(nil)

// NewContentStore returns a content store that calls the daemon on conn.
func NewContentStore(conn grpc.ClientConnInterface) *ContentStore {
	return &ContentStore{client: contentapi.NewContentClient(conn)}
}

// contentContext returns ctx with its namespace (and lease, if any) in the
// outgoing gRPC metadata, replacing those set there before. It returns
// errdefs.ErrFailedPrecondition when ctx has no namespace.
func contentContext(ctx context.Context) (context.Context, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	md, _ := metadata.FromOutgoingContext(ctx)
	md = md.Copy()
	md.Set(namespaces.GRPCHeader, ns)
	if id, ok := leases.FromContext(ctx); ok {
		md.Set(leases.GRPCHeader, id)
	}
	return metadata.NewOutgoingContext(ctx, md), nil
}

// Info describes blob dgst; errdefs.ErrNotFound when the namespace does
// not have it.
func (s *ContentStore) Info(ctx context.Context, dgst digest.Digest) (content.Info, error) {
	ctx, err := contentContext(ctx)
	if err != nil {
		return content.Info{}, err
	}
	resp, err := s.client.Info(ctx, &contentapi.InfoRequest{Digest: dgst.String()})
	if err != nil {
		return content.Info{}, fmt.Errorf("content info %s: %w", dgst, errgrpc.ToNative(err))
	}
	return protoconv.ContentInfoFromProto(resp.Info), nil
}

// Update changes the labels named by fieldpaths ("labels",
// "labels.<key>"; none: all labels) of blob info.Digest.
func (s *ContentStore) Update(ctx context.Context, info content.Info, fieldpaths ...string) (content.Info, error) {
	ctx, err := contentContext(ctx)
	if err != nil {
		return content.Info{}, err
	}
	req := &contentapi.UpdateRequest{Info: protoconv.ContentInfoToProto(info)}
	if len(fieldpaths) > 0 {
		req.UpdateMask = &fieldmaskpb.FieldMask{Paths: fieldpaths}
	}
	resp, err := s.client.Update(ctx, req)
	if err != nil {
		return content.Info{}, fmt.Errorf("update content %s: %w", info.Digest, errgrpc.ToNative(err))
	}
	return protoconv.ContentInfoFromProto(resp.Info), nil
}

// Walk calls fn for each blob matching any of filters; an error from fn
// stops the walk and is returned as it is.
func (s *ContentStore) Walk(ctx context.Context, fn content.WalkFunc, filters ...string) error {
	ctx, err := contentContext(ctx)
	if err != nil {
		return err
	}
	if err := checkFilters(filters); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := s.client.List(ctx, &contentapi.ListContentRequest{Filters: filters})
	if err != nil {
		return fmt.Errorf("list content: %w", errgrpc.ToNative(err))
	}
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("list content: %w", errgrpc.ToNative(err))
		}
		for _, info := range resp.Info {
			if err := fn(protoconv.ContentInfoFromProto(info)); err != nil {
				return err
			}
		}
	}
}

// Delete removes the namespace's record of blob dgst.
func (s *ContentStore) Delete(ctx context.Context, dgst digest.Digest) error {
	ctx, err := contentContext(ctx)
	if err != nil {
		return err
	}
	if _, err := s.client.Delete(ctx, &contentapi.DeleteContentRequest{Digest: dgst.String()}); err != nil {
		return fmt.Errorf("delete content %s: %w", dgst, errgrpc.ToNative(err))
	}
	return nil
}

// Status describes ingest ref; errdefs.ErrNotFound when there is none.
func (s *ContentStore) Status(ctx context.Context, ref string) (content.Status, error) {
	ctx, err := contentContext(ctx)
	if err != nil {
		return content.Status{}, err
	}
	resp, err := s.client.Status(ctx, &contentapi.StatusRequest{Ref: ref})
	if err != nil {
		return content.Status{}, fmt.Errorf("ingest status %q: %w", ref, errgrpc.ToNative(err))
	}
	return protoconv.ContentStatusFromProto(resp.Status), nil
}

// ListStatuses returns the ingests matching any of filters (field: ref).
func (s *ContentStore) ListStatuses(ctx context.Context, filters ...string) ([]content.Status, error) {
	ctx, err := contentContext(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkFilters(filters); err != nil {
		return nil, err
	}
	resp, err := s.client.ListStatuses(ctx, &contentapi.ListStatusesRequest{Filters: filters})
	if err != nil {
		return nil, fmt.Errorf("list ingests: %w", errgrpc.ToNative(err))
	}
	var out []content.Status
	for _, st := range resp.Statuses {
		out = append(out, protoconv.ContentStatusFromProto(st))
	}
	return out, nil
}

// Abort drops ingest ref; errdefs.ErrUnavailable while a writer holds it.
func (s *ContentStore) Abort(ctx context.Context, ref string) error {
	ctx, err := contentContext(ctx)
	if err != nil {
		return err
	}
	if _, err := s.client.Abort(ctx, &contentapi.AbortRequest{Ref: ref}); err != nil {
		return fmt.Errorf("abort ingest %q: %w", ref, errgrpc.ToNative(err))
	}
	return nil
}

// ReaderAt opens blob desc.Digest; errdefs.ErrNotFound when the namespace
// does not have it. Each ReadAt is one Read call bound to ctx.
func (s *ContentStore) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	info, err := s.Info(ctx, desc.Digest)
	if err != nil {
		return nil, err
	}
	ctx, err = contentContext(ctx)
	if err != nil {
		return nil, err
	}
	return &contentReaderAt{ctx: ctx, client: s.client, digest: desc.Digest, size: info.Size}, nil
}

// contentReaderAt reads a blob through Read calls.
type contentReaderAt struct {
	// ctx is ReaderAt's, for the calls ReadAt makes: io.ReaderAt has none.
	ctx    context.Context
	client contentapi.ContentClient
	digest digest.Digest
	size   int64
}

func (r *contentReaderAt) Size() int64 { return r.size }

func (r *contentReaderAt) Close() error { return nil }

// ReadAt reads len(p) bytes at off, or up to the end of the blob and
// io.EOF.
func (r *contentReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read %s at %d: negative offset: %w", r.digest, off, errdefs.ErrInvalidArgument)
	}
	if off >= r.size {
		return 0, io.EOF
	}
	want := int(min(int64(len(p)), r.size-off))
	ctx, cancel := context.WithCancel(r.ctx)
	defer cancel()
	stream, err := r.client.Read(ctx, &contentapi.ReadContentRequest{Digest: r.digest.String(), Offset: off, Size: int64(want)})
	if err != nil {
		return 0, fmt.Errorf("read %s at %d: %w", r.digest, off, errgrpc.ToNative(err))
	}
	n := 0
	for n < want {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return n, fmt.Errorf("read %s at %d: %w", r.digest, off+int64(n), errgrpc.ToNative(err))
		}
		// Responses come in order; their offsets are not relied on
		// because containerd counts them from the start of the read.
		if len(resp.Data) > want-n {
			return n, fmt.Errorf("read %s at %d: daemon sent %d bytes more than asked: %w", r.digest, off, len(resp.Data)-(want-n), errdefs.ErrDataLoss)
		}
		n += copy(p[n:], resp.Data)
	}
	switch {
	case n < want:
		return n, fmt.Errorf("read %s at %d: stream ended after %d of %d bytes: %w", r.digest, off, n, want, io.ErrUnexpectedEOF)
	case n < len(p):
		return n, io.EOF
	}
	return n, nil
}

// Writer opens a Write stream for the ingest named by content.WithRef,
// which holds the ref until Close or a successful Commit. It returns
// errdefs.ErrUnavailable when another writer holds the ref and
// errdefs.ErrAlreadyExists when content.WithDescriptor names a blob the
// namespace has.
func (s *ContentStore) Writer(ctx context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	wo, err := content.ParseWriterOpts(opts...)
	if err != nil {
		return nil, err
	}
	ctx, err = contentContext(ctx)
	if err != nil {
		return nil, err
	}
	w := &contentWriter{ctx: ctx, client: s.client, ref: wo.Ref, desc: wo.Desc}
	resp, err := w.open()
	if err != nil {
		return nil, err
	}
	w.offset = resp.Offset
	return w, nil
}

// contentWriter is one ingest written through a Write stream. A failed
// commit ends the stream on the daemon's side (the ingest stays); the next
// call opens a new one for the same ref, so the writer carries on as a
// local one does.
type contentWriter struct {
	// ctx is Writer's: the stream outlives that call and io.Writer has
	// no context.
	ctx    context.Context
	client contentapi.ContentClient
	ref    string
	desc   ocispec.Descriptor

	stream contentapi.Content_WriteClient // nil between streams
	cancel context.CancelFunc
	offset int64
	digest digest.Digest
	closed bool
}

var _ content.Writer = (*contentWriter)(nil)

// open starts a stream for the ref and reads its status.
func (w *contentWriter) open() (*contentapi.WriteContentResponse, error) {
	ctx, cancel := context.WithCancel(w.ctx)
	stream, err := w.client.Write(ctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("open ingest %q: %w", w.ref, errgrpc.ToNative(err))
	}
	w.stream, w.cancel = stream, cancel
	req := &contentapi.WriteContentRequest{Action: contentapi.WriteAction_STAT, Ref: w.ref, Total: w.desc.Size}
	if w.desc.Digest != "" {
		req.Expected = w.desc.Digest.String()
	}
	resp, err := w.exchange(req)
	if err != nil {
		return nil, fmt.Errorf("open ingest %q: %w", w.ref, err)
	}
	return resp, nil
}

// send exchanges req for the daemon's answer, opening a stream first when
// the last one ended.
func (w *contentWriter) send(req *contentapi.WriteContentRequest) (*contentapi.WriteContentResponse, error) {
	if w.closed {
		return nil, fmt.Errorf("ingest %q: writer is closed: %w", w.ref, errdefs.ErrFailedPrecondition)
	}
	if w.stream == nil {
		if _, err := w.open(); err != nil {
			return nil, err
		}
	}
	return w.exchange(req)
}

// exchange sends req on the open stream and receives the answer; an error
// ends the stream.
func (w *contentWriter) exchange(req *contentapi.WriteContentRequest) (*contentapi.WriteContentResponse, error) {
	// A Send that fails with io.EOF means the daemon ended the stream;
	// Recv says why.
	if err := w.stream.Send(req); err != nil && !errors.Is(err, io.EOF) {
		w.drop()
		return nil, errgrpc.ToNative(err)
	}
	resp, err := w.stream.Recv()
	if err != nil {
		w.drop()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("ingest %q: daemon ended the stream: %w", w.ref, errdefs.ErrUnavailable)
		}
		return nil, errgrpc.ToNative(err)
	}
	if resp.Digest != "" {
		w.digest = digest.Digest(resp.Digest)
	}
	return resp, nil
}

// drop forgets the stream after it ended.
func (w *contentWriter) drop() {
	if w.cancel != nil {
		w.cancel()
	}
	w.stream, w.cancel = nil, nil
}

// finish closes the sending side and waits for the daemon to end the
// stream, so that the ref is free when it returns.
func (w *contentWriter) finish() error {
	if w.stream == nil {
		return nil
	}
	defer w.drop()
	if err := w.stream.CloseSend(); err != nil {
		return errgrpc.ToNative(err)
	}
	for {
		if _, err := w.stream.Recv(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return errgrpc.ToNative(err)
		}
	}
}

func (w *contentWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), contentChunk)]
		resp, err := w.send(&contentapi.WriteContentRequest{Action: contentapi.WriteAction_WRITE, Offset: w.offset, Data: chunk})
		if err != nil {
			return written, fmt.Errorf("write ingest %q at %d: %w", w.ref, w.offset, err)
		}
		n := int(resp.Offset - w.offset)
		w.offset = resp.Offset
		if n != len(chunk) {
			return written + max(n, 0), fmt.Errorf("write ingest %q: daemon took %d of %d bytes: %w", w.ref, n, len(chunk), io.ErrShortWrite)
		}
		written += n
		p = p[n:]
	}
	return written, nil
}

func (w *contentWriter) Digest() digest.Digest { return w.digest }

// Commit verifies size and expected on the daemon and makes the blob
// visible; see content.Writer.
func (w *contentWriter) Commit(ctx context.Context, size int64, expected digest.Digest, opts ...content.Opt) error {
	var info content.Info
	for _, o := range opts {
		if err := o(&info); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	req := &contentapi.WriteContentRequest{
		Action: contentapi.WriteAction_COMMIT,
		Offset: w.offset,
		Total:  size,
		Labels: info.Labels,
	}
	if expected != "" {
		req.Expected = expected.String()
	}
	if w.stream == nil && !w.closed {
		if _, err := w.open(); err != nil {
			return fmt.Errorf("commit ingest %q: %w", w.ref, err)
		}
	}
	// The stream lives on the writer's context; ctx may end it sooner.
	if w.cancel != nil {
		stop := context.AfterFunc(ctx, w.cancel)
		defer stop()
	}
	resp, err := w.send(req)
	if err != nil {
		return fmt.Errorf("commit ingest %q: %w", w.ref, err)
	}
	if err := w.finish(); err != nil {
		return fmt.Errorf("commit ingest %q: %w", w.ref, err)
	}
	w.closed = true
	w.offset = resp.Offset
	if size > 0 && resp.Offset != size {
		return fmt.Errorf("commit ingest %q: daemon committed %d bytes, want %d: %w", w.ref, resp.Offset, size, errdefs.ErrDataLoss)
	}
	if expected != "" && w.digest != expected {
		return fmt.Errorf("commit ingest %q: daemon committed %s, want %s: %w", w.ref, w.digest, expected, errdefs.ErrDataLoss)
	}
	return nil
}

func (w *contentWriter) Status() (content.Status, error) {
	resp, err := w.send(&contentapi.WriteContentRequest{Action: contentapi.WriteAction_STAT})
	if err != nil {
		return content.Status{}, fmt.Errorf("ingest status %q: %w", w.ref, err)
	}
	return content.Status{
		Ref:       w.ref,
		Offset:    resp.Offset,
		Total:     resp.Total,
		Expected:  w.desc.Digest,
		StartedAt: protoconv.TimeFromProto(resp.StartedAt),
		UpdatedAt: protoconv.TimeFromProto(resp.UpdatedAt),
	}, nil
}

// Truncate drops what follows size bytes; size must not exceed what was
// written.
func (w *contentWriter) Truncate(size int64) error {
	resp, err := w.send(&contentapi.WriteContentRequest{Action: contentapi.WriteAction_WRITE, Offset: size})
	if err != nil {
		return fmt.Errorf("truncate ingest %q to %d: %w", w.ref, size, err)
	}
	w.offset = resp.Offset
	return nil
}

// Close ends the stream and waits for the daemon to release the ref; the
// ingest stays unless it was committed.
func (w *contentWriter) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	if err := w.finish(); err != nil {
		return fmt.Errorf("close ingest %q: %w", w.ref, err)
	}
	return nil
}
