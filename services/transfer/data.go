package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	transfertypes "github.com/containerd/containerd/api/types/transfer"
	"github.com/containerd/errdefs"

	"github.com/strata-oci/strata/services/streaming"
)

// Archive data moves as Data frames under credit-based flow control, as
// containerd's clients do it: the receiver grants bytes with WindowUpdate,
// the sender sends no more than it was granted.
const (
	// receiveWindow is the credit an import keeps granted to the client
	// (containerd grants 64 KiB; more keeps a client that sends 32 KiB
	// frames from waiting for a round trip every other frame).
	receiveWindow = 4 << 20
	// maxFrame bounds the Data frames of an export (under any client's
	// message limit; ctr grants 64 KiB at a time anyway).
	maxFrame = 1 << 20
)

// receive returns the import archive the client sends on st. Closing the
// reader drops what still comes.
func receive(ctx context.Context, st *streaming.Stream) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		defer st.Close()
		var window int64
		for {
			if window < receiveWindow/2 {
				grant := receiveWindow - window
				if err := st.Send(&transfertypes.WindowUpdate{Update: int32(grant)}); err != nil {
					pw.CloseWithError(fmt.Errorf("import stream %s: %w", st.ID(), err))
					return
				}
				window += grant
			}
			a, err := st.Recv()
			if errors.Is(err, io.EOF) {
				pw.Close()
				return
			}
			if err != nil {
				pw.CloseWithError(fmt.Errorf("import stream %s: the client went away: %w", st.ID(), errdefs.ErrUnavailable))
				return
			}
			var d transfertypes.Data
			if err := streaming.Unmarshal(a, &d); err != nil {
				pw.CloseWithError(fmt.Errorf("import stream %s: %w", st.ID(), err))
				return
			}
			if _, err := pw.Write(d.GetData()); err != nil {
				return // the import stopped reading
			}
			window -= int64(len(d.GetData()))
		}
	}()
	// A cancelled import stops reading at once, not when the client next
	// sends.
	stop := context.AfterFunc(ctx, func() { pr.CloseWithError(context.Cause(ctx)) })
	return &stoppingReader{PipeReader: pr, stop: stop}
}

type stoppingReader struct {
	*io.PipeReader
	stop func() bool
}

func (r *stoppingReader) Close() error {
	r.stop()
	return r.PipeReader.Close()
}

// sender writes an export archive to the client as Data frames within
// the credit the client grants.
type sender struct {
	ctx context.Context
	st  *streaming.Stream

	mu      sync.Mutex
	credit  int64
	err     error         // the client's side failed
	granted chan struct{} // signalled (buffered 1) when credit grows
}

func newSender(ctx context.Context, st *streaming.Stream) *sender {
	s := &sender{ctx: ctx, st: st, granted: make(chan struct{}, 1)}
	go s.windows()
	return s
}

// windows takes the client's WindowUpdates until it stops sending.
func (s *sender) windows() {
	for {
		a, err := s.st.Recv()
		if err != nil {
			s.mu.Lock()
			if s.err == nil {
				s.err = fmt.Errorf("export stream %s: the client stopped reading: %w", s.st.ID(), errdefs.ErrUnavailable)
			}
			s.mu.Unlock()
			s.signal()
			return
		}
		var w transfertypes.WindowUpdate
		if streaming.Unmarshal(a, &w) != nil || w.GetUpdate() <= 0 {
			continue // nothing else is expected; a bad grant grants nothing
		}
		s.mu.Lock()
		s.credit += int64(w.GetUpdate())
		s.mu.Unlock()
		s.signal()
	}
}

func (s *sender) signal() {
	select {
	case s.granted <- struct{}{}:
	default:
	}
}

// Write sends p, waiting for credit as needed.
func (s *sender) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		s.mu.Lock()
		credit, err := s.credit, s.err
		s.mu.Unlock()
		if credit == 0 {
			if err != nil {
				return n, err
			}
			select {
			case <-s.granted:
				continue
			case <-s.ctx.Done():
				return n, s.ctx.Err()
			case <-s.st.Done():
				return n, fmt.Errorf("export stream %s: closed: %w", s.st.ID(), errdefs.ErrUnavailable)
			}
		}
		k := int(min(int64(len(p)), credit, maxFrame))
		if err := s.st.Send(&transfertypes.Data{Data: p[:k]}); err != nil {
			return n, err
		}
		s.mu.Lock()
		s.credit -= int64(k)
		s.mu.Unlock()
		n += k
		p = p[k:]
	}
	return n, nil
}
