package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/strata-oci/strata/containers"
	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/labels"
	"github.com/strata-oci/strata/leases"
	"github.com/strata-oci/strata/mount"
	"github.com/strata-oci/strata/network"
	"github.com/strata-oci/strata/oci"
	"github.com/strata-oci/strata/volumes"
)

// SpecTypeURL is the type of a container record's spec, as containerd's
// clients write it.
const SpecTypeURL = "types.containerd.io/opencontainers/runtime-spec/1/Spec"

// Networks every engine knows besides user-defined ones.
const (
	NetworkBridge = "bridge"
	NetworkHost   = "host"
	NetworkNone   = "none"
)

// CreateOptions describe a new container.
type CreateOptions struct {
	// ID is the new container's ID; "" gets a new one (NewID).
	ID string
	// Image is the image record; Platform selects its manifest (nil: the
	// host's).
	Image    images.Image
	Platform images.PlatformMatcher
	// Name is unique in the namespace; "" gets none.
	Name string
	// Spec are the docker-run options; ID and Rootfs are filled in here.
	Spec oci.Options
	// Network is bridge (""), host, none or a user-defined network.
	Network string
	Ports   []network.PortMapping
	// Volumes are -v arguments naming volumes (volumes.IsVolume):
	// NAME:/dst[:ro], made when missing and filled from the image at dst
	// the first time they are used, or /dst[:ro] for a new anonymous
	// volume. Each VOLUME of the image config that no mount covers gets
	// an anonymous volume too, as docker's.
	Volumes []string
	// AutoRemove removes the container once its task has exited and
	// Stop or Reap sees it (-d --rm; a foreground run removes its own).
	AutoRemove bool
	// LogURI is the stdio URI (logs.URI) of the container's logger: a
	// Start given no streams writes the container's output there.
	LogURI string
}

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// NewID returns a random container ID: 64 hexadecimal digits, as docker's.
func NewID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Create makes a container: its root filesystem snapshot, prepared from
// the image's layers (unpacked first when needed), its runtime spec from
// the image config and the options, and its record. A name already taken
// is errdefs.ErrAlreadyExists; bad options are errdefs.ErrInvalidArgument
// or errdefs.ErrNotFound (a bind source, a user). On error nothing is
// left.
func (e *Engine) Create(ctx context.Context, o CreateOptions) (_ containers.Container, retErr error) {
	if o.Name != "" {
		if !nameRE.MatchString(o.Name) {
			return containers.Container{}, fmt.Errorf("container name %q: want [a-zA-Z0-9][a-zA-Z0-9_.-]*: %w", o.Name, errdefs.ErrInvalidArgument)
		}
		if err := e.nameFree(ctx, o.Name); err != nil {
			return containers.Container{}, err
		}
	}
	switch o.Network {
	case "":
		o.Network = NetworkBridge
	case NetworkHost:
		o.Spec.HostNetwork = true
	}
	if (o.Network == NetworkHost || o.Network == NetworkNone) && len(o.Ports) > 0 {
		return containers.Container{}, fmt.Errorf("published ports need a network of their own, not --network %s: %w", o.Network, errdefs.ErrInvalidArgument)
	}
	if o.Network != NetworkHost && o.Network != NetworkNone && e.cfg.Network == nil {
		return containers.Container{}, fmt.Errorf("network %q: no container networking here (--network host or none): %w", o.Network, errdefs.ErrUnavailable)
	}
	if o.Platform == nil {
		o.Platform = images.Only(images.DefaultPlatform())
	}
	cs := e.cfg.Store.Content()
	mdesc, manifest, err := images.Manifest(ctx, cs, o.Image.Target, o.Platform)
	if err != nil {
		return containers.Container{}, fmt.Errorf("image %q: %w", o.Image.Name, err)
	}
	cb, err := content.ReadBlob(ctx, cs, manifest.Config, 1<<22)
	if err != nil {
		return containers.Container{}, fmt.Errorf("image %q: config: %w", o.Image.Name, err)
	}
	var config ocispec.Image
	if err := json.Unmarshal(cb, &config); err != nil {
		return containers.Container{}, fmt.Errorf("image %q: config %s: %w: %w", o.Image.Name, manifest.Config.Digest, err, errdefs.ErrDataLoss)
	}
	stop, err := oci.StopSignal(config.Config)
	if err != nil {
		return containers.Container{}, fmt.Errorf("image %q: %w", o.Image.Name, err)
	}
	diffIDs, err := images.RootFS(ctx, cs, manifest)
	if err != nil {
		return containers.Container{}, fmt.Errorf("image %q: %w", o.Image.Name, err)
	}
	if len(diffIDs) == 0 {
		return containers.Container{}, fmt.Errorf("image %q has no layers: %w", o.Image.Name, errdefs.ErrFailedPrecondition)
	}
	chain := images.ChainIDs(diffIDs)
	top := chain[len(chain)-1].String()

	snName := e.cfg.Snapshotter
	sn, err := e.snapshotter(snName)
	if err != nil {
		return containers.Container{}, err
	}
	id := o.ID
	if id == "" {
		id = NewID()
	}
	o.Spec.ID = id

	// The lease holds the unpacked layers and the new snapshot until the
	// container record, a GC root, holds them for good.
	l, err := e.cfg.Store.Leases().Create(ctx, leases.WithExpiration(time.Hour),
		leases.WithLabels(map[string]string{labels.CreatedBy: "run"}))
	if err != nil {
		return containers.Container{}, err
	}
	defer func() {
		if err := e.cfg.Store.Leases().Delete(context.WithoutCancel(ctx), l); err != nil {
			e.log.Warn("delete the lease of a container create", "lease", l.ID, "error", err)
		}
	}()
	lctx := leases.WithLease(ctx, l.ID)
	if _, err := sn.Stat(lctx, top); errors.Is(err, errdefs.ErrNotFound) {
		if e.cfg.Unpack == nil {
			return containers.Container{}, fmt.Errorf("image %q is not unpacked and there is no unpacker: %w", o.Image.Name, errdefs.ErrFailedPrecondition)
		}
		got, err := e.cfg.Unpack(lctx, mdesc, snName)
		if err != nil {
			return containers.Container{}, fmt.Errorf("unpack image %q: %w", o.Image.Name, err)
		}
		if got.String() != top {
			return containers.Container{}, fmt.Errorf("unpack image %q: top chain ID %s, want %s: %w", o.Image.Name, got, top, errdefs.ErrDataLoss)
		}
	} else if err != nil {
		return containers.Container{}, err
	}
	mounts, err := sn.Prepare(lctx, id, top)
	if err != nil {
		return containers.Container{}, fmt.Errorf("container %s: prepare snapshot: %w", id, err)
	}
	defer func() {
		if retErr != nil {
			if err := sn.Remove(context.WithoutCancel(ctx), id); err != nil {
				e.log.Warn("remove the snapshot of a container not created", "key", id, "error", err)
			}
		}
	}()

	vols := append(slices.Clone(o.Volumes), imageVolumes(config.Config.Volumes, o)...)
	if len(vols) > 0 {
		if e.cfg.Volumes == nil {
			return containers.Container{}, fmt.Errorf("volumes %v: no volume store here: %w", vols, errdefs.ErrUnavailable)
		}
		// The new snapshot holds the image's files: a new volume is
		// filled from it.
		vm, err := e.cfg.Volumes.BindAll(ctx, vols, mounts, volumes.BindOptions{Create: true})
		if err != nil {
			return containers.Container{}, err
		}
		defer func() {
			if retErr != nil {
				if _, err := e.cfg.Volumes.RemoveAnonymous(context.WithoutCancel(ctx), vm); err != nil {
					e.log.Warn("remove the anonymous volumes of a container not created", "container", id, "error", err)
				}
			}
		}()
		o.Spec.Mounts = append(o.Spec.Mounts, vm...)
	}
	spec, err := generate(ctx, id, mounts, o.Spec, config.Config)
	if err != nil {
		return containers.Container{}, err
	}
	sb, err := json.Marshal(spec)
	if err != nil {
		return containers.Container{}, err
	}
	lb := map[string]string{
		labels.ContainerNetwork:    o.Network,
		labels.ContainerStopSignal: strconv.Itoa(int(stop)),
	}
	if o.Name != "" {
		lb[labels.ContainerName] = o.Name
	}
	if len(o.Ports) > 0 {
		pb, _ := json.Marshal(o.Ports)
		lb[labels.ContainerPorts] = string(pb)
	}
	if vols := append(append(vols, o.Spec.Binds...), o.Spec.Tmpfs...); len(vols) > 0 {
		vb, _ := json.Marshal(vols)
		lb[labels.ContainerVolumes] = string(vb)
	}
	if o.AutoRemove {
		lb[labels.ContainerAutoRemove] = "true"
	}
	if o.LogURI != "" {
		lb[labels.ContainerLogURI] = o.LogURI
	}
	c := containers.Container{
		ID:          id,
		Labels:      lb,
		Image:       o.Image.Name,
		Runtime:     containers.RuntimeInfo{Name: e.cfg.Runtime},
		Spec:        &anypb.Any{TypeUrl: SpecTypeURL, Value: sb},
		SnapshotKey: id,
		Snapshotter: e.snapshotterName(),
	}
	// A name taken by a create running at the same time: checked again
	// just before, the window is one call wide.
	if o.Name != "" {
		if err := e.nameFree(ctx, o.Name); err != nil {
			return containers.Container{}, err
		}
	}
	return e.cfg.Store.Containers().Create(ctx, c)
}

// imageVolumes returns, as anonymous volume arguments (/dst), the VOLUMEs
// of an image config that none of the container's mounts has for
// destination, sorted.
func imageVolumes(declared map[string]struct{}, o CreateOptions) []string {
	if len(declared) == 0 {
		return nil
	}
	covered := map[string]bool{}
	for _, m := range o.Spec.Mounts {
		covered[path.Clean(m.Destination)] = true
	}
	// -v NAME:/dst[:opts] and /dst[:opts]; /src:/dst[:opts]; --tmpfs
	// /dst[:opts]. Malformed ones are refused later, by their parsers.
	for _, v := range o.Volumes {
		parts := strings.Split(v, ":")
		if strings.HasPrefix(parts[0], "/") {
			covered[path.Clean(parts[0])] = true
		} else if len(parts) > 1 {
			covered[path.Clean(parts[1])] = true
		}
	}
	for _, b := range o.Spec.Binds {
		if parts := strings.Split(b, ":"); len(parts) > 1 {
			covered[path.Clean(parts[1])] = true
		}
	}
	for _, t := range o.Spec.Tmpfs {
		dst, _, _ := strings.Cut(t, ":")
		covered[path.Clean(dst)] = true
	}
	var out []string
	for dst := range declared {
		// An image's VOLUME is a path in the container; docker takes
		// relative ones from /.
		dst = path.Clean("/" + dst)
		if dst == "/" || covered[dst] {
			continue
		}
		covered[dst] = true
		out = append(out, dst)
	}
	sort.Strings(out)
	return out
}

func (e *Engine) snapshotterName() string {
	if e.cfg.Snapshotter != "" {
		return e.cfg.Snapshotter
	}
	if d, ok := e.cfg.Store.(interface{ DefaultSnapshotter() string }); ok {
		return d.DefaultSnapshotter()
	}
	return "overlayfs"
}

// nameFree returns errdefs.ErrAlreadyExists when a container of the
// namespace has the name.
func (e *Engine) nameFree(ctx context.Context, name string) error {
	all, err := e.cfg.Store.Containers().List(ctx)
	if err != nil {
		return err
	}
	for _, c := range all {
		if c.Labels[labels.ContainerName] == name {
			return fmt.Errorf("container name %q is already in use by container %s; remove it or choose another name: %w", name, shortID(c.ID), errdefs.ErrAlreadyExists)
		}
	}
	return nil
}

// generate builds the spec with the snapshot mounted read-only on a
// temporary directory, where oci.Generate reads /etc/passwd and
// /etc/group; the spec's root is then the bundle's "rootfs", which the
// shim mounts.
func generate(ctx context.Context, id string, mounts []mount.Mount, o oci.Options, img ocispec.ImageConfig) (_ any, retErr error) {
	dir, err := os.MkdirTemp("", "strata-rootfs-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(dir)
	ro := make([]mount.Mount, len(mounts))
	for i, m := range mounts {
		ro[i] = m
		ro[i].Options = append(append([]string(nil), m.Options...), "ro")
	}
	if err := mount.All(ro, dir); err != nil {
		return nil, fmt.Errorf("container %s: mount its root filesystem: %w", id, err)
	}
	defer func() {
		if err := mount.UnmountAll(dir, 0); err != nil && retErr == nil {
			retErr = fmt.Errorf("container %s: unmount its root filesystem: %w", id, err)
		}
	}()
	o.Rootfs = dir
	o.Image = img
	spec, err := oci.Generate(ctx, o)
	if err != nil {
		return nil, err
	}
	spec.Root.Path = "rootfs"
	return spec, nil
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
