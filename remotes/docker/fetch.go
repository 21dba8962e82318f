package docker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/remotes/docker/auth"
	"github.com/strata-oci/strata/remotes/docker/config"
)

// Schema 1 media types, refused with a clear message.
const (
	mediaTypeSchema1       = "application/vnd.docker.distribution.manifest.v1+json"
	mediaTypeSchema1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws"
)

// manifestAccept is the Accept header of manifest requests: what strata
// can read, best first.
var manifestAccept = strings.Join([]string{
	ocispec.MediaTypeImageIndex,
	images.MediaTypeDockerSchema2ManifestList,
	ocispec.MediaTypeImageManifest,
	images.MediaTypeDockerSchema2Manifest,
	"*/*;q=0.1",
}, ", ")

func (repo *Repository) pullScopes() []string {
	return []string{auth.RepositoryScope(repo.ref.Path, false)}
}

func (repo *Repository) pushScopes() []string {
	return []string{auth.RepositoryScope(repo.ref.Path, true)}
}

// Resolve returns the descriptor the repository's tag (or digest) names:
// an index or a manifest, with media type, digest and size. It asks each
// endpoint able to resolve, in order, falling back to the next on
// failure; a HEAD request first, then GET when the registry's headers do
// not say enough (the body is then kept for FetchManifest).
func (repo *Repository) Resolve(ctx context.Context) (ocispec.Descriptor, error) {
	eps, err := repo.with(config.Resolve)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	obj := repo.ref.Object()
	var errs []error
	for i, ep := range eps {
		desc, err := repo.resolveAt(ctx, ep, obj, i < len(eps)-1)
		if err == nil {
			return desc, nil
		}
		if ctx.Err() != nil {
			return ocispec.Descriptor{}, ctx.Err()
		}
		if errdefs.IsNotImplemented(err) {
			return ocispec.Descriptor{}, err
		}
		if len(eps) > 1 {
			repo.r.log.Info("resolve failed on a host; trying the next", "host", ep.Host.Host, "error", err)
		}
		errs = append(errs, err)
	}
	return ocispec.Descriptor{}, joinHostErrors(errs)
}

func (repo *Repository) resolveAt(ctx context.Context, ep *endpoint, obj string, fastFail bool) (ocispec.Descriptor, error) {
	what := fmt.Sprintf("resolve %s on %s", repo.ref, ep.Host.Host)
	path := "/" + repo.ref.Path + "/manifests/" + obj
	hdr := http.Header{"Accept": {manifestAccept}}
	resp, err := repo.do(ctx, ep, request{method: http.MethodHead, path: path, header: hdr, scopes: repo.pullScopes(), fastFail: fastFail})
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("%s: %w", what, err)
	}
	drain(resp)
	switch resp.StatusCode {
	case http.StatusOK:
		mt := mediaType(resp.Header.Get("Content-Type"))
		dg := digest.Digest(resp.Header.Get("Docker-Content-Digest"))
		size, serr := strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64)
		if repo.ref.Digest != "" && dg == "" {
			dg = repo.ref.Digest
		}
		if err := checkMediaType(mt, repo.ref.String()); err != nil {
			return ocispec.Descriptor{}, err
		}
		if dg.Validate() == nil && serr == nil && size > 0 && (images.IsIndex(mt) || images.IsManifest(mt)) {
			if repo.ref.Digest != "" && dg != repo.ref.Digest {
				return ocispec.Descriptor{}, fmt.Errorf("%s: the registry answers digest %s: %w", what, dg, errdefs.ErrFailedPrecondition)
			}
			if size > images.MaxManifestSize {
				return ocispec.Descriptor{}, fmt.Errorf("%s: manifest of %d bytes exceeds the limit of %d: %w", what, size, images.MaxManifestSize, errdefs.ErrInvalidArgument)
			}
			return ocispec.Descriptor{MediaType: mt, Digest: dg, Size: size}, nil
		}
	case http.StatusNotFound:
		return ocispec.Descriptor{}, fmt.Errorf("%s: %w", what, notFound(repo, "manifest "+obj))
	case http.StatusUnauthorized, http.StatusForbidden:
		return ocispec.Descriptor{}, statusError(resp, what)
	}
	// HEAD said too little (or is not allowed): GET the manifest.
	resp, err = repo.do(ctx, ep, request{method: http.MethodGet, path: path, header: hdr, scopes: repo.pullScopes(), fastFail: fastFail})
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("%s: %w", what, err)
	}
	if resp.StatusCode == http.StatusNotFound {
		drain(resp)
		return ocispec.Descriptor{}, fmt.Errorf("%s: %w", what, notFound(repo, "manifest "+obj))
	}
	if resp.StatusCode != http.StatusOK {
		return ocispec.Descriptor{}, statusError(resp, what)
	}
	body, err := readLimited(resp, images.MaxManifestSize, what)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	mt := mediaType(resp.Header.Get("Content-Type"))
	if !images.IsIndex(mt) && !images.IsManifest(mt) {
		// Registries serving files may say text/plain; the body says.
		var probe struct {
			MediaType string          `json:"mediaType"`
			Manifests json.RawMessage `json:"manifests"`
			Config    json.RawMessage `json:"config"`
			FSLayers  json.RawMessage `json:"fsLayers"`
		}
		if err := json.Unmarshal(body, &probe); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("%s: the body is not a manifest (%s): %w", what, mt, errdefs.ErrInvalidArgument)
		}
		switch {
		case probe.MediaType != "":
			mt = probe.MediaType
		case probe.FSLayers != nil:
			mt = mediaTypeSchema1
		case probe.Manifests != nil:
			mt = ocispec.MediaTypeImageIndex
		case probe.Config != nil:
			mt = ocispec.MediaTypeImageManifest
		}
	}
	if err := checkMediaType(mt, repo.ref.String()); err != nil {
		return ocispec.Descriptor{}, err
	}
	if !images.IsIndex(mt) && !images.IsManifest(mt) {
		return ocispec.Descriptor{}, fmt.Errorf("%s: unsupported media type %q: %w", what, mt, errdefs.ErrNotImplemented)
	}
	dg := digest.FromBytes(body)
	if h := digest.Digest(resp.Header.Get("Docker-Content-Digest")); h != "" && h.Algorithm() == digest.SHA256 && h != dg {
		return ocispec.Descriptor{}, fmt.Errorf("%s: body has digest %s, the registry says %s: %w", what, dg, h, errdefs.ErrFailedPrecondition)
	}
	if repo.ref.Digest != "" && repo.ref.Digest != dg {
		return ocispec.Descriptor{}, fmt.Errorf("%s: body has digest %s: %w", what, dg, errdefs.ErrFailedPrecondition)
	}
	repo.r.cacheManifest(dg, body)
	return ocispec.Descriptor{MediaType: mt, Digest: dg, Size: int64(len(body))}, nil
}

// notFound names what the repository lacks.
func notFound(repo *Repository, what string) error {
	return fmt.Errorf("%s not found in %s: %w", what, repo.ref.Name(), errdefs.ErrNotFound)
}

func mediaType(ct string) string {
	if mt, _, err := mime.ParseMediaType(ct); err == nil {
		return mt
	}
	return strings.TrimSpace(ct)
}

func checkMediaType(mt, ref string) error {
	if mt == mediaTypeSchema1 || mt == mediaTypeSchema1Signed {
		return fmt.Errorf("%s is a Docker schema 1 image, which strata does not support (deprecated since 2017; push it again with a current client to convert it): %w", ref, errdefs.ErrNotImplemented)
	}
	return nil
}

// readLimited reads a response body of at most limit bytes and closes it.
func readLimited(resp *http.Response, limit int64, what string) ([]byte, error) {
	defer resp.Body.Close()
	if resp.ContentLength > limit {
		return nil, fmt.Errorf("%s: %d bytes exceed the limit of %d: %w", what, resp.ContentLength, limit, errdefs.ErrInvalidArgument)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: more than the limit of %d bytes: %w", what, limit, errdefs.ErrInvalidArgument)
	}
	return b, nil
}

// manifestCache keeps bodies fetched by Resolve's GET for the FetchManifest
// that follows, briefly.
type manifestCache struct {
	mu sync.Mutex
	m  map[digest.Digest]cachedManifest
}

type cachedManifest struct {
	body []byte
	at   time.Time
}

func (r *Resolver) cacheManifest(d digest.Digest, body []byte) {
	c := &r.manifests
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[digest.Digest]cachedManifest{}
	}
	for k, v := range c.m {
		if time.Since(v.at) > time.Minute {
			delete(c.m, k)
		}
	}
	c.m[d] = cachedManifest{body, time.Now()}
}

func (r *Resolver) cachedManifest(d digest.Digest) ([]byte, bool) {
	c := &r.manifests
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.m[d]
	if ok {
		delete(c.m, d)
	}
	return m.body, ok
}

// FetchManifest returns the bytes of the index or manifest desc, read with
// the manifest size limit and verified against desc's digest and size.
func (repo *Repository) FetchManifest(ctx context.Context, desc ocispec.Descriptor) ([]byte, error) {
	if err := checkMediaType(desc.MediaType, repo.ref.Name()+"@"+desc.Digest.String()); err != nil {
		return nil, err
	}
	if desc.Size > images.MaxManifestSize {
		return nil, fmt.Errorf("manifest %s of %s: %d bytes exceed the limit of %d: %w", desc.Digest, repo.ref.Name(), desc.Size, images.MaxManifestSize, errdefs.ErrInvalidArgument)
	}
	if b, ok := repo.r.cachedManifest(desc.Digest); ok {
		return b, nil
	}
	return repo.fetchSmall(ctx, desc, "manifests", images.MaxManifestSize, "manifest")
}

// FetchBlob returns the bytes of a small blob (a config), at most limit,
// verified against desc.
func (repo *Repository) FetchBlob(ctx context.Context, desc ocispec.Descriptor, limit int64) ([]byte, error) {
	if desc.Size > limit {
		return nil, fmt.Errorf("blob %s of %s: %d bytes exceed the limit of %d: %w", desc.Digest, repo.ref.Name(), desc.Size, limit, errdefs.ErrInvalidArgument)
	}
	return repo.fetchSmall(ctx, desc, "blobs", limit, "blob")
}

func (repo *Repository) fetchSmall(ctx context.Context, desc ocispec.Descriptor, kind string, limit int64, noun string) ([]byte, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("%s %q: %w: %w", noun, desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	eps, err := repo.with(config.Pull)
	if err != nil {
		return nil, err
	}
	var errs []error
	for i, ep := range eps {
		what := fmt.Sprintf("fetch %s %s from %s/%s", noun, desc.Digest, ep.Host.Host, repo.ref.Path)
		hdr := http.Header{}
		if kind == "manifests" {
			hdr.Set("Accept", manifestAccept)
		}
		resp, err := repo.do(ctx, ep, request{method: http.MethodGet, path: "/" + repo.ref.Path + "/" + kind + "/" + desc.Digest.String(), header: hdr, scopes: repo.pullScopes(), fastFail: i < len(eps)-1})
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
			continue
		}
		if resp.StatusCode != http.StatusOK {
			errs = append(errs, statusError(resp, what))
			continue
		}
		b, err := readLimited(resp, limit, what)
		if err != nil {
			if errdefs.IsInvalidArgument(err) {
				return nil, err
			}
			errs = append(errs, err)
			continue
		}
		if got := desc.Digest.Algorithm().FromBytes(b); got != desc.Digest || (desc.Size > 0 && int64(len(b)) != desc.Size) {
			return nil, fmt.Errorf("%s: got %d bytes with digest %s, want %d bytes: %w", what, len(b), got, desc.Size, errdefs.ErrFailedPrecondition)
		}
		return b, nil
	}
	return nil, joinHostErrors(errs)
}

// maxResumes bounds how often one blob download is resumed without
// progress in between.
const maxResumes = 5

// OpenBlob returns desc's bytes from offset on, as a stream. Broken
// connections are resumed with HTTP Range where they stopped (not counted
// against the caller: the stream simply continues); a stream that moves no
// byte for the idle timeout fails. It reads at most desc.Size bytes and
// fails with io.ErrUnexpectedEOF if the registry sends fewer. The caller
// verifies the digest.
func (repo *Repository) OpenBlob(ctx context.Context, desc ocispec.Descriptor, offset int64) (io.ReadCloser, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("blob %q: %w: %w", desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	eps, err := repo.with(config.Pull)
	if err != nil {
		return nil, err
	}
	b := &blobReader{repo: repo, desc: desc, eps: eps, off: offset, ctx: ctx}
	if err := b.open(); err != nil {
		return nil, err
	}
	return b, nil
}

type blobReader struct {
	repo *Repository
	desc ocispec.Descriptor
	eps  []*endpoint
	ep   int // the endpoint that served last
	ctx  context.Context

	off     int64
	body    io.ReadCloser
	cancel  context.CancelFunc
	idle    *time.Timer
	resumes int
	closed  bool
	ended   bool        // the body was seen to end at desc.Size
	stall   atomic.Bool // the idle timer fired
}

// open starts a request at b.off, trying the endpoints from the one that
// served last.
func (b *blobReader) open() error {
	var errs []error
	for i := b.ep; i < len(b.eps); i++ {
		err := b.openAt(i)
		if err == nil {
			b.ep = i
			return nil
		}
		if b.ctx.Err() != nil {
			return b.ctx.Err()
		}
		errs = append(errs, err)
	}
	return joinHostErrors(errs)
}

func (b *blobReader) openAt(i int) error {
	ep := b.eps[i]
	repo := b.repo
	what := fmt.Sprintf("fetch blob %s from %s/%s", b.desc.Digest, ep.Host.Host, repo.ref.Path)
	ctx, cancel := context.WithCancel(b.ctx)
	hdr := http.Header{}
	if b.off > 0 {
		hdr.Set("Range", fmt.Sprintf("bytes=%d-", b.off))
	}
	resp, err := repo.do(ctx, ep, request{method: http.MethodGet, path: "/" + repo.ref.Path + "/blobs/" + b.desc.Digest.String(), header: hdr, scopes: repo.pullScopes(), fastFail: i < len(b.eps)-1})
	if err != nil {
		cancel()
		return fmt.Errorf("%s: %w", what, err)
	}
	switch {
	case resp.StatusCode == http.StatusPartialContent && b.off > 0:
		start, ok := contentRangeStart(resp.Header.Get("Content-Range"))
		if !ok || start != b.off {
			drain(resp)
			cancel()
			return fmt.Errorf("%s: asked for bytes from %d, got Content-Range %q", what, b.off, resp.Header.Get("Content-Range"))
		}
	case resp.StatusCode == http.StatusOK:
		if err := b.checkLength(resp, what); err != nil {
			cancel()
			return err
		}
		if b.off > 0 {
			// The registry ignored Range: skip what we have.
			if _, err := io.CopyN(io.Discard, resp.Body, b.off); err != nil {
				resp.Body.Close()
				cancel()
				return fmt.Errorf("%s: skipping %d bytes the registry sent again: %w", what, b.off, err)
			}
		}
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && b.off == b.desc.Size:
		drain(resp)
		resp.Body = io.NopCloser(strings.NewReader(""))
	default:
		cancel()
		err := statusError(resp, what)
		if errdefs.IsNotFound(err) {
			err = fmt.Errorf("%s: %w", what, notFound(repo, "blob "+b.desc.Digest.String()))
		}
		return err
	}
	if resp.StatusCode == http.StatusPartialContent {
		if err := b.checkLength(resp, what); err != nil {
			cancel()
			return err
		}
	}
	b.body, b.cancel = resp.Body, cancel
	if b.idle == nil {
		b.idle = time.AfterFunc(repo.r.opts.IdleTimeout, b.stalled)
	} else {
		b.idle.Reset(repo.r.opts.IdleTimeout)
	}
	return nil
}

// checkLength compares the Content-Length of a full (200) or partial (206)
// answer, when the registry sends one, with what desc's size leaves to
// read. A registry (or proxy) that serves another length for a digest is
// broken or hostile: the pull fails rather than read the size it expects
// and ignore the rest (containerd refuses it too).
func (b *blobReader) checkLength(resp *http.Response, what string) error {
	if resp.ContentLength < 0 {
		return nil // unknown: Read checks where the body ends
	}
	if resp.StatusCode == http.StatusOK {
		if resp.ContentLength == b.desc.Size {
			return nil
		}
		drain(resp)
		return fmt.Errorf("%s: the registry sends %d bytes, the descriptor says %d: %w", what, resp.ContentLength, b.desc.Size, errdefs.ErrFailedPrecondition)
	}
	if want := b.desc.Size - b.off; resp.ContentLength != want {
		drain(resp)
		return fmt.Errorf("%s: the registry sends %d bytes from byte %d, the descriptor's size %d leaves %d: %w",
			what, resp.ContentLength, b.off, b.desc.Size, want, errdefs.ErrFailedPrecondition)
	}
	return nil
}

// stalled cancels the request of a transfer that stopped moving.
func (b *blobReader) stalled() {
	b.stall.Store(true)
	if b.cancel != nil {
		b.cancel()
	}
}

func contentRangeStart(v string) (int64, bool) {
	v = strings.TrimPrefix(strings.TrimSpace(v), "bytes ")
	i := strings.IndexByte(v, '-')
	if i <= 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(v[:i], 10, 64)
	return n, err == nil
}

func (b *blobReader) Read(p []byte) (int, error) {
	for {
		if b.closed {
			return 0, fmt.Errorf("read blob %s: closed", b.desc.Digest)
		}
		if b.off >= b.desc.Size {
			return 0, b.atEnd()
		}
		if rest := b.desc.Size - b.off; int64(len(p)) > rest {
			p = p[:rest]
		}
		n, err := b.body.Read(p)
		if n > 0 {
			b.off += int64(n)
			b.resumes = 0
			b.idle.Reset(b.repo.r.opts.IdleTimeout)
			return n, nil
		}
		if err == nil {
			continue
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if b.ctx.Err() != nil {
			return 0, b.ctx.Err()
		}
		if b.stall.Swap(false) {
			err = fmt.Errorf("stalled: no data for %v: %w", b.repo.r.opts.IdleTimeout, errdefs.ErrUnavailable)
		} else if !retryableError(err) {
			return 0, fmt.Errorf("fetch blob %s at byte %d: %w", b.desc.Digest, b.off, err)
		}
		if b.resumes >= maxResumes {
			return 0, fmt.Errorf("fetch blob %s: stopped at byte %d of %d after %d attempts to resume: %w", b.desc.Digest, b.off, b.desc.Size, b.resumes, err)
		}
		b.resumes++
		b.repo.r.log.Info("blob download interrupted; resuming", "digest", b.desc.Digest, "at", b.off, "error", err)
		b.body.Close()
		b.cancel()
		if b.resumes > 1 {
			if err := sleep(b.ctx, b.repo.r.backoff(b.resumes-1)); err != nil {
				return 0, err
			}
		}
		if err := b.open(); err != nil {
			return 0, err
		}
	}
}

// atEnd checks, once desc.Size bytes are read, that the body ends there:
// a body of unknown length (chunked) may go on, and a blob longer than
// its descriptor is refused, not cut to size. A failure to read past the
// end is not the blob's: its bytes are all here and the digest decides.
func (b *blobReader) atEnd() error {
	if b.ended {
		return io.EOF
	}
	var one [1]byte
	n, _ := io.ReadFull(b.body, one[:])
	if n > 0 {
		extra, _ := io.Copy(io.Discard, io.LimitReader(b.body, 1<<20))
		more := ""
		if extra == 1<<20 {
			more = " or more"
		}
		return fmt.Errorf("fetch blob %s: the registry sends %d%s bytes, more than the descriptor's %d: %w",
			b.desc.Digest, b.desc.Size+int64(n)+extra, more, b.desc.Size, errdefs.ErrFailedPrecondition)
	}
	b.ended = true
	return io.EOF
}

func (b *blobReader) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	if b.idle != nil {
		b.idle.Stop()
	}
	if b.cancel != nil {
		b.cancel()
	}
	return b.body.Close()
}
