package metadata

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
	"time"

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
	// Object names what is affected: a digest, "<namespace>/<digest>",
	// "<namespace>/<image name>", a path or an ingest ref.
	Object string `json:"object"`
	Detail string `json:"detail"`
	// Namespace, Image and Digest name the image and the blob of an image's
	// problem (missing-image-root, bad-manifest).
	Namespace string        `json:"namespace,omitempty"`
	Image     string        `json:"image,omitempty"`
	Digest    digest.Digest `json:"digest,omitempty"`
	// Damage is true when data is lost or wrong; false for debris that GC or
	// a resumed ingest deals with.
	Damage   bool `json:"damage"`
	Repaired bool `json:"repaired"`
}

// Ingest is a partial write (a download being made, interrupted or
// abandoned) as fsck found it: information, not damage. GC removes those
// no lease holds once they have not been written to for the ingest grace
// period; `strata content abort` removes one at once.
type Ingest struct {
	// Namespace and Ref name the ingest as its namespace's clients see it;
	// Namespace is empty, and Ref the store's own ref, for ingest data
	// that no namespace records (reported as orphan-ingest too).
	Namespace string        `json:"namespace,omitempty"`
	Ref       string        `json:"ref"`
	Expected  digest.Digest `json:"expected,omitempty"`
	// Size is how many bytes are written; Total the expected size, when
	// known.
	Size      int64     `json:"size"`
	Total     int64     `json:"total,omitempty"`
	StartedAt time.Time `json:"started_at,omitzero"`
	UpdatedAt time.Time `json:"updated_at"`
	// AgeSeconds is how long ago the ingest started (or, when that is not
	// known, was last written) when fsck looked.
	AgeSeconds int64 `json:"age_seconds"`
	// Active is true while a writer holds the ingest.
	Active bool `json:"active,omitempty"`
}

// FsckReport is the result of Fsck.
type FsckReport struct {
	BlobsChecked int64     `json:"blobs_checked"`
	BytesChecked int64     `json:"bytes_checked"`
	Records      int64     `json:"records"`
	Problems     []Problem `json:"problems"`
	// Ingests lists every partial write, broken ones aside (those are
	// broken-ingest problems).
	Ingests []Ingest `json:"ingests"`
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

// blobCheck is what rehashing one blob found.
type blobCheck struct {
	size int64
	ok   bool
	// file is the file that was hashed, when the backend's reader says
	// (content/local's does): a blob removed and written again meanwhile
	// is another file.
	file fs.FileInfo
}

// Fsck verifies every blob's digest and size, matches the records of every
// namespace against the blobs on disk, reads every image's graph, and lists
// partial writes (ingests), reporting broken or orphaned ones. With repair it
// removes corrupt blobs, the records of blobs that are gone, broken ingest
// directories, stale ingest records and images whose index or manifest
// cannot be parsed; images whose blobs were lost stay, incomplete, for the
// user to pull again.
//
// Fsck reads and rehashes without the store's write lock, so pulls, commits
// and every other write go on while it works; it takes the lock only to
// compare what it found with the records and to repair, and checks again
// under it that what it reports or mends is still as it saw it: a blob or
// image written, replaced or removed meanwhile is neither reported nor
// repaired.
func (db *DB) Fsck(ctx context.Context, repair bool) (FsckReport, error) {
	var rep FsckReport
	checks, err := db.hashBlobs(ctx)
	if err != nil {
		return rep, fmt.Errorf("fsck: %w", err)
	}
	for _, c := range checks {
		rep.BlobsChecked++
		rep.BytesChecked += c.size
	}
	suspects, err := db.readImages(ctx)
	if err != nil {
		return rep, fmt.Errorf("fsck: %w", err)
	}

	removedImages := 0
	err = func() error {
		db.wlock.Lock()
		defer db.wlock.Unlock()
		corrupt, changed, err := db.fsckBlobs(ctx, repair, checks, &rep)
		if err != nil {
			return err
		}
		if err := db.fsckIngests(ctx, repair, &rep); err != nil {
			return err
		}
		removedImages, err = db.fsckImages(ctx, repair, suspects, corrupt, changed, &rep)
		return err
	}()
	if removedImages > 0 {
		db.scheduleGC()
	}
	if err != nil {
		return rep, fmt.Errorf("fsck: %w", err)
	}
	return rep, nil
}

// hashBlobs rehashes every blob on disk, without any lock.
func (db *DB) hashBlobs(ctx context.Context) (map[digest.Digest]blobCheck, error) {
	checks := map[digest.Digest]blobCheck{}
	err := db.backend.Digests(ctx, func(dgst digest.Digest) error {
		c, err := db.verifyBlob(ctx, dgst)
		if errors.Is(err, errdefs.ErrNotFound) {
			return nil // collected or removed by hand meanwhile
		}
		if err != nil {
			return err
		}
		checks[dgst] = c
		return nil
	})
	return checks, err
}

// fsckBlobs compares the blobs hashed with the records, under the write
// lock. It returns the blobs confirmed corrupt, and those found corrupt that
// changed since (removed, or removed and committed again).
func (db *DB) fsckBlobs(ctx context.Context, repair bool, checks map[digest.Digest]blobCheck, rep *FsckReport) (corrupt, changed map[digest.Digest]bool, err error) {
	corrupt, changed = map[digest.Digest]bool{}, map[digest.Digest]bool{}
	for dgst, c := range checks {
		if c.ok {
			continue
		}
		still, err := db.stillCorrupt(ctx, dgst, c)
		if err != nil {
			return nil, nil, err
		}
		if !still {
			// Removed, or removed and committed again (a commit verifies
			// its digest) since it was hashed: nothing to report or mend.
			delete(checks, dgst)
			changed[dgst] = true
			continue
		}
		corrupt[dgst] = true
		p := Problem{Kind: "corrupt-blob", Object: dgst.String(), Detail: "content does not match its digest", Damage: true}
		if repair {
			if err := db.backend.Delete(ctx, dgst); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
				return nil, nil, fmt.Errorf("repair corrupt blob %s: %w", dgst, err)
			}
			p.Detail += "; removed it: pull the images that use it again"
			p.Repaired = true
		}
		rep.Problems = append(rep.Problems, p)
	}

	type rec struct {
		ns   string
		dgst digest.Digest
		size int64
	}
	var records []rec
	err = db.view(func(tx *bolt.Tx) error {
		return tx1(tx).ForEachBucket(func(nsk []byte) error {
			ns := string(nsk)
			if bb := nsBucket(tx, ns, bucketContent, bucketBlob); bb != nil {
				_ = bb.ForEachBucket(func(k []byte) error {
					records = append(records, rec{ns, digest.Digest(k), boltutil.ReadInt(bb.Bucket(k), keySize)})
					return nil
				})
			}
			return ctx.Err()
		})
	})
	if err != nil {
		return nil, nil, err
	}
	recorded := map[digest.Digest]bool{}
	for _, r := range records {
		rep.Records++
		recorded[r.dgst] = true
		obj := r.ns + "/" + r.dgst.String()
		c, hashed := checks[r.dgst]
		switch {
		case !hashed:
			// Not on disk when hashing began, or replaced since: a blob
			// committed meanwhile is there now, and verified by its commit.
			present, err := db.present(ctx, r.dgst)
			if err != nil {
				return nil, nil, err
			}
			if present {
				continue
			}
			p := Problem{Kind: "missing-blob", Object: obj, Detail: "recorded in the namespace but not on disk", Damage: true}
			if repair {
				if err := db.removeBlobRecord(r.ns, r.dgst); err != nil {
					return nil, nil, fmt.Errorf("repair %s: %w", obj, err)
				}
				p.Detail += "; removed the record: pull the images that use it again"
				p.Repaired = true
			}
			rep.Problems = append(rep.Problems, p)
		case !c.ok:
			// Reported as corrupt-blob already; its bytes are gone after
			// a repair, and so goes its record.
			if repair {
				if err := db.removeBlobRecord(r.ns, r.dgst); err != nil {
					return nil, nil, fmt.Errorf("repair %s: %w", obj, err)
				}
			}
		case c.size != r.size:
			rep.Problems = append(rep.Problems, Problem{Kind: "size-mismatch", Object: obj,
				Detail: fmt.Sprintf("record says %d bytes, blob has %d", r.size, c.size), Damage: true})
		}
	}
	for dgst, c := range checks {
		if !c.ok || recorded[dgst] {
			continue
		}
		// Collected since it was hashed: nothing to say.
		present, err := db.present(ctx, dgst)
		if err != nil {
			return nil, nil, err
		}
		if present {
			// A process died between the blob's rename and its record: the
			// bytes are verified and GC removes them; no damage.
			rep.Problems = append(rep.Problems, Problem{Kind: "unreferenced-blob", Object: dgst.String(), Detail: "no namespace refers to it; garbage collection removes it"})
		}
	}
	return corrupt, changed, nil
}

func (db *DB) removeBlobRecord(ns string, dgst digest.Digest) error {
	return db.updateHeld(func(tx *bolt.Tx) error {
		if bb := nsBucket(tx, ns, bucketContent, bucketBlob); bb != nil && bb.Bucket([]byte(dgst)) != nil {
			return bb.DeleteBucket([]byte(dgst))
		}
		return nil
	})
}

// present reports whether blob dgst is on disk.
func (db *DB) present(ctx context.Context, dgst digest.Digest) (bool, error) {
	_, err := db.backend.Info(ctx, dgst)
	if errors.Is(err, errdefs.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// stillCorrupt reports whether blob dgst, found corrupt as c says, is still
// the file that was hashed. When the backend cannot tell files apart it
// hashes the blob again (corrupt blobs are rare).
func (db *DB) stillCorrupt(ctx context.Context, dgst digest.Digest, c blobCheck) (bool, error) {
	if c.file == nil {
		now, err := db.verifyBlob(ctx, dgst)
		if errors.Is(err, errdefs.ErrNotFound) {
			return false, nil
		}
		return err == nil && !now.ok, err
	}
	ra, err := db.backend.ReaderAt(ctx, ocispec.Descriptor{Digest: dgst})
	if errors.Is(err, errdefs.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer ra.Close()
	fi := statOf(ra)
	return fi != nil && sameFile(fi, c.file), nil
}

// sameFile reports whether a and b describe one file, unchanged: a blob
// removed and written again may get the freed inode, never the old change
// time too.
func sameFile(a, b fs.FileInfo) bool {
	if !os.SameFile(a, b) || a.Size() != b.Size() || !a.ModTime().Equal(b.ModTime()) {
		return false
	}
	sa, ok1 := a.Sys().(*syscall.Stat_t)
	sb, ok2 := b.Sys().(*syscall.Stat_t)
	return ok1 && ok2 && sa.Ctim == sb.Ctim
}

func statOf(ra any) fs.FileInfo {
	if s, ok := ra.(interface{ Stat() (fs.FileInfo, error) }); ok {
		if fi, err := s.Stat(); err == nil {
			return fi
		}
	}
	return nil
}

// fsckIngests lists the ingests and reports broken, orphaned and stale
// ones, under the write lock. A writer creates its ingest before its record
// and outside the lock, so an ingest a writer holds is never debris.
func (db *DB) fsckIngests(ctx context.Context, repair bool, rep *FsckReport) error {
	type ingestRec struct {
		ns, ref  string
		expected digest.Digest
	}
	recs := map[string]ingestRec{} // backend ref → record
	err := db.view(func(tx *bolt.Tx) error {
		return tx1(tx).ForEachBucket(func(nsk []byte) error {
			ns := string(nsk)
			if ib := nsBucket(tx, ns, bucketContent, bucketIngests); ib != nil {
				_ = ib.ForEachBucket(func(k []byte) error {
					b := ib.Bucket(k)
					recs[string(b.Get(keyRef))] = ingestRec{ns, string(k), digest.Digest(b.Get(keyExpected))}
					return nil
				})
			}
			return ctx.Err()
		})
	})
	if err != nil {
		return err
	}

	broken, err := db.backend.BrokenIngests()
	if err != nil {
		return err
	}
	for _, path := range broken {
		p := Problem{Kind: "broken-ingest", Object: path, Detail: "ingest directory without its ref or data; cannot be resumed"}
		if repair {
			removed, err := db.backend.RemoveBrokenIngest(path)
			if err != nil {
				return fmt.Errorf("repair: %w", err)
			}
			if !removed {
				continue // a writer took it meanwhile
			}
			p.Detail += "; removed it"
			p.Repaired = true
		}
		rep.Problems = append(rep.Problems, p)
	}

	statuses, err := db.backend.ListStatuses(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	haveData := map[string]bool{}
	for _, st := range statuses {
		haveData[st.Ref] = true
		in := Ingest{Ref: st.Ref, Size: st.Offset, Total: st.Total, StartedAt: st.StartedAt, UpdatedAt: st.UpdatedAt,
			Active: db.backend.Active(st.Ref)}
		since := st.StartedAt
		if since.IsZero() {
			since = st.UpdatedAt
		}
		in.AgeSeconds = int64(now.Sub(since) / time.Second)
		if r, ok := recs[st.Ref]; ok {
			in.Namespace, in.Ref, in.Expected = r.ns, r.ref, r.expected
		} else if !in.Active {
			rep.Problems = append(rep.Problems, Problem{Kind: "orphan-ingest", Object: st.Ref,
				Detail: fmt.Sprintf("%d bytes of ingest data without a record; garbage collection removes it", st.Offset)})
		}
		rep.Ingests = append(rep.Ingests, in)
	}
	for bref, r := range recs {
		if haveData[bref] || db.backend.Active(bref) {
			continue
		}
		p := Problem{Kind: "stale-record", Object: r.ns + "/" + r.ref, Detail: "ingest record without ingest data"}
		if repair {
			if err := db.updateHeld(func(tx *bolt.Tx) error { return removeIngestRecord(tx, r.ns, r.ref) }); err != nil {
				return fmt.Errorf("repair %s: %w", p.Object, err)
			}
			p.Detail += "; removed it"
			p.Repaired = true
		}
		rep.Problems = append(rep.Problems, p)
	}
	return nil
}

// imageSuspect is an image whose graph could not be read: its root is
// missing (err nil), or blob dgst of its graph cannot be parsed.
type imageSuspect struct {
	ns     string
	name   string
	target digest.Digest
	dgst   digest.Digest
	err    error
}

// readImages walks every image's graph without any lock and returns the
// images that are broken: a missing root, or an index or manifest that
// cannot be parsed. Missing children are not broken: a one-platform pull
// leaves the others' layers out on purpose.
func (db *DB) readImages(ctx context.Context) ([]imageSuspect, error) {
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
		return nil, err
	}
	var out []imageSuspect
	for _, im := range all {
		suspect := imageSuspect{ns: im.ns, name: im.Name, target: im.Target.Digest, dgst: im.Target.Digest}
		present, err := db.present(ctx, im.Target.Digest)
		if err != nil {
			return nil, fmt.Errorf("image %q in namespace %q: %w", im.Name, im.ns, err)
		}
		if !present {
			out = append(out, suspect)
			continue
		}
		queue := []ocispec.Descriptor{im.Target}
		for len(queue) > 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			d := queue[0]
			queue = queue[1:]
			children, err := images.Children(ctx, db.backend, d)
			if errors.Is(err, errdefs.ErrNotFound) {
				continue
			}
			if errors.Is(err, errdefs.ErrInvalidArgument) {
				suspect.dgst, suspect.err = d.Digest, err
				out = append(out, suspect)
				break
			}
			if err != nil {
				return nil, fmt.Errorf("image %q in namespace %q: %w", im.Name, im.ns, err)
			}
			queue = append(queue, children...)
		}
	}
	return out, nil
}

// fsckImages reports (and repairs) the suspects that are still as they
// were seen, under the write lock; it returns how many images it removed.
//
// An image whose index or manifest is intact on disk but cannot be parsed
// can never be unpacked, run or pushed: repair removes its record and GC its
// blobs. One whose blob is corrupt is left to the corrupt-blob repair: the
// user pulls it again.
func (db *DB) fsckImages(ctx context.Context, repair bool, suspects []imageSuspect, corrupt, changed map[digest.Digest]bool, rep *FsckReport) (int, error) {
	removed := 0
	for _, s := range suspects {
		if changed[s.dgst] {
			continue // what was parsed is not what is on disk now
		}
		var target digest.Digest
		err := db.view(func(tx *bolt.Tx) error {
			if b := nsBucket(tx, s.ns, bucketImages, []byte(s.name), bucketTarget); b != nil {
				target = digest.Digest(b.Get(keyDigest))
			}
			return nil
		})
		if err != nil {
			return removed, err
		}
		if target != s.target {
			continue // removed or retargeted meanwhile
		}
		p := Problem{Object: s.ns + "/" + s.name, Namespace: s.ns, Image: s.name, Digest: s.dgst, Damage: true}
		if s.err == nil {
			present, err := db.present(ctx, s.dgst)
			if err != nil {
				return removed, err
			}
			if present {
				continue // its root was committed meanwhile
			}
			p.Kind = "missing-image-root"
			p.Detail = fmt.Sprintf("target %s is not in the store; pull the image again or remove it", s.dgst)
			rep.Problems = append(rep.Problems, p)
			continue
		}
		p.Kind = "bad-manifest"
		if corrupt[s.dgst] {
			p.Detail = fmt.Sprintf("%s cannot be parsed because the blob is corrupt (see corrupt-blob %s); pull the image again after strata fsck --repair removed the blob", s.dgst, s.dgst)
			rep.Problems = append(rep.Problems, p)
			continue
		}
		p.Detail = fmt.Sprintf("%s: %v; the image cannot be unpacked, run or pushed", s.dgst, s.err)
		if !repair {
			p.Detail += "; strata fsck --repair removes the image"
			rep.Problems = append(rep.Problems, p)
			continue
		}
		err = db.updateHeld(func(tx *bolt.Tx) error {
			ib := nsBucket(tx, s.ns, bucketImages)
			if ib == nil || ib.Bucket([]byte(s.name)) == nil {
				return nil
			}
			return ib.DeleteBucket([]byte(s.name))
		})
		if err != nil {
			return removed, fmt.Errorf("repair image %q in namespace %q: %w", s.name, s.ns, err)
		}
		removed++
		p.Detail += "; removed the image (garbage collection frees its blobs): pull it again from its registry"
		p.Repaired = true
		rep.Problems = append(rep.Problems, p)
	}
	return removed, nil
}

// verifyBlob rehashes blob dgst.
func (db *DB) verifyBlob(ctx context.Context, dgst digest.Digest) (blobCheck, error) {
	ra, err := db.backend.ReaderAt(ctx, ocispec.Descriptor{Digest: dgst})
	if err != nil {
		return blobCheck{}, err
	}
	defer ra.Close()
	c := blobCheck{file: statOf(ra)}
	h := sha256.New()
	n, err := io.Copy(h, io.NewSectionReader(ra, 0, ra.Size()))
	c.size = n
	if err != nil {
		return c, fmt.Errorf("read blob %s: %w", dgst, err)
	}
	if err := ctx.Err(); err != nil {
		return c, err
	}
	c.ok = digest.NewDigest(digest.SHA256, h) == dgst
	return c, nil
}
