package diff

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/strata-oci/strata/archive"
	"github.com/strata-oci/strata/archive/tartest"
	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/content/local"
	lbl "github.com/strata-oci/strata/labels"
	"github.com/strata-oci/strata/metadata"
	"github.com/strata-oci/strata/mount"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/snapshots"
	"github.com/strata-oci/strata/snapshots/native"
	"github.com/strata-oci/strata/snapshots/overlay"
)

func snapshotters(t *testing.T) map[string]func(root string) (snapshots.Snapshotter, archive.WhiteoutMode) {
	return map[string]func(string) (snapshots.Snapshotter, archive.WhiteoutMode){
		"overlayfs": func(root string) (snapshots.Snapshotter, archive.WhiteoutMode) {
			sn, err := overlay.New(root)
			if err != nil {
				t.Fatal(err)
			}
			return sn, archive.WhiteoutOverlay
		},
		"native": func(root string) (snapshots.Snapshotter, archive.WhiteoutMode) {
			sn, err := native.New(root)
			if err != nil {
				t.Fatal(err)
			}
			return sn, archive.WhiteoutNative
		},
	}
}

// listTree reads a mounted snapshot as "path mode size content" lines.
func listTree(t *testing.T, sn snapshots.Snapshotter, key string) map[string]string {
	t.Helper()
	ms, err := sn.Mounts(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	err = mount.WithTempMount(context.Background(), ms, func(root string) error {
		return filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			v := fi.Mode().String()
			if fi.Mode().IsRegular() {
				b, _ := os.ReadFile(p)
				v += " " + string(b) + " " + fi.ModTime().UTC().Format(time.RFC3339Nano)
			}
			out[rel] = v
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestLayerRoundTrip: apply a base layer into a snapshot, change a child
// through its mount, write the child's layer into a content store, then
// rebuild the child elsewhere from the base layer and that blob: the trees
// match, and the blob carries its diff ID label.
func TestLayerRoundTrip(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root for mounts; CI runs as root")
	}
	for name, newSn := range snapshotters(t) {
		t.Run(name, func(t *testing.T) {
			ctx := namespaces.WithNamespace(context.Background(), "test")
			tmp := t.TempDir()
			sn, mode := newSn(filepath.Join(tmp, "a"))
			defer sn.Close()
			blobs, err := local.New(filepath.Join(tmp, "content"))
			if err != nil {
				t.Fatal(err)
			}
			db, err := metadata.Open(ctx, filepath.Join(tmp, "metadata.db"), blobs, metadata.WithGCDelay(-1))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			cs := db.ContentStore()
			baseTar := tartest.Tar(tartest.Dir("etc/"), tartest.File("etc/hello", "hi"), tartest.File("etc/bye", "bye"), tartest.Dir("data/"), tartest.File("data/x", "x"))
			build := func(sn snapshots.Snapshotter, key string, layers ...[]byte) {
				t.Helper()
				parent := ""
				for i, l := range layers {
					k := key + "-active-" + string(rune('a'+i))
					ms, err := sn.Prepare(ctx, k, parent)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := Apply(ctx, ms, bytes.NewReader(l), mode); err != nil {
						t.Fatalf("Apply layer %d: %v", i, err)
					}
					name := key + "-" + string(rune('a'+i))
					if err := sn.Commit(ctx, name, k); err != nil {
						t.Fatal(err)
					}
					parent = name
				}
			}
			build(sn, "base", baseTar)
			ms, err := sn.Prepare(ctx, "work", "base-a")
			if err != nil {
				t.Fatal(err)
			}
			err = mount.WithTempMount(ctx, ms, func(root string) error {
				os.Remove(filepath.Join(root, "etc/bye"))
				os.RemoveAll(filepath.Join(root, "data"))
				os.WriteFile(filepath.Join(root, "etc/hello"), []byte("hello again"), 0o600)
				return os.WriteFile(filepath.Join(root, "new"), []byte("new"), 0o644)
			})
			if err != nil {
				t.Fatal(err)
			}
			desc, err := WriteSnapshotLayer(ctx, sn, "work", cs, Options{Compression: archive.Gzip})
			if err != nil {
				t.Fatal(err)
			}
			info, err := cs.Info(ctx, desc.Digest)
			if err != nil || info.Size != desc.Size || desc.MediaType != "application/vnd.oci.image.layer.v1.tar+gzip" {
				t.Fatalf("layer blob %+v info %+v %v", desc, info, err)
			}
			blob, err := content.ReadBlob(ctx, cs, desc, 0)
			if err != nil {
				t.Fatal(err)
			}
			rc, _, _ := archive.DecompressStream(bytes.NewReader(blob))
			plain, _ := io.ReadAll(rc)
			if want := digest.FromBytes(plain).String(); info.Labels[lbl.Uncompressed] != want {
				t.Fatalf("label %s = %q, want the diff ID %s", lbl.Uncompressed, info.Labels[lbl.Uncompressed], want)
			}
			// Rebuild on a second snapshotter of the same kind.
			sn2, _ := newSn(filepath.Join(tmp, "b"))
			defer sn2.Close()
			build(sn2, "copy", baseTar, blob)
			if err := sn.Commit(ctx, "work-done", "work"); err != nil {
				t.Fatal(err)
			}
			if _, err := sn.View(ctx, "orig", "work-done"); err != nil {
				t.Fatal(err)
			}
			if _, err := sn2.View(ctx, "rebuilt", "copy-b"); err != nil {
				t.Fatal(err)
			}
			want, got := listTree(t, sn, "orig"), listTree(t, sn2, "rebuilt")
			if len(want) != len(got) {
				t.Fatalf("rebuilt tree has %d entries, original %d:\n%v\n%v", len(got), len(want), got, want)
			}
			for p, v := range want {
				if p == "." {
					continue
				}
				if got[p] != v {
					t.Errorf("%s: rebuilt %q, original %q", p, got[p], v)
				}
			}
			if _, ok := want["etc/bye"]; ok {
				t.Fatal("deleted file still in the original view: the test did not delete")
			}
		})
	}
}

func TestWritableTarget(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mounts []mount.Mount
		want   Target
		err    string
	}{
		{"overlay", []mount.Mount{{Type: "overlay", Source: "overlay", Options: []string{"index=off", "workdir=/w", "upperdir=/u", "lowerdir=/l2:/l1"}}},
			Target{Dir: "/u", Overlay: true, Lowers: []string{"/l2", "/l1"}, XattrPrefix: "trusted.overlay."}, ""},
		{"overlay-userxattr", []mount.Mount{{Type: "overlay", Source: "overlay", Options: []string{"userxattr", "upperdir=/u", "lowerdir=/l"}}},
			Target{Dir: "/u", Overlay: true, Lowers: []string{"/l"}, XattrPrefix: "user.overlay."}, ""},
		{"bind", []mount.Mount{{Type: "bind", Source: "/fs", Options: []string{"rw", "rbind"}}}, Target{Dir: "/fs", XattrPrefix: "trusted.overlay."}, ""},
		{"overlay-view", []mount.Mount{{Type: "overlay", Source: "overlay", Options: []string{"ro", "lowerdir=/l2:/l1"}}}, Target{}, "read-only overlay mount"},
		{"bind-view", []mount.Mount{{Type: "bind", Source: "/fs", Options: []string{"ro", "rbind"}}}, Target{}, "read-only bind mount"},
		{"none", nil, Target{}, "0 mounts, want 1"},
		{"block", []mount.Mount{{Type: "ext4", Source: "/dev/sda1"}}, Target{}, "ext4 mount"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := WritableTarget(tc.mounts)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("WritableTarget(%v) = %+v, %v; want error %q", tc.mounts, got, err, tc.err)
				}
				return
			}
			if err != nil || fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("WritableTarget(%v) = %+v, %v; want %+v", tc.mounts, got, err, tc.want)
			}
		})
	}
}
