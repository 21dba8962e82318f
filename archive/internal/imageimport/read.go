package imageimport

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/archive"
	"github.com/strata-oci/strata/archive/internal/imagetar"
	"github.com/strata-oci/strata/content"
)

// read makes the pass over the tar.
func (im *Archive) read(ctx context.Context, r io.Reader) error {
	// docker load and ctr import take compressed archives too.
	dr, _, err := archive.DecompressStream(r)
	if err != nil {
		return fmt.Errorf("read archive: %w", err)
	}
	defer dr.Close()
	tr := tar.NewReader(dr)
	last := "at its start"
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil && !(hdr != nil && errors.Is(err, tar.ErrInsecurePath)) {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("archive is truncated %s: %w", last, err)
			}
			return fmt.Errorf("read archive %s: %v (not a tar archive, or damaged): %w", last, err, errdefs.ErrInvalidArgument)
		}
		im.entries++
		if im.entries > im.lim.MaxEntries {
			return fmt.Errorf("archive has more than %d entries: %w", im.lim.MaxEntries, errdefs.ErrInvalidArgument)
		}
		last = fmt.Sprintf("after entry %q", hdr.Name)
		if err := im.entry(ctx, tr, hdr); err != nil {
			return err
		}
	}
	if im.entries == 0 {
		return fmt.Errorf("archive is empty: %w", errdefs.ErrInvalidArgument)
	}
	return nil
}

// CleanName checks that the tar entry name stays inside the archive and
// returns it cleaned ("./index.json" is index.json).
func CleanName(name string) (string, error) {
	switch {
	case name == "":
		return "", fmt.Errorf("entry with an empty name: %w", errdefs.ErrInvalidArgument)
	case strings.HasPrefix(name, "/"):
		return "", fmt.Errorf("entry %q: absolute path: %w", name, errdefs.ErrInvalidArgument)
	case slices.Contains(strings.Split(name, "/"), ".."):
		return "", fmt.Errorf("entry %q: path has \"..\": %w", name, errdefs.ErrInvalidArgument)
	}
	return path.Clean(name), nil
}

// Kinds of entries.
const (
	entryOther  = iota // skipped
	entryJSON          // kept in memory
	entryBlob          // streamed into the store
	entryLegacy        // a legacy <id>/layer.tar: a blob, or a link to one
)

// classify says what the entry name (cleaned) holds and the digest its
// name promises: blobs/<algorithm>/<hex> in either format, the formats'
// JSON files and legacy blob names.
func (im *Archive) classify(name string) (kind int, want digest.Digest, err error) {
	for _, f := range im.formats {
		if slices.Contains(f.Files, name) {
			return entryJSON, "", nil
		}
	}
	if rest, ok := strings.CutPrefix(name, "blobs/"); ok {
		alg, enc, ok := strings.Cut(rest, "/")
		d := digest.NewDigestFromEncoded(digest.Algorithm(alg), enc)
		if !ok || strings.Contains(enc, "/") || d.Validate() != nil {
			return 0, "", fmt.Errorf("entry %q: not a blob name (blobs/<algorithm>/<encoded digest>): %w", name, errdefs.ErrInvalidArgument)
		}
		if d.Algorithm() != digest.SHA256 {
			return 0, "", fmt.Errorf("entry %q: digest algorithm %s: only sha256 is supported: %w", name, d.Algorithm(), errdefs.ErrNotImplemented)
		}
		return entryBlob, d, nil
	}
	for _, f := range im.formats {
		if f.LegacyBlob == nil {
			continue
		}
		if want, ok := f.LegacyBlob(name); ok {
			if want == "" {
				return entryLegacy, "", nil
			}
			return entryBlob, want, nil
		}
	}
	return entryOther, "", nil
}

// entry handles one tar entry.
func (im *Archive) entry(ctx context.Context, tr *tar.Reader, hdr *tar.Header) error {
	name, err := CleanName(hdr.Name)
	if err != nil {
		return err
	}
	if hdr.Typeflag == tar.TypeDir {
		return nil
	}
	kind, want, err := im.classify(name)
	if err != nil || kind == entryOther {
		return err
	}
	if im.seen[name] {
		return fmt.Errorf("entry %q appears twice in the archive: %w", hdr.Name, errdefs.ErrInvalidArgument)
	}
	im.seen[name] = true
	switch hdr.Typeflag {
	case tar.TypeReg, '\x00': // '\x00' is the pre-POSIX regular file
	case tar.TypeSymlink, tar.TypeLink:
		if kind != entryLegacy {
			return fmt.Errorf("entry %q is a link (to %q), not a regular file: %w", hdr.Name, hdr.Linkname, errdefs.ErrInvalidArgument)
		}
		// Docker and containers/image link a layer.tar to the copy
		// saved first: only a name to look up, never followed on disk.
		target := hdr.Linkname
		if hdr.Typeflag == tar.TypeSymlink && !strings.HasPrefix(target, "/") {
			target = path.Join(path.Dir(name), target)
		}
		t, err := CleanName(target)
		if err != nil || t == "." {
			return fmt.Errorf("entry %q: link to %q leaves the archive: %w", hdr.Name, hdr.Linkname, errdefs.ErrInvalidArgument)
		}
		im.links[name] = t
		return nil
	default:
		return fmt.Errorf("entry %q: tar type %q, not a regular file: %w", hdr.Name, hdr.Typeflag, errdefs.ErrInvalidArgument)
	}
	if kind == entryJSON {
		if hdr.Size > im.lim.MaxJSON {
			return fmt.Errorf("entry %q: %d bytes exceeds the limit of %d for JSON files: %w", hdr.Name, hdr.Size, im.lim.MaxJSON, errdefs.ErrInvalidArgument)
		}
		b, err := io.ReadAll(io.LimitReader(tr, im.lim.MaxJSON))
		if err != nil {
			return truncated(hdr, int64(len(b)), err)
		}
		im.files[name] = b
		return nil
	}
	if hdr.Size > im.lim.MaxBlob {
		return fmt.Errorf("entry %q: %d bytes exceeds the limit of %d for blobs: %w", hdr.Name, hdr.Size, im.lim.MaxBlob, errdefs.ErrInvalidArgument)
	}
	desc, err := im.write(ctx, tr, hdr, want)
	if err != nil {
		return err
	}
	im.blobs[name] = desc
	return nil
}

// truncated describes a failure reading an entry's data.
func truncated(hdr *tar.Header, n int64, err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("archive is truncated in entry %q (%d of %d bytes): %w", hdr.Name, n, hdr.Size, err)
	}
	return fmt.Errorf("read entry %q: %w", hdr.Name, err)
}

// write streams the entry's data into the store and returns its
// descriptor (digest and size). With want, the data must have that digest;
// without, the digest is computed.
func (im *Archive) write(ctx context.Context, tr *tar.Reader, hdr *tar.Header, want digest.Digest) (ocispec.Descriptor, error) {
	ref := fmt.Sprintf("import-%s-%d", im.lease.ID, im.entries)
	var expected ocispec.Descriptor
	if want != "" {
		expected = ocispec.Descriptor{Digest: want, Size: hdr.Size}
	}
	w, err := im.cs.Writer(ctx, content.WithRef(ref), content.WithDescriptor(expected))
	if errors.Is(err, errdefs.ErrAlreadyExists) {
		// In the store already and now held by the lease (never without
		// want): the tar reader skips the data.
		im.have[want] = true
		return expected, nil
	}
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("entry %q: %w", hdr.Name, err)
	}
	if want != "" {
		if done, err := content.CommitIfComplete(ctx, w, expected); err != nil {
			w.Close()
			return ocispec.Descriptor{}, fmt.Errorf("entry %q: %w", hdr.Name, err)
		} else if done {
			w.Close()
			im.have[want] = true
			return expected, nil
		}
	}
	abort := func() {
		w.Close()
		if err := im.cs.Abort(context.WithoutCancel(ctx), ref); err != nil && !errdefs.IsNotFound(err) {
			im.log().Warn("abort the ingest of an import", "ref", ref, "error", err)
		}
	}
	if im.buf == nil {
		im.buf = make([]byte, 1<<20)
	}
	n, err := io.CopyBuffer(w, imagetar.CtxReader{Ctx: ctx, R: tr}, im.buf)
	if err != nil {
		abort()
		if ctx.Err() != nil {
			return ocispec.Descriptor{}, ctx.Err()
		}
		return ocispec.Descriptor{}, truncated(hdr, n, err)
	}
	got := w.Digest()
	if want != "" && got != want {
		abort()
		return ocispec.Descriptor{}, fmt.Errorf("entry %q: content has digest %s, its name says %s: %w", hdr.Name, got, want, errdefs.ErrDataLoss)
	}
	if err := w.Commit(ctx, n, got); err != nil && !errors.Is(err, errdefs.ErrAlreadyExists) {
		abort()
		return ocispec.Descriptor{}, fmt.Errorf("entry %q: %w", hdr.Name, err)
	}
	w.Close()
	im.have[got] = true
	return ocispec.Descriptor{Digest: got, Size: n}, nil
}

func (im *Archive) log() *slog.Logger { return im.o.Logger }

// Lookup finds the blob at path p of the archive, following legacy links.
func (im *Archive) Lookup(p string) (ocispec.Descriptor, bool) {
	name, err := CleanName(p)
	if err != nil {
		return ocispec.Descriptor{}, false
	}
	for range maxLinks {
		if desc, ok := im.blobs[name]; ok {
			return desc, true
		}
		t, ok := im.links[name]
		if !ok {
			break
		}
		name = t
	}
	return ocispec.Descriptor{}, false
}
