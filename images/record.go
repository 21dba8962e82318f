package images

import (
	"context"
	"errors"

	"github.com/containerd/errdefs"
)

// Record writes the image record img.Name → img.Target, as a pull or an
// import does: it creates the record or, when the name is taken, points
// it at img.Target (its labels stay). It returns the record written and,
// when it replaced one, the record as it was before (nil when it created
// it): an import that fails later puts that back.
func Record(ctx context.Context, is Store, img Image) (Image, *Image, error) {
	got, err := is.Create(ctx, img)
	if err == nil {
		return got, nil, nil
	}
	if !errors.Is(err, errdefs.ErrAlreadyExists) {
		return Image{}, nil, err
	}
	old, err := is.Get(ctx, img.Name)
	if err != nil {
		return Image{}, nil, err
	}
	if got, err = is.Update(ctx, img, "target"); err != nil {
		return Image{}, nil, err
	}
	return got, &old, nil
}
