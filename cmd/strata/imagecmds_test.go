package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/mount"
	"github.com/strata-oci/strata/testutil"
	"github.com/strata-oci/strata/wiring"
)

// pullFixtures returns a CLI whose store has the fixtures pulled, each
// from the registry it was pushed to: the host's platform, unpacked.
func pullFixtures(t *testing.T, fixtures ...testutil.Fixture) *cli {
	t.Helper()
	c := newCLI(t)
	// A -race binary sleeps a second at exit unless told not to; these
	// tests run the CLI dozens of times.
	c.env = append(c.env, "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	t.Cleanup(func() {
		if err := mount.UnmountUnder(c.root); err != nil {
			t.Error(err)
		}
	})
	for _, fx := range fixtures {
		c.ok("pull", "-q", fx.Ref)
	}
	return c
}

// decodeOut unmarshals the JSON a command printed.
func decodeOut[T any](t *testing.T, out string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("decode %q: %v", out, err)
	}
	return v
}

// pushedIndex and pushedManifest parse what a fixture pushed.
func pushedIndex(t *testing.T, fx testutil.Fixture) ocispec.Index {
	t.Helper()
	return decodeOut[ocispec.Index](t, string(fx.Blobs[fx.Root.Digest]))
}

func pushedManifest(t *testing.T, fx testutil.Fixture, d digest.Digest) ocispec.Manifest {
	t.Helper()
	return decodeOut[ocispec.Manifest](t, string(fx.Blobs[d]))
}

// outLines splits output into its lines, without the last newline.
func outLines(out string) []string {
	if out == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(out, "\n"), "\n")
}

type checkOutRow struct {
	Name              string   `json:"name"`
	Status            string   `json:"status"`
	Platform          string   `json:"platform"`
	Manifest          string   `json:"manifest"`
	Present           int      `json:"present"`
	Needed            int      `json:"needed"`
	Size              int64    `json:"size"`
	PresentSize       int64    `json:"present_size"`
	PlatformsComplete int      `json:"platforms_complete"`
	PlatformsTotal    int      `json:"platforms_total"`
	Unpacked          []string `json:"unpacked"`
	Platforms         []struct {
		Platform string          `json:"platform"`
		Manifest digest.Digest   `json:"manifest"`
		Complete bool            `json:"complete"`
		Present  int             `json:"present"`
		Needed   int             `json:"needed"`
		Missing  []digest.Digest `json:"missing"`
	} `json:"platforms"`
	Error string `json:"error"`
}

// TestImagesCheck: a one-platform pull of a three-platform image is
// complete for the host, and says what the other platforms lack.
func TestImagesCheck(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	fx := testutil.PushMultiPlatform(t, reg.Host, "cli/multi", "v1")
	c := pullFixtures(t, fx)
	var snapshotter string
	withStore(t, c, func(ctx context.Context, s *wiring.Store) { snapshotter = s.DefaultSnapshotter })
	idx := pushedIndex(t, fx)
	var ms []ocispec.Manifest
	for _, d := range idx.Manifests {
		ms = append(ms, pushedManifest(t, fx, d.Digest))
	}
	amd64Size := idx.Manifests[0].Size + ms[0].Config.Size + ms[0].Layers[0].Size + ms[0].Layers[1].Size

	rows := decodeOut[[]checkOutRow](t, c.ok("images", "check", "-o", "json"))
	if len(rows) != 1 {
		t.Fatalf("images check -o json = %+v", rows)
	}
	r := rows[0]
	if r.Name != fx.Ref || r.Status != "complete" || r.Platform != "linux/amd64" || r.Manifest != idx.Manifests[0].Digest.String() ||
		r.Present != 4 || r.Needed != 4 || r.Size != amd64Size || r.PresentSize != amd64Size ||
		r.PlatformsComplete != 1 || r.PlatformsTotal != 3 || !slices.Equal(r.Unpacked, []string{snapshotter}) {
		t.Fatalf("images check -o json = %+v; want linux/amd64 complete (4/4, %d bytes), 1 of 3 platforms, unpacked in %s", r, amd64Size, snapshotter)
	}
	wantPlatforms := []struct {
		platform string
		present  int
		needed   int
		missing  []digest.Digest
	}{
		{"linux/amd64", 4, 4, nil},
		{"linux/arm64", 2, 3, []digest.Digest{ms[1].Layers[0].Digest}},
		{"linux/arm/v7", 2, 4, []digest.Digest{ms[2].Layers[0].Digest, ms[2].Layers[1].Digest}},
	}
	if len(r.Platforms) != len(wantPlatforms) {
		t.Fatalf("images check platforms = %+v", r.Platforms)
	}
	for i, w := range wantPlatforms {
		p := r.Platforms[i]
		if p.Platform != w.platform || p.Manifest != idx.Manifests[i].Digest || p.Present != w.present || p.Needed != w.needed ||
			!slices.Equal(p.Missing, w.missing) || p.Complete != (w.present == w.needed) {
			t.Errorf("images check platform %d = %+v, want %+v", i, p, w)
		}
	}

	out := c.ok("images", "check")
	ls := outLines(out)
	if len(ls) != 2 || !slices.Equal(strings.Fields(ls[0]), []string{"REF", "TYPE", "DIGEST", "STATUS", "PLATFORMS", "SIZE", "UNPACKED"}) ||
		!strings.HasPrefix(ls[1], fx.Ref+" ") || !strings.Contains(ls[1], "complete (4/4)") || !strings.Contains(ls[1], "1/3 platforms complete") ||
		!strings.HasSuffix(ls[1], " "+snapshotter) {
		t.Fatalf("images check =\n%s", out)
	}
	out = c.ok("images", "check", "-v")
	for _, want := range []string{"linux/arm64", "incomplete (2/3)", ms[1].Layers[0].Digest.String(), "linux/arm/v7", "incomplete (2/4)"} {
		if !strings.Contains(out, want) {
			t.Errorf("images check -v lacks %q:\n%s", want, out)
		}
	}

	// A layer of the host's platform goes: incomplete, still unpacked.
	c.ok("content", "rm", ms[0].Layers[1].Digest.String())
	r = decodeOut[[]checkOutRow](t, c.ok("images", "check", "-o", "json"))[0]
	if r.Status != "incomplete" || r.Present != 3 || r.Needed != 4 || r.PresentSize != amd64Size-ms[0].Layers[1].Size ||
		r.PlatformsComplete != 0 || !slices.Equal(r.Platforms[0].Missing, []digest.Digest{ms[0].Layers[1].Digest}) || len(r.Unpacked) != 1 {
		t.Fatalf("images check after removing a layer = %+v", r)
	}
	if out := c.ok("images", "check"); !strings.Contains(out, "incomplete (3/4)") || !strings.Contains(out, "0/3 platforms complete") {
		t.Fatalf("images check after removing a layer =\n%s", out)
	}

	// An image whose target is not in the store is missing, not an
	// error; one whose manifest is not JSON cannot be checked.
	const gone, broken = "127.0.0.1:1/gone:1", "127.0.0.1:1/broken:1"
	withStore(t, c, func(ctx context.Context, s *wiring.Store) {
		bad := writeBlob(t, ctx, s.DB.ContentStore(), ocispec.MediaTypeImageManifest, []byte("not json"), nil)
		for name, target := range map[string]ocispec.Descriptor{
			gone:   {MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromString("gone"), Size: 100},
			broken: bad,
		} {
			if _, err := s.DB.Images().Create(ctx, images.Image{Name: name, Target: target}); err != nil {
				t.Fatal(err)
			}
		}
	})
	out = c.ok("images", "check", "name=="+gone)
	if ls := outLines(out); len(ls) != 2 || !strings.Contains(ls[1], " missing ") {
		t.Fatalf("images check of an image without its target =\n%s", out)
	}
	res := c.run("images", "check", "-o", "json")
	rows = decodeOut[[]checkOutRow](t, res.stdout)
	if res.code != 1 || !strings.Contains(res.stderr, `check image "`+broken+`"`) || !strings.Contains(res.stderr, "1 of 3 images could not be checked") ||
		len(rows) != 3 || rows[0].Name != broken || rows[0].Status != "error" || rows[1].Status != "missing" {
		t.Fatalf("images check with a broken image: exit %d, stderr %q, rows %+v", res.code, res.stderr, rows)
	}
	c.fails(2, `filters: parse "name=="`, "images", "check", "name==")
}

func TestImagesTagRemove(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	app := testutil.PushWhiteoutImage(t, reg.Host, "cli/app", "v1")
	multi := testutil.PushMultiPlatform(t, reg.Host, "cli/multi", "v1")
	c := pullFixtures(t, app, multi)

	copyName := reg.Host + "/cli/copy:1"
	if out := c.ok("images", "tag", app.Ref, "app:2", copyName); out != "docker.io/library/app:2\n"+copyName+"\n" {
		t.Fatalf("images tag printed %q", out)
	}
	type lsRow struct {
		Name   string            `json:"name"`
		Digest digest.Digest     `json:"digest"`
		Labels map[string]string `json:"labels"`
	}
	targets := func() map[string]digest.Digest {
		m := map[string]digest.Digest{}
		for _, r := range decodeOut[[]lsRow](t, c.ok("images", "ls", "-o", "json")) {
			m[r.Name] = r.Digest
		}
		return m
	}
	want := map[string]digest.Digest{app.Ref: app.Root.Digest, multi.Ref: multi.Root.Digest,
		"docker.io/library/app:2": app.Root.Digest, copyName: app.Root.Digest}
	if got := targets(); !maps.Equal(got, want) {
		t.Fatalf("images after tag = %v, want %v", got, want)
	}
	c.fails(1, `image "docker.io/library/app:2" in namespace "default": already exists (--force points it at `+multi.Ref+")", "images", "tag", multi.Ref, "app:2")
	c.fails(2, `reference "Bad:Ref"`, "images", "tag", app.Ref, "Bad:Ref")
	c.fails(2, "needs at least 2 argument(s)", "images", "tag", app.Ref)
	c.fails(1, `image "nope" (docker.io/library/nope:latest) in namespace "default": not found`, "images", "tag", "nope", "x:1")
	c.fails(1, "pins "+multi.Root.Digest.String(), "images", "tag", app.Ref, reg.Host+"/cli/app@"+multi.Root.Digest.String())
	if out := c.ok("images", "tag", "--force", multi.Ref, "app:2"); out != "docker.io/library/app:2\n" {
		t.Fatalf("images tag --force printed %q", out)
	}
	want["docker.io/library/app:2"] = multi.Root.Digest
	if got := targets(); !maps.Equal(got, want) {
		t.Fatalf("images after tag --force = %v, want %v", got, want)
	}

	// A missing name is reported; the others are still removed. Nothing
	// is freed: other names hold the same images.
	r := c.run("images", "rmi", "--sync", "app:2", "nope:1", copyName)
	if r.code != 1 || r.stdout != "docker.io/library/app:2\n"+copyName+"\nremoved 0 blobs (0 B) and 0 snapshots\n" ||
		!strings.Contains(r.stderr, `image "nope:1" (docker.io/library/nope:1) in namespace "default": not found`) ||
		!strings.Contains(r.stderr, "1 of 3 images not removed") {
		t.Fatalf("images rmi --sync app:2 nope:1 copy: %+v", r)
	}
	if out := c.ok("images", "ls", "-q"); out != app.Ref+"\n"+multi.Ref+"\n" {
		t.Fatalf("images left = %q", out)
	}

	// Removing the last names frees every blob and snapshot, before the
	// command returns, and says so.
	var blobBytes int64
	blobs := decodeOut[[]struct {
		Size int64 `json:"size"`
	}](t, c.ok("content", "ls", "-o", "json"))
	for _, b := range blobs {
		blobBytes += b.Size
	}
	snaps := len(outLines(c.ok("snapshots", "ls", "-q")))
	if len(blobs) == 0 || snaps == 0 {
		t.Fatalf("fixture: %d blobs and %d snapshots before rm", len(blobs), snaps)
	}
	type rmJSON struct {
		Removed []string `json:"removed"`
		Freed   *struct {
			Blobs     int   `json:"blobs_removed"`
			BlobBytes int64 `json:"blob_bytes_removed"`
			Snapshots int   `json:"snapshots_removed"`
		} `json:"freed"`
	}
	got := decodeOut[rmJSON](t, c.ok("images", "remove", "--sync", "-o", "json", app.Ref, multi.Ref))
	if !slices.Equal(got.Removed, []string{app.Ref, multi.Ref}) || got.Freed == nil || got.Freed.Blobs != len(blobs) ||
		got.Freed.BlobBytes != blobBytes || got.Freed.Snapshots != snaps {
		t.Fatalf("images rm --sync -o json = %+v; want both removed, %d blobs (%d bytes) and %d snapshots freed", got, len(blobs), blobBytes, snaps)
	}
	for _, what := range []string{"content", "snapshots", "images"} {
		if out := c.ok(what, "ls", "-q"); out != "" {
			t.Errorf("%s left after images rm --sync: %q", what, out)
		}
	}
	c.ok("fsck")
}

func TestImagesInspect(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	multi := testutil.PushMultiPlatform(t, reg.Host, "cli/multi", "v1")
	app := testutil.PushWhiteoutImage(t, reg.Host, "cli/app", "v1")
	c := pullFixtures(t, multi, app)
	idx := pushedIndex(t, multi)

	type inspectJSON struct {
		Name           string             `json:"name"`
		Target         ocispec.Descriptor `json:"target"`
		Index          json.RawMessage    `json:"index"`
		Platform       string             `json:"platform"`
		ManifestDigest digest.Digest      `json:"manifest_digest"`
		Manifest       json.RawMessage    `json:"manifest"`
		Config         json.RawMessage    `json:"config"`
	}
	compact := func(b []byte) string {
		var buf bytes.Buffer
		if err := json.Compact(&buf, b); err != nil {
			t.Fatalf("compact %q: %v", b, err)
		}
		return buf.String()
	}
	for _, tc := range []struct {
		name     string
		args     []string
		platform string
		manifest int
	}{
		{"host", nil, "linux/amd64", 0},
		// The platform as the index gives it.
		{"arm64", []string{"--platform", "linux/arm64"}, "linux/arm64/v8", 1},
		{"armv7", []string{"--platform", "arm"}, "linux/arm/v7", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := decodeOut[inspectJSON](t, c.ok(append(append([]string{"images", "inspect"}, tc.args...), multi.Ref)...))
			if got.Name != multi.Ref || got.Target.Digest != multi.Root.Digest || got.Platform != tc.platform ||
				got.ManifestDigest != idx.Manifests[tc.manifest].Digest {
				t.Fatalf("images inspect %v = name %q target %s platform %q manifest %s", tc.args, got.Name, got.Target.Digest, got.Platform, got.ManifestDigest)
			}
			// The blobs as stored, not re-encoded.
			m := pushedManifest(t, multi, got.ManifestDigest)
			for what, pair := range map[string][2][]byte{
				"index":    {got.Index, multi.Blobs[multi.Root.Digest]},
				"manifest": {got.Manifest, multi.Blobs[got.ManifestDigest]},
				"config":   {got.Config, multi.Blobs[m.Config.Digest]},
			} {
				if compact(pair[0]) != compact(pair[1]) {
					t.Errorf("images inspect %v: %s = %s, want %s", tc.args, what, pair[0], pair[1])
				}
			}
		})
	}

	// A lone manifest has no index.
	out := c.ok("images", "inspect", app.Ref)
	got := decodeOut[inspectJSON](t, out)
	appConfig := pushedManifest(t, app, app.Root.Digest).Config.Digest
	if got.Index != nil || got.ManifestDigest != app.Root.Digest || got.Platform != "linux/amd64" ||
		compact(got.Config) != compact(app.Blobs[appConfig]) {
		t.Fatalf("images inspect %s =\n%s", app.Ref, out)
	}
	if strings.Contains(out, `"index"`) {
		t.Fatalf("images inspect of a manifest prints an index:\n%s", out)
	}

	armConfig := pushedManifest(t, multi, idx.Manifests[2].Digest).Config.Digest
	c.ok("content", "rm", armConfig.String())
	c.fails(1, `image "`+multi.Ref+`": config `+armConfig.String()+" is not in the content store: not found",
		"images", "inspect", "--platform", "linux/arm/v7", multi.Ref)
	c.fails(1, "no manifest for linux/s390x; the image has linux/amd64, linux/arm64, linux/arm/v7", "images", "inspect", "--platform", "linux/s390x", multi.Ref)
	c.fails(2, `--platform: parse platform "linux/x/y/z"`, "images", "inspect", "--platform", "linux/x/y/z", multi.Ref)
	c.fails(1, `image "nope" (docker.io/library/nope:latest) in namespace "default": not found`, "images", "inspect", "nope")
	c.fails(2, "takes 1 argument(s), got 0", "images", "inspect")
}

func TestImagesHistory(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	app := testutil.PushWhiteoutImage(t, reg.Host, "cli/app", "v1")
	c := pullFixtures(t, app)
	m := pushedManifest(t, app, app.Root.Digest)
	cfg := decodeOut[ocispec.Image](t, string(app.Blobs[m.Config.Digest]))
	if len(cfg.History) != 3 || len(m.Layers) != 3 {
		t.Fatalf("fixture: %d history entries, %d layers; want 3 of each", len(cfg.History), len(m.Layers))
	}

	type historyJSON struct {
		CreatedBy  string        `json:"created_by"`
		Size       int64         `json:"size"`
		Comment    string        `json:"comment"`
		EmptyLayer bool          `json:"empty_layer"`
		Layer      digest.Digest `json:"layer"`
		Created    *string       `json:"created"`
	}
	rows := decodeOut[[]historyJSON](t, c.ok("images", "history", "-o", "json", app.Ref))
	if len(rows) != 3 {
		t.Fatalf("images history -o json = %+v", rows)
	}
	for i, r := range rows {
		h, l := cfg.History[2-i], m.Layers[2-i]
		if r.CreatedBy != h.CreatedBy || r.Size != l.Size || r.Layer != l.Digest || r.EmptyLayer || r.Created == nil {
			t.Errorf("images history row %d = %+v, want %q with layer %s of %d bytes", i, r, h.CreatedBy, l.Digest, l.Size)
		}
	}

	out := c.ok("images", "history", app.Ref)
	ls := outLines(out)
	if len(ls) != 4 || !slices.Equal(strings.Fields(ls[0]), []string{"CREATED", "CREATED", "BY", "SIZE", "COMMENT"}) {
		t.Fatalf("images history =\n%s", out)
	}
	newest := cfg.History[2].CreatedBy
	if short := string([]rune(newest)[:44]) + "…"; !strings.Contains(ls[1], short+"  ") || !strings.Contains(ls[1], humanSize(m.Layers[2].Size)) {
		t.Fatalf("images history newest row = %q, want %q and %s", ls[1], short, humanSize(m.Layers[2].Size))
	}
	if out := c.ok("images", "history", "--no-trunc", app.Ref); !strings.Contains(out, newest) {
		t.Fatalf("images history --no-trunc lacks %q:\n%s", newest, out)
	}

	// Steps that add no layer own none; a config without history lists
	// its layers.
	const steps, bare = "127.0.0.1:1/steps:1", "127.0.0.1:1/bare:1"
	withStore(t, c, func(ctx context.Context, s *wiring.Store) {
		cs := s.DB.ContentStore()
		host := images.DefaultPlatform()
		image := func(name string, history []ocispec.History) {
			cfg := writeBlob(t, ctx, cs, ocispec.MediaTypeImageConfig, ocispec.Image{Platform: host, History: history,
				RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromString("1"), digest.FromString("2")}}}, nil)
			mf := writeBlob(t, ctx, cs, ocispec.MediaTypeImageManifest, ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2},
				MediaType: ocispec.MediaTypeImageManifest, Config: cfg, Layers: m.Layers[:2]}, nil)
			if _, err := s.DB.Images().Create(ctx, images.Image{Name: name, Target: mf}); err != nil {
				t.Fatal(err)
			}
		}
		image(steps, []ocispec.History{
			{CreatedBy: "ADD base.tar /"},
			{CreatedBy: "ENV A=1", EmptyLayer: true, Comment: "no layer"},
			{CreatedBy: "RUN make\tinstall\nand more"},
		})
		image(bare, nil)
	})
	rows = decodeOut[[]historyJSON](t, c.ok("images", "history", "-o", "json", steps))
	if len(rows) != 3 || rows[0].Layer != m.Layers[1].Digest || !rows[1].EmptyLayer || rows[1].Size != 0 || rows[1].Layer != "" ||
		rows[1].Comment != "no layer" || rows[2].Layer != m.Layers[0].Digest || rows[2].Created != nil {
		t.Fatalf("images history of steps = %+v", rows)
	}
	out = c.ok("images", "history", steps)
	if ls := outLines(out); len(ls) != 4 || !strings.Contains(ls[1], "RUN make install and more") ||
		!slices.Equal(strings.Fields(ls[2]), []string{"-", "ENV", "A=1", "0", "B", "no", "layer"}) {
		t.Fatalf("images history of steps =\n%s", out)
	}
	rows = decodeOut[[]historyJSON](t, c.ok("images", "history", "-o", "json", bare))
	if len(rows) != 2 || rows[0].Layer != m.Layers[1].Digest || rows[1].Layer != m.Layers[0].Digest || rows[0].CreatedBy != "" {
		t.Fatalf("images history without history = %+v", rows)
	}
	c.fails(1, `image "nope" (docker.io/library/nope:latest) in namespace "default": not found`, "images", "history", "nope")
	c.fails(1, "no manifest for linux/s390x", "images", "history", "--platform", "linux/s390x", app.Ref)
}

func TestImagesLabel(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	app := testutil.PushWhiteoutImage(t, reg.Host, "cli/app", "v1")
	c := pullFixtures(t, app)
	if out := c.ok("images", "label", app.Ref, "team=a", "tier=gold"); out != "team=a\ntier=gold\n" {
		t.Fatalf("images label set = %q", out)
	}
	if out := c.ok("images", "label", app.Ref, "tier=", "env=prod"); out != "env=prod\nteam=a\n" {
		t.Fatalf("images label remove = %q", out)
	}
	rows := decodeOut[[]struct {
		Labels map[string]string `json:"labels"`
	}](t, c.ok("images", "ls", "-o", "json"))
	if len(rows) != 1 || !maps.Equal(rows[0].Labels, map[string]string{"team": "a", "env": "prod"}) {
		t.Fatalf("images ls labels = %+v", rows)
	}
	if out := c.ok("images", "label", "-o", "json", app.Ref, "team=", "env="); out != "{}\n" {
		t.Fatalf("images label -o json removing all = %q", out)
	}
	c.fails(2, `label "=x": want key=value`, "images", "label", app.Ref, "=x")
	c.fails(2, "needs at least 2 argument(s)", "images", "label", app.Ref)
	c.fails(1, `image "nope" (docker.io/library/nope:latest) in namespace "default": not found`, "images", "label", "nope", "a=b")
}

func TestImagesPrune(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	app := testutil.PushWhiteoutImage(t, reg.Host, "cli/app", "v1")
	multi := testutil.PushMultiPlatform(t, reg.Host, "cli/multi", "v1")
	c := pullFixtures(t, app, multi)
	// Dangling names: a pull by digest, a tag by digest.
	multiByDigest := reg.Host + "/cli/multi@" + multi.Root.Digest.String()
	appByDigest := reg.Host + "/cli/app@" + app.Root.Digest.String()
	c.ok("pull", "-q", multiByDigest)
	c.ok("images", "tag", app.Ref, appByDigest)
	all := app.Ref + "\n" + appByDigest + "\n" + multi.Ref + "\n" + multiByDigest + "\n"
	if out := c.ok("images", "ls", "-q"); out != all {
		t.Fatalf("images before prune = %q, want %q", out, all)
	}

	// Asked, and told no.
	r := c.runIn(strings.NewReader("n\n"), "images", "prune")
	if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "This removes 2 image(s):\n  "+appByDigest+"\n  "+multiByDigest+"\n") ||
		!strings.Contains(r.stderr, "nothing removed") {
		t.Fatalf("images prune answered no: %+v", r)
	}
	if out := c.ok("images", "ls", "-q"); out != all {
		t.Fatalf("images after a declined prune = %q", out)
	}
	if out := c.ok("images", "prune", "--force"); out != appByDigest+"\n"+multiByDigest+"\nremoved 0 blobs (0 B) and 0 snapshots\n" {
		t.Fatalf("images prune --force printed %q", out)
	}
	if out := c.ok("images", "ls", "-q"); out != app.Ref+"\n"+multi.Ref+"\n" {
		t.Fatalf("images after prune = %q", out)
	}

	// --all keeps what is mounted and frees the rest.
	dir := mountTarget(t)
	c.ok("images", "mount", app.Ref, dir)
	blobsBefore, snapsBefore := len(outLines(c.ok("content", "ls", "-q"))), len(outLines(c.ok("snapshots", "ls", "-q")))
	got := decodeOut[struct {
		Removed []string `json:"removed"`
		Freed   struct {
			Blobs     int `json:"blobs_removed"`
			Snapshots int `json:"snapshots_removed"`
		} `json:"freed"`
	}](t, c.ok("images", "prune", "--all", "-f", "-o", "json"))
	blobsAfter, snapsAfter := len(outLines(c.ok("content", "ls", "-q"))), len(outLines(c.ok("snapshots", "ls", "-q")))
	if !slices.Equal(got.Removed, []string{multi.Ref}) || got.Freed.Blobs == 0 || got.Freed.Blobs != blobsBefore-blobsAfter ||
		got.Freed.Snapshots == 0 || got.Freed.Snapshots != snapsBefore-snapsAfter {
		t.Fatalf("images prune --all = %+v; blobs %d → %d, snapshots %d → %d", got, blobsBefore, blobsAfter, snapsBefore, snapsAfter)
	}
	if out := c.ok("images", "ls", "-q"); out != app.Ref+"\n" {
		t.Fatalf("images after prune --all = %q", out)
	}
	if out := c.ok("images", "check"); !strings.Contains(out, "complete (5/5)") {
		t.Fatalf("the mounted image after prune --all:\n%s", out)
	}
	// rm refuses a mounted image unless --force.
	c.fails(1, "is mounted", "images", "rm", app.Ref)
	if out := c.ok("images", "ls", "-q"); out != app.Ref+"\n" {
		t.Fatalf("images after a refused rm = %q", out)
	}
	c.ok("images", "unmount", "--rm", dir)
	var appBytes int64
	for _, b := range app.Blobs {
		appBytes += int64(len(b))
	}
	if out := c.ok("images", "prune", "--all", "-f"); out != fmt.Sprintf("%s\nremoved %d blobs (%s) and 3 snapshots\n", app.Ref, len(app.Blobs), humanSize(appBytes)) {
		t.Fatalf("images prune --all with nothing mounted printed %q", out)
	}
}
