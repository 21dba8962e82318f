package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/strata-oci/strata/archive/tartest"
	"github.com/strata-oci/strata/mount"
)

// TestSnapshotsCommands walks a user through unpacking two layers by hand,
// looking at the result, mounting it and removing it all, on each
// snapshotter.
func TestSnapshotsCommands(t *testing.T) {
	for _, tc := range []struct {
		name string
		// layer2Size is what usage reports for the second layer's
		// snapshot: overlay keeps only the layer, native a full copy.
		layer2Size int64
		// viewMount is in the command that mounts a view of layer-2.
		viewMount string
		// runMount is in the command that mounts an active snapshot on it.
		runMount string
	}{
		{name: "overlayfs", layer2Size: int64(len("new file")), viewMount: "mount -t overlay overlay -o ", runMount: "upperdir="},
		{name: "native", layer2Size: int64(len("keep me") + len("new file")), viewMount: "mount -t none ", runMount: " -o rw,rbind "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCLI(t)
			if r := c.run("snapshots", "--snapshotter", tc.name, "ls"); r.code != 0 {
				if tc.name == "overlayfs" && strings.Contains(r.stderr, "overlayfs") {
					t.Skipf("overlayfs does not work here: %s", r.stderr)
				}
				t.Fatalf("snapshots ls = %+v", r)
			}
			sn := func(args ...string) []string {
				return append([]string{"snapshots", "--snapshotter", tc.name}, args...)
			}
			layer := func(args ...string) []string {
				return append([]string{"layer", "--snapshotter", tc.name}, args...)
			}

			// Layer 1, gzipped, from standard input.
			if out := c.ok(sn("prepare", "base")...); out != "" {
				t.Fatalf("prepare printed %q", out)
			}
			layer1 := tartest.Tar(tartest.Dir("etc/"), tartest.File("etc/hello", "hi"), tartest.File("etc/keep", "keep me"))
			r := c.runIn(bytes.NewReader(tartest.Gzip(layer1)), layer("apply", "base", "-")...)
			if want := fmt.Sprintf("%s (%d bytes uncompressed, gzip)\n", digest.FromBytes(layer1), len(layer1)); r.code != 0 || r.stdout != want {
				t.Fatalf("layer apply base - = %+v, want stdout %q", r, want)
			}
			c.ok(sn("commit", "layer-1", "base")...)

			// Layer 2, zstd, from a file: a whiteout and a new file.
			c.ok("snapshot", "prepare", "--snapshotter", tc.name, "child", "layer-1")
			layer2 := tartest.Tar(tartest.File("etc/.wh.hello", ""), tartest.Dir("usr/"), tartest.File("usr/new", "new file"))
			file := filepath.Join(t.TempDir(), "layer2.tar.zst")
			if err := os.WriteFile(file, tartest.Zstd(layer2), 0o644); err != nil {
				t.Fatal(err)
			}
			var applied struct {
				DiffID      string `json:"diff_id"`
				Size        int64  `json:"size"`
				Compression string `json:"compression"`
			}
			if err := json.Unmarshal([]byte(c.ok(layer("apply", "-o", "json", "child", file)...)), &applied); err != nil {
				t.Fatal(err)
			}
			if applied.DiffID != digest.FromBytes(layer2).String() || applied.Size != int64(len(layer2)) || applied.Compression != "zstd" {
				t.Fatalf("layer apply -o json = %+v, want %s, %d bytes, zstd", applied, digest.FromBytes(layer2), len(layer2))
			}
			// The child's changes as a layer in the content store: exactly
			// the whiteout and the new file, labelled with its diff ID.
			var written struct {
				MediaType string `json:"mediaType"`
				Digest    string `json:"digest"`
				Size      int64  `json:"size"`
				DiffID    string `json:"diff_id"`
			}
			if err := json.Unmarshal([]byte(c.ok(layer("diff", "-o", "json", "child")...)), &written); err != nil {
				t.Fatal(err)
			}
			blob := c.ok("content", "get", written.Digest)
			if written.MediaType != "application/vnd.oci.image.layer.v1.tar+gzip" || int64(len(blob)) != written.Size || digest.FromString(blob).String() != written.Digest {
				t.Fatalf("layer diff = %+v; blob of %d bytes with digest %s", written, len(blob), digest.FromString(blob))
			}
			zr, err := gzip.NewReader(strings.NewReader(blob))
			if err != nil {
				t.Fatal(err)
			}
			plain, _ := io.ReadAll(zr)
			if digest.FromBytes(plain).String() != written.DiffID {
				t.Fatalf("diff ID label %s, uncompressed blob %s", written.DiffID, digest.FromBytes(plain))
			}
			var names []string
			tr := tar.NewReader(bytes.NewReader(plain))
			for h, err := tr.Next(); err == nil; h, err = tr.Next() {
				names = append(names, h.Name)
			}
			if got := strings.Join(names, " "); !strings.Contains(got, "etc/.wh.hello") || !strings.Contains(got, "usr/new") || strings.Contains(got, "etc/keep") {
				t.Fatalf("layer diff entries: %s", got)
			}
			c.fails(2, `--compression "lz4"`, layer("diff", "--compression", "lz4", "child")...)
			c.ok(sn("commit", "layer-2", "child")...)

			// Listing.
			var rows []struct {
				Name   string            `json:"name"`
				Parent string            `json:"parent"`
				Kind   string            `json:"kind"`
				Labels map[string]string `json:"labels"`
			}
			if err := json.Unmarshal([]byte(c.ok(sn("ls", "-o", "json")...)), &rows); err != nil {
				t.Fatal(err)
			}
			if len(rows) != 2 || rows[0].Name != "layer-1" || rows[0].Parent != "" || rows[0].Kind != "committed" ||
				rows[1].Name != "layer-2" || rows[1].Parent != "layer-1" || rows[1].Kind != "committed" ||
				rows[0].Labels["containerd.io/gc.root"] == "" || rows[1].Labels["containerd.io/gc.root"] == "" {
				t.Fatalf("snapshots ls -o json = %+v", rows)
			}
			if out := c.ok(sn("ls", "-q", "parent==layer-1")...); out != "layer-2\n" {
				t.Fatalf("snapshots ls -q parent==layer-1 = %q", out)
			}
			if out := c.ok(sn("ls")...); !strings.HasPrefix(out, "KEY ") || !strings.Contains(out, "layer-2  layer-1  committed  containerd.io/gc.root=") {
				t.Fatalf("snapshots ls = %q", out)
			}
			if out := c.ok("-n", "other", "s", "--snapshotter", tc.name, "ls", "-q"); out != "" {
				t.Fatalf("snapshots ls in namespace other = %q", out)
			}

			// Usage: exact bytes of the files written.
			var usage []struct {
				Name   string `json:"name"`
				Size   int64  `json:"size"`
				Inodes int64  `json:"inodes"`
			}
			if err := json.Unmarshal([]byte(c.ok(sn("usage", "-o", "json")...)), &usage); err != nil {
				t.Fatal(err)
			}
			// layer-1: its top directory, etc, hello, keep.
			if len(usage) != 2 || usage[0].Name != "layer-1" || usage[0].Size != int64(len("hi")+len("keep me")) || usage[0].Inodes != 4 ||
				usage[1].Name != "layer-2" || usage[1].Size != tc.layer2Size {
				t.Fatalf("snapshots usage -o json = %+v, want layer-1 9 bytes 4 inodes, layer-2 %d bytes", usage, tc.layer2Size)
			}
			if out := c.ok(sn("usage", "-b", "layer-1")...); !strings.HasPrefix(out, "KEY ") || !strings.Contains(out, "\nlayer-1  9     4") {
				t.Fatalf("snapshots usage -b layer-1 = %q", out)
			}

			// Info and labels.
			var info struct {
				Name   string            `json:"name"`
				Parent string            `json:"parent"`
				Kind   string            `json:"kind"`
				Labels map[string]string `json:"labels"`
			}
			if err := json.Unmarshal([]byte(c.ok(sn("info", "layer-2")...)), &info); err != nil {
				t.Fatal(err)
			}
			if info.Name != "layer-2" || info.Parent != "layer-1" || info.Kind != "committed" {
				t.Fatalf("snapshots info layer-2 = %+v", info)
			}
			if out := c.ok(sn("label", "layer-2", "team=a", "tier=gold")...); !strings.Contains(out, ",team=a,tier=gold\n") {
				t.Fatalf("snapshots label = %q", out)
			}
			c.ok(sn("label", "layer-2", "tier=")...)
			info.Labels = nil
			if err := json.Unmarshal([]byte(c.ok(sn("info", "layer-2")...)), &info); err != nil {
				t.Fatal(err)
			}
			if info.Labels["team"] != "a" || len(info.Labels) != 2 {
				t.Fatalf("labels after tier= = %v", info.Labels)
			}

			// A view and an active snapshot on layer-2.
			if out := c.ok(sn("view", "inspect", "layer-2")...); out != "" {
				t.Fatalf("view printed %q", out)
			}
			target := t.TempDir()
			cmdline := c.ok(sn("mounts", target, "inspect")...)
			if strings.Count(cmdline, "\n") != 1 || !strings.HasPrefix(cmdline, tc.viewMount) || !strings.HasSuffix(cmdline, " "+target+"\n") {
				t.Fatalf("snapshots mounts = %q, want one %q line ending in %s", cmdline, tc.viewMount, target)
			}
			if tc.name == "overlayfs" {
				// Both layers, the newer first.
				lower := filepath.Join(c.root, "snapshots", "overlayfs", "snapshots")
				if !strings.Contains(cmdline, "lowerdir="+lower) || strings.Count(cmdline, lower) != 2 || !strings.Contains(cmdline, ":"+lower) {
					t.Fatalf("snapshots mounts = %q, want lowerdir= with two directories under %s", cmdline, lower)
				}
			}
			runTarget := t.TempDir()
			if out := c.ok(sn("prepare", "--target", runTarget, "run", "layer-2")...); !strings.Contains(out, tc.runMount) || !strings.HasSuffix(out, " "+runTarget+"\n") {
				t.Fatalf("prepare --target = %q, want %q", out, tc.runMount)
			}
			if out := c.ok(sn("tree")...); out != "layer-1\n└── layer-2\n    ├── inspect (view)\n    └── run (active)\n" {
				t.Fatalf("snapshots tree =\n%s", out)
			}

			// Mount the view with the printed command and look.
			if os.Geteuid() != 0 {
				t.Log("not root: not mounting")
			} else {
				t.Cleanup(func() { mount.UnmountAll(target, unix.MNT_DETACH) })
				if out, err := exec.Command("sh", "-c", cmdline).CombinedOutput(); err != nil {
					t.Fatalf("%s: %v: %s", cmdline, err, out)
				}
				if _, err := os.Lstat(filepath.Join(target, "etc", "hello")); !os.IsNotExist(err) {
					t.Errorf("etc/hello in the mounted view: %v, want it whited out", err)
				}
				for path, want := range map[string]string{"etc/keep": "keep me", "usr/new": "new file"} {
					if got, err := os.ReadFile(filepath.Join(target, path)); err != nil || string(got) != want {
						t.Errorf("%s in the mounted view = %q, %v; want %q", path, got, err, want)
					}
				}
				if err := os.WriteFile(filepath.Join(target, "etc", "x"), nil, 0o644); err == nil {
					t.Error("wrote into a mounted view")
				}
				if err := mount.UnmountAll(target, 0); err != nil {
					t.Fatal(err)
				}
			}

			// Removal: children first.
			r = c.run(sn("rm", "layer-1")...)
			if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, `remove snapshot "layer-1": it has children ("layer-2")`) || !strings.Contains(r.stderr, "remove its children first") {
				t.Fatalf("rm of a parent = %+v", r)
			}
			if out := c.ok(sn("rm", "run", "inspect", "layer-2")...); out != "run\ninspect\nlayer-2\n" {
				t.Fatalf("rm children = %q", out)
			}
			c.ok(sn("rm", "layer-1")...)
			if out := c.ok(sn("ls", "-q")...); out != "" {
				t.Fatalf("snapshots left: %q", out)
			}
			// The collection at the end of rm freed the trees (in the
			// daemon, the collection rm scheduled).
			c.collected("snapshot directories after rm", func() error {
				dirs, err := os.ReadDir(filepath.Join(c.root, "snapshots", tc.name, "snapshots"))
				if err != nil || len(dirs) != 0 {
					return fmt.Errorf("%v, %v", dirs, err)
				}
				return nil
			})

			// Errors.
			c.ok(sn("prepare", "p")...)
			c.ok(sn("commit", "committed", "p")...)
			for _, e := range []struct {
				name string
				args []string
				code int
				msg  string
			}{
				{"info-unknown", sn("info", "nope"), 1, `snapshot "nope" in namespace "default": not found`},
				{"rm-unknown", sn("rm", "nope"), 1, `snapshot "nope" in namespace "default": not found`},
				{"usage-unknown", sn("usage", "nope"), 1, `snapshot "nope" in namespace "default": not found`},
				{"mounts-unknown", sn("mounts", "/mnt", "nope"), 1, "not found"},
				{"prepare-unknown-parent", sn("prepare", "k", "nope"), 1, `parent "nope" of snapshot "k": not found`},
				{"prepare-exists", sn("prepare", "committed"), 1, `snapshot "committed" in namespace "default": already exists`},
				{"commit-committed", sn("commit", "x", "committed"), 1, `commit snapshot "committed": it is committed, not active`},
				{"mounts-committed", sn("mounts", "/mnt", "committed"), 1, `mounts of snapshot "committed": it is committed`},
				{"apply-committed", layer("apply", "committed", file), 1, `snapshot "committed" is committed, not active`},
				{"apply-unknown", layer("apply", "nope", file), 1, `snapshot "nope" in namespace "default": not found`},
				{"apply-no-file", layer("apply", "k", "/nonexistent.tar"), 1, "no such file"},
				{"info-no-key", sn("info"), 2, "takes 1 argument(s), got 0"},
				{"prepare-no-key", sn("prepare"), 2, "takes 1 or 2 arguments"},
				{"view-no-parent", sn("view", "v"), 2, "takes 2 argument(s), got 1"},
				{"commit-one-arg", sn("commit", "x"), 2, "takes 2 argument(s), got 1"},
				{"mounts-one-arg", sn("mounts", "x"), 2, "takes 2 argument(s), got 1"},
				{"rm-no-key", sn("rm"), 2, "needs at least 1 argument(s)"},
				{"label-no-labels", sn("label", "committed"), 2, "needs at least 2 argument(s)"},
				{"label-bad", sn("label", "committed", "=v"), 2, `label "=v": want key=value`},
				{"apply-one-arg", layer("apply", "k"), 2, "takes 2 argument(s), got 1"},
				{"bad-snapshotter", []string{"snapshots", "--snapshotter", "zfs", "ls"}, 2, `--snapshotter "zfs": want overlayfs or native`},
				{"bad-snapshotter-layer", []string{"layer", "--snapshotter", "zfs", "apply", "k", file}, 2, `--snapshotter "zfs"`},
				{"bad-filter", sn("ls", "labels."), 2, `filters: parse "labels."`},
				{"no-verb", []string{"snapshots"}, 2, "needs a subcommand"},
				{"no-layer-verb", []string{"layer"}, 2, "needs a subcommand"},
			} {
				t.Run(e.name, func(t *testing.T) { c.fails(e.code, e.msg, e.args...) })
			}
		})
	}
}

func TestSnapshotTree(t *testing.T) {
	var out bytes.Buffer
	printTree(&out, []*treeNode{
		{Name: "a", Kind: "committed", Children: []*treeNode{
			{Name: "b", Kind: "committed", Children: []*treeNode{{Name: "c", Kind: "active"}}},
			{Name: "d", Kind: "view"},
		}},
		{Name: "e", Kind: "committed"},
	}, "", true)
	want := "a\n├── b\n│   └── c (active)\n└── d (view)\ne\n"
	if out.String() != want {
		t.Fatalf("printTree =\n%s\nwant\n%s", out.String(), want)
	}
}
