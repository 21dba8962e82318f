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
// client answers one question at a time, so questions wait their turn;
// answers are kept for the transfer's life (the registry client asks
// again for a token to refresh, and from several fetches at once), as
// strata's jobs service keeps them.
type askCredentials struct {
	st  *streaming.Stream
	ref string

	mu      sync.Mutex
	answers map[string][2]string // by host: user, secret
	// replies come from the stream's one reader (gRPC allows one Recv at
	// a time), started by the first question; abandoned counts questions
	// given up on whose replies are still to come: they are dropped, so
	// an answer never goes to a later question about another host.
	replies   chan answer
	abandoned int
}

type answer struct {
	resp *transfertypes.AuthResponse
	err  error
}

// credentials implements jobs.Credentials.
func (a *askCredentials) credentials(ctx context.Context, host string) (string, string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if an, ok := a.answers[host]; ok {
		return an[0], an[1], nil
	}
	user, secret, err := a.ask(ctx, host)
	if err != nil {
		return "", "", err
	}
	if a.answers == nil {
		a.answers = map[string][2]string{}
	}
	a.answers[host] = [2]string{user, secret}
	return user, secret, nil
}

func (a *askCredentials) ask(ctx context.Context, host string) (string, string, error) {
	if err := a.st.Send(&transfertypes.AuthRequest{Host: host, Reference: a.ref}); err != nil {
		return "", "", fmt.Errorf("credentials for %s: %w", host, err)
	}
	if a.replies == nil {
		a.replies = make(chan answer)
		go a.read()
	}
	// The answer is awaited apart from ctx: a cancelled fetch stops
	// waiting at once and its reply, when it comes, is dropped.
	var an answer
	for {
		select {
		case an = <-a.replies:
		case <-ctx.Done():
			a.abandoned++
			return "", "", ctx.Err()
		}
		if an.err != nil || a.abandoned == 0 {
			break
		}
		a.abandoned--
	}
	if an.err != nil {
		return "", "", fmt.Errorf("credentials for %s: %w", host, an.err)
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

// read is the auth stream's one reader: it hands each reply to the
// question waiting for it, and ends with the stream (closed when the
// transfer ends) or the client; from then on every question gets the error.
func (a *askCredentials) read() {
	for {
		an := answer{resp: &transfertypes.AuthResponse{}}
		m, err := a.st.Recv()
		if err == nil {
			err = streaming.Unmarshal(m, an.resp)
		}
		if err != nil {
			an = answer{err: fmt.Errorf("the client gave no answer: %w", errdefs.ErrUnavailable)}
		}
		select {
		case a.replies <- an:
		case <-a.st.Done():
			return
		}
		if an.err != nil {
			// Keep answering late questions with the error until the
			// stream is closed.
			for {
				select {
				case a.replies <- an:
				case <-a.st.Done():
					return
				}
			}
		}
	}
}
