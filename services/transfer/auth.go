package transfer

import (
	"context"
	"fmt"
	"sync"

	transfertypes "github.com/containerd/containerd/api/types/transfer"
	"github.com/containerd/errdefs"

	"github.com/strata-oci/strata/services/streaming"
)

// askCredentials asks the client for a registry's credentials over the
// resolver's auth stream: an AuthRequest, then the AuthResponse. The
// client answers one question at a time, so questions wait their turn.
type askCredentials struct {
	st  *streaming.Stream
	ref string

	mu sync.Mutex
}

type answer struct {
	resp *transfertypes.AuthResponse
	err  error
}

// credentials implements jobs.Credentials.
func (a *askCredentials) credentials(ctx context.Context, host string) (string, string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.st.Send(&transfertypes.AuthRequest{Host: host, Reference: a.ref}); err != nil {
		return "", "", fmt.Errorf("credentials for %s: %w", host, err)
	}
	// The answer is awaited apart from ctx: a cancelled job stops waiting
	// at once, and the reader goroutine ends with the stream.
	got := make(chan answer, 1)
	go func() {
		an := answer{resp: &transfertypes.AuthResponse{}}
		m, err := a.st.Recv()
		if err == nil {
			err = streaming.Unmarshal(m, an.resp)
		}
		if err != nil {
			an.err = fmt.Errorf("credentials for %s: the client gave no answer: %w", host, errdefs.ErrUnavailable)
		}
		got <- an
	}()
	var an answer
	select {
	case an = <-got:
	case <-ctx.Done():
		return "", "", ctx.Err()
	}
	if an.err != nil {
		return "", "", an.err
	}
	switch an.resp.GetAuthType() {
	case transfertypes.AuthType_CREDENTIALS:
		return an.resp.GetUsername(), an.resp.GetSecret(), nil
	case transfertypes.AuthType_REFRESH:
		// A refresh (identity) token, or nothing: anonymous access.
		return "", an.resp.GetSecret(), nil
	case transfertypes.AuthType_HEADER:
		return "", "", fmt.Errorf("credentials for %s: an Authorization header from the client: strata takes a user and secret or a refresh token: %w", host, errdefs.ErrNotImplemented)
	}
	return "", "", fmt.Errorf("credentials for %s: auth type %v: %w", host, an.resp.GetAuthType(), errdefs.ErrNotImplemented)
}
