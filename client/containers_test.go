package client_test

import (
	"testing"

	"github.com/strata-oci/strata/metadata/metadatatest"
)

func TestContainers(t *testing.T) { metadatatest.RunContainers(t, openMetadata) }
