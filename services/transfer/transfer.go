// Package transfer serves containerd.services.transfer.v1.Transfer, the
// front door containerd 2.x clients (ctr, nerdctl) use to pull, push,
// import, export and tag. It is another door to strata's own pipelines,
// not a second implementation: each transfer becomes a jobs.Request run by
// the daemon's shared jobs.Runner, as strata's jobs service runs them.
//
// A request names a source and a destination, each a containerd object
// (github.com/containerd/containerd/api/types/transfer) in an Any:
//
//	source              destination         job
//	OCIRegistry         ImageStore          pull (and unpack)
//	ImageStore          OCIRegistry         push
//	ImageImportStream   ImageStore          import
//	ImageStore          ImageExportStream   export
//	ImageStore          ImageStore          tag (image store only)
//
// What the job needs from the client comes over streams the client opened
// with the streaming service (services/streaming) and named in the
// request: credentials (AuthRequest → AuthResponse on the resolver's
// auth_stream), archive data (Data frames under WindowUpdate flow control)
// and progress (Progress messages on the options' progress_stream, which
// ctr draws as its usual bars).
//
// Unlike a strata job, a transfer lives as long as its call: a client that
// cancels or goes away stops it, and the pipelines leave nothing visible
// of an interrupted job. Anything this service does not support is
// refused with errdefs.ErrNotImplemented naming it.
package transfer

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	transferapi "github.com/containerd/containerd/api/services/transfer/v1"
	"github.com/containerd/containerd/api/types"
	transfertypes "github.com/containerd/containerd/api/types/transfer"
	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/jobs"
	"github.com/strata-oci/strata/reference"
	"github.com/strata-oci/strata/services/streaming"
)

// imageStore is what tags and names need of the image records.
type imageStore interface {
	Get(ctx context.Context, name string) (images.Image, error)
	Create(ctx context.Context, img images.Image) (images.Image, error)
	Update(ctx context.Context, img images.Image, fieldpaths ...string) (images.Image, error)
}

// Config is what a Service uses of the daemon.
type Config struct {
	Runner  *jobs.Runner
	Streams *streaming.Manager
	Images  imageStore
	// StartJob returns the context a job runs on (the call's values,
	// cancelled when the daemon stops), its cancel, and release, which
	// ends the job's hold on the daemon's shutdown.
	StartJob func(call context.Context) (context.Context, context.CancelFunc, func(), error)
	// PeerUID is the uid of the call's peer, -1 when unknown.
	PeerUID func(ctx context.Context) int64
	// Recorded is told the images a transfer recorded (for events).
	Recorded  func(ctx context.Context, imgs []jobs.Image)
	Logger    *slog.Logger
	UserAgent string
}

// Service is the transfer gRPC service.
type Service struct {
	transferapi.UnimplementedTransferServer
	c Config
}

// New returns the service over c.
func New(c Config) *Service {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Recorded == nil {
		c.Recorded = func(context.Context, []jobs.Image) {}
	}
	if c.PeerUID == nil {
		c.PeerUID = func(context.Context) int64 { return -1 }
	}
	return &Service{c: c}
}

// Register serves the service on g.
func (s *Service) Register(g *grpc.Server) { transferapi.RegisterTransferServer(g, s) }

var empty = &emptypb.Empty{}

// Transfer runs one transfer to its end.
func (s *Service) Transfer(call context.Context, req *transferapi.TransferRequest) (*emptypb.Empty, error) {
	src, err := object(req.GetSource(), "source")
	if err != nil {
		return nil, err
	}
	dst, err := object(req.GetDestination(), "destination")
	if err != nil {
		return nil, err
	}
	ctx, cancel, release, err := s.c.StartJob(call)
	if err != nil {
		return nil, err
	}
	defer release()
	defer cancel()
	// A transfer is its call: the client cancelling or going away stops
	// the job (a strata job outlives its client; containerd's do not).
	stop := context.AfterFunc(call, cancel)
	defer stop()

	t := &run{s: s, ctx: ctx, log: s.c.Logger.With("source", kind(src), "destination", kind(dst))}
	defer t.closeStreams()
	if id := req.GetOptions().GetProgressStream(); id != "" {
		st, err := s.c.Streams.Get(call, id)
		if err != nil {
			return nil, fmt.Errorf("progress stream: %w", err)
		}
		t.streams = append(t.streams, st)
		t.progress = newProgress(st)
	}

	start := time.Now()
	err = t.dispatch(src, dst)
	if err != nil {
		t.log.Info("transfer failed", "duration_ms", time.Since(start).Milliseconds(), "error", err)
		return nil, err
	}
	t.log.Info("transfer done", "duration_ms", time.Since(start).Milliseconds())
	return empty, nil
}

// dispatch runs the job of a source and destination.
func (t *run) dispatch(src, dst proto.Message) error {
	switch src := src.(type) {
	case *transfertypes.OCIRegistry:
		if dst, ok := dst.(*transfertypes.ImageStore); ok {
			return t.pull(src, dst)
		}
	case *transfertypes.ImageStore:
		switch dst := dst.(type) {
		case *transfertypes.OCIRegistry:
			return t.push(src, dst)
		case *transfertypes.ImageExportStream:
			return t.export(src, dst)
		case *transfertypes.ImageStore:
			return t.tag(src, dst)
		}
	case *transfertypes.ImageImportStream:
		if dst, ok := dst.(*transfertypes.ImageStore); ok {
			return t.importStream(src, dst)
		}
	}
	return fmt.Errorf("transfer from %s to %s: strata transfers registry → image store (pull), image store → registry (push), import stream → image store, image store → export stream and image store → image store (tag): %w",
		kind(src), kind(dst), errdefs.ErrNotImplemented)
}

// object reads a source or destination.
func object(a *anypb.Any, what string) (proto.Message, error) {
	if a == nil {
		return nil, fmt.Errorf("transfer: no %s: %w", what, errdefs.ErrInvalidArgument)
	}
	var m proto.Message
	switch a.MessageName() {
	case "containerd.types.transfer.OCIRegistry":
		m = &transfertypes.OCIRegistry{}
	case "containerd.types.transfer.ImageStore":
		m = &transfertypes.ImageStore{}
	case "containerd.types.transfer.ImageImportStream":
		m = &transfertypes.ImageImportStream{}
	case "containerd.types.transfer.ImageExportStream":
		m = &transfertypes.ImageExportStream{}
	default:
		return nil, fmt.Errorf("transfer %s of type %q: strata supports OCIRegistry, ImageStore, ImageImportStream and ImageExportStream: %w",
			what, a.GetTypeUrl(), errdefs.ErrNotImplemented)
	}
	if err := streaming.Unmarshal(a, m); err != nil {
		return nil, fmt.Errorf("transfer %s: %w", what, err)
	}
	return m, nil
}

func kind(m proto.Message) string {
	return strings.TrimPrefix(string(m.ProtoReflect().Descriptor().FullName()), "containerd.types.transfer.")
}

// run is one transfer in progress.
type run struct {
	s        *Service
	ctx      context.Context // the job's
	log      *slog.Logger
	progress *progressStream // nil without a progress stream
	streams  []*streaming.Stream
}

func (t *run) closeStreams() {
	if t.progress != nil {
		t.progress.close()
	}
	for _, st := range t.streams {
		st.Close()
	}
}

// status sends a line of the client's status (a Progress without a name).
func (t *run) status(event string) {
	t.progress.send(&transfertypes.Progress{Event: event})
}

func (t *run) env() jobs.Env {
	env := jobs.Env{Logger: t.log, UserAgent: t.s.c.UserAgent}
	if t.progress != nil {
		env.Progress = t.progress
	}
	return env
}

// claim takes the stream id the client opened.
func (t *run) claim(id, what string) (*streaming.Stream, error) {
	st, err := t.s.c.Streams.Get(t.ctx, id)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	t.streams = append(t.streams, st)
	return st, nil
}

// registry turns an OCIRegistry's resolver into the job's registry
// settings and credentials.
func (t *run) registry(r *transfertypes.OCIRegistry, env *jobs.Env) (jobs.Registry, error) {
	var reg jobs.Registry
	res := r.GetResolver()
	if res == nil {
		return reg, nil
	}
	switch res.GetDefaultScheme() {
	case "", "https":
	case "http":
		reg.PlainHTTP = true
	default:
		return reg, fmt.Errorf("registry %s: default scheme %q: want http or https: %w", r.GetReference(), res.GetDefaultScheme(), errdefs.ErrInvalidArgument)
	}
	if len(res.GetHeaders()) > 0 {
		names := make([]string, 0, len(res.GetHeaders()))
		for k := range res.GetHeaders() {
			names = append(names, k)
		}
		return reg, fmt.Errorf("registry %s: extra HTTP headers %v: strata does not send client-given headers: %w", r.GetReference(), names, errdefs.ErrNotImplemented)
	}
	if res.GetHttpDebug() != transfertypes.HTTPDebug_DISABLED || res.GetLogsStream() != "" {
		return reg, fmt.Errorf("registry %s: HTTP debug and trace logs (--http-dump, --http-trace): the daemon logs its registry traffic at debug level instead: %w", r.GetReference(), errdefs.ErrNotImplemented)
	}
	if dir := res.GetHostDir(); dir != "" {
		// As strata's jobs service: the daemon reads paths as root, so
		// it opens a client-named hosts directory for root only; others
		// get the daemon's own (registry.config_path).
		if uid := t.s.c.PeerUID(t.ctx); uid != 0 {
			return reg, fmt.Errorf("hosts directory %s: the daemon opens paths as root, for root only (peer uid %d); the daemon's registry.config_path applies to other users: %w",
				dir, uid, errdefs.ErrPermissionDenied)
		}
		reg.HostsDir = dir
	}
	if id := res.GetAuthStream(); id != "" {
		st, err := t.claim(id, "auth stream")
		if err != nil {
			return reg, err
		}
		env.Credentials = (&askCredentials{st: st, ref: r.GetReference()}).credentials
	}
	return reg, nil
}

func platforms(ps []*types.Platform) []ocispec.Platform {
	out := make([]ocispec.Platform, 0, len(ps))
	for _, p := range ps {
		out = append(out, ocispec.Platform{OS: p.GetOS(), Architecture: p.GetArchitecture(), Variant: p.GetVariant(), OSVersion: p.GetOsVersion()})
	}
	return out
}

// unpack reads an image store's unpack configurations: strata unpacks
// one platform into one snapshotter per pull.
func unpack(is *transfertypes.ImageStore) (noUnpack bool, p *ocispec.Platform, snapshotter string, err error) {
	ups := is.GetUnpacks()
	if len(ups) == 0 {
		return true, nil, "", nil
	}
	for _, u := range ups[1:] {
		if !proto.Equal(u, ups[0]) {
			return false, nil, "", fmt.Errorf("image store %q: unpacks into %d platform/snapshotter pairs: strata unpacks one per transfer: %w", is.GetName(), len(ups), errdefs.ErrNotImplemented)
		}
	}
	if ups[0].GetPlatform() != nil {
		p = &platforms([]*types.Platform{ups[0].GetPlatform()})[0]
	}
	return false, p, ups[0].GetSnapshotter(), nil
}

// refuse names what of an image store strata does not do.
func refuse(is *transfertypes.ImageStore, op string) error {
	if is.GetManifestLimit() != 0 {
		return fmt.Errorf("image store %q: manifest limit %d on %s: %w", is.GetName(), is.GetManifestLimit(), op, errdefs.ErrNotImplemented)
	}
	return nil
}

func (t *run) pull(src *transfertypes.OCIRegistry, dst *transfertypes.ImageStore) error {
	env := t.env()
	reg, err := t.registry(src, &env)
	if err != nil {
		return err
	}
	if err := refuse(dst, "pull"); err != nil {
		return err
	}
	noUnpack, up, sn, err := unpack(dst)
	if err != nil {
		return err
	}
	ps := platforms(dst.GetPlatforms())
	req := jobs.PullRequest{Ref: src.GetReference(), Registry: reg, Platforms: ps, AllPlatforms: len(ps) == 0,
		NoUnpack: noUnpack, UnpackPlatform: up, Snapshotter: sn}
	t.status("Pulling from " + src.GetReference())
	res, err := t.s.c.Runner.Run(t.ctx, jobs.Request{Pull: &req}, env)
	if err != nil {
		return err
	}
	if len(res.Images) != 1 {
		return fmt.Errorf("pull %s recorded %d images, want 1: %w", src.GetReference(), len(res.Images), errdefs.ErrInternal)
	}
	img, err := t.s.c.Images.Get(t.ctx, res.Images[0].Name)
	if err != nil {
		return fmt.Errorf("pulled image %q: %w", res.Images[0].Name, err)
	}
	saved, err := t.store(dst, img.Target, res.Images[0].Name)
	if err != nil {
		return err
	}
	t.s.c.Recorded(context.WithoutCancel(t.ctx), append(res.Images, saved...))
	for _, ji := range append(res.Images[:1:1], saved...) {
		t.progress.send(&transfertypes.Progress{Event: "saved", Name: ji.Name})
	}
	t.status("Completed pull from " + src.GetReference())
	return nil
}

// store records what an image store names besides the record the job
// made (recorded, "" for none), all pointing at target: its name, and its
// extra references that are complete names. Names are created, or
// updated when they exist, as containerd's image store does.
func (t *run) store(is *transfertypes.ImageStore, target ocispec.Descriptor, recorded string) ([]jobs.Image, error) {
	var names []string
	if n := is.GetName(); n != "" {
		names = append(names, n)
	}
	for _, r := range is.GetExtraReferences() {
		if r.GetIsPrefix() {
			return nil, fmt.Errorf("image store: prefix reference %q outside an import: %w", r.GetName(), errdefs.ErrNotImplemented)
		}
		n := r.GetName()
		if r.GetAddDigest() {
			n += "@" + target.Digest.String()
		}
		names = append(names, n)
	}
	var out []jobs.Image
	for _, name := range names {
		if name == recorded && len(is.GetLabels()) == 0 {
			continue // the job's record is this one
		}
		if name != recorded {
			if _, err := reference.Parse(name); err != nil {
				return out, fmt.Errorf("image name %q: %w", name, err)
			}
		}
		img := images.Image{Name: name, Target: target, Labels: is.GetLabels()}
		if name == recorded {
			// Keep the labels the pull wrote (GC references, ...).
			cur, err := t.s.c.Images.Get(t.ctx, name)
			if err != nil {
				return out, fmt.Errorf("image %q: %w", name, err)
			}
			labels := map[string]string{}
			for k, v := range cur.Labels {
				labels[k] = v
			}
			for k, v := range is.GetLabels() {
				labels[k] = v
			}
			img.Labels = labels
		}
		if _, err := t.s.c.Images.Create(t.ctx, img); err != nil {
			if !errdefs.IsAlreadyExists(err) {
				return out, fmt.Errorf("record image %q: %w", name, err)
			}
			if _, err := t.s.c.Images.Update(t.ctx, img, "target", "labels"); err != nil {
				return out, fmt.Errorf("record image %q: %w", name, err)
			}
		}
		out = append(out, jobs.Image{Name: name, Digest: target.Digest})
	}
	return out, nil
}

func (t *run) push(src *transfertypes.ImageStore, dst *transfertypes.OCIRegistry) error {
	env := t.env()
	reg, err := t.registry(dst, &env)
	if err != nil {
		return err
	}
	if err := refuse(src, "push"); err != nil {
		return err
	}
	if len(src.GetExtraReferences()) > 0 {
		return fmt.Errorf("push: extra references of the image store: push one image per transfer: %w", errdefs.ErrNotImplemented)
	}
	req := jobs.PushRequest{Ref: dst.GetReference(), Local: src.GetName(), Registry: reg, Platforms: platforms(src.GetPlatforms())}
	t.status("Pushing to " + dst.GetReference())
	if _, err := t.s.c.Runner.Run(t.ctx, jobs.Request{Push: &req}, env); err != nil {
		return err
	}
	t.status("Completed push to " + dst.GetReference())
	return nil
}

func (t *run) tag(src, dst *transfertypes.ImageStore) error {
	if err := refuse(dst, "tag"); err != nil {
		return err
	}
	if src.GetName() == "" {
		return fmt.Errorf("tag: the source image store names no image: %w", errdefs.ErrInvalidArgument)
	}
	img, err := t.s.c.Images.Get(t.ctx, src.GetName())
	if err != nil {
		return fmt.Errorf("tag image %q: %w", src.GetName(), err)
	}
	saved, err := t.store(dst, img.Target, "")
	if len(saved) > 0 {
		t.s.c.Recorded(context.WithoutCancel(t.ctx), saved)
	}
	if err != nil {
		return err
	}
	if len(saved) == 0 {
		return fmt.Errorf("tag image %q: the destination names no image: %w", src.GetName(), errdefs.ErrInvalidArgument)
	}
	return nil
}

func (t *run) importStream(src *transfertypes.ImageImportStream, dst *transfertypes.ImageStore) error {
	switch {
	case src.GetForceCompress():
		return fmt.Errorf("import: compressing the archive's uncompressed layers (--compress-blobs): %w", errdefs.ErrNotImplemented)
	case dst.GetName() != "":
		return fmt.Errorf("import: naming the archive's index (--index-name %s): %w", dst.GetName(), errdefs.ErrNotImplemented)
	case len(dst.GetLabels()) > 0:
		return fmt.Errorf("import: labels on imported images: %w", errdefs.ErrNotImplemented)
	}
	if err := refuse(dst, "import"); err != nil {
		return err
	}
	if mt := src.GetMediaType(); mt != "" && !strings.HasSuffix(mt, "tar") {
		return fmt.Errorf("import stream of media type %q: strata imports OCI layout and docker save tars: %w", mt, errdefs.ErrNotImplemented)
	}
	req := jobs.ImportRequest{AllPlatforms: len(dst.GetPlatforms()) == 0}
	for _, r := range dst.GetExtraReferences() {
		if !r.GetIsPrefix() {
			return fmt.Errorf("import: a complete name (%q) for imported images: name them with a base name: %w", r.GetName(), errdefs.ErrNotImplemented)
		}
		if req.BaseName != "" && req.BaseName != r.GetName() {
			return fmt.Errorf("import: two base names (%q, %q): %w", req.BaseName, r.GetName(), errdefs.ErrNotImplemented)
		}
		req.BaseName = r.GetName()
		req.Digests = req.Digests || r.GetAddDigest()
	}
	noUnpack, up, sn, err := unpack(dst)
	if err != nil {
		return err
	}
	// strata's import takes all platforms or the host's, and unpacks the
	// host's: anything else would import or unpack what was not asked.
	asked := platforms(dst.GetPlatforms())
	if up != nil {
		asked = append(asked, *up)
	}
	host := images.DefaultPlatform()
	for _, p := range asked {
		n, err := images.ParsePlatform(images.FormatPlatform(p)) // normalised
		if err != nil || n.OS != host.OS || n.Architecture != host.Architecture || n.Variant != host.Variant {
			return fmt.Errorf("import for platform %s: strata imports all platforms or the host's (%s): %w", images.FormatPlatform(p), images.FormatPlatform(host), errdefs.ErrNotImplemented)
		}
	}
	req.NoUnpack, req.Snapshotter = noUnpack, sn
	st, err := t.claim(src.GetStream(), "import stream")
	if err != nil {
		return err
	}
	in := receive(t.ctx, st)
	defer in.Close()
	env := t.env()
	env.Input = in
	env.Warn = func(msg string) { t.log.Info(msg) }
	t.status("Importing")
	res, err := t.s.c.Runner.Run(t.ctx, jobs.Request{Import: &req}, env)
	if err != nil {
		return err
	}
	t.s.c.Recorded(context.WithoutCancel(t.ctx), res.Images)
	for _, img := range res.Images {
		t.progress.send(&transfertypes.Progress{Event: "saved", Name: img.Name})
	}
	t.status("Completed import")
	return nil
}

func (t *run) export(src *transfertypes.ImageStore, dst *transfertypes.ImageExportStream) error {
	switch mt := dst.GetMediaType(); {
	case mt != "" && !strings.HasSuffix(mt, "tar"):
		return fmt.Errorf("export stream of media type %q: strata exports OCI layout tars: %w", mt, errdefs.ErrNotImplemented)
	case dst.GetSkipNonDistributable():
		return fmt.Errorf("export: skipping non-distributable blobs: %w", errdefs.ErrNotImplemented)
	}
	if err := refuse(src, "export"); err != nil {
		return err
	}
	// strata's OCI archives have no docker manifest.json: skipping it
	// (skip_compatibility_manifest) is what happens anyway.
	req := jobs.ExportRequest{Platforms: platforms(dst.GetPlatforms()), AllPlatforms: dst.GetAllPlatforms()}
	if n := src.GetName(); n != "" {
		req.Images = append(req.Images, n)
	}
	for _, r := range src.GetExtraReferences() {
		if r.GetIsPrefix() {
			return fmt.Errorf("export: images by prefix (%q): %w", r.GetName(), errdefs.ErrNotImplemented)
		}
		req.Images = append(req.Images, r.GetName())
	}
	if req.AllPlatforms {
		req.Platforms = nil // ctr sends both; all wins, as in containerd
	}
	st, err := t.claim(dst.GetStream(), "export stream")
	if err != nil {
		return err
	}
	out := newSender(t.ctx, st)
	env := t.env()
	env.Output = out
	t.status("Exporting")
	if _, err := t.s.c.Runner.Run(t.ctx, jobs.Request{Export: &req}, env); err != nil {
		return err
	}
	t.status("Completed export")
	return nil
}

// progressInterval is how often progress goes to the client: a pipeline
// reports every read, a terminal shows a few frames a second.
const progressInterval = 100 * time.Millisecond
