package images

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync"
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
//
// The walk costs a stat per inode of the store, and kubelet (and every
// crictl command, which checks the endpoint with it) asks often: an answer
// younger than fsInfoMaxAge is given again unless a pull or a removal
// came since, and callers arriving during a walk wait for it rather than
// start their own.
func (s *Service) ImageFsInfo(ctx context.Context, _ *runtime.ImageFsInfoRequest) (*runtime.ImageFsInfoResponse, error) {
	if s.cfg.SnapshotterRoot == "" {
		return nil, fmt.Errorf("image filesystem: no snapshotter directory configured: %w", errdefs.ErrFailedPrecondition)
	}
	s.fsInfo.mu.Lock()
	defer s.fsInfo.mu.Unlock()
	if last := s.fsInfo.last; last != nil && time.Since(s.fsInfo.at) < fsInfoMaxAge {
		return last, nil
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
	now := time.Now()
	resp := &runtime.ImageFsInfoResponse{ImageFilesystems: []*runtime.FilesystemUsage{{
		Timestamp:  now.UnixNano(),
		FsId:       &runtime.FilesystemIdentifier{Mountpoint: s.cfg.SnapshotterRoot},
		UsedBytes:  &runtime.UInt64Value{Value: u.bytes},
		InodesUsed: &runtime.UInt64Value{Value: u.inodes},
	}}}
	s.fsInfo.last, s.fsInfo.at = resp, now
	return resp, nil
}

// fsInfoMaxAge is how long an ImageFsInfo answer is given again.
const fsInfoMaxAge = 5 * time.Second

// forget drops the cached answer: the images changed.
func (c *fsInfoCache) forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last = nil
}

// fsInfoCache is the last ImageFsInfo answer.
type fsInfoCache struct {
	mu   sync.Mutex
	last *runtime.ImageFsInfoResponse
	at   time.Time
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
