// Package fsck checks a store against itself: every blob rehashed against
// its digest, every namespace's records matched with the blobs on disk,
// every image's graph read, and the partial writes (ingests) listed; with
// repair it mends what can be mended.
//
// It works over two small interfaces, so the checks are read in one place
// and the database stays the only one that knows its buckets: Blobs is the
// content backend (content/local's store), Records is the metadata
// database's read and repair API (metadata.DB implements it; DB.Fsck runs
// Check). Like metadata/gc, it sits below metadata: metadata imports it,
// never the reverse.
package fsck

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

	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/images"
)

// Blobs is the content backend that Check rehashes and mends.
type Blobs interface {
	content.Provider
	Info(ctx context.Context, dgst digest.Digest) (content.Info, error)
	Delete(ctx context.Context, dgst digest.Digest) error
	ListStatuses(ctx context.Context, filters ...string) ([]content.Status, error)
	// Digests calls fn with every committed blob's digest, cheaply.
	Digests(ctx context.Context, fn func(digest.Digest) error) error
	// Active reports whether a writer holds the ingest ref right now.
	Active(ref string) bool
	// BrokenIngests lists ingest directories that cannot be resumed.
	BrokenIngests() ([]string, error)
	// RemoveBrokenIngest removes one of them if it is still broken and no
	// writer holds it, atomically with respect to writers.
	RemoveBrokenIngest(path string) (removed bool, err error)
}

// Records is the metadata database as Check reads and mends it. The list
// methods read one consistent view each, without the write lock. Exclusive
// runs fn with every writer of the database held off; ImageTarget and the
// Remove methods are called only inside it, and a Remove of something gone
// already is no error.
type Records interface {
	BlobRecords(ctx context.Context) ([]BlobRecord, error)
	IngestRecords(ctx context.Context) ([]IngestRecord, error)
	Images(ctx context.Context) ([]ImageRecord, error)
	Exclusive(fn func() error) error
	// ImageTarget returns the digest image name of namespace ns points at,
	// "" when there is no such image.
	ImageTarget(ns, name string) (digest.Digest, error)
	RemoveBlobRecord(ns string, dgst digest.Digest) error
	RemoveIngestRecord(ns, ref string) error
	RemoveImage(ns, name string) error
}

// BlobRecord is a namespace's record of a blob.
type BlobRecord struct {
	Namespace string
	Digest    digest.Digest
	Size      int64
}

// IngestRecord is a namespace's record of an ingest: Ref as the namespace's
// clients name it, BackendRef as the content backend does.
type IngestRecord struct {
	Namespace  string
	Ref        string
	BackendRef string
	Expected   digest.Digest
}

// ImageRecord is an image of a namespace.
type ImageRecord struct {
	Namespace string
	images.Image
}

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

// Report is the result of Check.
type Report struct {
	BlobsChecked int64     `json:"blobs_checked"`
	BytesChecked int64     `json:"bytes_checked"`
	Records      int64     `json:"records"`
	Problems     []Problem `json:"problems"`
	// Ingests lists every partial write, broken ones aside (those are
	// broken-ingest problems).
	Ingests []Ingest `json:"ingests"`
}

// Damaged reports whether any damage is left unrepaired.
func (r Report) Damaged() bool {
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

// Check verifies every blob's digest and size, matches the records of every
// namespace against the blobs on disk, reads every image's graph, and lists
// partial writes (ingests), reporting broken or orphaned ones. With repair it
// removes corrupt blobs, the records of blobs that are gone, broken ingest
// directories, stale ingest records and images whose index or manifest
// cannot be parsed; images whose blobs were lost stay, incomplete, for the
// user to pull again. The blobs of a removed image are left to garbage
// collection: the caller runs one when a bad-manifest problem is Repaired.
//
// Check reads and rehashes without the store's write lock, so pulls,
// commits and every other write go on while it works; it takes the lock
// (Records.Exclusive) only to compare what it found with the records and to
// repair, and checks again under it that what it reports or mends is still
// as it saw it: a blob or image written, replaced or removed meanwhile is
// neither reported nor repaired.
func Check(ctx context.Context, blobs Blobs, records Records, repair bool) (Report, error) {
	c := &checker{blobs: blobs, records: records, repair: repair}
	var rep Report
	checks, err := c.hashBlobs(ctx)
	if err != nil {
		return rep, fmt.Errorf("fsck: %w", err)
	}
	for _, bc := range checks {
		rep.BlobsChecked++
		rep.BytesChecked += bc.size
	}
	suspects, err := c.readImages(ctx)
	if err != nil {
		return rep, fmt.Errorf("fsck: %w", err)
	}
	err = records.Exclusive(func() error {
		corrupt, changed, err := c.blobRecords(ctx, checks, &rep)
		if err != nil {
			return err
		}
		if err := c.ingests(ctx, &rep); err != nil {
			return err
		}
		return c.images(ctx, suspects, corrupt, changed, &rep)
	})
	if err != nil {
		return rep, fmt.Errorf("fsck: %w", err)
	}
	return rep, nil
}

// checker is one run of Check.
type checker struct {
	blobs   Blobs
	records Records
	repair  bool
}

// hashBlobs rehashes every blob on disk, without any lock.
func (c *checker) hashBlobs(ctx context.Context) (map[digest.Digest]blobCheck, error) {
	checks := map[digest.Digest]blobCheck{}
	err := c.blobs.Digests(ctx, func(dgst digest.Digest) error {
		c, err := c.verifyBlob(ctx, dgst)
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

// blobRecords compares the blobs hashed with the records, under the write
// lock. It returns the blobs confirmed corrupt, and those found corrupt that
// changed since (removed, or removed and committed again).
func (c *checker) blobRecords(ctx context.Context, checks map[digest.Digest]blobCheck, rep *Report) (corrupt, changed map[digest.Digest]bool, err error) {
	corrupt, changed = map[digest.Digest]bool{}, map[digest.Digest]bool{}
	for dgst, bc := range checks {
		if bc.ok {
			continue
		}
		still, err := c.stillCorrupt(ctx, dgst, bc)
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
		if c.repair {
			if err := c.blobs.Delete(ctx, dgst); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
				return nil, nil, fmt.Errorf("repair corrupt blob %s: %w", dgst, err)
			}
			p.Detail += "; removed it: pull the images that use it again"
			p.Repaired = true
		}
		rep.Problems = append(rep.Problems, p)
	}

	records, err := c.records.BlobRecords(ctx)
	if err != nil {
		return nil, nil, err
	}
	recorded := map[digest.Digest]bool{}
	for _, r := range records {
		rep.Records++
		recorded[r.Digest] = true
		obj := r.Namespace + "/" + r.Digest.String()
		bc, hashed := checks[r.Digest]
		switch {
		case !hashed:
			// Not on disk when hashing began, or replaced since: a blob
			// committed meanwhile is there now, and verified by its commit.
			present, err := c.present(ctx, r.Digest)
			if err != nil {
				return nil, nil, err
			}
			if present {
				continue
			}
			p := Problem{Kind: "missing-blob", Object: obj, Detail: "recorded in the namespace but not on disk", Damage: true}
			if c.repair {
				if err := c.records.RemoveBlobRecord(r.Namespace, r.Digest); err != nil {
					return nil, nil, fmt.Errorf("repair %s: %w", obj, err)
				}
				p.Detail += "; removed the record: pull the images that use it again"
				p.Repaired = true
			}
			rep.Problems = append(rep.Problems, p)
		case !bc.ok:
			// Reported as corrupt-blob already; its bytes are gone after
			// a repair, and so goes its record.
			if c.repair {
				if err := c.records.RemoveBlobRecord(r.Namespace, r.Digest); err != nil {
					return nil, nil, fmt.Errorf("repair %s: %w", obj, err)
				}
			}
		case bc.size != r.Size:
			rep.Problems = append(rep.Problems, Problem{Kind: "size-mismatch", Object: obj,
				Detail: fmt.Sprintf("record says %d bytes, blob has %d", r.Size, bc.size), Damage: true})
		}
	}
	for dgst, bc := range checks {
		if !bc.ok || recorded[dgst] {
			continue
		}
		// Collected since it was hashed: nothing to say.
		present, err := c.present(ctx, dgst)
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

// present reports whether blob dgst is on disk.
func (c *checker) present(ctx context.Context, dgst digest.Digest) (bool, error) {
	_, err := c.blobs.Info(ctx, dgst)
	if errors.Is(err, errdefs.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// stillCorrupt reports whether blob dgst, found corrupt as bc says, is still
// the file that was hashed. When the backend cannot tell files apart it
// hashes the blob again (corrupt blobs are rare).
func (c *checker) stillCorrupt(ctx context.Context, dgst digest.Digest, bc blobCheck) (bool, error) {
	if bc.file == nil {
		now, err := c.verifyBlob(ctx, dgst)
		if errors.Is(err, errdefs.ErrNotFound) {
			return false, nil
		}
		return err == nil && !now.ok, err
	}
	ra, err := c.blobs.ReaderAt(ctx, ocispec.Descriptor{Digest: dgst})
	if errors.Is(err, errdefs.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer ra.Close()
	fi := statOf(ra)
	return fi != nil && sameFile(fi, bc.file), nil
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

// ingests lists the ingests and reports broken, orphaned and stale
// ones, under the write lock. A writer creates its ingest before its record
// and outside the lock, so an ingest a writer holds is never debris.
func (c *checker) ingests(ctx context.Context, rep *Report) error {
	records, err := c.records.IngestRecords(ctx)
	if err != nil {
		return err
	}
	recs := map[string]IngestRecord{} // backend ref → record
	for _, r := range records {
		recs[r.BackendRef] = r
	}

	broken, err := c.blobs.BrokenIngests()
	if err != nil {
		return err
	}
	for _, path := range broken {
		p := Problem{Kind: "broken-ingest", Object: path, Detail: "ingest directory without its ref or data; cannot be resumed"}
		if c.repair {
			removed, err := c.blobs.RemoveBrokenIngest(path)
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

	statuses, err := c.blobs.ListStatuses(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	haveData := map[string]bool{}
	for _, st := range statuses {
		haveData[st.Ref] = true
		in := Ingest{Ref: st.Ref, Size: st.Offset, Total: st.Total, StartedAt: st.StartedAt, UpdatedAt: st.UpdatedAt,
			Active: c.blobs.Active(st.Ref)}
		since := st.StartedAt
		if since.IsZero() {
			since = st.UpdatedAt
		}
		in.AgeSeconds = int64(now.Sub(since) / time.Second)
		if r, ok := recs[st.Ref]; ok {
			in.Namespace, in.Ref, in.Expected = r.Namespace, r.Ref, r.Expected
		} else if !in.Active {
			rep.Problems = append(rep.Problems, Problem{Kind: "orphan-ingest", Object: st.Ref,
				Detail: fmt.Sprintf("%d bytes of ingest data without a record; garbage collection removes it", st.Offset)})
		}
		rep.Ingests = append(rep.Ingests, in)
	}
	for bref, r := range recs {
		if haveData[bref] || c.blobs.Active(bref) {
			continue
		}
		p := Problem{Kind: "stale-record", Object: r.Namespace + "/" + r.Ref, Detail: "ingest record without ingest data"}
		if c.repair {
			if err := c.records.RemoveIngestRecord(r.Namespace, r.Ref); err != nil {
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
func (c *checker) readImages(ctx context.Context) ([]imageSuspect, error) {
	all, err := c.records.Images(ctx)
	if err != nil {
		return nil, err
	}
	var out []imageSuspect
	for _, im := range all {
		suspect := imageSuspect{ns: im.Namespace, name: im.Name, target: im.Target.Digest, dgst: im.Target.Digest}
		present, err := c.present(ctx, im.Target.Digest)
		if err != nil {
			return nil, fmt.Errorf("image %q in namespace %q: %w", im.Name, im.Namespace, err)
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
			children, err := images.Children(ctx, c.blobs, d)
			if errors.Is(err, errdefs.ErrNotFound) {
				continue
			}
			if errors.Is(err, errdefs.ErrInvalidArgument) {
				suspect.dgst, suspect.err = d.Digest, err
				out = append(out, suspect)
				break
			}
			if err != nil {
				return nil, fmt.Errorf("image %q in namespace %q: %w", im.Name, im.Namespace, err)
			}
			queue = append(queue, children...)
		}
	}
	return out, nil
}

// images reports (and repairs) the suspects that are still as they were
// seen, under the write lock; the images it removed are its Repaired
// bad-manifest problems.
//
// An image whose index or manifest is intact on disk but cannot be parsed
// can never be unpacked, run or pushed: repair removes its record and GC its
// blobs. One whose blob is corrupt is left to the corrupt-blob repair: the
// user pulls it again.
func (c *checker) images(ctx context.Context, suspects []imageSuspect, corrupt, changed map[digest.Digest]bool, rep *Report) error {
	for _, s := range suspects {
		if changed[s.dgst] {
			continue // what was parsed is not what is on disk now
		}
		target, err := c.records.ImageTarget(s.ns, s.name)
		if err != nil {
			return err
		}
		if target != s.target {
			continue // removed or retargeted meanwhile
		}
		p := Problem{Object: s.ns + "/" + s.name, Namespace: s.ns, Image: s.name, Digest: s.dgst, Damage: true}
		if s.err == nil {
			present, err := c.present(ctx, s.dgst)
			if err != nil {
				return err
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
		if !c.repair {
			p.Detail += "; strata fsck --repair removes the image"
			rep.Problems = append(rep.Problems, p)
			continue
		}
		err = c.records.RemoveImage(s.ns, s.name)
		if err != nil {
			return fmt.Errorf("repair image %q in namespace %q: %w", s.name, s.ns, err)
		}
		p.Detail += "; removed the image (garbage collection frees its blobs): pull it again from its registry"
		p.Repaired = true
		rep.Problems = append(rep.Problems, p)
	}
	return nil
}

// verifyBlob rehashes blob dgst.
func (c *checker) verifyBlob(ctx context.Context, dgst digest.Digest) (blobCheck, error) {
	ra, err := c.blobs.ReaderAt(ctx, ocispec.Descriptor{Digest: dgst})
	if err != nil {
		return blobCheck{}, err
	}
	defer ra.Close()
	bc := blobCheck{file: statOf(ra)}
	h := sha256.New()
	n, err := io.Copy(h, io.NewSectionReader(ra, 0, ra.Size()))
	bc.size = n
	if err != nil {
		return bc, fmt.Errorf("read blob %s: %w", dgst, err)
	}
	if err := ctx.Err(); err != nil {
		return bc, err
	}
	bc.ok = digest.NewDigest(digest.SHA256, h) == dgst
	return bc, nil
}
