package archive

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// smallFile is the largest file handed to a worker whole; larger ones are
// streamed by the reading goroutine.
const smallFile = 256 << 10

// fileJob is a small file for a worker to create.
type fileJob struct {
	hdr  *tar.Header
	dir  *dirRef // pinned for the job
	base string
	buf  *[]byte
	data []byte
}

// smallBufs bounds the small-file buffers of one Apply: a sync.Pool would
// be emptied by every collection and refilled with fresh 256 KiB buffers,
// which then cause the next collection.
type smallBufs struct {
	free chan *[]byte
	made int
}

const maxSmallBufs = 24

func (p *smallBufs) get() *[]byte {
	select {
	case b := <-p.free:
		return b
	default:
	}
	if p.made < maxSmallBufs {
		p.made++
		b := make([]byte, smallFile)
		return &b
	}
	return <-p.free
}

func (p *smallBufs) put(b *[]byte) { p.free <- b }

// regular writes a file: small ones by a worker, while this goroutine reads
// on (file creation is the cost of layers of many small files, and both
// cores can do it); large ones here, keeping runs of zeros as holes.
func (a *applier) regular(hdr *tar.Header, tr io.Reader, pd *dirRef, name, base string) error {
	if hdr.Size <= smallFile {
		buf := a.bufs.get()
		data := (*buf)[:hdr.Size]
		if _, err := io.ReadFull(tr, data); err != nil {
			a.bufs.put(buf)
			return &streamError{op: fmt.Sprintf("archive: read %q", hdr.Name), err: err}
		}
		a.inflight[name] = struct{}{}
		a.root.pin(pd)
		return a.dispatch(fileJob{hdr: hdr, dir: pd, base: base, buf: buf, data: data})
	}
	fd, err := a.create(hdr, pd.fd, base)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	var off int64
	hole := false
	for {
		n, rerr := io.ReadFull(tr, a.buf)
		if n > 0 {
			h, err := writeSparse(f, a.buf[:n], off)
			if err != nil {
				return fmt.Errorf("archive: write %q: %w", hdr.Name, err)
			}
			hole = h
			off += int64(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return &streamError{op: fmt.Sprintf("archive: read %q", hdr.Name), err: rerr}
		}
	}
	if off != hdr.Size {
		return fmt.Errorf("archive: %q: %d bytes of %d: %w", hdr.Name, off, hdr.Size, errdefs.ErrInvalidArgument)
	}
	if hole {
		if err := f.Truncate(off); err != nil { // a trailing hole
			return fmt.Errorf("archive: %q: %w", hdr.Name, err)
		}
	}
	return a.fileAttributes(hdr, fd, pd, base)
}

// create makes the file base in pfd, with its final permissions when the
// umask lets them through (saving a chmod).
func (a *applier) create(hdr *tar.Header, pfd int, base string) (int, error) {
	fd, err := unix.Openat(pfd, base, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, tarMode(hdr)&0o777)
	if err != nil {
		return -1, fmt.Errorf("archive: create %q: %w", hdr.Name, err)
	}
	return fd, nil
}

// fileAttributes sets owner, mode, xattrs and times of a file just written
// through fd, skipping the calls that would change nothing.
func (a *applier) fileAttributes(hdr *tar.Header, fd int, pd *dirRef, base string) error {
	chowned := false
	if !a.opts.Unprivileged && (hdr.Uid != a.euid || hdr.Gid != a.egid || pd.setgid) {
		if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
			return fmt.Errorf("archive: chown %q: %w", hdr.Name, err)
		}
		chowned = true
	}
	// After chown, which clears setuid and setgid.
	if mode := tarMode(hdr); chowned || mode&^0o777 != 0 || mode&a.umask != 0 {
		if err := unix.Fchmod(fd, mode); err != nil {
			return fmt.Errorf("archive: chmod %q: %w", hdr.Name, err)
		}
	}
	if err := a.xattrs(hdr, func(k string, v []byte) error { return unix.Fsetxattr(fd, k, v, 0) }); err != nil {
		return err
	}
	ts := []unix.Timespec{unix.NsecToTimespec(accessTime(hdr).UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
	if err := unix.UtimesNanoAt(pd.fd, base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("archive: set times of %q: %w", hdr.Name, err)
	}
	return nil
}

// writeSmall is a worker's whole job for one file.
func (a *applier) writeSmall(j fileJob) error {
	defer a.bufs.put(j.buf)
	defer a.root.release(j.dir)
	fd, err := a.create(j.hdr, j.dir.fd, j.base)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for off := 0; off < len(j.data); {
		n, err := unix.Write(fd, j.data[off:])
		if err != nil {
			return fmt.Errorf("archive: write %q: %w", j.hdr.Name, err)
		}
		off += n
	}
	return a.fileAttributes(j.hdr, fd, j.dir, j.base)
}

// workers is how many goroutines create small files.
const workers = 3

// batchFiles is how many small files go to a worker at once: one wake-up
// per batch instead of per file (with 50,000 files, the goroutine
// hand-offs kept the scheduler spinning).
const batchFiles = 8

// dispatch hands a small file to the workers, starting them on first use.
func (a *applier) dispatch(j fileJob) error {
	if err := a.workErr(); err != nil {
		a.bufs.put(j.buf)
		a.root.release(j.dir)
		return err
	}
	if a.jobs == nil {
		jobs := make(chan []fileJob, maxSmallBufs/batchFiles)
		a.jobs = jobs
		for i := 0; i < workers; i++ {
			go func() {
				for batch := range jobs {
					for _, j := range batch {
						if a.workErr() == nil {
							if err := a.writeSmall(j); err != nil {
								a.errMu.Lock()
								if a.werr == nil {
									a.werr = err
								}
								a.errMu.Unlock()
							}
						} else {
							a.bufs.put(j.buf)
							a.root.release(j.dir)
						}
					}
					a.pending.Add(-len(batch))
				}
			}()
		}
	}
	a.batch = append(a.batch, j)
	if len(a.batch) >= batchFiles || len(a.bufs.free) == 0 && a.bufs.made >= maxSmallBufs {
		a.flush()
	}
	return nil
}

// flush hands the files gathered so far to the workers.
func (a *applier) flush() {
	if len(a.batch) == 0 {
		return
	}
	a.pending.Add(len(a.batch))
	a.jobs <- a.batch
	a.batch = make([]fileJob, 0, batchFiles)
}

func (a *applier) workErr() error {
	a.errMu.Lock()
	defer a.errMu.Unlock()
	return a.werr
}

// barrier waits until every file handed to the workers is written.
func (a *applier) barrier() error {
	a.flush()
	a.pending.Wait()
	clear(a.inflight)
	return a.workErr()
}

// stopWorkers waits for the workers and ends them.
func (a *applier) stopWorkers() error {
	err := a.barrier()
	if a.jobs != nil {
		close(a.jobs)
		a.jobs = nil
	}
	return err
}

const zeroRun = 64 << 10

var zeros = make([]byte, zeroRun)

// writeSparse writes b at off, skipping whole zero-filled 64 KiB runs so
// that they stay holes; it reports whether b ended in one.
func writeSparse(f *os.File, b []byte, off int64) (hole bool, err error) {
	for len(b) > 0 {
		n := min(len(b), zeroRun)
		if n == zeroRun && bytes.Equal(b[:n], zeros) {
			b, off, hole = b[n:], off+int64(n), true
			continue
		}
		if _, err := f.WriteAt(b[:n], off); err != nil {
			return false, err
		}
		b, off, hole = b[n:], off+int64(n), false
	}
	return hole, nil
}
