// Package streaming serves containerd.services.streaming.v1.Streaming:
// named bidirectional streams of protobuf Any messages that containerd
// 2.x clients open before a call that uses them (the transfer service's
// progress, credentials and archive data).
//
// A client opens a stream with the Stream RPC, sends a StreamInit naming
// it, and waits for the acknowledgement (an Empty); it then passes the
// name in a request. The service handling that request claims the stream
// by name with Manager.Get, and from then on owns it:
//
//	client                       stratad
//	Stream() ── StreamInit{id} ─▶ Manager holds id (namespaced)
//	         ◀── Empty ──────────
//	Transfer(progress_stream=id) ─▶ Get(ctx, id) → *Stream
//	         ◀── Progress … ───── Send
//	         ◀── EOF ──────────── Close (the Stream RPC returns)
//
// A stream that is never claimed lives as long as its RPC: it ends when
// the client cancels it or goes away.
package streaming

import (
	"context"
	"fmt"
	"sync"

	streamingapi "github.com/containerd/containerd/api/services/streaming/v1"
	"github.com/containerd/errdefs"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/strata-oci/strata/namespaces"
)

// Stream is one named stream, claimed by the service that uses it. Send
// is safe for concurrent use; Recv is not (one reader at a time, as a gRPC
// stream allows).
type Stream struct {
	id  string
	srv streamingapi.Streaming_StreamServer

	mu        sync.Mutex // serialises Send and Close
	closed    chan struct{}
	closeOnce sync.Once
}

// ID is the stream's name.
func (s *Stream) ID() string { return s.id }

// Send sends m to the client. It fails once the stream is closed or the
// client has gone (errdefs.ErrUnavailable).
func (s *Stream) Send(m proto.Message) error {
	a, err := Marshal(m)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.closed:
		return fmt.Errorf("stream %s: closed: %w", s.id, errdefs.ErrUnavailable)
	default:
	}
	if err := s.srv.Send(a); err != nil {
		return fmt.Errorf("stream %s: send %s: %w", s.id, a.GetTypeUrl(), errdefs.ErrUnavailable)
	}
	return nil
}

// Recv returns the next message from the client; io.EOF when the client
// has closed its side.
func (s *Stream) Recv() (*anypb.Any, error) {
	return s.srv.Recv()
}

// Close ends the stream: the client's Recv sees io.EOF. Closing twice is
// harmless.
func (s *Stream) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeOnce.Do(func() { close(s.closed) })
}

// Done is closed when the stream is closed or its client has gone.
func (s *Stream) Done() <-chan struct{} { return s.closed }

// Context is the stream's RPC context: done when the client has gone.
func (s *Stream) Context() context.Context { return s.srv.Context() }

// Marshal wraps m in an Any the way containerd's typeurl names protobuf
// messages (the bare full name, which its clients look up).
func Marshal(m proto.Message) (*anypb.Any, error) {
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("marshal %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	return &anypb.Any{TypeUrl: string(m.ProtoReflect().Descriptor().FullName()), Value: b}, nil
}

// Unmarshal reads a into m; a of another type is an invalid argument.
func Unmarshal(a *anypb.Any, m proto.Message) error {
	if !a.MessageIs(m) {
		return fmt.Errorf("got a %s, want a %s: %w", a.GetTypeUrl(), m.ProtoReflect().Descriptor().FullName(), errdefs.ErrInvalidArgument)
	}
	if err := proto.Unmarshal(a.GetValue(), m); err != nil {
		return fmt.Errorf("%s: %w: %w", a.GetTypeUrl(), err, errdefs.ErrInvalidArgument)
	}
	return nil
}

type key struct{ namespace, id string }

// Manager holds the streams clients opened until a service claims them.
type Manager struct {
	mu      sync.Mutex
	streams map[key]*Stream
}

// NewManager returns an empty Manager.
func NewManager() *Manager { return &Manager{streams: map[key]*Stream{}} }

// Get claims the stream id of ctx's namespace: the caller owns it and
// closes it when done. A name not open (or claimed already) is
// errdefs.ErrNotFound.
func (m *Manager) Get(ctx context.Context, id string) (*Stream, error) {
	ns, _ := namespaces.Namespace(ctx)
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.streams[key{ns, id}]
	if !ok {
		return nil, fmt.Errorf("stream %q in namespace %q: not open (the client opens it with the streaming service first): %w", id, ns, errdefs.ErrNotFound)
	}
	delete(m.streams, key{ns, id})
	return s, nil
}

func (m *Manager) register(ctx context.Context, s *Stream) error {
	ns, _ := namespaces.Namespace(ctx)
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.streams[key{ns, s.id}]; ok {
		return fmt.Errorf("stream %q in namespace %q: %w", s.id, ns, errdefs.ErrAlreadyExists)
	}
	m.streams[key{ns, s.id}] = s
	return nil
}

func (m *Manager) forget(ctx context.Context, s *Stream) {
	ns, _ := namespaces.Namespace(ctx)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.streams[key{ns, s.id}] == s {
		delete(m.streams, key{ns, s.id})
	}
}

// Service is the gRPC service over a Manager.
type Service struct {
	streamingapi.UnimplementedStreamingServer
	m *Manager
}

// NewService returns the service that opens streams into m.
func NewService(m *Manager) *Service { return &Service{m: m} }

// Register serves the service on g.
func (svc *Service) Register(g *grpc.Server) { streamingapi.RegisterStreamingServer(g, svc) }

// Stream opens one named stream and holds it until its user closes it or
// the client goes away.
func (svc *Service) Stream(srv streamingapi.Streaming_StreamServer) error {
	a, err := srv.Recv()
	if err != nil {
		return err
	}
	var init streamingapi.StreamInit
	if err := Unmarshal(a, &init); err != nil {
		return fmt.Errorf("streaming: the first message must be a StreamInit: %w", err)
	}
	if init.ID == "" {
		return fmt.Errorf("streaming: StreamInit without an id: %w", errdefs.ErrInvalidArgument)
	}
	ctx := srv.Context()
	s := &Stream{id: init.ID, srv: srv, closed: make(chan struct{})}
	if err := svc.m.register(ctx, s); err != nil {
		return err
	}
	defer svc.m.forget(ctx, s)
	// The acknowledgement goes out before anyone can claim the stream:
	// the client sends the request naming it only after reading it.
	ack, err := Marshal(&emptypb.Empty{})
	if err != nil {
		return err
	}
	if err := srv.Send(ack); err != nil {
		return err
	}
	// No Send may run once the handler has returned: Close waits for
	// one in flight and stops those after it.
	select {
	case <-s.closed:
	case <-ctx.Done():
		s.Close()
	}
	return nil
}
