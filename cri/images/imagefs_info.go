package images

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ImageFsInfo reports the filesystem that holds the images: its first
// (only) entry is identified by the default snapshotter's directory, and
// counts the bytes and inodes of the snapshots and of the content store
// together. containerd counts the snapshots only (containerd#6649), so
// kubelet's image GC thinks the layers' compressed blobs are free space.
func (s *Service) ImageFsInfo(ctx context.Context, _ *runtime.ImageFsInfoRequest) (*runtime.ImageFsInfoResponse, error) {
	if s.cfg.SnapshotterRoot == "" {
		return nil, fmt.Errorf("image filesystem: no snapshotter directory configured: %w", errdefs.ErrFailedPrecondition)
	}
	var u usage
	for _, dir := range []string{s.cfg.SnapshotterRoot, s.cfg.ContentRoot} {
		if dir == "" {
			continue
		}
		if err := u.add(ctx, dir); err != nil {
			return nil, err
		}
	}
	return &runtime.ImageFsInfoResponse{ImageFilesystems: []*runtime.FilesystemUsage{{
		Timestamp:  time.Now().UnixNano(),
		FsId:       &runtime.FilesystemIdentifier{Mountpoint: s.cfg.SnapshotterRoot},
		UsedBytes:  &runtime.UInt64Value{Value: u.bytes},
		InodesUsed: &runtime.UInt64Value{Value: u.inodes},
	}}}, nil
}

// usage is what directory trees take on disk: allocated blocks and
// inodes, each inode counted once however many links it has.
type usage struct {
	bytes, inodes uint64
	seen          map[[2]uint64]bool // device, inode
}

func (u *usage) add(ctx context.Context, dir string) error {
	if u.seen == nil {
		u.seen = map[[2]uint64]bool{}
	}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path != dir && errors.Is(err, fs.ErrNotExist) {
				return nil // removed while we walked: a snapshot or an ingest going
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		key := [2]uint64{uint64(st.Dev), st.Ino}
		if u.seen[key] {
			return nil
		}
		u.seen[key] = true
		u.inodes++
		u.bytes += uint64(st.Blocks) * 512
		return nil
	})
	if err != nil {
		return fmt.Errorf("image filesystem usage of %s: %w", dir, err)
	}
	return nil
}
