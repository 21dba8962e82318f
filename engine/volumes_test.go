package engine

import (
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/strata-oci/strata/oci"
)

// TestImageVolumes: the image's VOLUMEs that get anonymous volumes are
// those no -v, --mount, bind or tmpfs has for destination.
func TestImageVolumes(t *testing.T) {
	declared := map[string]struct{}{"/a": {}, "/b/": {}, "/c": {}, "/d": {}, "/e": {}, "f": {}, "/": {}, "/g": {}}
	o := CreateOptions{
		Volumes: []string{"named:/a:ro", "/b", "/x:rw"},
		Spec: oci.Options{
			Binds:  []string{"/host:/c:ro"},
			Tmpfs:  []string{"/d:size=1m"},
			Mounts: []specs.Mount{{Destination: "/e/", Type: "bind", Source: "/s"}},
		},
	}
	if got, want := imageVolumes(declared, o), []string{"/f", "/g"}; !slices.Equal(got, want) {
		t.Errorf("imageVolumes = %v, want %v", got, want)
	}
	if got := imageVolumes(nil, o); got != nil {
		t.Errorf("imageVolumes(none) = %v", got)
	}
}
