package metadata

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/strata-oci/strata/containers"
	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/content/local"
	"github.com/strata-oci/strata/images"
	lbl "github.com/strata-oci/strata/labels"
	"github.com/strata-oci/strata/leases"
	"github.com/strata-oci/strata/metadata/gc"
	"github.com/strata-oci/strata/namespaces"

	boltutil "github.com/strata-oci/strata/internal/boltutil"
)

func openTestDB(t *testing.T, opts ...Opt) (*DB, string) {
	t.Helper()
	dir := t.TempDir()
	blobs, err := local.New(filepath.Join(dir, "content"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := Open(context.Background(), filepath.Join(dir, "metadata.db"), blobs, append([]Opt{WithGCDelay(-1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, dir
}

// putSnapshotRecord writes a snapshot record the way the snapshot layer
// will, so GC's handling of snapshots can be tested before it exists.
func putSnapshotRecord(t *testing.T, db *DB, ns, snapshotter, key, parent string, labels map[string]string) {
	t.Helper()
	err := db.update(func(tx *bolt.Tx) error {
		b, err := createNSBucket(tx, ns, bucketSnapshots, []byte(snapshotter), []byte(key))
		if err != nil {
			return err
		}
		b.Put(keyName, []byte("1"))
		boltutil.PutTime(b, keyCreatedAt, time.Now())
		boltutil.PutTime(b, keyUpdatedAt, time.Now())
		if parent != "" {
			b.Put(keyParent, []byte(parent))
			pb, err := createNSBucket(tx, ns, bucketSnapshots, []byte(snapshotter), []byte(parent), bucketChildren)
			if err != nil {
				return err
			}
			pb.Put([]byte(key), nil)
		}
		return boltutil.PutMap(b, bucketLabels, labels)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// normalize replaces a key by the placeholder doc.go uses at its place.
func normalize(parent []string, key string) string {
	end := func(suffix ...string) bool {
		return len(parent) >= len(suffix) && slices.Equal(parent[len(parent)-len(suffix):], suffix)
	}
	switch {
	case len(parent) == 1 && key != "version":
		return "<namespace>"
	case end("labels"), end("annotations"), end("children"), end("extensions"):
		return "<key>"
	case end("content", "blob"), end("<id>", "content"):
		return "<digest>"
	case end("content", "ingests"), end("<id>", "ingests"):
		return "<ref>"
	case end("<namespace>", "images"):
		return "<name>"
	case end("<namespace>", "leases"), end("<namespace>", "containers"):
		return "<id>"
	case end("<namespace>", "snapshots"), end("<id>", "snapshots"):
		return "<snapshotter>"
	case end("snapshots", "<snapshotter>"):
		return "<key>"
	}
	return key
}

// docPaths reads the bucket tree drawn in doc.go.
func docPaths(t *testing.T) map[string]bool {
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`^//\t( *)(\S.*)$`)
	paths := map[string]bool{}
	var levels [][]string // path segments added at each indentation level
	in := false
	for _, l := range strings.Split(string(src), "\n") {
		m := line.FindStringSubmatch(l)
		if m == nil {
			if in {
				break
			}
			continue
		}
		if strings.HasPrefix(m[2], "v1") {
			in = true
		}
		if !in {
			continue
		}
		depth := len(m[1]) / 2
		text := m[2]
		if i := strings.Index(text, "->"); i >= 0 {
			text = text[:i]
		}
		text = strings.TrimSpace(text)
		if depth == 0 {
			text = "v1"
		}
		levels = levels[:min(depth, len(levels))]
		var parent []string
		for _, segs := range levels {
			parent = append(parent, segs...)
		}
		names := strings.Split(text, ", ")
		for _, name := range names {
			segs := strings.Split(strings.TrimSpace(name), "/")
			p := append(slices.Clone(parent), segs...)
			for i := len(parent); i < len(p); i++ {
				paths[strings.Join(p[:i+1], "/")] = true
			}
			if len(names) == 1 {
				levels = append(levels, segs)
			}
		}
	}
	return paths
}

// TestBucketLayout keeps the tree in doc.go true: every path the database
// holds after using every feature is drawn there, and every drawn path exists.
func TestBucketLayout(t *testing.T) {
	db, _ := openTestDB(t)
	ctx := namespaces.WithNamespace(context.Background(), "layout")
	if err := db.Namespaces().Create(ctx, "layout", map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	l, err := db.Leases().Create(ctx, leases.WithID("l"), leases.WithLabels(map[string]string{"k": "v"}))
	if err != nil {
		t.Fatal(err)
	}
	lctx := leases.WithLease(ctx, l.ID)
	cs := db.ContentStore()
	data := []byte("blob")
	desc := ocispec.Descriptor{MediaType: "x", Digest: digest.FromBytes(data), Size: 4}
	if err := content.WriteBlob(lctx, cs, "done", bytes.NewReader(data), desc, content.WithLabels(map[string]string{"k": "v"})); err != nil {
		t.Fatal(err)
	}
	w, err := cs.Writer(lctx, content.WithRef("open"), content.WithDescriptor(ocispec.Descriptor{Digest: digest.FromString("x"), Size: 1}))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	db.Leases().AddResource(ctx, l, leases.Resource{ID: "s1", Type: "snapshots/overlayfs"})
	desc.Annotations = map[string]string{"a": "b"}
	if _, err := db.Images().Create(ctx, images.Image{Name: "img", Target: desc, Labels: map[string]string{"k": "v"}}); err != nil {
		t.Fatal(err)
	}
	spec := &anypb.Any{TypeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Spec", Value: []byte("{}")}
	if _, err := db.Containers().Create(ctx, containers.Container{
		ID: "c", Labels: map[string]string{"k": "v"}, Image: "img", Spec: spec,
		Runtime:     containers.RuntimeInfo{Name: "io.containerd.runc.v2", Options: spec},
		Snapshotter: "overlayfs", SnapshotKey: "s1", SandboxID: "pod",
		Extensions: map[string]*anypb.Any{"e": spec},
	}); err != nil {
		t.Fatal(err)
	}
	putSnapshotRecord(t, db, "layout", "overlayfs", "base", "", nil)
	putSnapshotRecord(t, db, "layout", "overlayfs", "s1", "base", map[string]string{"k": "v"})

	have := map[string]bool{}
	err = db.view(func(tx *bolt.Tx) error {
		var walk func(b *bolt.Bucket, path []string)
		walk = func(b *bolt.Bucket, path []string) {
			b.ForEach(func(k, v []byte) error {
				p := append(slices.Clone(path), normalize(path, string(k)))
				have[strings.Join(p, "/")] = true
				if v == nil {
					walk(b.Bucket(k), p)
				}
				return nil
			})
		}
		have["v1"] = true
		walk(tx.Bucket(bucketV1), []string{"v1"})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	doc := docPaths(t)
	var extra, missing []string
	for p := range have {
		if !doc[p] {
			extra = append(extra, p)
		}
	}
	for p := range doc {
		if !have[p] {
			missing = append(missing, p)
		}
	}
	sort.Strings(extra)
	sort.Strings(missing)
	if len(extra) > 0 || len(missing) > 0 {
		t.Fatalf("doc.go's bucket tree is out of date:\n in the database, not drawn: %q\n drawn, not in the database: %q", extra, missing)
	}
}

func TestSchemaVersion(t *testing.T) {
	db, dir := openTestDB(t)
	if v, err := db.SchemaVersion(); err != nil || v != schemaVersion {
		t.Fatalf("SchemaVersion = %d, %v; want %d", v, err, schemaVersion)
	}
	// A database from a newer strata is refused, not misread.
	err := db.db.Update(func(tx *bolt.Tx) error {
		v := make([]byte, 8)
		binary.BigEndian.PutUint64(v, schemaVersion+1)
		return tx.Bucket(bucketV1).Put(keyVersion, v)
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	blobs, _ := local.New(filepath.Join(dir, "content"))
	_, err = Open(context.Background(), filepath.Join(dir, "metadata.db"), blobs)
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open of a newer schema = %v, want failed precondition naming the version", err)
	}
}

func TestOpenLocked(t *testing.T) {
	db, dir := openTestDB(t)
	_ = db
	blobs, _ := local.New(filepath.Join(dir, "content"))
	_, err := Open(context.Background(), filepath.Join(dir, "metadata.db"), blobs, WithLockTimeout(50*time.Millisecond))
	if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "locked by another process") {
		t.Fatalf("second Open = %v, want unavailable: locked by another process", err)
	}
}

// TestGCSnapshots checks the mark over snapshot records: parents, gc.root
// and gc.ref.snapshot labels on content.
func TestGCSnapshots(t *testing.T) {
	db, _ := openTestDB(t)
	ctx := namespaces.WithNamespace(context.Background(), "snap")
	putSnapshotRecord(t, db, "snap", "overlayfs", "base", "", nil)
	putSnapshotRecord(t, db, "snap", "overlayfs", "top", "base", nil)
	putSnapshotRecord(t, db, "snap", "overlayfs", "rooted", "", map[string]string{lbl.GCRoot: "1"})
	putSnapshotRecord(t, db, "snap", "overlayfs", "loose", "", nil)
	putSnapshotRecord(t, db, "snap", "native", "other", "", nil)
	data := []byte("config")
	desc := ocispec.Descriptor{Digest: digest.FromBytes(data), Size: int64(len(data))}
	err := content.WriteBlob(ctx, db.ContentStore(), "c", bytes.NewReader(data), desc, content.WithLabels(map[string]string{
		lbl.GCRoot: "1",
		"containerd.io/gc.ref.snapshot.overlayfs":     "top",
		"containerd.io/gc.ref.snapshot.native/rootfs": "other",
	}))
	if err != nil {
		t.Fatal(err)
	}
	var marked map[gc.Node]struct{}
	err = db.view(func(tx *bolt.Tx) error {
		c := &collector{db: db, tx: tx, now: time.Now(), blobEdges: map[gc.Node][]gc.Node{}}
		roots, err := c.roots(ctx)
		if err != nil {
			return err
		}
		marked, err = gc.Tricolor(ctx, roots, func(n gc.Node, visit func(gc.Node)) error { return c.refs(ctx, n, visit) })
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]bool{"overlayfs/base": true, "overlayfs/top": true, "overlayfs/rooted": true, "overlayfs/loose": false, "native/other": true} {
		_, got := marked[gc.Node{Type: gc.ResourceSnapshot, Namespace: "snap", Key: key}]
		if got != want {
			t.Errorf("snapshot %s marked = %v, want %v", key, got, want)
		}
	}
}

// TestScheduledGC checks that deletions schedule one debounced collection
// and that Close runs a pending one.
func TestScheduledGC(t *testing.T) {
	db, _ := openTestDB(t)
	db.opts.gcDelay = 50 * time.Millisecond
	ctx := namespaces.WithNamespace(context.Background(), "sched")
	cs := db.ContentStore()
	var descs []ocispec.Descriptor
	for i := 0; i < 3; i++ {
		data := []byte{byte(i), 'x'}
		desc := ocispec.Descriptor{Digest: digest.FromBytes(data), Size: 2}
		if err := content.WriteBlob(ctx, cs, "s", bytes.NewReader(data), desc, content.WithLabels(map[string]string{lbl.GCRoot: "1"})); err != nil {
			t.Fatal(err)
		}
		descs = append(descs, desc)
	}
	for _, d := range descs {
		if err := cs.Delete(ctx, d.Digest); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := 0
		db.backend.Digests(ctx, func(digest.Digest) error { n++; return nil })
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d blobs still on disk 10s after their records were deleted", n)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// With scheduling off, Close runs what is pending.
	db2, dir := openTestDB(t)
	data := []byte("pending")
	desc := ocispec.Descriptor{Digest: digest.FromBytes(data), Size: int64(len(data))}
	if err := content.WriteBlob(ctx, db2.ContentStore(), "p", bytes.NewReader(data), desc); err != nil {
		t.Fatal(err)
	}
	if err := db2.ContentStore().Delete(ctx, desc.Digest); err != nil {
		t.Fatal(err)
	}
	if err := db2.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "content", "blobs", "sha256", desc.Digest.Encoded())); !os.IsNotExist(err) {
		t.Fatalf("blob after Close with a pending collection: %v", err)
	}
}
