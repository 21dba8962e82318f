package wiring

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// lockFile is <root>/lock: one process at a time owns a root. The owner
// writes its pid and what it is ("stratad", "strata pull") into the file so
// that a process waiting for the root can name it; the flock itself goes
// with the owner's last descriptor, so a killed owner leaves no stale lock.
const lockFile = "lock"

// How often a waiting process tries the lock again, and how long a holder
// may take to say who it is.
const (
	lockPoll     = 50 * time.Millisecond
	unknownGrace = 2 * time.Second
)

// rootLock is a held lock on a root.
type rootLock struct{ f *os.File }

func (l *rootLock) release() error { return l.f.Close() }

// lockRoot takes the lock of root for holder. A root held by a strata
// command is waited for (cfg.LockTimeout: 0 not at all, < 0 without limit;
// cfg.OnLockWait is told once who holds it); a root held by anything else —
// a daemon, which never lets go on its own — fails at once. Both failures
// are errdefs.ErrUnavailable and name the holder.
func lockRoot(ctx context.Context, root string, cfg Config) (*rootLock, error) {
	path := filepath.Join(root, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o644)
	if err != nil {
		return nil, fmt.Errorf("store root %s: lock: %w", root, err)
	}
	var deadline time.Time
	if cfg.LockTimeout > 0 {
		deadline = time.Now().Add(cfg.LockTimeout)
	}
	told := false
	var unknownSince time.Time
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("store root %s: lock: %w", root, err)
		}
		holder := readHolder(f)
		// A holder that has not said who it is yet has only just taken the
		// lock: give it a moment before calling it a stranger.
		unknown := holder.pid == 0
		if !unknown {
			unknownSince = time.Time{}
		} else if unknownSince.IsZero() {
			unknownSince = time.Now()
		}
		waitable := cfg.LockTimeout != 0 &&
			(strings.HasPrefix(holder.what, "strata ") || unknown && time.Since(unknownSince) < unknownGrace)
		if !waitable || (!deadline.IsZero() && time.Now().After(deadline)) {
			f.Close()
			return nil, &LockedError{Root: root, PID: holder.pid, Holder: holder.what, Waited: waitable}
		}
		if !told && !unknown && cfg.OnLockWait != nil {
			cfg.OnLockWait(holder.String())
			told = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("store %s: waiting for %s: %w", root, holder, context.Cause(ctx))
		case <-time.After(lockPoll):
		}
	}
	what := cfg.Holder
	if what == "" {
		what = filepath.Base(os.Args[0])
	}
	// Who holds it, for the waiters; a failure here only costs them the
	// name.
	// Written over the last holder's line, then cut: a reader never sees
	// an empty file between two holders.
	line := []byte(strconv.Itoa(os.Getpid()) + " " + sanitize(what) + "\n")
	if _, err := f.WriteAt(line, 0); err == nil {
		f.Truncate(int64(len(line)))
	}
	return &rootLock{f: f}, nil
}

// LockedError says that another process holds a root. It is
// errdefs.ErrUnavailable.
type LockedError struct {
	Root string
	// PID and Holder name the owner when it said who it is (0 and "" when
	// it did not).
	PID    int
	Holder string
	// Waited is true when Open waited for it until LockTimeout.
	Waited bool
}

func (e *LockedError) Error() string {
	h := holder{pid: e.PID, what: e.Holder}
	if e.Waited {
		return fmt.Sprintf("store %s is locked by another process (%s); gave up waiting", e.Root, h)
	}
	return fmt.Sprintf("store %s is locked by another process (%s)", e.Root, h)
}

// Is makes errors.Is(err, errdefs.ErrUnavailable) true.
func (e *LockedError) Is(target error) bool { return target == errdefs.ErrUnavailable }

// Daemon reports whether the holder is not a strata command, so presumably
// a daemon, which clients reach through its socket.
func (e *LockedError) Daemon() bool { return !strings.HasPrefix(e.Holder, "strata ") }

type holder struct {
	pid  int
	what string
}

func (h holder) String() string {
	if h.pid == 0 {
		return "holder unknown"
	}
	if h.what == "" {
		return fmt.Sprintf("pid %d", h.pid)
	}
	return fmt.Sprintf("pid %d: %s", h.pid, h.what)
}

func readHolder(f *os.File) holder {
	b := make([]byte, 512)
	n, _ := f.ReadAt(b, 0)
	line, _, _ := strings.Cut(string(b[:n]), "\n")
	pidText, what, _ := strings.Cut(line, " ")
	pid, err := strconv.Atoi(pidText)
	if err != nil || pid <= 0 {
		return holder{}
	}
	return holder{pid: pid, what: what}
}

// sanitize keeps a holder's description to one short printable line.
func sanitize(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}
