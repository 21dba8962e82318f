package progress

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

func TestParseMode(t *testing.T) {
	for _, tc := range []struct {
		name string
		want Mode
	}{
		{"auto", Auto},
		{"tty", TTY},
		{"plain", Plain},
		{"quiet", Quiet},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseMode(tc.name)
			if err != nil || got != tc.want {
				t.Fatalf("ParseMode(%q) = %v, %v, want %v", tc.name, got, err, tc.want)
			}
			if got.String() != tc.name {
				t.Errorf("%v.String() = %q, want %q", got, got.String(), tc.name)
			}
			var m Mode
			if err := m.Set(tc.name); err != nil || m != tc.want {
				t.Errorf("Set(%q) = %v, mode %v, want %v", tc.name, err, m, tc.want)
			}
		})
	}
	for _, bad := range []string{"", "TTY", "fancy", " plain"} {
		t.Run("bad "+bad, func(t *testing.T) {
			_, err := ParseMode(bad)
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("ParseMode(%q) = %v, want ErrInvalidArgument", bad, err)
			}
			msg := err.Error()
			if !strings.Contains(msg, fmt.Sprintf("%q", bad)) || !strings.Contains(msg, "auto, tty, plain or quiet") {
				t.Errorf("ParseMode(%q) error %q names neither the value nor the choices", bad, msg)
			}
			m := Plain
			if err := m.Set(bad); err == nil || m != Plain {
				t.Errorf("Set(%q) = %v and mode %v, want an error and the mode unchanged", bad, err, m)
			}
		})
	}
}

func TestHuman(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{
		{0, "0 B"},
		{1023, "1023 B"},
		{1024, "1.0 KiB"},
		{1536, "1.5 KiB"},
		{1<<20 - 1, "1.0 MiB"},
		{42048307, "40.1 MiB"},
		{5 << 30, "5.0 GiB"},
		{3 << 40, "3.0 TiB"},
		{1 << 62, "4096.0 PiB"},
	} {
		if got := human(tc.n); got != tc.want {
			t.Errorf("human(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

func TestSeconds(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "0.0s"},
		{0, "0.0s"},
		{3240 * time.Millisecond, "3.2s"},
		{59940 * time.Millisecond, "59.9s"},
		{59960 * time.Millisecond, "1m00s"},
		{245 * time.Second, "4m05s"},
		{time.Hour + 2*time.Minute + 59*time.Second, "1h02m"},
	} {
		if got := seconds(tc.d); got != tc.want {
			t.Errorf("seconds(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

func TestSplitDigest(t *testing.T) {
	for _, tc := range []struct {
		id   string
		want bool
	}{
		{cfg, true},
		{"sha512:0123456789ab", true},
		{"sha256:0123456789a", false},  // too short to name
		{"sha256:0123456789AB", false}, // digests are lower case
		{ref, false},
		{"localhost:5000/app", false},
		{"docker.io/library/alpine@" + cfg, false},
	} {
		if _, _, got := splitDigest(tc.id); got != tc.want {
			t.Errorf("splitDigest(%q) ok = %v, want %v", tc.id, got, tc.want)
		}
	}
}

// TestConcurrent runs the drawing goroutine against many updating ones
// until it has drawn a few times; run it with -race.
func TestConcurrent(t *testing.T) {
	for _, mode := range []Mode{TTY, Plain} {
		t.Run(mode.String(), func(t *testing.T) {
			out := &countingWriter{}
			p := New(out, mode)
			const workers, reads, chunk = 8, 500, 2000
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					id := fmt.Sprintf("sha256:%012x%052x", w, 0)
					p.Update(Update{ID: id, Kind: "layer", Status: Waiting, Total: reads * chunk})
					r := NewReader(io.LimitReader(zeros{}, reads*chunk), p, Update{ID: id, Kind: "layer", Status: Downloading, Total: reads * chunk})
					buf := make([]byte, chunk)
					for i := 0; i < reads || out.writes.Load() < 3; i++ {
						if i < reads {
							if _, err := io.ReadFull(r, buf); err != nil {
								t.Errorf("read %s: %v", id, err)
								return
							}
						}
						// Everyone also reports on a shared item.
						p.Update(Update{ID: ref, Status: []Status{Resolving, Waiting}[i%2]})
					}
					p.Update(Update{ID: id, Status: Done})
				})
			}
			wg.Wait()
			var closers sync.WaitGroup
			for range 3 {
				closers.Go(func() { p.Close(nil) })
			}
			closers.Wait()
			got := out.buf.String()
			lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
			summary := lines[len(lines)-1]
			if want := "8 blobs, 7.6 MiB in "; !strings.HasPrefix(summary, want) {
				t.Errorf("summary %q, want it to start with %q", summary, want)
			}
			if n := strings.Count(got, " blobs, "); n != 1 {
				t.Errorf("%d summaries, want 1", n)
			}
		})
	}
}

// countingWriter counts its writes; its buffer is read after Close.
type countingWriter struct {
	buf    bytes.Buffer
	writes atomic.Int64
}

func (w *countingWriter) Write(b []byte) (int, error) {
	defer w.writes.Add(1)
	return w.buf.Write(b)
}

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) Read(b []byte) (int, error) {
	clear(b)
	return len(b), nil
}

func TestClose(t *testing.T) {
	for _, mode := range []Mode{TTY, Plain, Quiet} {
		t.Run(mode.String(), func(t *testing.T) {
			var out bytes.Buffer
			p := New(&out, mode)
			if p.Mode() != mode {
				t.Fatalf("New(%v).Mode() = %v", mode, p.Mode())
			}
			p.Update(Update{ID: cfg, Kind: "config", Status: Done, Current: 10})
			p.Close(errors.New("stop"))
			first := out.String()
			p.Update(Update{ID: layer1, Kind: "layer", Status: Failed, Err: errors.New("late")})
			p.Close(nil)
			if out.String() != first {
				t.Errorf("after a second Close and an Update:\n%q\nwant it as the first Close left it:\n%q", out.String(), first)
			}
			if p.done != nil {
				select {
				case <-p.done:
				default:
					t.Errorf("drawing goroutine still running after Close")
				}
			}
			if mode == Quiet {
				if first != "" {
					t.Errorf("Quiet wrote %q", first)
				}
				return
			}
			if !strings.Contains(first, "\n1 blob, 0 B in ") || !strings.HasSuffix(first, ", incomplete\n") {
				t.Errorf("Close(err) wrote %q, want a last line \"1 blob, 0 B in …, incomplete\"", first)
			}
		})
	}
}

// failWriter fails every write.
type failWriter struct{ n int }

func (w *failWriter) Write(b []byte) (int, error) {
	w.n++
	return 0, errors.New("disk full")
}

func TestWriteError(t *testing.T) {
	c := newClock()
	w := &failWriter{}
	p := newPrinter(w, Plain, c.now, fixedSize(80, 0))
	p.Update(Update{ID: cfg, Status: Done})
	p.draw()
	p.Update(Update{ID: layer1, Status: Done})
	p.draw()
	p.Close(nil)
	if w.n != 1 {
		t.Errorf("%d writes, want 1: a failed writer is not written again", w.n)
	}
}

func TestUpdateAllocs(t *testing.T) {
	c := newClock()
	p := newPrinter(io.Discard, Plain, c.now, fixedSize(80, 0))
	u := Update{ID: layer1, Kind: "layer", Status: Downloading, Total: 1 << 30}
	p.Update(u)
	allocs := testing.AllocsPerRun(1000, func() {
		u.Current += 256 << 10
		p.Update(u)
	})
	if allocs != 0 {
		t.Errorf("Update of bytes allocates %v times, want 0", allocs)
	}
}

func TestReader(t *testing.T) {
	c := newClock()
	var out bytes.Buffer
	p := newPrinter(&out, Plain, c.now, fixedSize(80, 0))
	data := strings.Repeat("x", 3000)
	r := NewReader(strings.NewReader(data), p, Update{ID: layer1, Kind: "layer", Status: Downloading, Current: 1000, Total: 4000})
	got, err := io.ReadAll(r)
	if err != nil || string(got) != data {
		t.Fatalf("ReadAll = %d bytes, %v; want %d bytes", len(got), err, len(data))
	}
	p.Update(Update{ID: layer1, Status: Done})
	p.Close(nil)
	if want := lines(
		"layer sha256:89abcdef0123: downloading 3.9 KiB",
		"layer sha256:89abcdef0123: done 3.9 KiB in 0.0s",
		"1 blob, 3.9 KiB in 0.0s (0 B/s)",
	); out.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", out.String(), want)
	}
	Discard.Update(Update{ID: cfg}) // does nothing, and does not panic
}

// openPTY returns both ends of a new pseudo-terminal, cols×rows, closed at
// the end of the test.
func openPTY(t *testing.T, cols, rows uint16) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { master.Close() })
	rc, err := master.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n uint32
	var ioErr error
	if err := rc.Control(func(fd uintptr) {
		if ioErr = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); ioErr != nil {
			return
		}
		if n, ioErr = unix.IoctlGetUint32(int(fd), unix.TIOCGPTN); ioErr != nil {
			return
		}
		ioErr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Col: cols, Row: rows})
	}); err != nil || ioErr != nil {
		t.Fatalf("set up pty: %v %v", err, ioErr)
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { slave.Close() })
	return master, slave
}

func TestAuto(t *testing.T) {
	t.Setenv("TERM", "xterm")
	if m := New(&bytes.Buffer{}, Auto); m.Mode() != Plain {
		t.Errorf("Auto on a buffer chose %v, want plain", m.Mode())
	} else {
		m.Close(nil)
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if m := New(f, Auto); m.Mode() != Plain {
		t.Errorf("Auto on a file chose %v, want plain", m.Mode())
	} else {
		m.Close(nil)
	}
	if cols, rows := terminalSize(f); cols != 80 || rows != 0 {
		t.Errorf("terminalSize(file) = %d, %d; want 80, 0", cols, rows)
	}

	master, slave := openPTY(t, 132, 43)
	if cols, rows := terminalSize(slave); cols != 132 || rows != 43 {
		t.Errorf("terminalSize(pty) = %d, %d; want 132, 43", cols, rows)
	}
	t.Setenv("TERM", "dumb")
	if m := New(slave, Auto); m.Mode() != Plain {
		t.Errorf("Auto on a pty with TERM=dumb chose %v, want plain", m.Mode())
	} else {
		m.Close(nil)
	}
	t.Setenv("TERM", "xterm-256color")

	// Draw on the pty and read what a terminal would get.
	read := make(chan string, 1)
	go func() {
		var got bytes.Buffer
		io.Copy(&got, master) // ends with EIO once the slave is closed
		read <- got.String()
	}()
	p := New(slave, Auto)
	if p.Mode() != TTY {
		t.Errorf("Auto on a pty chose %v, want tty", p.Mode())
	}
	p.Update(Update{ID: layer1, Kind: "layer", Status: Downloading, Current: 1 << 20, Total: 4 << 20})
	p.Update(Update{ID: layer1, Status: Done})
	p.Close(nil)
	slave.Close()
	got := <-read
	if want := "\x1b[2K89abcdef0123 layer    done        1.0 MiB "; !strings.Contains(got, want) {
		t.Errorf("pty got %q, want a line %q", got, want)
	}
	if !strings.Contains(got, "1 blob, 1.0 MiB in ") {
		t.Errorf("pty got %q, want the summary", got)
	}
}
