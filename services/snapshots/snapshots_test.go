package snapshots_test

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"io"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/strata-oci/strata/mount"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/server/servertest"
	"github.com/strata-oci/strata/snapshots"
)

func TestSnapshotsWithCtr(t *testing.T) {
	d := servertest.Start(t)
	if d.Store.OverlayUnavailable != nil {
		t.Fatalf("overlayfs unavailable under the daemon's root: %v", d.Store.OverlayUnavailable)
	}
	const ns = "ctr-snapshots"
	ctx := namespaces.WithNamespace(context.Background(), ns)
	sn := d.Store.Snapshotter("overlayfs")

	d.Ctr(t, ns, "snapshots", "prepare", "extract")
	d.WriteInto(t, ns, "extract", "base.txt", "base layer")
	d.Ctr(t, ns, "snapshots", "commit", "layer1", "extract")
	out := d.Ctr(t, ns, "snapshots", "prepare", "--mounts", "work", "layer1")
	var printed []mount.Mount
	if err := json.Unmarshal([]byte(out), &printed); err != nil {
		t.Fatalf("ctr snapshots prepare --mounts: %v\n%s", err, out)
	}
	if stored, err := sn.Mounts(ctx, "work"); err != nil || !reflect.DeepEqual(printed, stored) {
		t.Fatalf("ctr snapshots prepare --mounts printed %+v; the store has %+v, %v", printed, stored, err)
	}
	if printed[0].Type != "overlay" {
		t.Fatalf("mounts of an active snapshot on a parent = %+v, want overlay", printed)
	}
	d.WriteInto(t, ns, "work", "work.txt", strings.Repeat("w", 10000))
	d.Ctr(t, ns, "snapshots", "view", "look", "layer1")
	// Nothing refers to these snapshots: as in containerd, the collection
	// that a deletion (ctr snapshots diff drops its blob) schedules would
	// remove them. Nothing was deleted yet, so none is pending.
	for _, key := range []string{"layer1", "work", "look"} {
		d.Ctr(t, ns, "snapshots", "label", key, "containerd.io/gc.root=test")
	}

	rows := servertest.CtrTable(t, d.Ctr(t, ns, "snapshots", "ls"))
	got := map[string]string{}
	for _, r := range rows {
		got[r["KEY"]] = r["PARENT"] + "/" + r["KIND"]
	}
	want := map[string]string{"layer1": "/Committed", "work": "layer1/Active", "look": "layer1/View"}
	if len(got) != len(want) {
		t.Fatalf("ctr snapshots ls = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("ctr snapshots ls = %v, want %v", got, want)
		}
	}

	d.Ctr(t, ns, "snapshots", "label", "work", "team=storage")
	var info struct {
		Kind   string
		Name   string
		Parent string
		Labels map[string]string
	}
	out = d.Ctr(t, ns, "snapshots", "info", "work")
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("ctr snapshots info work: %v\n%s", err, out)
	}
	if info.Name != "work" || info.Parent != "layer1" || !strings.EqualFold(info.Kind, "active") || info.Labels["team"] != "storage" {
		t.Fatalf("ctr snapshots info work = %+v", info)
	}
	st, err := sn.Stat(ctx, "work")
	if err != nil || st.Labels["team"] != "storage" {
		t.Fatalf("Stat(work) after ctr label = %+v, %v", st, err)
	}

	u, err := sn.Usage(ctx, "work")
	if err != nil {
		t.Fatal(err)
	}
	if u.Size < 10000 {
		t.Fatalf("Usage(work) = %+v, want at least the 10000 bytes written", u)
	}
	rows = servertest.CtrTable(t, d.Ctr(t, ns, "snapshots", "usage", "work"))
	if len(rows) != 1 || rows[0]["KEY"] != "work" || rows[0]["INODES"] != strconv.FormatInt(u.Inodes, 10) || !strings.HasSuffix(rows[0]["SIZE"], "KiB") {
		t.Fatalf("ctr snapshots usage work = %v, want inodes %d, size %d bytes", rows, u.Inodes, u.Size)
	}
	if rows = servertest.CtrTable(t, d.Ctr(t, ns, "snapshots", "usage")); len(rows) != 3 {
		t.Fatalf("ctr snapshots usage = %v, want 3 snapshots", rows)
	}

	out = d.Ctr(t, ns, "snapshots", "tree")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || strings.TrimSpace(lines[0]) != "layer1" ||
		!strings.Contains(out, `\_ work`) || !strings.Contains(out, `\_ look`) {
		t.Fatalf("ctr snapshots tree:\n%s", out)
	}

	// The diff service writes work's layer; ctr prints the blob.
	out = d.Ctr(t, ns, "snapshots", "diff", "--media-type", "application/vnd.oci.image.layer.v1.tar", "work")
	tr := tar.NewReader(strings.NewReader(out))
	var names []string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("ctr snapshots diff work: not a tar: %v", err)
		}
		names = append(names, hdr.Name)
	}
	if len(names) != 1 || names[0] != "work.txt" {
		t.Fatalf("ctr snapshots diff work lists %q, want [work.txt]", names)
	}

	// layer1 has children: containerd's failed precondition.
	if out, err := d.CtrResult(ns, "snapshots", "rm", "layer1"); err == nil || !strings.Contains(out, "failed precondition") {
		t.Fatalf("ctr snapshots rm layer1 with children = %v\n%s", err, out)
	}
	if out, err := d.CtrResult(ns, "snapshots", "--snapshotter", "nope", "ls"); err == nil || !strings.Contains(out, "snapshotter not loaded: nope") {
		t.Fatalf("ctr snapshots --snapshotter nope ls = %v\n%s", err, out)
	}
	d.Ctr(t, ns, "snapshots", "rm", "work", "look")
	d.Ctr(t, ns, "snapshots", "rm", "layer1")
	if rows := servertest.CtrTable(t, d.Ctr(t, ns, "snapshots", "ls")); len(rows) != 0 {
		t.Fatalf("ctr snapshots ls after rm = %v", rows)
	}
	if _, err := sn.Stat(ctx, "layer1"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Stat(layer1) after ctr snapshots rm = %v, want not found", err)
	}
	// Another namespace sees none of it.
	if rows := servertest.CtrTable(t, d.Ctr(t, "other", "snapshots", "ls")); len(rows) != 0 {
		t.Fatalf("ctr -n other snapshots ls = %v", rows)
	}
}

func TestSnapshotPluginsWithCtr(t *testing.T) {
	d := servertest.Start(t)
	rows := servertest.CtrTable(t, d.Ctr(t, "default", "plugins", "ls"))
	status := map[string]string{}
	for _, r := range rows {
		status[r["TYPE"]+" "+r["ID"]] = r["STATUS"]
	}
	for _, p := range []string{"io.containerd.grpc.v1 snapshots", "io.containerd.snapshotter.v1 native", "io.containerd.grpc.v1 diff", "io.containerd.differ.v1 walking"} {
		if status[p] != "ok" {
			t.Errorf("plugin %s: status %q, want ok", p, status[p])
		}
	}
	want := "ok"
	if d.Store.OverlayUnavailable != nil {
		want = "error"
	}
	if got := status["io.containerd.snapshotter.v1 overlayfs"]; got != want {
		t.Errorf("plugin overlayfs: status %q, want %q", got, want)
	}
	out := d.Ctr(t, "default", "plugins", "ls", "-d", "id==overlayfs")
	if root := filepath.Join(d.Store.Root, "snapshots", "overlayfs"); d.Store.OverlayUnavailable == nil && !strings.Contains(out, root) {
		t.Errorf("ctr plugins ls -d id==overlayfs does not export root %s:\n%s", root, out)
	}
}

// TestSnapshotsErrors checks the codes of the calls ctr cannot make
// wrong: no snapshotter, no namespace.
func TestSnapshotsErrors(t *testing.T) {
	d := servertest.Start(t)
	c := snapshotsapi.NewSnapshotsClient(d.Conn)
	ctx := servertest.Context(context.Background(), "default")
	for _, tc := range []struct {
		name string
		ctx  context.Context
		req  *snapshotsapi.StatSnapshotRequest
		want error
	}{
		{"NoSnapshotter", ctx, &snapshotsapi.StatSnapshotRequest{Key: "k"}, errdefs.ErrInvalidArgument},
		{"UnknownSnapshotter", ctx, &snapshotsapi.StatSnapshotRequest{Snapshotter: "zfs", Key: "k"}, errdefs.ErrInvalidArgument},
		{"NoNamespace", context.Background(), &snapshotsapi.StatSnapshotRequest{Snapshotter: "native", Key: "k"}, errdefs.ErrFailedPrecondition},
		{"NotFound", ctx, &snapshotsapi.StatSnapshotRequest{Snapshotter: "native", Key: "k"}, errdefs.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Stat(tc.ctx, tc.req)
			if err := errgrpc.ToNative(err); !errors.Is(err, tc.want) {
				t.Fatalf("Stat(%+v) = %v, want %v", tc.req, err, tc.want)
			}
		})
	}
	// Update with a mask touches only the labels it names.
	sn := d.Store.Snapshotter("native")
	nctx := namespaces.WithNamespace(context.Background(), "default")
	if _, err := sn.Prepare(nctx, "k", "", snapshots.WithLabels(map[string]string{"a": "1", "b": "2"})); err != nil {
		t.Fatal(err)
	}
	resp, err := c.Update(ctx, &snapshotsapi.UpdateSnapshotRequest{
		Snapshotter: "native",
		Info:        &snapshotsapi.Info{Name: "k", Labels: map[string]string{"a": "changed", "c": "3"}},
		UpdateMask:  &fieldmaskpb.FieldMask{Paths: []string{"labels.a"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if l := resp.Info.Labels; len(l) != 2 || l["a"] != "changed" || l["b"] != "2" {
		t.Fatalf("Update(labels.a) labels = %v, want a=changed b=2", l)
	}
	if err := sn.Remove(nctx, "k"); err != nil {
		t.Fatal(err)
	}
}
