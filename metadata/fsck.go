package metadata

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/strata-oci/strata/images"

	boltutil "github.com/strata-oci/strata/internal/boltutil"
)

// Problem is one thing fsck found.
type Problem struct {
	// Kind is one of corrupt-blob, missing-blob, size-mismatch,
	// unreferenced-blob, broken-ingest, orphan-ingest, stale-record,
	// missing-image-root, bad-manifest.
	Kind string `json:"kind"`
	// Object names what is affected: a digest, "<namespace>/<digest>", a
	// path or an ingest ref.
	Object string `json:"object"`
	Detail string `json:"detail"`
	// Damage is true when data is lost or wrong; false for debris that GC or
	// a resumed ingest deals with.
	Damage   bool `json:"damage"`
	Repaired bool `json:"repaired"`
}

// FsckReport is the result of Fsck.
type FsckReport struct {
	BlobsChecked int64     `json:"blobs_checked"`
	BytesChecked int64     `json:"bytes_checked"`
	Records      int64     `json:"records"`
	Problems     []Problem `json:"problems"`
}

// Damaged reports whether any damage is left unrepaired.
func (r FsckReport) Damaged() bool {
	for _, p := range r.Problems {
		if p.Damage && !p.Repaired {
			return true
		}
	}
	return false
}

// Fsck verifies every blob's digest and size, matches the records of every
// namespace against the blobs on disk and reports broken or orphaned ingests.
// With repair it removes corrupt blobs, the records of blobs that are gone and
// broken ingest directories; images whose blobs were lost stay, incomplete,
// for the user to re-pull.
func (db *DB) Fsck(ctx context.Context, repair bool) (FsckReport, error) {
	// Nothing may commit while we compare the two halves of the store.
	db.wlock.Lock()
	defer db.wlock.Unlock()

	var rep FsckReport
	onDisk := map[digest.Digest]int64{}
	corrupt := map[digest.Digest]bool{}
	err := db.backend.Digests(ctx, func(dgst digest.Digest) error {
		size, ok, err := db.verifyBlob(ctx, dgst)
		if errors.Is(err, errdefs.ErrNotFound) {
			return nil // removed by hand meanwhile
		}
		if err != nil {
			return err
		}
		rep.BlobsChecked++
		rep.BytesChecked += size
		if ok {
			onDisk[dgst] = size
			return nil
		}
		corrupt[dgst] = true
		p := Problem{Kind: "corrupt-blob", Object: dgst.String(), Detail: "content does not match its digest", Damage: true}
		if repair {
			if err := db.backend.Delete(ctx, dgst); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
				return err
			}
			p.Repaired = true
		}
		rep.Problems = append(rep.Problems, p)
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("fsck: %w", err)
	}

	type rec struct {
		ns      string
		dgst    digest.Digest
		corrupt bool // reported as corrupt-blob already
	}
	var missing []rec
	recorded := map[digest.Digest]bool{}
	type ingestRec struct{ ns, ref string }
	ingestRefs := map[string]ingestRec{} // backend ref → record
	err = db.view(func(tx *bolt.Tx) error {
		return tx1(tx).ForEachBucket(func(nsk []byte) error {
			ns := string(nsk)
			if bb := nsBucket(tx, ns, bucketContent, bucketBlob); bb != nil {
				_ = bb.ForEachBucket(func(k []byte) error {
					rep.Records++
					dgst := digest.Digest(k)
					recorded[dgst] = true
					size, ok := onDisk[dgst]
					switch {
					case !ok:
						missing = append(missing, rec{ns, dgst, corrupt[dgst]})
					case size != boltutil.ReadInt(bb.Bucket(k), keySize):
						rep.Problems = append(rep.Problems, Problem{Kind: "size-mismatch", Object: ns + "/" + dgst.String(),
							Detail: fmt.Sprintf("record says %d bytes, blob has %d", boltutil.ReadInt(bb.Bucket(k), keySize), size), Damage: true})
					}
					return nil
				})
			}
			if ib := nsBucket(tx, ns, bucketContent, bucketIngests); ib != nil {
				_ = ib.ForEachBucket(func(k []byte) error {
					ingestRefs[string(ib.Bucket(k).Get(keyRef))] = ingestRec{ns, string(k)}
					return nil
				})
			}
			return ctx.Err()
		})
	})
	if err != nil {
		return rep, fmt.Errorf("fsck: %w", err)
	}
	for _, m := range missing {
		if m.corrupt && !repair {
			continue
		}
		p := Problem{Kind: "missing-blob", Object: m.ns + "/" + m.dgst.String(), Detail: "recorded in the namespace but not on disk", Damage: true}
		if repair {
			err := db.updateHeld(func(tx *bolt.Tx) error {
				if bb := nsBucket(tx, m.ns, bucketContent, bucketBlob); bb != nil && bb.Bucket([]byte(m.dgst)) != nil {
					return bb.DeleteBucket([]byte(m.dgst))
				}
				return nil
			})
			if err != nil {
				return rep, fmt.Errorf("fsck: repair %s: %w", p.Object, err)
			}
			p.Repaired = true
		}
		if !m.corrupt {
			rep.Problems = append(rep.Problems, p)
		}
	}
	for dgst := range onDisk {
		if !recorded[dgst] {
			// A process died between the blob's rename and its record: the
			// bytes are verified and GC removes them; no damage.
			rep.Problems = append(rep.Problems, Problem{Kind: "unreferenced-blob", Object: dgst.String(), Detail: "no namespace refers to it; garbage collection removes it"})
		}
	}

	broken, err := db.backend.BrokenIngests()
	if err != nil {
		return rep, fmt.Errorf("fsck: %w", err)
	}
	for _, path := range broken {
		p := Problem{Kind: "broken-ingest", Object: path, Detail: "ingest directory without its ref or data; cannot be resumed"}
		if repair {
			if err := os.RemoveAll(path); err != nil {
				return rep, fmt.Errorf("fsck: repair %s: %w", path, err)
			}
			p.Repaired = true
		}
		rep.Problems = append(rep.Problems, p)
	}
	statuses, err := db.backend.ListStatuses(ctx)
	if err != nil {
		return rep, fmt.Errorf("fsck: %w", err)
	}
	haveData := map[string]bool{}
	for _, st := range statuses {
		haveData[st.Ref] = true
		if _, ok := ingestRefs[st.Ref]; !ok {
			rep.Problems = append(rep.Problems, Problem{Kind: "orphan-ingest", Object: st.Ref,
				Detail: fmt.Sprintf("%d bytes of ingest data without a record; garbage collection removes it", st.Offset)})
		}
	}
	for bref, rec := range ingestRefs {
		if haveData[bref] {
			continue
		}
		p := Problem{Kind: "stale-record", Object: rec.ns + "/" + rec.ref, Detail: "ingest record without ingest data"}
		if repair {
			err := db.updateHeld(func(tx *bolt.Tx) error { return removeIngestRecord(tx, rec.ns, rec.ref) })
			if err != nil {
				return rep, fmt.Errorf("fsck: repair %s: %w", p.Object, err)
			}
			p.Repaired = true
		}
		rep.Problems = append(rep.Problems, p)
	}
	if err := db.checkImages(ctx, &rep); err != nil {
		return rep, fmt.Errorf("fsck: %w", err)
	}
	return rep, nil
}

// checkImages walks every image's graph: a missing root or an unreadable
// index or manifest is damage (GC refuses to run until it is dealt with).
// Missing children are not: a one-platform pull leaves the others' layers
// out on purpose.
func (db *DB) checkImages(ctx context.Context, rep *FsckReport) error {
	type img struct {
		ns string
		images.Image
	}
	var all []img
	err := db.view(func(tx *bolt.Tx) error {
		return tx1(tx).ForEachBucket(func(nsk []byte) error {
			ib := nsBucket(tx, string(nsk), bucketImages)
			if ib == nil {
				return nil
			}
			return ib.ForEachBucket(func(k []byte) error {
				all = append(all, img{string(nsk), readImage(string(k), ib.Bucket(k))})
				return nil
			})
		})
	})
	if err != nil {
		return err
	}
	for _, im := range all {
		obj := im.ns + "/" + im.Name
		if _, err := db.backend.Info(ctx, im.Target.Digest); errors.Is(err, errdefs.ErrNotFound) {
			rep.Problems = append(rep.Problems, Problem{Kind: "missing-image-root", Object: obj,
				Detail: fmt.Sprintf("target %s is not in the store; pull the image again or remove it", im.Target.Digest), Damage: true})
			continue
		}
		queue := []ocispec.Descriptor{im.Target}
		for len(queue) > 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			d := queue[0]
			queue = queue[1:]
			children, err := images.Children(ctx, db.backend, d)
			if errors.Is(err, errdefs.ErrNotFound) {
				continue
			}
			if err != nil {
				rep.Problems = append(rep.Problems, Problem{Kind: "bad-manifest", Object: obj,
					Detail: fmt.Sprintf("%s: %v; garbage collection refuses to run until the image is removed", d.Digest, err), Damage: true})
				break
			}
			queue = append(queue, children...)
		}
	}
	return nil
}

// verifyBlob rehashes blob dgst; ok is false when it does not match.
func (db *DB) verifyBlob(ctx context.Context, dgst digest.Digest) (size int64, ok bool, err error) {
	ra, err := db.backend.ReaderAt(ctx, ocispec.Descriptor{Digest: dgst})
	if err != nil {
		return 0, false, err
	}
	defer ra.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.NewSectionReader(ra, 0, ra.Size()))
	if err != nil {
		return n, false, fmt.Errorf("read blob %s: %w", dgst, err)
	}
	if err := ctx.Err(); err != nil {
		return n, false, err
	}
	return n, digest.NewDigest(digest.SHA256, h) == dgst, nil
}
