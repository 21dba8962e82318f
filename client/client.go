package client

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/strata-oci/strata/filters"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// maxMsgSize matches the daemon's default message limit.
const maxMsgSize = 16 << 20

// checkFilters parses filters here, so that a malformed one fails as it
// does against a store opened in-process: with the *filters.SyntaxError
// that says where, not a status message.
func checkFilters(fs []string) error {
	_, err := filters.ParseAll(fs...)
	return err
}

// Dial returns a connection to the daemon at address: a unix socket path
// (as ctr -a takes) or a gRPC target such as "unix:///run/strata.sock".
// No I/O happens until the first call. It returns
// errdefs.ErrInvalidArgument for an empty address.
func Dial(address string) (*grpc.ClientConn, error) {
	if address == "" {
		return nil, fmt.Errorf("dial daemon: address is empty: %w", errdefs.ErrInvalidArgument)
	}
	target := address
	if !strings.Contains(address, "://") {
		// A path: gRPC's unix:// target wants it absolute.
		abs, err := filepath.Abs(address)
		if err != nil {
			return nil, fmt.Errorf("dial daemon %s: %w", address, err)
		}
		target = "unix://" + abs
	}
	conn, err := grpc.NewClient(target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsgSize), grpc.MaxCallSendMsgSize(maxMsgSize)),
	)
	if err != nil {
		return nil, fmt.Errorf("dial daemon %s: %w", address, err)
	}
	return conn, nil
}
