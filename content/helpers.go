package content

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// WriteBlob writes the blob desc from r under ref and commits it. An earlier
// ingest of ref is resumed: r is skipped forward (or seeked, when it is an
// io.Seeker) past what is stored. When the resumed data turns out wrong and r
// can seek, the ingest starts over once. A blob already present is not an
// error.
func WriteBlob(ctx context.Context, ing Ingester, ref string, r io.Reader, desc ocispec.Descriptor, opts ...Opt) error {
	w, err := ing.Writer(ctx, WithRef(ref), WithDescriptor(desc))
	if err != nil {
		if errors.Is(err, errdefs.ErrAlreadyExists) {
			return nil
		}
		return err
	}
	defer w.Close()
	if done, err := CommitIfComplete(ctx, w, desc, opts...); done || err != nil {
		return err
	}
	st, err := w.Status()
	if err != nil {
		return err
	}
	resumed := false
	switch {
	case st.Offset == 0:
	case desc.Size > 0 && st.Offset > desc.Size:
		// Longer than the blob: not a prefix of it.
		if err := restart(w, r); err != nil {
			return fmt.Errorf("write %s: %w", desc.Digest, err)
		}
	default:
		if err := seekReader(r, st.Offset); err != nil {
			return fmt.Errorf("write %s: resume ingest %q at offset %d: %w", desc.Digest, ref, st.Offset, err)
		}
		resumed = true
	}
	if _, err := io.Copy(w, r); err != nil {
		return fmt.Errorf("write %s: %w", desc.Digest, err)
	}
	err = w.Commit(ctx, desc.Size, desc.Digest, opts...)
	if resumed && errors.Is(err, errdefs.ErrFailedPrecondition) {
		// The stored prefix was wrong; with a seekable source, once more
		// from the start, through a new writer (the store keeps the
		// ingest, as containerd's does; it is truncated).
		if _, ok := r.(io.Seeker); ok {
			w.Close()
			if w, err = ing.Writer(ctx, WithRef(ref), WithDescriptor(desc)); err != nil {
				if errors.Is(err, errdefs.ErrAlreadyExists) {
					return nil
				}
				return err
			}
			defer w.Close()
			if rerr := restart(w, r); rerr != nil {
				return fmt.Errorf("write %s: %w", desc.Digest, rerr)
			}
			if _, err := io.Copy(w, r); err != nil {
				return fmt.Errorf("write %s: %w", desc.Digest, err)
			}
			err = w.Commit(ctx, desc.Size, desc.Digest, opts...)
		}
	}
	if err != nil && !errors.Is(err, errdefs.ErrAlreadyExists) {
		return err
	}
	return nil
}

// CommitIfComplete commits w when it holds all of blob desc already, as a
// store that shares a blob another namespace has returns it (containerd's
// shared policy: offset = total = size, the digest desc's); done says
// whether it did. A blob the namespace has meanwhile is not an error.
func CommitIfComplete(ctx context.Context, w Writer, desc ocispec.Descriptor, opts ...Opt) (done bool, err error) {
	if desc.Digest == "" {
		return false, nil
	}
	st, err := w.Status()
	if err != nil {
		return false, err
	}
	// Without a size in desc, the writer's total says what complete is.
	size := desc.Size
	if size <= 0 {
		size = st.Total
	}
	if size <= 0 || st.Offset != size || w.Digest() != desc.Digest {
		return false, nil
	}
	if err := w.Commit(ctx, size, desc.Digest, opts...); err != nil && !errors.Is(err, errdefs.ErrAlreadyExists) {
		return false, err
	}
	return true, nil
}

// restart empties the ingest and rewinds r; r must not have been read yet
// or must seek.
func restart(w Writer, r io.Reader) error {
	if err := w.Truncate(0); err != nil {
		return err
	}
	if s, ok := r.(io.Seeker); ok {
		_, err := s.Seek(0, io.SeekStart)
		return err
	}
	return nil
}

func seekReader(r io.Reader, offset int64) error {
	if s, ok := r.(io.Seeker); ok {
		_, err := s.Seek(offset, io.SeekStart)
		return err
	}
	n, err := io.CopyN(io.Discard, r, offset)
	if err == nil && n != offset {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// ReadBlob reads the whole blob desc, refusing blobs larger than limit bytes
// (manifests and configs come from hostile places).
func ReadBlob(ctx context.Context, p Provider, desc ocispec.Descriptor, limit int64) ([]byte, error) {
	ra, err := p.ReaderAt(ctx, desc)
	if err != nil {
		return nil, err
	}
	defer ra.Close()
	size := ra.Size()
	if limit > 0 && size > limit {
		return nil, fmt.Errorf("blob %s: %d bytes exceeds the limit of %d: %w", desc.Digest, size, limit, errdefs.ErrInvalidArgument)
	}
	buf := make([]byte, size)
	if _, err := ra.ReadAt(buf, 0); err != nil && !(errors.Is(err, io.EOF) && size == 0) {
		return nil, fmt.Errorf("read blob %s: %w", desc.Digest, err)
	}
	return buf, nil
}

// NewReader turns a ReaderAt into a sequential reader.
func NewReader(ra ReaderAt) io.Reader {
	return io.NewSectionReader(ra, 0, ra.Size())
}
