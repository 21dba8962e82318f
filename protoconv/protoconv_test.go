package protoconv_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/containerd/containerd/api/types"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/leases"
	"github.com/strata-oci/strata/mount"
	"github.com/strata-oci/strata/protoconv"
	"github.com/strata-oci/strata/snapshots"
)

// TestRoundTrip checks that what the daemon sends is what the client reads
// back, for every pair of conversions.
func TestRoundTrip(t *testing.T) {
	at := time.Date(2026, 12, 7, 0, 0, 1, 2, time.UTC)
	dgst := digest.FromString("protoconv")
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: dgst, Size: 9, Annotations: map[string]string{"a": "b"}}
	tests := []struct {
		name     string
		in, back any
	}{
		{"content info", content.Info{Digest: dgst, Size: 9, CreatedAt: at, UpdatedAt: at, Labels: map[string]string{"l": "v"}},
			func(v content.Info) content.Info {
				return protoconv.ContentInfoFromProto(protoconv.ContentInfoToProto(v))
			}},
		{"content info, no times", content.Info{Digest: dgst, Size: 9},
			func(v content.Info) content.Info {
				return protoconv.ContentInfoFromProto(protoconv.ContentInfoToProto(v))
			}},
		{"content status", content.Status{Ref: "r", Offset: 3, Total: 9, Expected: dgst, StartedAt: at, UpdatedAt: at},
			func(v content.Status) content.Status {
				return protoconv.ContentStatusFromProto(protoconv.ContentStatusToProto(v))
			}},
		{"image", images.Image{Name: "docker.io/library/x:1", Labels: map[string]string{"l": "v"}, Target: desc, CreatedAt: at, UpdatedAt: at},
			func(v images.Image) images.Image { return protoconv.ImageFromProto(protoconv.ImageToProto(v)) }},
		{"lease", leases.Lease{ID: "l1", CreatedAt: at, Labels: map[string]string{"l": "v"}},
			func(v leases.Lease) leases.Lease { return protoconv.LeaseFromProto(protoconv.LeaseToProto(v)) }},
		{"snapshot info", snapshots.Info{Kind: snapshots.KindCommitted, Name: "n", Parent: "p", Labels: map[string]string{"l": "v"}, Created: at, Updated: at},
			func(v snapshots.Info) snapshots.Info {
				return protoconv.SnapshotInfoFromProto(protoconv.SnapshotInfoToProto(v))
			}},
		{"mounts", []mount.Mount{{Type: "overlay", Source: "overlay", Options: []string{"lowerdir=/a"}}},
			func(v []mount.Mount) []mount.Mount {
				out, err := protoconv.MountsFromProto(protoconv.MountsToProto(v))
				if err != nil {
					t.Fatalf("MountsFromProto: %v", err)
				}
				return out
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := reflect.ValueOf(tc.back).Call([]reflect.Value{reflect.ValueOf(tc.in)})[0].Interface()
			if !reflect.DeepEqual(got, tc.in) {
				t.Errorf("round trip = %+v, want %+v", got, tc.in)
			}
		})
	}
	for _, k := range []snapshots.Kind{snapshots.KindUnknown, snapshots.KindView, snapshots.KindActive, snapshots.KindCommitted} {
		if got := protoconv.SnapshotKindFromProto(protoconv.SnapshotKindToProto(k)); got != k {
			t.Errorf("kind round trip of %v = %v", k, got)
		}
	}
}

// TestFromProtoNil checks that absent messages read as zero values
// instead of panicking (a request may leave them out).
func TestFromProtoNil(t *testing.T) {
	if got := protoconv.ContentInfoFromProto(nil); !reflect.DeepEqual(got, content.Info{}) {
		t.Errorf("ContentInfoFromProto(nil) = %+v", got)
	}
	if got := protoconv.ContentStatusFromProto(nil); !reflect.DeepEqual(got, content.Status{}) {
		t.Errorf("ContentStatusFromProto(nil) = %+v", got)
	}
	if got := protoconv.ImageFromProto(nil); !reflect.DeepEqual(got, images.Image{}) {
		t.Errorf("ImageFromProto(nil) = %+v", got)
	}
	if got := protoconv.DescriptorFromProto(nil); !reflect.DeepEqual(got, ocispec.Descriptor{}) {
		t.Errorf("DescriptorFromProto(nil) = %+v", got)
	}
	if got := protoconv.LeaseFromProto(nil); !reflect.DeepEqual(got, leases.Lease{}) {
		t.Errorf("LeaseFromProto(nil) = %+v", got)
	}
	if got := protoconv.SnapshotInfoFromProto(nil); !reflect.DeepEqual(got, snapshots.Info{}) {
		t.Errorf("SnapshotInfoFromProto(nil) = %+v", got)
	}
}

// TestMountsFromProtoTarget checks that a mount with a target, which
// strata cannot honour, is refused with errdefs.ErrNotImplemented.
func TestMountsFromProtoTarget(t *testing.T) {
	_, err := protoconv.MountsFromProto([]*types.Mount{{Type: "bind", Source: "/a", Target: "b"}})
	if !errors.Is(err, errdefs.ErrNotImplemented) {
		t.Errorf("MountsFromProto(target) = %v, want %v", err, errdefs.ErrNotImplemented)
	}
}
