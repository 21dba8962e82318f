package docker

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/remotes/docker/auth"
	"github.com/strata-oci/strata/remotes/docker/config"
)

// pushEndpoint is the first host that may be pushed to: mirrors are for
// pulling, so this is normally the upstream.
func (repo *Repository) pushEndpoint() (*endpoint, error) {
	eps, err := repo.with(config.Push)
	if err != nil {
		return nil, err
	}
	return eps[0], nil
}

// BlobExists reports whether the repository has blob desc (HEAD).
func (repo *Repository) BlobExists(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
	return repo.exists(ctx, "blobs", "blob", desc, nil)
}

// ManifestExists reports whether the repository has manifest desc.
func (repo *Repository) ManifestExists(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
	return repo.exists(ctx, "manifests", "manifest", desc, http.Header{"Accept": {desc.MediaType}})
}

// exists asks the push endpoint (HEAD) whether it has desc under kind.
func (repo *Repository) exists(ctx context.Context, kind, noun string, desc ocispec.Descriptor, hdr http.Header) (bool, error) {
	ep, err := repo.pushEndpoint()
	if err != nil {
		return false, err
	}
	what := fmt.Sprintf("check %s %s in %s/%s", noun, desc.Digest, ep.Host.Host, repo.ref.Path)
	resp, err := repo.do(ctx, ep, request{method: http.MethodHead, path: "/" + repo.ref.Path + "/" + kind + "/" + desc.Digest.String(),
		header: hdr, scopes: repo.pushScopes()})
	if err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		drain(resp)
		return true, nil
	case http.StatusNotFound:
		drain(resp)
		return false, nil
	}
	return false, statusError(resp, what)
}

// startUpload opens an upload session, or mounts desc from repository
// from (same registry) when from is set and the registry can: then it
// returns mounted and no location.
func (repo *Repository) startUpload(ctx context.Context, ep *endpoint, desc ocispec.Descriptor, from string) (loc *url.URL, mounted bool, err error) {
	what := fmt.Sprintf("start upload of %s to %s/%s", desc.Digest, ep.Host.Host, repo.ref.Path)
	path := "/" + repo.ref.Path + "/blobs/uploads/"
	scopes := repo.pushScopes()
	if from != "" {
		q := url.Values{"mount": {desc.Digest.String()}, "from": {from}}
		path += "?" + q.Encode()
		scopes = append(scopes, auth.RepositoryScope(from, false))
	}
	resp, err := repo.do(ctx, ep, request{method: http.MethodPost, path: path, scopes: scopes, length: 0,
		body: func() (io.ReadCloser, error) { return http.NoBody, nil }})
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", what, err)
	}
	switch resp.StatusCode {
	case http.StatusCreated:
		drain(resp)
		return nil, true, nil
	case http.StatusAccepted:
		drain(resp)
		loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
		if err != nil || resp.Header.Get("Location") == "" {
			return nil, false, fmt.Errorf("%s: the registry gave no usable Location (%q)", what, resp.Header.Get("Location"))
		}
		return loc, false, nil
	}
	return nil, false, statusError(resp, what)
}

// MountBlob asks the registry to link desc from repository from into this
// one, without transferring it; it reports whether the registry did.
func (repo *Repository) MountBlob(ctx context.Context, desc ocispec.Descriptor, from string) (bool, error) {
	ep, err := repo.pushEndpoint()
	if err != nil {
		return false, err
	}
	loc, mounted, err := repo.startUpload(ctx, ep, desc, from)
	if err != nil || mounted {
		return mounted, err
	}
	// The registry started an upload instead; cancel it.
	if resp, err := repo.do(ctx, ep, request{method: http.MethodDelete, url: loc.String(), scopes: repo.pushScopes(), noRetry: true}); err == nil {
		drain(resp)
	}
	return false, nil
}

// PushBlob uploads desc: in one PUT, or in PATCH chunks of the resolver's
// ChunkSize, then the closing PUT with the digest, which the registry
// verifies. open returns the blob's bytes from offset on; it is called
// again when a chunk must be resent.
func (repo *Repository) PushBlob(ctx context.Context, desc ocispec.Descriptor, open func(offset int64) (io.ReadCloser, error)) error {
	ep, err := repo.pushEndpoint()
	if err != nil {
		return err
	}
	what := fmt.Sprintf("upload blob %s to %s/%s", desc.Digest, ep.Host.Host, repo.ref.Path)
	loc, _, err := repo.startUpload(ctx, ep, desc, "")
	if err != nil {
		return err
	}
	chunk := repo.r.opts.ChunkSize
	var off int64
	if chunk > 0 && desc.Size > chunk {
		for off < desc.Size {
			n := min(chunk, desc.Size-off)
			start := off
			resp, err := repo.do(ctx, ep, request{method: http.MethodPatch, url: loc.String(), scopes: repo.pushScopes(), noRetry: true,
				header: http.Header{"Content-Type": {"application/octet-stream"}, "Content-Range": {fmt.Sprintf("%d-%d", start, start+n-1)}},
				length: n,
				body: func() (io.ReadCloser, error) {
					rc, err := open(start)
					if err != nil {
						return nil, err
					}
					return readCloser{io.LimitReader(rc, n), rc}, nil
				}})
			if err != nil {
				return fmt.Errorf("%s: chunk at %d: %w", what, start, err)
			}
			if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusNoContent {
				return statusError(resp, fmt.Sprintf("%s: chunk at %d", what, start))
			}
			drain(resp)
			if l := resp.Header.Get("Location"); l != "" {
				if loc, err = resp.Request.URL.Parse(l); err != nil {
					return fmt.Errorf("%s: bad Location %q", what, l)
				}
			}
			off += n
		}
	}
	q := loc.Query()
	q.Set("digest", desc.Digest.String())
	loc.RawQuery = q.Encode()
	rest := desc.Size - off
	final := request{method: http.MethodPut, url: loc.String(), scopes: repo.pushScopes(), noRetry: true, length: rest,
		header: http.Header{"Content-Type": {"application/octet-stream"}}}
	if rest > 0 {
		final.body = func() (io.ReadCloser, error) {
			rc, err := open(off)
			if err != nil {
				return nil, err
			}
			return readCloser{io.LimitReader(rc, rest), rc}, nil
		}
	} else {
		final.body = func() (io.ReadCloser, error) { return http.NoBody, nil }
	}
	resp, err := repo.do(ctx, ep, final)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusAccepted {
		return statusError(resp, what)
	}
	drain(resp)
	if d := digest.Digest(resp.Header.Get("Docker-Content-Digest")); d != "" && d != desc.Digest {
		return fmt.Errorf("%s: the registry stored digest %s: %w", what, d, errdefs.ErrFailedPrecondition)
	}
	return nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// PushManifest stores body (whose descriptor is desc) under tag, or under
// its digest when tag is "".
func (repo *Repository) PushManifest(ctx context.Context, desc ocispec.Descriptor, body []byte, tag string) error {
	ep, err := repo.pushEndpoint()
	if err != nil {
		return err
	}
	ref := tag
	if ref == "" {
		ref = desc.Digest.String()
	}
	what := fmt.Sprintf("push manifest %s to %s/%s:%s", desc.Digest, ep.Host.Host, repo.ref.Path, ref)
	resp, err := repo.do(ctx, ep, request{method: http.MethodPut, path: "/" + repo.ref.Path + "/manifests/" + ref, scopes: repo.pushScopes(),
		header: http.Header{"Content-Type": {desc.MediaType}}, length: int64(len(body)),
		body: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted {
		return statusError(resp, what)
	}
	drain(resp)
	if d := digest.Digest(resp.Header.Get("Docker-Content-Digest")); d != "" && d != desc.Digest {
		return fmt.Errorf("%s: the registry stored digest %s: %w", what, d, errdefs.ErrFailedPrecondition)
	}
	return nil
}
