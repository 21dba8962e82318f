package metadata

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/strata-oci/strata/containers"
	"github.com/strata-oci/strata/identifiers"
	"github.com/strata-oci/strata/metadata/internal/schema"
	"github.com/strata-oci/strata/namespaces"

	boltutil "github.com/strata-oci/strata/internal/boltutil"
	lbl "github.com/strata-oci/strata/labels"
)

var (
	bucketContainers = schema.Containers
	bucketRuntime    = []byte("runtime")
	bucketExtensions = []byte("extensions")
	keyImage         = []byte("image")
	keySpec          = []byte("spec")
	keySnapshotter   = schema.Snapshotter
	keySnapshotKey   = schema.SnapshotKey
	keySandboxID     = []byte("sandboxid")
	keyOptions       = []byte("options")
)

// ContainerStore keeps container records per namespace. A container holds
// its root filesystem snapshot and what its containerd.io/gc.ref.* labels
// name against garbage collection, and keeps its namespace from being
// deleted.
type ContainerStore struct{ db *DB }

var _ containers.Store = (*ContainerStore)(nil)

// Containers returns the container store.
func (db *DB) Containers() *ContainerStore { return &ContainerStore{db: db} }

func validateContainerID(id string) error { return identifiers.Validate("container", id) }

// validateContainer checks a record before it is written, naming the
// container and what is wrong.
func validateContainer(c containers.Container) error {
	if err := validateContainerID(c.ID); err != nil {
		return err
	}
	if c.Runtime.Name == "" {
		return fmt.Errorf("container %q: runtime name is required: %w", c.ID, errdefs.ErrInvalidArgument)
	}
	if c.Spec == nil {
		return fmt.Errorf("container %q: spec is required: %w", c.ID, errdefs.ErrInvalidArgument)
	}
	if c.SnapshotKey != "" && c.Snapshotter == "" {
		return fmt.Errorf("container %q: snapshot key %q without a snapshotter: %w", c.ID, c.SnapshotKey, errdefs.ErrInvalidArgument)
	}
	for k := range c.Extensions {
		if k == "" {
			return fmt.Errorf("container %q: extension name must not be empty: %w", c.ID, errdefs.ErrInvalidArgument)
		}
	}
	if err := lbl.Validate(c.Labels); err != nil {
		return fmt.Errorf("container %q: %w", c.ID, err)
	}
	return nil
}

func putAny(b *bolt.Bucket, key []byte, a *anypb.Any) error {
	if a == nil {
		return nil
	}
	v, err := proto.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	return b.Put(key, v)
}

// readAny decodes an Any written by putAny; nil when absent.
func readAny(b *bolt.Bucket, key []byte) (*anypb.Any, error) {
	v := b.Get(key)
	if v == nil {
		return nil, nil
	}
	a := &anypb.Any{}
	if err := proto.Unmarshal(v, a); err != nil {
		return nil, fmt.Errorf("decode %s: %w: %w", key, err, errdefs.ErrDataLoss)
	}
	return a, nil
}

func putString(b *bolt.Bucket, key []byte, s string) error {
	if s == "" {
		return b.Delete(key)
	}
	return b.Put(key, []byte(s))
}

func readContainer(id string, b *bolt.Bucket) (containers.Container, error) {
	c := containers.Container{
		ID:          id,
		Labels:      boltutil.ReadMap(b, bucketLabels),
		Image:       string(b.Get(keyImage)),
		Snapshotter: string(b.Get(keySnapshotter)),
		SnapshotKey: string(b.Get(keySnapshotKey)),
		SandboxID:   string(b.Get(keySandboxID)),
		CreatedAt:   boltutil.ReadTime(b, keyCreatedAt),
		UpdatedAt:   boltutil.ReadTime(b, keyUpdatedAt),
	}
	var err error
	if c.Spec, err = readAny(b, keySpec); err != nil {
		return c, fmt.Errorf("container %q: %w", id, err)
	}
	if rb := b.Bucket(bucketRuntime); rb != nil {
		c.Runtime.Name = string(rb.Get(keyName))
		if c.Runtime.Options, err = readAny(rb, keyOptions); err != nil {
			return c, fmt.Errorf("container %q: runtime %w", id, err)
		}
	}
	if eb := b.Bucket(bucketExtensions); eb != nil {
		err = eb.ForEach(func(k, _ []byte) error {
			a, err := readAny(eb, k)
			if err != nil {
				return err
			}
			if c.Extensions == nil {
				c.Extensions = map[string]*anypb.Any{}
			}
			c.Extensions[string(k)] = a
			return nil
		})
		if err != nil {
			return c, fmt.Errorf("container %q: extension %w", id, err)
		}
	}
	return c, nil
}

// writeContainer writes every field of c but createdat over b.
func writeContainer(b *bolt.Bucket, c containers.Container) error {
	if err := boltutil.ReplaceMap(b, bucketLabels, c.Labels); err != nil {
		return err
	}
	for _, kv := range []struct {
		key []byte
		val string
	}{{keyImage, c.Image}, {keySnapshotter, c.Snapshotter}, {keySnapshotKey, c.SnapshotKey}, {keySandboxID, c.SandboxID}} {
		if err := putString(b, kv.key, kv.val); err != nil {
			return err
		}
	}
	if err := putAny(b, keySpec, c.Spec); err != nil {
		return err
	}
	for _, name := range [][]byte{bucketRuntime, bucketExtensions} {
		if err := b.DeleteBucket(name); err != nil && !schema.IsBucketNotFound(err) {
			return err
		}
	}
	rb, err := b.CreateBucket(bucketRuntime)
	if err != nil {
		return err
	}
	if err := rb.Put(keyName, []byte(c.Runtime.Name)); err != nil {
		return err
	}
	if err := putAny(rb, keyOptions, c.Runtime.Options); err != nil {
		return err
	}
	if len(c.Extensions) > 0 {
		eb, err := b.CreateBucket(bucketExtensions)
		if err != nil {
			return err
		}
		for k, a := range c.Extensions {
			if a == nil {
				continue
			}
			if err := putAny(eb, []byte(k), a); err != nil {
				return err
			}
		}
	}
	return boltutil.PutTime(b, keyUpdatedAt, c.UpdatedAt)
}

// Get returns the container id. It returns errdefs.ErrNotFound when the
// namespace has no such container.
func (s *ContainerStore) Get(ctx context.Context, id string) (containers.Container, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return containers.Container{}, err
	}
	var c containers.Container
	err = s.db.view(func(tx *bolt.Tx) error {
		b := nsBucket(tx, ns, bucketContainers, []byte(id))
		if b == nil {
			return fmt.Errorf("container %q in namespace %q: %w", id, ns, errdefs.ErrNotFound)
		}
		c, err = readContainer(id, b)
		return err
	})
	return c, err
}

// List returns the containers matching any of fs, sorted by id.
func (s *ContainerStore) List(ctx context.Context, fs ...string) ([]containers.Container, error) {
	ns, filter, err := listScope(ctx, fs)
	if err != nil {
		return nil, err
	}
	var out []containers.Container
	err = s.db.view(func(tx *bolt.Tx) error {
		cb := nsBucket(tx, ns, bucketContainers)
		if cb == nil {
			return nil
		}
		return cb.ForEachBucket(func(k []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			c, err := readContainer(string(k), cb.Bucket(k))
			if err != nil {
				return err
			}
			if filter.Match(containers.Adapt(c)) {
				out = append(out, c)
			}
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, err
}

// Create records c, setting its times. It returns errdefs.ErrAlreadyExists
// when the namespace has a container c.ID and errdefs.ErrInvalidArgument,
// naming the reason, for an incomplete or invalid record.
func (s *ContainerStore) Create(ctx context.Context, c containers.Container) (containers.Container, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return containers.Container{}, err
	}
	if err := validateContainer(c); err != nil {
		return containers.Container{}, err
	}
	err = s.db.update(func(tx *bolt.Tx) error {
		cb, err := createNSBucket(tx, ns, bucketContainers)
		if err != nil {
			return err
		}
		if cb.Bucket([]byte(c.ID)) != nil {
			return fmt.Errorf("container %q in namespace %q: %w", c.ID, ns, errdefs.ErrAlreadyExists)
		}
		b, err := cb.CreateBucket([]byte(c.ID))
		if err != nil {
			return err
		}
		c.CreatedAt = time.Now().UTC()
		c.UpdatedAt = c.CreatedAt
		if err := boltutil.PutTime(b, keyCreatedAt, c.CreatedAt); err != nil {
			return err
		}
		return writeContainer(b, c)
	})
	if err != nil {
		return containers.Container{}, err
	}
	return c, nil
}

// Update replaces the fields of the container c.ID that fieldpaths name
// (see containers.Store). It returns errdefs.ErrNotFound when there is no
// such container and errdefs.ErrInvalidArgument for a field path that
// cannot be updated (id, created/updated times, sandbox) or a result that
// is not valid; then nothing is written.
func (s *ContainerStore) Update(ctx context.Context, c containers.Container, fieldpaths ...string) (containers.Container, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return containers.Container{}, err
	}
	if c.ID == "" {
		return containers.Container{}, fmt.Errorf("update container: id must not be empty: %w", errdefs.ErrInvalidArgument)
	}
	var out containers.Container
	err = s.db.update(func(tx *bolt.Tx) error {
		b := nsBucket(tx, ns, bucketContainers, []byte(c.ID))
		if b == nil {
			return fmt.Errorf("container %q in namespace %q: %w", c.ID, ns, errdefs.ErrNotFound)
		}
		cur, err := readContainer(c.ID, b)
		if err != nil {
			return err
		}
		paths := fieldpaths
		if len(paths) == 0 {
			// containerd's full replace: what a client may change, and
			// an error for what it may not, so that it is not lost
			// unseen.
			paths = []string{"labels", "spec", "image", "snapshotkey", "extensions"}
			if c.Snapshotter != cur.Snapshotter {
				return fmt.Errorf("update container %q: snapshotter %q cannot change to %q without a field path naming it: %w", c.ID, cur.Snapshotter, c.Snapshotter, errdefs.ErrInvalidArgument)
			}
			if c.Runtime.Name != cur.Runtime.Name {
				return fmt.Errorf("update container %q: runtime %q cannot change to %q without a field path naming it: %w", c.ID, cur.Runtime.Name, c.Runtime.Name, errdefs.ErrInvalidArgument)
			}
		}
		var labelPaths []string
		for _, fp := range paths {
			switch {
			case fp == "labels" || strings.HasPrefix(fp, "labels."):
				labelPaths = append(labelPaths, fp)
			case fp == "spec":
				cur.Spec = c.Spec
			case fp == "image":
				cur.Image = c.Image
			case fp == "snapshotkey":
				cur.SnapshotKey = c.SnapshotKey
			case fp == "snapshotter":
				cur.Snapshotter = c.Snapshotter
			case fp == "runtime":
				cur.Runtime = c.Runtime
			case fp == "extensions":
				cur.Extensions = c.Extensions
			case strings.HasPrefix(fp, "extensions.") && len(fp) > len("extensions."):
				key := fp[len("extensions."):]
				if a, ok := c.Extensions[key]; ok && a != nil {
					if cur.Extensions == nil {
						cur.Extensions = map[string]*anypb.Any{}
					}
					cur.Extensions[key] = a
				} else {
					delete(cur.Extensions, key)
				}
			default:
				return fmt.Errorf("update container %q: field %q cannot be updated: %w", c.ID, fp, errdefs.ErrInvalidArgument)
			}
		}
		labels, err := lbl.Update(cur.Labels, c.Labels, labelPaths)
		if err != nil {
			return fmt.Errorf("update container %q: %w", c.ID, err)
		}
		cur.Labels = labels
		if err := validateContainer(cur); err != nil {
			return fmt.Errorf("update: %w", err)
		}
		cur.UpdatedAt = time.Now().UTC()
		if err := writeContainer(b, cur); err != nil {
			return err
		}
		out = cur
		return nil
	})
	if err != nil {
		return containers.Container{}, err
	}
	return out, nil
}

// Delete removes the container id and schedules garbage collection (its
// snapshot goes when nothing else holds it). It returns errdefs.ErrNotFound
// when there is no such container.
func (s *ContainerStore) Delete(ctx context.Context, id string) error {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return err
	}
	err = s.db.update(func(tx *bolt.Tx) error {
		cb := nsBucket(tx, ns, bucketContainers)
		if cb == nil || cb.Bucket([]byte(id)) == nil {
			return fmt.Errorf("container %q in namespace %q: %w", id, ns, errdefs.ErrNotFound)
		}
		return cb.DeleteBucket([]byte(id))
	})
	if err != nil {
		return err
	}
	s.db.scheduleGC()
	return nil
}
