package client_test

import (
	"testing"

	"github.com/strata-oci/strata/metadata/metadatatest"
)

func TestNamespaces(t *testing.T) { metadatatest.RunNamespaces(t, openMetadata) }
