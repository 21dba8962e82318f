package images

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/jobs"
	lbl "github.com/strata-oci/strata/labels"
	"github.com/strata-oci/strata/reference"
)

// PullImage pulls the image through the job runner, as `strata pull`
// does, then records its CRI names (repo:tag, repo@digest, the id) with
// the managed label. The answer's image_ref is the id.
//
// Errors: InvalidArgument for a reference or AuthConfig that does not
// parse; what the pull returns otherwise (NotFound for a missing image,
// Unauthenticated for refused credentials), and DeadlineExceeded when the
// progress watchdog gave up. Until the pull is complete no name of the
// image exists, so a failed pull leaves nothing kubelet can see.
func (s *Service) PullImage(ctx context.Context, req *runtime.PullImageRequest) (*runtime.PullImageResponse, error) {
	ctx = withNamespace(ctx)
	name, err := specImage(req.GetImage())
	if err != nil {
		return nil, err
	}
	ref, err := reference.Parse(name)
	if err != nil {
		return nil, err
	}
	creds, err := credentials(req.GetAuth(), ref)
	if err != nil {
		return nil, err
	}
	if s.cfg.StartJob != nil {
		jctx, cancel, release, err := s.cfg.StartJob(ctx)
		if err != nil {
			return nil, fmt.Errorf("pull image %q: %w", name, err)
		}
		defer release()
		defer cancel()
		// Kubelet giving up on the call cancels the pull, as containerd's.
		defer context.AfterFunc(ctx, cancel)()
		ctx = jctx
	}
	start := time.Now()
	w := s.watch(ctx, ref.String())
	res, err := s.runner.Run(w.ctx, jobs.Request{Pull: &jobs.PullRequest{Ref: ref.String()}},
		jobs.Env{Progress: w, Credentials: creds, Logger: s.log.With("ref", ref.String()), UserAgent: "strata-cri"})
	if stalled := w.stop(err); stalled != nil {
		err = stalled
	}
	if err != nil {
		return nil, fmt.Errorf("pull image %q: %w", name, err)
	}
	if len(res.Images) != 1 {
		return nil, fmt.Errorf("pull image %q: the pull recorded %d images, want 1: %w", name, len(res.Images), errdefs.ErrInternal)
	}
	pulled := time.Since(start)
	s.fsInfo.forget()
	id, err := s.record(ctx, ref, res.Images[0])
	if err != nil {
		return nil, fmt.Errorf("pull image %q: %w", name, err)
	}
	s.log.Info("pull done", "ref", ref.String(), "id", id.String(), "bytes", w.moved(),
		"duration_ms", time.Since(start).Milliseconds(), "record_ms", (time.Since(start) - pulled).Milliseconds())
	return &runtime.PullImageResponse{ImageRef: id.String()}, nil
}

// record gives the image the pull wrote (pulled) its CRI names and labels.
func (s *Service) record(ctx context.Context, ref reference.Reference, pulled jobs.Image) (digest.Digest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, err := s.images.Get(ctx, pulled.Name)
	if err != nil {
		return "", err
	}
	p, err := s.inspect(ctx, rec.Target)
	if err != nil {
		return "", fmt.Errorf("image %s: %w", rec.Name, err)
	}
	id := p.manifest.Config.Digest
	names := []string{ref.Name() + "@" + rec.Target.Digest.String(), id.String()}
	if ref.Digest == "" {
		names = append([]string{ref.String()}, names...)
	}
	labels := map[string]string{lbl.CRIManaged: lbl.CRIManagedValue}
	paths := []string{"target", "labels." + lbl.CRIManaged}
	for _, n := range append(names, ref.String()) {
		if s.pinned[n] {
			labels[lbl.CRIPinned] = lbl.CRIPinnedValue
			paths = append(paths, "labels."+lbl.CRIPinned)
			break
		}
	}
	for _, n := range names {
		img := images.Image{Name: n, Target: rec.Target, Labels: labels}
		_, err := s.images.Create(ctx, img)
		if errors.Is(err, errdefs.ErrAlreadyExists) {
			_, err = s.images.Update(ctx, img, paths...)
		}
		if err != nil {
			return "", fmt.Errorf("image name %q: %w", n, err)
		}
	}
	if ref.Digest != "" && ref.Tag != "" && pulled.Name != names[0] {
		// repo:tag@digest is no name containerd's CRI gives; repo@digest
		// stands for it.
		if err := s.images.Delete(ctx, pulled.Name); err != nil && !notFound(err) {
			return "", err
		}
	}
	return id, nil
}

// credentials turns a request's AuthConfig into the pull's credential
// source, as containerd's CRI reads it: a username and password, else an
// identity token, else "auth" (base64 of user:password). Registry tokens
// are not supported (nor are they by containerd): such a pull is
// anonymous. With a server address, the credentials go only to that host
// (and to the reference's registry, which mirrors stand in for).
func credentials(auth *runtime.AuthConfig, ref reference.Reference) (jobs.Credentials, error) {
	if auth == nil {
		return nil, nil
	}
	var user, secret string
	switch {
	case auth.GetUsername() != "":
		user, secret = auth.GetUsername(), auth.GetPassword()
	case auth.GetIdentityToken() != "":
		secret = auth.GetIdentityToken()
	case auth.GetAuth() != "":
		b, err := base64.StdEncoding.DecodeString(auth.GetAuth())
		if err != nil {
			return nil, fmt.Errorf("auth config of %s: auth is not base64: %w", ref, errdefs.ErrInvalidArgument)
		}
		u, p, ok := strings.Cut(string(b), ":")
		if !ok || u == "" {
			return nil, fmt.Errorf("auth config of %s: auth is not user:password: %w", ref, errdefs.ErrInvalidArgument)
		}
		user, secret = u, strings.TrimSuffix(p, "\n")
	default:
		return nil, nil
	}
	server := serverHost(auth.GetServerAddress())
	return func(_ context.Context, host string) (string, string, error) {
		if server != "" && !sameRegistry(server, host) && !sameRegistry(server, ref.Domain) {
			return "", "", nil
		}
		return user, secret, nil
	}, nil
}

// serverHost is the host of an AuthConfig's server address, which may be
// a URL ("https://index.docker.io/v1/") or a host ("ghcr.io").
func serverHost(addr string) string {
	if addr == "" {
		return ""
	}
	if strings.Contains(addr, "://") {
		if u, err := url.Parse(addr); err == nil {
			return u.Host
		}
	}
	host, _, _ := strings.Cut(addr, "/")
	return host
}

// sameRegistry reports whether two hosts name one registry: Docker Hub
// goes by several names.
func sameRegistry(a, b string) bool {
	hub := func(h string) string {
		switch h {
		case "docker.io", "index.docker.io", "registry-1.docker.io":
			return "docker.io"
		}
		return h
	}
	return hub(a) == hub(b)
}
