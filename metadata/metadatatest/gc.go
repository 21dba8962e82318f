package metadatatest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/labels"
	"github.com/strata-oci/strata/leases"
	"github.com/strata-oci/strata/namespaces"
)

// RunGC runs the garbage collection suite.
func RunGC(t *testing.T, open Open) {
	run(t, open, []test{
		{"ImageGraph", testGCImageGraph},
		{"LabelsOnly", testGCLabelsOnly},
		{"RootLabel", testGCRootLabel},
		{"ContentRefLabels", testGCContentRefs},
		{"Leases", testGCLeases},
		{"LeaseExpiry", testGCLeaseExpiry},
		{"Ingests", testGCIngests},
		{"NamespacesShareBlobs", testGCNamespaces},
		{"DryRun", testGCDryRun},
		{"UnreadableManifestKeptSafe", testGCUnreadableManifest},
		{"ConcurrentWriters", testGCConcurrentWriters},
	})
}

func put(ctx context.Context, t *testing.T, s Setup, data []byte, mediaType string, labels map[string]string) ocispec.Descriptor {
	t.Helper()
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))}
	var opts []content.Opt
	if labels != nil {
		opts = append(opts, content.WithLabels(labels))
	}
	if err := content.WriteBlob(ctx, s.Content, "put-"+desc.Digest.Encoded(), bytes.NewReader(data), desc, opts...); err != nil {
		t.Fatal(err)
	}
	return desc
}

func putJSON(ctx context.Context, t *testing.T, s Setup, v any, mediaType string) ocispec.Descriptor {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var labels map[string]string
	switch v := v.(type) {
	case ocispec.Manifest:
		labels = ManifestLabels(v)
	case ocispec.Index:
		labels = IndexLabels(v)
	}
	return put(ctx, t, s, b, mediaType, labels)
}

// ManifestLabels returns the labels that pull and import set on manifest
// m, the only edges GC follows below it: its config and layers.
func ManifestLabels(m ocispec.Manifest) map[string]string {
	labels := map[string]string{"containerd.io/gc.ref.content.config": m.Config.Digest.String()}
	for i, l := range m.Layers {
		labels[fmt.Sprintf("containerd.io/gc.ref.content.l.%d", i)] = l.Digest.String()
	}
	return labels
}

// IndexLabels returns the labels that pull and import set on index idx.
func IndexLabels(idx ocispec.Index) map[string]string {
	labels := map[string]string{}
	for i, m := range idx.Manifests {
		labels[fmt.Sprintf("containerd.io/gc.ref.content.m.%d", i)] = m.Digest.String()
	}
	return labels
}

func present(ctx context.Context, t *testing.T, s Setup, desc ocispec.Descriptor) bool {
	t.Helper()
	_, err := s.Content.Info(ctx, desc.Digest)
	if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

func collect(ctx context.Context, t *testing.T, s Setup) {
	t.Helper()
	if _, err := s.GC(ctx, false); err != nil {
		t.Fatalf("GC = %v", err)
	}
}

func expectPresent(ctx context.Context, t *testing.T, s Setup, what string, want bool, descs ...ocispec.Descriptor) {
	t.Helper()
	for i, d := range descs {
		if got := present(ctx, t, s, d); got != want {
			t.Errorf("%s[%d] %s present = %v, want %v", what, i, d.Digest, got, want)
		}
	}
}

// imageGraph writes an index of two platforms, labelled as a pull labels
// them; only the first platform's layers are written, as a one-platform
// pull leaves it.
func imageGraph(ctx context.Context, t *testing.T, s Setup, seed string) (index ocispec.Descriptor, all []ocispec.Descriptor) {
	layer1 := put(ctx, t, s, []byte("layer-1-"+seed), ocispec.MediaTypeImageLayerGzip, nil)
	layer2 := put(ctx, t, s, []byte("layer-2-"+seed), ocispec.MediaTypeImageLayerGzip, nil)
	config := put(ctx, t, s, []byte(`{"architecture":"amd64","os":"linux","seed":"`+seed+`"}`), ocispec.MediaTypeImageConfig, nil)
	manifest := putJSON(ctx, t, s, ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		Config: config, Layers: []ocispec.Descriptor{layer1, layer2}}, ocispec.MediaTypeImageManifest)
	otherConfig := put(ctx, t, s, []byte(`{"architecture":"arm64","os":"linux","seed":"`+seed+`"}`), ocispec.MediaTypeImageConfig, nil)
	absentLayer := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromString("never fetched " + seed), Size: 10}
	other := putJSON(ctx, t, s, ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		Config: otherConfig, Layers: []ocispec.Descriptor{absentLayer}}, ocispec.MediaTypeImageManifest)
	index = putJSON(ctx, t, s, ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{manifest, other}}, ocispec.MediaTypeImageIndex)
	return index, []ocispec.Descriptor{index, manifest, config, layer1, layer2, other, otherConfig}
}

func testGCImageGraph(ctx context.Context, t *testing.T, s Setup) {
	index, all := imageGraph(ctx, t, s, "a")
	garbage := put(ctx, t, s, []byte("garbage"), "application/octet-stream", nil)
	if _, err := s.Images.Create(ctx, images.Image{Name: "img:1", Target: index}); err != nil {
		t.Fatal(err)
	}
	st, err := s.GC(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	expectPresent(ctx, t, s, "image graph", true, all...)
	expectPresent(ctx, t, s, "garbage", false, garbage)
	if st.BlobsRemoved != 1 || st.BytesFreed != garbage.Size || st.ContentRemoved != 1 {
		t.Errorf("GC stats = %+v, want 1 record, 1 blob, %d bytes", st, garbage.Size)
	}
	if err := s.Images.Delete(ctx, "img:1", images.SynchronousDelete); err != nil {
		t.Fatal(err)
	}
	expectPresent(ctx, t, s, "after image delete", false, all...)
}

// testGCLabelsOnly (issue 12, item 1): below an image's target GC follows
// labels only, as containerd's does, never what a manifest names. So the
// layer references of an unpacked image can be dropped (ctr content prune
// references) and the next collection frees the layers, keeping the index,
// the manifests and the configs that are still labelled.
func testGCLabelsOnly(ctx context.Context, t *testing.T, s Setup) {
	index, all := imageGraph(ctx, t, s, "pruned")
	manifest, config, layer1, layer2 := all[1], all[2], all[3], all[4]
	if _, err := s.Images.Create(ctx, images.Image{Name: "pruned:1", Target: index}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Content.Update(ctx, content.Info{Digest: manifest.Digest}, "labels.containerd.io/gc.ref.content.l.0", "labels.containerd.io/gc.ref.content.l.1"); err != nil {
		t.Fatal(err)
	}
	collect(ctx, t, s)
	expectPresent(ctx, t, s, "index, manifest and config still labelled", true, index, manifest, config)
	expectPresent(ctx, t, s, "layers whose references were dropped", false, layer1, layer2)

	// An image whose target carries no labels holds only the target.
	bare := put(ctx, t, s, []byte("bare layer"), ocispec.MediaTypeImageLayerGzip, nil)
	bareConfig := put(ctx, t, s, []byte(`{"architecture":"amd64","os":"linux","seed":"bare"}`), ocispec.MediaTypeImageConfig, nil)
	b, err := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		Config: bareConfig, Layers: []ocispec.Descriptor{bare}})
	if err != nil {
		t.Fatal(err)
	}
	unlabelled := put(ctx, t, s, b, ocispec.MediaTypeImageManifest, nil)
	if _, err := s.Images.Create(ctx, images.Image{Name: "unlabelled:1", Target: unlabelled}); err != nil {
		t.Fatal(err)
	}
	collect(ctx, t, s)
	expectPresent(ctx, t, s, "unlabelled target", true, unlabelled)
	expectPresent(ctx, t, s, "what only the unlabelled manifest names", false, bare, bareConfig)
}

func testGCRootLabel(ctx context.Context, t *testing.T, s Setup) {
	kept := put(ctx, t, s, []byte("rooted"), "x", map[string]string{"containerd.io/gc.root": time.Now().Format(time.RFC3339)})
	gone := put(ctx, t, s, []byte("not rooted"), "x", nil)
	collect(ctx, t, s)
	expectPresent(ctx, t, s, "gc.root", true, kept)
	expectPresent(ctx, t, s, "unrooted", false, gone)
}

func testGCContentRefs(ctx context.Context, t *testing.T, s Setup) {
	c := put(ctx, t, s, []byte("c"), "x", nil)
	b := put(ctx, t, s, []byte("b"), "x", map[string]string{"containerd.io/gc.ref.content.l.0": c.Digest.String()})
	a := put(ctx, t, s, []byte("a"), "x", map[string]string{"containerd.io/gc.root": "1", "containerd.io/gc.ref.content.m.0": b.Digest.String()})
	d := put(ctx, t, s, []byte("d"), "x", nil)
	// An image's own labels are edges too.
	e := put(ctx, t, s, []byte("e"), "x", nil)
	if _, err := s.Images.Create(ctx, images.Image{Name: "labelled", Target: ocispec.Descriptor{MediaType: "application/x-unknown", Digest: digest.FromString("nothing"), Size: 7},
		Labels: map[string]string{"containerd.io/gc.ref.content.extra": e.Digest.String()}}); err != nil {
		t.Fatal(err)
	}
	collect(ctx, t, s)
	expectPresent(ctx, t, s, "label chain", true, a, b, c, e)
	expectPresent(ctx, t, s, "unlabelled", false, d)
	// Dropping the edge releases the chain below it.
	if _, err := s.Content.Update(ctx, content.Info{Digest: a.Digest}, "labels.containerd.io/gc.ref.content.m.0"); err != nil {
		t.Fatal(err)
	}
	collect(ctx, t, s)
	expectPresent(ctx, t, s, "root", true, a)
	expectPresent(ctx, t, s, "released chain", false, b, c)
}

func testGCLeases(ctx context.Context, t *testing.T, s Setup) {
	l, err := s.Leases.Create(ctx, leases.WithID("work"))
	if err != nil {
		t.Fatal(err)
	}
	lctx := leases.WithLease(ctx, l.ID)
	held := put(lctx, t, s, []byte("held by lease"), "x", nil)
	added := put(ctx, t, s, []byte("added to lease"), "x", nil)
	if err := s.Leases.AddResource(ctx, l, leases.Resource{ID: added.Digest.String(), Type: "content"}); err != nil {
		t.Fatal(err)
	}
	collect(ctx, t, s)
	expectPresent(ctx, t, s, "leased", true, held, added)
	if err := s.Leases.Delete(ctx, l, leases.SynchronousDelete); err != nil {
		t.Fatal(err)
	}
	expectPresent(ctx, t, s, "after lease delete", false, held, added)
	// Writing under a lease that does not exist is refused.
	_, err = s.Content.Writer(leases.WithLease(ctx, "absent"), content.WithRef("r"))
	if !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Writer under absent lease = %v, want not found", err)
	}
}

func testGCLeaseExpiry(ctx context.Context, t *testing.T, s Setup) {
	past, err := s.Leases.Create(ctx, leases.WithID("past"), leases.WithLabels(map[string]string{labels.GCExpire: time.Now().Add(-time.Minute).Format(time.RFC3339)}))
	if err != nil {
		t.Fatal(err)
	}
	future, err := s.Leases.Create(ctx, leases.WithID("future"), leases.WithExpiration(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	a := put(leases.WithLease(ctx, past.ID), t, s, []byte("expired lease"), "x", nil)
	b := put(leases.WithLease(ctx, future.ID), t, s, []byte("live lease"), "x", nil)
	st, err := s.GC(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	expectPresent(ctx, t, s, "expired", false, a)
	expectPresent(ctx, t, s, "live", true, b)
	ls, _ := s.Leases.List(ctx)
	if len(ls) != 1 || ls[0].ID != "future" || st.LeasesRemoved != 1 {
		t.Fatalf("leases after GC = %+v (stats %+v), want only future", ls, st)
	}
}

func testGCIngests(ctx context.Context, t *testing.T, s Setup) {
	l, err := s.Leases.Create(ctx, leases.WithID("ingesting"))
	if err != nil {
		t.Fatal(err)
	}
	write := func(ctx context.Context, ref string, keepOpen bool) content.Writer {
		w, err := s.Content.Writer(ctx, content.WithRef(ref))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte("partial " + ref)); err != nil {
			t.Fatal(err)
		}
		if !keepOpen {
			w.Close()
			return nil
		}
		return w
	}
	write(leases.WithLease(ctx, l.ID), "leased", false)
	write(ctx, "idle", false)
	active := write(ctx, "active", true)
	defer active.Close()
	collect(ctx, t, s)
	for ref, want := range map[string]bool{"leased": true, "idle": false, "active": true} {
		_, err := s.Content.Status(ctx, ref)
		if got := err == nil; got != want {
			t.Errorf("ingest %q kept = %v (%v), want %v", ref, got, err, want)
		}
	}
	// The active one still commits.
	if err := active.Commit(ctx, 0, ""); err != nil {
		t.Fatalf("Commit after GC = %v", err)
	}
}

func testGCNamespaces(ctx context.Context, t *testing.T, s Setup) {
	a := namespaces.WithNamespace(ctx, "a")
	b := namespaces.WithNamespace(ctx, "b")
	desc := put(a, t, s, []byte("shared bytes"), "x", map[string]string{"containerd.io/gc.root": "1"})
	put(b, t, s, []byte("shared bytes"), "x", nil)
	st, err := s.GC(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if present(b, t, s, desc) {
		t.Error("namespace b's unreferenced record survived GC")
	}
	if !present(a, t, s, desc) {
		t.Fatal("namespace a's rooted blob was collected")
	}
	if st.BlobsRemoved != 0 || st.BytesFreed != 0 {
		t.Fatalf("GC freed %d blobs (%d bytes) still used by namespace a", st.BlobsRemoved, st.BytesFreed)
	}
	if got, err := content.ReadBlob(a, s.Content, desc, 0); err != nil || string(got) != "shared bytes" {
		t.Fatalf("read after GC = %q, %v", got, err)
	}
}

func testGCDryRun(ctx context.Context, t *testing.T, s Setup) {
	g := put(ctx, t, s, []byte("would go"), "x", nil)
	st, err := s.GC(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if !st.DryRun || st.BlobsRemoved != 1 || st.BytesFreed != g.Size {
		t.Fatalf("dry run stats = %+v, want 1 blob, %d bytes", st, g.Size)
	}
	expectPresent(ctx, t, s, "after dry run", true, g)
}

// testGCConcurrentWriters commits blobs under leases while collections run
// back to back: no committed blob may be lost.
func testGCConcurrentWriters(ctx context.Context, t *testing.T, s Setup) {
	const writers, perWriter = 4, 25
	l, err := s.Leases.Create(ctx, leases.WithID("concurrent"))
	if err != nil {
		t.Fatal(err)
	}
	lctx := leases.WithLease(ctx, l.ID)
	stop := make(chan struct{})
	var gcErr error
	var gcRuns int
	var gcWG sync.WaitGroup
	gcWG.Add(1)
	go func() {
		defer gcWG.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := s.GC(ctx, false); err != nil {
				gcErr = err
				return
			}
			gcRuns++
		}
	}()
	var wg sync.WaitGroup
	descs := make([][]ocispec.Descriptor, writers)
	errs := make([]error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < perWriter; i++ {
				data := bytes.Repeat([]byte(fmt.Sprintf("w%d-i%d;", w, i)), 1000+i)
				desc := ocispec.Descriptor{Digest: digest.FromBytes(data), Size: int64(len(data))}
				if err := content.WriteBlob(lctx, s.Content, fmt.Sprintf("cw-%d-%d", w, i), bytes.NewReader(data), desc); err != nil {
					errs[w] = err
					return
				}
				descs[w] = append(descs[w], desc)
			}
		}(w)
	}
	wg.Wait()
	close(stop)
	gcWG.Wait()
	if gcErr != nil {
		t.Fatalf("GC during writes = %v", gcErr)
	}
	for w, err := range errs {
		if err != nil {
			t.Fatalf("writer %d: %v", w, err)
		}
	}
	collect(ctx, t, s)
	for w := range descs {
		for _, d := range descs[w] {
			if _, err := content.ReadBlob(ctx, s.Content, d, 0); err != nil {
				t.Fatalf("blob %s committed under a lease is gone after %d concurrent collections: %v", d.Digest, gcRuns, err)
			}
		}
	}
	t.Logf("%d collections ran during %d commits", gcRuns, writers*perWriter)
}

// testGCUnreadableManifest (issue 11, item 4): an image whose manifest
// cannot be parsed, which any client can create, does not stop the
// collection. GC keeps that blob and what its labels reach, collects
// garbage, and every other image stays complete, including one whose index
// names a manifest that cannot be parsed next to a good one. What only the
// unparsable body names cannot be known, and goes.
func testGCUnreadableManifest(ctx context.Context, t *testing.T, s Setup) {
	labelled := put(ctx, t, s, []byte("blob the broken manifest's label names"), ocispec.MediaTypeImageLayerGzip, nil)
	unnamed := put(ctx, t, s, []byte("blob named only in the broken manifest"), ocispec.MediaTypeImageLayerGzip, nil)
	body := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":%q,"digest":"sha256:nothex","size":1},"layers":[{"mediaType":%q,"digest":%q,"size":%d}]}`,
		ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageConfig, ocispec.MediaTypeImageLayerGzip, unnamed.Digest, unnamed.Size)
	broken := put(ctx, t, s, []byte(body), ocispec.MediaTypeImageManifest, map[string]string{"containerd.io/gc.ref.content.l.0": labelled.Digest.String()})
	if _, err := s.Images.Create(ctx, images.Image{Name: "broken:1", Target: broken}); err != nil {
		t.Fatal(err)
	}
	good, goodBlobs := imageGraph(ctx, t, s, "good")
	if _, err := s.Images.Create(ctx, images.Image{Name: "good:1", Target: good}); err != nil {
		t.Fatal(err)
	}
	_, mixedBlobs := imageGraph(ctx, t, s, "mixed")
	notJSON := put(ctx, t, s, []byte("\x00 not a manifest"), ocispec.MediaTypeImageManifest, nil)
	mixed := putJSON(ctx, t, s, ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{notJSON, mixedBlobs[1]}}, ocispec.MediaTypeImageIndex)
	if _, err := s.Images.Create(ctx, images.Image{Name: "mixed:1", Target: mixed}); err != nil {
		t.Fatal(err)
	}
	garbage := put(ctx, t, s, []byte("garbage next to a broken image"), "application/octet-stream", nil)

	if _, err := s.GC(ctx, false); err != nil {
		t.Fatalf("GC with an unreadable manifest = %v, want a collection", err)
	}
	expectPresent(ctx, t, s, "garbage", false, garbage)
	expectPresent(ctx, t, s, "blob only the broken body names", false, unnamed)
	expectPresent(ctx, t, s, "broken image's root and what its labels reach", true, broken, labelled)
	expectPresent(ctx, t, s, "good image", true, goodBlobs...)
	// mixed: its index, the unparsable manifest, and the good one's graph.
	expectPresent(ctx, t, s, "mixed image", true, mixed, notJSON, mixedBlobs[1], mixedBlobs[2], mixedBlobs[3], mixedBlobs[4])
	st, err := images.Check(ctx, s.Content, nil, good)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 2 || !st[0].Complete() {
		t.Fatalf("Check(good:1) after GC = %+v, want its first platform complete", st)
	}
	st, err = images.Check(ctx, s.Content, nil, mixedBlobs[1])
	if err != nil || len(st) != 1 || !st[0].Complete() {
		t.Fatalf("Check(good manifest of mixed:1) after GC = %+v, %v, want complete", st, err)
	}

	if err := s.Images.Delete(ctx, "broken:1"); err != nil {
		t.Fatal(err)
	}
	collect(ctx, t, s)
	expectPresent(ctx, t, s, "after removing the broken image", false, broken, labelled)
	expectPresent(ctx, t, s, "good image after removing the broken one", true, goodBlobs...)
}
