package client_test

import (
	"context"
	"errors"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/strata-oci/strata/client"
	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/content/contenttest"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/server/servertest"
)

// TestContentConformance runs the content suite through the gRPC client
// against a daemon per case, over its namespaced store.
func TestContentConformance(t *testing.T) {
	contenttest.Run(t, func(t *testing.T) contenttest.Setup {
		d := servertest.Start(t)
		return contenttest.Setup{Store: client.NewContentStore(d.Conn), Labels: true, Namespaced: true}
	})
}

// TestDial reaches a daemon by the socket path ctr takes.
func TestDial(t *testing.T) {
	d := servertest.Start(t)
	conn, err := client.Dial(d.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := namespaces.WithNamespace(context.Background(), "default")
	if err := client.NewContentStore(conn).Walk(ctx, func(content.Info) error { return nil }); err != nil {
		t.Fatalf("Walk through Dial(%s) = %v", d.Address, err)
	}
	if _, err := client.Dial(""); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf(`Dial("") = %v, want invalid argument`, err)
	}
	// Without a namespace the client refuses before calling.
	if err := client.NewContentStore(conn).Walk(context.Background(), func(content.Info) error { return nil }); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("Walk without namespace = %v, want failed precondition", err)
	}
}
