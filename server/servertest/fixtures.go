package servertest

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/diff"
	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/leases"
	"github.com/strata-oci/strata/namespaces"
)

// What the tests of several services share: fixtures written into the
// daemon's store, and parsers of what ctr prints.

// ImageFixture writes a one-layer image for the host platform into d's
// content store (under a lease, so GC cannot take it before an image
// names it) and returns its manifest and all its blobs.
func (d *Daemon) ImageFixture(t testing.TB, ns, lease string) (ocispec.Descriptor, []ocispec.Descriptor) {
	t.Helper()
	ctx := namespaces.WithNamespace(context.Background(), ns)
	if _, err := d.Store.DB.Leases().Create(ctx, leases.WithID(lease)); err != nil {
		t.Fatal(err)
	}
	ctx = leases.WithLease(ctx, lease)
	cs := d.Store.DB.ContentStore()
	put := func(data []byte, mediaType string, labels map[string]string) ocispec.Descriptor {
		desc := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))}
		if err := content.WriteBlob(ctx, cs, "fixture-"+desc.Digest.String(), bytes.NewReader(data), desc, content.WithLabels(labels)); err != nil {
			t.Fatal(err)
		}
		return desc
	}
	marshal := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	data := []byte("hello from strata\n")
	if err := tw.WriteHeader(&tar.Header{Name: "hello.txt", Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	l := put(layer.Bytes(), ocispec.MediaTypeImageLayer, nil)
	cfg := put(marshal(ocispec.Image{
		Platform: images.DefaultPlatform(),
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{l.Digest}},
	}), ocispec.MediaTypeImageConfig, nil)
	m := put(marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    cfg,
		Layers:    []ocispec.Descriptor{l},
	}), ocispec.MediaTypeImageManifest, map[string]string{
		"containerd.io/gc.ref.content.config": cfg.Digest.String(),
		"containerd.io/gc.ref.content.l.0":    l.Digest.String(),
	})
	return m, []ocispec.Descriptor{m, cfg, l}
}

// CtrIn runs the real ctr against d in namespace ns with stdin and returns
// its stdout.
func (d *Daemon) CtrIn(t testing.TB, ns string, stdin []byte, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("ctr")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{"-a", d.Address, "-n", ns}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ctr %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// CtrContentRows returns the rows of ctr content ls (or active) under the
// header, split into columns.
func CtrContentRows(t testing.TB, out string) [][]string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "DIGEST") && !strings.HasPrefix(lines[0], "REF") {
		t.Fatalf("no header in ctr output:\n%s", out)
	}
	var rows [][]string
	for _, l := range lines[1:] {
		rows = append(rows, strings.Fields(l))
	}
	return rows
}

// CtrRowsByFirst parses a table ctr printed into its rows keyed by the first
// column, leaving out the header (which starts with header) and log lines.
func CtrRowsByFirst(t testing.TB, out, header string) map[string][]string {
	t.Helper()
	rows := map[string][]string{}
	sawHeader := false
	for _, line := range strings.Split(out, "\n") {
		fields := strings.Fields(line)
		switch {
		case len(fields) == 0, strings.HasPrefix(line, "time="), strings.HasPrefix(line, "ctr: "):
		case fields[0] == header:
			sawHeader = true
		default:
			rows[fields[0]] = fields[1:]
		}
	}
	if !sawHeader {
		t.Fatalf("no %s header in ctr output:\n%s", header, out)
	}
	return rows
}

// CtrTable parses a table ctr printed (a header line, then columns
// separated by runs of spaces) into rows keyed by column name.
func CtrTable(t testing.TB, out string) []map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) == 0 {
		t.Fatalf("ctr printed no table:\n%s", out)
	}
	head := strings.Fields(lines[0])
	var rows []map[string]string
	for _, l := range lines[1:] {
		// Columns may be empty (a base snapshot's PARENT): split on the
		// header's column offsets rather than on spaces.
		row := map[string]string{}
		for i, h := range head {
			start := strings.Index(lines[0], h)
			end := len(l)
			if i+1 < len(head) {
				end = min(strings.Index(lines[0], head[i+1]), len(l))
			}
			if start < len(l) {
				row[h] = strings.TrimSpace(l[start:end])
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// WriteInto writes a file into the active snapshot key of the daemon's
// overlayfs snapshotter, through its upper directory.
func (d *Daemon) WriteInto(t testing.TB, ns, key, name, data string) {
	t.Helper()
	ctx := namespaces.WithNamespace(context.Background(), ns)
	mounts, err := d.Store.Snapshotter("overlayfs").Mounts(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	target, err := diff.WritableTarget(mounts)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(target.Dir, name), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}
