// Package content serves containerd.services.content.v1 over strata's
// content store: blobs read in chunks, ingests written over one stream
// each, infos listed in batches.
package content

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	apievents "github.com/containerd/containerd/api/events"
	contentapi "github.com/containerd/containerd/api/services/content/v1"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/events"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/protoconv"
)

// contentChunk bounds the data of one Read response, as containerd's.
const contentChunk = 1 << 20

// contentListBatch is the most infos one List response carries.
const contentListBatch = 100

// contentListBytes bounds the encoded infos of one List response, far
// below the message limit, so that many labels cannot make one too big.
const contentListBytes = 1 << 20

// Service serves containerd.services.content.v1 over a namespaced
// content store (the metadata database's). Errors go back as they are:
// the server's interceptor maps them to codes.
type Service struct {
	contentapi.UnimplementedContentServer
	store  content.Store
	events events.Publisher
	log    *slog.Logger
}

// New returns the service over store, telling ev about deletes (nil: no
// events) and log about events it could not publish (nil: discarded).
func New(store content.Store, ev events.Publisher, log *slog.Logger) *Service {
	return &Service{store: store, events: ev, log: log}
}

// Register serves the service on g.
func (c *Service) Register(g *grpc.Server) { contentapi.RegisterContentServer(g, c) }

// contentDigest parses a digest from a request.
func contentDigest(s string) (digest.Digest, error) {
	d, err := digest.Parse(s)
	if err != nil {
		return "", fmt.Errorf("digest %q: %w: %w", s, err, errdefs.ErrInvalidArgument)
	}
	return d, nil
}

func (c *Service) Info(ctx context.Context, req *contentapi.InfoRequest) (*contentapi.InfoResponse, error) {
	if _, err := namespaces.NamespaceRequired(ctx); err != nil {
		return nil, err
	}
	d, err := contentDigest(req.Digest)
	if err != nil {
		return nil, err
	}
	info, err := c.store.Info(ctx, d)
	if err != nil {
		return nil, err
	}
	return &contentapi.InfoResponse{Info: protoconv.ContentInfoToProto(info)}, nil
}

func (c *Service) Update(ctx context.Context, req *contentapi.UpdateRequest) (*contentapi.UpdateResponse, error) {
	if _, err := namespaces.NamespaceRequired(ctx); err != nil {
		return nil, err
	}
	if req.Info == nil {
		return nil, fmt.Errorf("update content: info is required: %w", errdefs.ErrInvalidArgument)
	}
	if _, err := contentDigest(req.Info.Digest); err != nil {
		return nil, err
	}
	info, err := c.store.Update(ctx, protoconv.ContentInfoFromProto(req.Info), req.UpdateMask.GetPaths()...)
	if err != nil {
		return nil, err
	}
	return &contentapi.UpdateResponse{Info: protoconv.ContentInfoToProto(info)}, nil
}

func (c *Service) List(req *contentapi.ListContentRequest, stream contentapi.Content_ListServer) error {
	ctx := stream.Context()
	if _, err := namespaces.NamespaceRequired(ctx); err != nil {
		return err
	}
	var (
		batch []*contentapi.Info
		size  int
	)
	err := c.store.Walk(ctx, func(info content.Info) error {
		pi := protoconv.ContentInfoToProto(info)
		batch = append(batch, pi)
		size += proto.Size(pi)
		if len(batch) < contentListBatch && size < contentListBytes {
			return nil
		}
		err := stream.Send(&contentapi.ListContentResponse{Info: batch})
		batch, size = nil, 0
		return err
	}, req.Filters...)
	if err != nil {
		return err
	}
	if len(batch) > 0 {
		return stream.Send(&contentapi.ListContentResponse{Info: batch})
	}
	return nil
}

func (c *Service) Delete(ctx context.Context, req *contentapi.DeleteContentRequest) (*emptypb.Empty, error) {
	if _, err := namespaces.NamespaceRequired(ctx); err != nil {
		return nil, err
	}
	d, err := contentDigest(req.Digest)
	if err != nil {
		return nil, err
	}
	if err := c.store.Delete(ctx, d); err != nil {
		return nil, err
	}
	events.Tell(ctx, c.events, c.log, events.TopicContentDelete, &apievents.ContentDelete{Digest: d.String()})
	return &emptypb.Empty{}, nil
}

// Read streams req.Size bytes (all when 0 or past the end) from req.Offset
// in chunks of at most 1 MiB. Each response's offset is where its data sits
// in the blob.
func (c *Service) Read(req *contentapi.ReadContentRequest, stream contentapi.Content_ReadServer) error {
	ctx := stream.Context()
	if _, err := namespaces.NamespaceRequired(ctx); err != nil {
		return err
	}
	d, err := contentDigest(req.Digest)
	if err != nil {
		return err
	}
	info, err := c.store.Info(ctx, d)
	if err != nil {
		return err
	}
	ra, err := c.store.ReaderAt(ctx, ocispec.Descriptor{Digest: d, Size: info.Size})
	if err != nil {
		return err
	}
	defer ra.Close()
	size := ra.Size()
	// Negative offsets read from the start and sizes past the end stop at
	// the end, as containerd does.
	off := max(req.Offset, 0)
	if off > size {
		return fmt.Errorf("read %s at %d: past its %d bytes: %w", d, off, size, errdefs.ErrOutOfRange)
	}
	end := size
	if req.Size > 0 && req.Size < size-off {
		end = off + req.Size
	}
	buf := make([]byte, min(end-off, contentChunk))
	for off < end {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := ra.ReadAt(buf[:min(end-off, int64(len(buf)))], off)
		if n > 0 {
			if serr := stream.Send(&contentapi.ReadContentResponse{Offset: off, Data: buf[:n]}); serr != nil {
				return serr
			}
			off += int64(n)
		}
		if err != nil && !(errors.Is(err, io.EOF) && off == end) {
			return fmt.Errorf("read %s at %d: %w", d, off, err)
		}
	}
	return nil
}

func (c *Service) Status(ctx context.Context, req *contentapi.StatusRequest) (*contentapi.StatusResponse, error) {
	if _, err := namespaces.NamespaceRequired(ctx); err != nil {
		return nil, err
	}
	st, err := c.store.Status(ctx, req.Ref)
	if err != nil {
		return nil, err
	}
	return &contentapi.StatusResponse{Status: protoconv.ContentStatusToProto(st)}, nil
}

func (c *Service) ListStatuses(ctx context.Context, req *contentapi.ListStatusesRequest) (*contentapi.ListStatusesResponse, error) {
	if _, err := namespaces.NamespaceRequired(ctx); err != nil {
		return nil, err
	}
	sts, err := c.store.ListStatuses(ctx, req.Filters...)
	if err != nil {
		return nil, err
	}
	resp := &contentapi.ListStatusesResponse{}
	for _, st := range sts {
		resp.Statuses = append(resp.Statuses, protoconv.ContentStatusToProto(st))
	}
	return resp, nil
}

func (c *Service) Abort(ctx context.Context, req *contentapi.AbortRequest) (*emptypb.Empty, error) {
	if _, err := namespaces.NamespaceRequired(ctx); err != nil {
		return nil, err
	}
	if err := c.store.Abort(ctx, req.Ref); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

// Write runs one ingest session. The first message names the ref (and
// may state total and expected digest); the store's writer for it, and so
// the ref's lock, is held until the client closes its side, a commit
// succeeds, or an error ends the stream. Every message is answered with
// the ingest's offset and digest so far:
//
//	STAT    status only
//	WRITE   data appended at offset; an offset below the current one
//	        truncates to it first, one above it is ErrOutOfRange
//	COMMIT  like WRITE, then commit with total, expected and labels; the
//	        stream ends after the answer
//
// Total and expected may be restated on any message; the last ones count.
func (c *Service) Write(stream contentapi.Content_WriteServer) error {
	ctx := stream.Context()
	if _, err := namespaces.NamespaceRequired(ctx); err != nil {
		return err
	}
	req, err := stream.Recv()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return err
	}
	if req.Ref == "" {
		return fmt.Errorf("write content: first message must name the ingest ref: %w", errdefs.ErrInvalidArgument)
	}
	ws := contentWriteSession{ref: req.Ref, total: req.Total}
	if req.Expected != "" {
		if ws.expected, err = contentDigest(req.Expected); err != nil {
			return fmt.Errorf("write %q: %w", req.Ref, err)
		}
	}
	w, err := c.store.Writer(ctx, content.WithRef(ws.ref), content.WithDescriptor(ocispec.Descriptor{Size: ws.total, Digest: ws.expected}))
	if err != nil {
		return err
	}
	defer w.Close()
	ws.w = w
	for {
		resp, err := ws.handle(ctx, req)
		if err != nil {
			return err
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
		if req.Action == contentapi.WriteAction_COMMIT {
			return nil
		}
		if req, err = stream.Recv(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// contentWriteSession is the state of one Write stream.
type contentWriteSession struct {
	w        content.Writer
	ref      string
	total    int64
	expected digest.Digest
}

// handle carries out one message of a Write stream and returns its answer.
func (ws *contentWriteSession) handle(ctx context.Context, req *contentapi.WriteContentRequest) (*contentapi.WriteContentResponse, error) {
	if req.Ref != "" && req.Ref != ws.ref {
		return nil, fmt.Errorf("write %q: message names ref %q: %w", ws.ref, req.Ref, errdefs.ErrInvalidArgument)
	}
	if req.Expected != "" {
		d, err := contentDigest(req.Expected)
		if err != nil {
			return nil, fmt.Errorf("write %q: %w", ws.ref, err)
		}
		ws.expected = d
	}
	if req.Total > 0 {
		ws.total = req.Total
	}
	switch req.Action {
	case contentapi.WriteAction_STAT:
		return ws.status(req.Action)
	case contentapi.WriteAction_WRITE, contentapi.WriteAction_COMMIT:
	default:
		return nil, fmt.Errorf("write %q: unknown action %d: %w", ws.ref, req.Action, errdefs.ErrInvalidArgument)
	}
	st, err := ws.w.Status()
	if err != nil {
		return nil, err
	}
	switch {
	case req.Offset > st.Offset:
		return nil, fmt.Errorf("write %q at %d: beyond the current offset %d: %w", ws.ref, req.Offset, st.Offset, errdefs.ErrOutOfRange)
	case req.Offset < st.Offset:
		// containerd resets only to 0; the API allows any offset written
		// already, and the client's Truncate needs it.
		if err := ws.w.Truncate(req.Offset); err != nil {
			return nil, fmt.Errorf("write %q: truncate to %d: %w", ws.ref, req.Offset, err)
		}
	}
	if len(req.Data) > 0 {
		if _, err := ws.w.Write(req.Data); err != nil {
			return nil, err
		}
	}
	if req.Action == contentapi.WriteAction_WRITE {
		return ws.status(req.Action)
	}
	// The ingest is gone after a commit: answer with what was committed.
	resp, err := ws.status(req.Action)
	if err != nil {
		return nil, err
	}
	var opts []content.Opt
	if req.Labels != nil {
		opts = append(opts, content.WithLabels(req.Labels))
	}
	if err := ws.w.Commit(ctx, ws.total, ws.expected, opts...); err != nil {
		return nil, err
	}
	return resp, nil
}

// status answers action with the ingest's state.
func (ws *contentWriteSession) status(action contentapi.WriteAction) (*contentapi.WriteContentResponse, error) {
	st, err := ws.w.Status()
	if err != nil {
		return nil, err
	}
	total := st.Total
	if ws.total > 0 {
		total = ws.total
	}
	return &contentapi.WriteContentResponse{
		Action:    action,
		StartedAt: protoconv.TimeToProto(st.StartedAt),
		UpdatedAt: protoconv.TimeToProto(st.UpdatedAt),
		Offset:    st.Offset,
		Total:     total,
		Digest:    ws.w.Digest().String(),
	}, nil
}
