package volumes

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Volume is a named volume.
type Volume struct {
	Name string `json:"name"`
	// Mountpoint is the directory containers bind mount.
	Mountpoint string            `json:"mountpoint"`
	CreatedAt  time.Time         `json:"created_at"`
	Labels     map[string]string `json:"labels,omitempty"`
	// Anonymous volumes are made by `-v /dst` with no name; prune removes
	// only those unless told to remove all.
	Anonymous bool `json:"anonymous,omitempty"`
	// CopyUp is true until a container first mounts the volume: that
	// mount fills it from the image (podman's NeedsCopyUp), once, so a
	// volume emptied on purpose stays empty.
	CopyUp bool `json:"copy_up,omitempty"`
}

// InUseFunc returns the volumes that containers name, each with the IDs
// of the containers naming it.
type InUseFunc func(ctx context.Context) (map[string][]string, error)

// Store keeps the volumes under a root. Several processes may share it
// (the CLI in embedded mode, the daemon): every change holds a file lock.
type Store struct {
	root  string
	inUse InUseFunc
}

type options struct {
	inUse InUseFunc
}

// Opt configures a Store.
type Opt func(*options) error

// WithInUse sets what tells which volumes containers use. Without it no
// volume is in use.
func WithInUse(f InUseFunc) Opt {
	return func(o *options) error { o.inUse = f; return nil }
}

// New opens (making it if needed) the volume store at root.
func New(root string, opts ...Opt) (*Store, error) {
	var o options
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if !filepath.IsAbs(root) {
		return nil, fmt.Errorf("volumes: root %q is not absolute: %w", root, errdefs.ErrInvalidArgument)
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("volumes: %w", err)
	}
	if o.inUse == nil {
		o.inUse = func(context.Context) (map[string][]string, error) { return nil, nil }
	}
	return &Store{root: filepath.Clean(root), inUse: o.inUse}, nil
}

// Root returns the directory the volumes are under.
func (s *Store) Root() string { return s.root }

// nameRE is docker's rule for volume names.
var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// ValidName returns ErrInvalidArgument for a name docker would refuse.
func ValidName(name string) error {
	if len(name) > 255 || !nameRE.MatchString(name) {
		return fmt.Errorf("volume name %q: want at least two letters, digits, '_', '.' or '-', not starting with a symbol: %w", name, errdefs.ErrInvalidArgument)
	}
	return nil
}

func (s *Store) dir(name string) string        { return filepath.Join(s.root, name) }
func (s *Store) dataDir(name string) string    { return filepath.Join(s.root, name, "_data") }
func (s *Store) recordPath(name string) string { return filepath.Join(s.root, name, "volume.json") }

// lock takes the store's file lock; the returned function releases it.
func (s *Store) lock(ctx context.Context) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(s.root, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("volumes: lock: %w", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("volumes: lock %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil
}

// CreateRequest is `strata volume create`.
type CreateRequest struct {
	// Name is optional: a random 64-hex-digit name otherwise, and the
	// volume is anonymous, as docker's.
	Name   string
	Labels map[string]string
	// Anonymous marks a volume made by `-v /dst`; prune removes it.
	Anonymous bool
}

// Create makes a volume. A bad name is ErrInvalidArgument, a name taken
// ErrAlreadyExists.
func (s *Store) Create(ctx context.Context, req CreateRequest) (Volume, error) {
	unlock, err := s.lock(ctx)
	if err != nil {
		return Volume{}, err
	}
	defer unlock()
	return s.create(req)
}

func (s *Store) create(req CreateRequest) (Volume, error) {
	if req.Name == "" {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return Volume{}, err
		}
		req.Name, req.Anonymous = hex.EncodeToString(b), true
	}
	if err := ValidName(req.Name); err != nil {
		return Volume{}, err
	}
	if _, err := s.get(req.Name); err == nil {
		return Volume{}, fmt.Errorf("volume %q: %w", req.Name, errdefs.ErrAlreadyExists)
	} else if !errors.Is(err, errdefs.ErrNotFound) {
		return Volume{}, err
	}
	// A directory without a record is what a crash left: start afresh.
	if err := os.RemoveAll(s.dir(req.Name)); err != nil {
		return Volume{}, fmt.Errorf("volume %q: remove leftover: %w", req.Name, err)
	}
	v := Volume{Name: req.Name, Mountpoint: s.dataDir(req.Name), CreatedAt: time.Now().UTC(),
		Labels: req.Labels, Anonymous: req.Anonymous, CopyUp: true}
	if err := os.Mkdir(s.dir(v.Name), 0o700); err != nil {
		return Volume{}, fmt.Errorf("volume %q: %w", v.Name, err)
	}
	// 0755 as docker's _data: the image's mount point mode replaces it
	// on copy up.
	if err := os.Mkdir(v.Mountpoint, 0o755); err != nil {
		os.RemoveAll(s.dir(v.Name))
		return Volume{}, fmt.Errorf("volume %q: %w", v.Name, err)
	}
	if err := s.write(v); err != nil {
		os.RemoveAll(s.dir(v.Name))
		return Volume{}, err
	}
	return v, nil
}

func (s *Store) write(v Volume) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	name := s.recordPath(v.Name)
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("volume %q: write record: %w", v.Name, err)
	}
	if err := os.Rename(tmp, name); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("volume %q: write record: %w", v.Name, err)
	}
	return nil
}

// Get returns the volume by name: ErrNotFound when there is none,
// ErrInvalidArgument for a bad name.
func (s *Store) Get(ctx context.Context, name string) (Volume, error) {
	if err := ctx.Err(); err != nil {
		return Volume{}, err
	}
	return s.get(name)
}

func (s *Store) get(name string) (Volume, error) {
	if err := ValidName(name); err != nil {
		return Volume{}, err
	}
	data, err := os.ReadFile(s.recordPath(name))
	if errors.Is(err, fs.ErrNotExist) {
		return Volume{}, fmt.Errorf("volume %q: %w", name, errdefs.ErrNotFound)
	}
	if err != nil {
		return Volume{}, fmt.Errorf("volume %q: %w", name, err)
	}
	var v Volume
	if err := json.Unmarshal(data, &v); err != nil {
		return Volume{}, fmt.Errorf("volume %q: record: %w: %w", name, err, errdefs.ErrDataLoss)
	}
	if v.Name != name {
		return Volume{}, fmt.Errorf("volume %q: record names %q: %w", name, v.Name, errdefs.ErrDataLoss)
	}
	v.Mountpoint = s.dataDir(name)
	return v, nil
}

// List returns the volumes sorted by name.
func (s *Store) List(ctx context.Context) ([]Volume, error) {
	entries, err := os.ReadDir(s.root)
	if err != nil {
		return nil, fmt.Errorf("volumes: %w", err)
	}
	var out []Volume
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if !e.IsDir() || ValidName(e.Name()) != nil {
			continue
		}
		v, err := s.get(e.Name())
		if errors.Is(err, errdefs.ErrNotFound) {
			continue // half made or half removed
		}
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// InUse returns the containers using each volume.
func (s *Store) InUse(ctx context.Context) (map[string][]string, error) {
	used, err := s.inUse(ctx)
	if err != nil {
		return nil, fmt.Errorf("volumes: containers using volumes: %w", err)
	}
	return used, nil
}

// Remove removes a volume and its data: ErrNotFound when there is none,
// ErrFailedPrecondition naming the containers when any uses it.
func (s *Store) Remove(ctx context.Context, name string) error {
	unlock, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := s.get(name); err != nil {
		return err
	}
	used, err := s.InUse(ctx)
	if err != nil {
		return err
	}
	if ids := used[name]; len(ids) > 0 {
		return fmt.Errorf("volume %q is in use by container(s) %s: %w", name, shortIDs(ids), errdefs.ErrFailedPrecondition)
	}
	return s.remove(name)
}

func (s *Store) remove(name string) error {
	// The record first: a crash then leaves a directory List skips.
	if err := os.Remove(s.recordPath(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("volume %q: %w", name, err)
	}
	if err := os.RemoveAll(s.dir(name)); err != nil {
		return fmt.Errorf("volume %q: remove data: %w", name, err)
	}
	return nil
}

func shortIDs(ids []string) string {
	ids = slices.Clone(ids)
	sort.Strings(ids)
	for i, id := range ids {
		if len(id) > 12 {
			ids[i] = id[:12]
		}
	}
	return strings.Join(ids, ", ")
}

// PruneOptions says which unused volumes Prune removes.
type PruneOptions struct {
	// All removes every unused volume, not only anonymous ones (docker's
	// `volume prune --all`).
	All bool
}

// Prune removes the volumes no container uses (anonymous ones only unless
// opts.All) and returns their names.
func (s *Store) Prune(ctx context.Context, opts PruneOptions) ([]string, error) {
	unlock, err := s.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	vols, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	used, err := s.InUse(ctx)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, v := range vols {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		if len(used[v.Name]) > 0 || !v.Anonymous && !opts.All {
			continue
		}
		if err := s.remove(v.Name); err != nil {
			return removed, err
		}
		removed = append(removed, v.Name)
	}
	return removed, nil
}

// RemoveAnonymous removes the anonymous volumes among those mounts bind
// (Names) that no container uses, and returns their names: what `rm -v`
// and --rm do once the container's record is gone. Named volumes, and
// anonymous ones another container shares (--volumes-from), stay.
func (s *Store) RemoveAnonymous(ctx context.Context, mounts []specs.Mount) ([]string, error) {
	names := s.Names(mounts)
	if len(names) == 0 {
		return nil, nil
	}
	unlock, err := s.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	used, err := s.InUse(ctx)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, name := range names {
		v, err := s.get(name)
		if errors.Is(err, errdefs.ErrNotFound) {
			continue
		}
		if err != nil {
			return removed, err
		}
		if !v.Anonymous || len(used[name]) > 0 {
			continue
		}
		if err := s.remove(name); err != nil {
			return removed, err
		}
		removed = append(removed, name)
	}
	return removed, nil
}

// removeContents removes everything inside dir, leaving dir.
func removeContents(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}
