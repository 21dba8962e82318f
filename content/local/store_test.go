package local

import (
	"testing"

	"github.com/strata-oci/strata/content/contenttest"
)

func TestConformance(t *testing.T) {
	contenttest.Run(t, func(t *testing.T) contenttest.Setup {
		s, err := New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return contenttest.Setup{Store: s}
	})
}
