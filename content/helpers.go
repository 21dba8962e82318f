package content

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// WriteBlob writes the blob desc from r under ref and commits it, resuming an
// earlier ingest of ref when there is one (r is then skipped forward, or read
// from the resume offset when it is an io.Seeker). A blob already present is
// not an error.
func WriteBlob(ctx context.Context, ing Ingester, ref string, r io.Reader, desc ocispec.Descriptor, opts ...Opt) error {
	w, err := ing.Writer(ctx, WithRef(ref), WithDescriptor(desc))
	if err != nil {
		if errors.Is(err, errdefs.ErrAlreadyExists) {
			return nil
		}
		return err
	}
	defer w.Close()
	st, err := w.Status()
	if err != nil {
		return err
	}
	if st.Offset > 0 {
		if err := seekReader(r, st.Offset); err != nil {
			// Cannot skip: start over.
			if err := w.Truncate(0); err != nil {
				return err
			}
		}
	}
	if _, err := io.Copy(w, r); err != nil {
		return fmt.Errorf("write %s: %w", desc.Digest, err)
	}
	if err := w.Commit(ctx, desc.Size, desc.Digest, opts...); err != nil && !errors.Is(err, errdefs.ErrAlreadyExists) {
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
