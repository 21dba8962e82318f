package client_test

import (
	"testing"

	"github.com/strata-oci/strata/client"
	"github.com/strata-oci/strata/metadata/metadatatest"
	"github.com/strata-oci/strata/server/servertest"
)

// openMetadata starts a daemon for one case and returns the gRPC clients of
// its namespace, image, lease and container services.
func openMetadata(t *testing.T) metadatatest.Setup {
	d := servertest.Start(t)
	return metadatatest.Setup{
		Images:     client.NewImageStore(d.Conn),
		Leases:     client.NewLeaseManager(d.Conn),
		Namespaces: client.NewNamespaceStore(d.Conn),
		Content:    client.NewContentStore(d.Conn),
		Containers: client.NewContainerStore(d.Conn),
	}
}

func TestLeases(t *testing.T) { metadatatest.RunLeases(t, openMetadata) }
