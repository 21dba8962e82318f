package client_test

import (
	"testing"

	"github.com/strata-oci/strata/metadata/metadatatest"
)

func TestImages(t *testing.T) { metadatatest.RunImages(t, openMetadata) }
