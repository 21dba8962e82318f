package images

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/strata-oci/strata/images"
	lbl "github.com/strata-oci/strata/labels"
	"github.com/strata-oci/strata/reference"
)

// image is one CRI image: the records whose roots resolve, for the host's
// platform, to the config digest id.
type image struct {
	id      digest.Digest
	records []images.Image
	parts   *parts
}

// parts is what the service reads of a root: the manifest for the host's
// platform and its config. Blobs never change, so parts are cached by the
// root's digest.
type parts struct {
	manifestDesc ocispec.Descriptor
	manifest     ocispec.Manifest
	config       ocispec.Image
	// size is the bytes of the root, the manifest, the config and the
	// layers, as containerd's CRI counts an image's size.
	size int64
}

// partsCache remembers parts by root digest; it forgets everything once it
// holds maxParts (blobs of removed images are not worth tracking).
type partsCache struct {
	mu sync.Mutex
	m  map[digest.Digest]*parts
}

const maxParts = 4096

// inspect returns the parts of root: errdefs.ErrNotFound when a blob is
// missing or the root has no manifest for this host.
func (s *Service) inspect(ctx context.Context, root ocispec.Descriptor) (*parts, error) {
	s.cache.mu.Lock()
	p, ok := s.cache.m[root.Digest]
	s.cache.mu.Unlock()
	if ok {
		return p, nil
	}
	mdesc, m, err := images.Manifest(ctx, s.content, root, images.Any(images.DefaultPlatform()))
	if err != nil {
		return nil, err
	}
	cfg, err := images.ReadConfig(ctx, s.content, m.Config)
	if err != nil {
		return nil, err
	}
	p = &parts{manifestDesc: mdesc, manifest: m, config: cfg, size: mdesc.Size + m.Config.Size}
	if root.Digest != mdesc.Digest {
		p.size += root.Size
	}
	for _, l := range m.Layers {
		p.size += l.Size
	}
	s.cache.mu.Lock()
	if s.cache.m == nil || len(s.cache.m) >= maxParts {
		s.cache.m = map[digest.Digest]*parts{}
	}
	s.cache.m[root.Digest] = p
	s.cache.mu.Unlock()
	return p, nil
}

// all returns every CRI image of the namespace, by id. Records whose root
// cannot be read for this host (another platform only, blobs missing) are
// no CRI image: containerd's CRI plugin does not list them either.
func (s *Service) all(ctx context.Context) (map[digest.Digest]*image, error) {
	recs, err := s.images.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	out := map[digest.Digest]*image{}
	for _, rec := range recs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p, err := s.inspect(ctx, rec.Target)
		if err != nil {
			s.log.Debug("image not shown to the CRI", "name", rec.Name, "digest", rec.Target.Digest, "error", err)
			continue
		}
		id := p.manifest.Config.Digest
		img := out[id]
		if img == nil {
			img = &image{id: id, parts: p}
			out[id] = img
		}
		img.records = append(img.records, rec)
	}
	return out, nil
}

// lookup finds the image refOrID names, as containerd's CRI resolves one:
// an id ("sha256:<config>"), a reference ("busybox" is
// docker.io/library/busybox:latest), or else an unambiguous prefix of an
// id's hex. It returns errdefs.ErrNotFound when there is none, and
// errdefs.ErrInvalidArgument for a string that is neither a reference nor
// an id.
func (s *Service) lookup(ctx context.Context, refOrID string) (*image, error) {
	all, err := s.all(ctx)
	if err != nil {
		return nil, err
	}
	if d, err := digest.Parse(refOrID); err == nil {
		if img := all[d]; img != nil {
			return img, nil
		}
		return nil, fmt.Errorf("image %q: %w", refOrID, errdefs.ErrNotFound)
	}
	ref, refErr := reference.Parse(refOrID)
	if refErr == nil {
		name := ref.String()
		for _, img := range all {
			for _, rec := range img.records {
				if rec.Name == name {
					return img, nil
				}
			}
		}
	}
	hex := strings.TrimPrefix(refOrID, "sha256:")
	if isHex(hex) {
		var found *image
		for id, img := range all {
			if strings.HasPrefix(id.Encoded(), hex) {
				if found != nil {
					return nil, fmt.Errorf("image id prefix %q: more than one image has it: %w", refOrID, errdefs.ErrNotFound)
				}
				found = img
			}
		}
		if found != nil {
			return found, nil
		}
	}
	if refErr != nil && !isHex(hex) {
		return nil, refErr
	}
	// 64 hex digits are no repository name distribution accepts, but an
	// id without its algorithm: critest removes "000…0" and expects success.
	return nil, fmt.Errorf("image %q: %w", refOrID, errdefs.ErrNotFound)
}

func isHex(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// cri is img as the CRI shows it.
func (s *Service) cri(img *image) *runtime.Image {
	out := &runtime.Image{Id: img.id.String(), Size: uint64(img.parts.size), Spec: &runtime.ImageSpec{Image: img.id.String()}}
	tags, digests := map[string]bool{}, map[string]bool{}
	for _, rec := range img.records {
		if rec.Labels[lbl.CRIPinned] == lbl.CRIPinnedValue || s.pinned[rec.Name] {
			out.Pinned = true
		}
		if _, err := digest.Parse(rec.Name); err == nil {
			continue // the id's own name ("sha256:…" would parse as library/sha256:…)
		}
		ref, err := reference.Parse(rec.Name)
		if err != nil {
			continue // a name ctr made
		}
		switch {
		case ref.Digest != "" && ref.Tag == "":
			digests[ref.String()] = true
		case ref.Digest == "":
			tags[ref.String()] = true
		}
	}
	out.RepoTags, out.RepoDigests = slices.Sorted(maps.Keys(tags)), slices.Sorted(maps.Keys(digests))
	out.Uid, out.Username = user(img.parts.config.Config.User)
	return out
}

// user is the uid or the username of an image config's User ("1000",
// "1000:1000", "nobody", "nobody:nogroup"), as containerd's CRI reads it.
func user(u string) (*runtime.Int64Value, string) {
	u, _, _ = strings.Cut(u, ":")
	if u == "" {
		return nil, ""
	}
	uid, err := strconv.ParseInt(u, 10, 64)
	if err != nil {
		return nil, u
	}
	return &runtime.Int64Value{Value: uid}, ""
}

// sortedImages returns the images of all sorted by id, so that listings
// are stable.
func sortedImages(all map[digest.Digest]*image) []*image {
	out := make([]*image, 0, len(all))
	for _, img := range all {
		out = append(out, img)
	}
	slices.SortFunc(out, func(a, b *image) int { return strings.Compare(a.id.String(), b.id.String()) })
	return out
}

// notFound reports whether err says an image is absent.
func notFound(err error) bool { return errors.Is(err, errdefs.ErrNotFound) }
