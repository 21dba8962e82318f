package progress

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

const (
	idx      = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	manifest = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	cfg      = "sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
	layer1   = "sha256:89abcdef0123456789abcdef0123456789abcdef0123456789abcdef01234567"
	layer2   = "sha256:456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123"
	ref      = "docker.io/library/alpine:3.20"

	kib = 1 << 10
	mib = 1 << 20
)

// fakeClock is the Printer's clock in tests that call draw themselves, from
// one goroutine.
type fakeClock struct{ t time.Time }

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

// fixedSize is a terminal of cols×rows; rows 0 is unknown.
func fixedSize(cols, rows int) func() (int, int) {
	return func() (int, int) { return cols, rows }
}

// lines joins want with a newline after each.
func lines(want ...string) string { return strings.Join(want, "\n") + "\n" }

// tty makes each of want an erased, drawn line.
func tty(want ...string) string {
	var b strings.Builder
	for _, l := range want {
		b.WriteString(eraseLine + l + "\n")
	}
	return b.String()
}

func TestPlain(t *testing.T) {
	c := newClock()
	var out bytes.Buffer
	p := newPrinter(&out, Plain, c.now, fixedSize(80, 0))

	p.Update(Update{ID: ref, Status: Resolving})
	p.draw()
	c.advance(300 * time.Millisecond)
	p.Update(Update{ID: ref, Status: Done})
	p.Update(Update{ID: idx, Kind: "index", Status: Downloading, Total: 1600})
	p.Update(Update{ID: idx, Kind: "index", Status: Downloading, Current: 1600, Total: 1600})
	c.advance(100 * time.Millisecond)
	p.Update(Update{ID: idx, Status: Done})
	p.draw()
	p.Update(Update{ID: manifest, Kind: "manifest", Status: Downloading, Total: 2000})
	p.Update(Update{ID: manifest, Kind: "manifest", Status: Done, Current: 2000})
	p.Update(Update{ID: cfg, Kind: "config", Status: Exists, Total: 1234})
	p.Update(Update{ID: layer1, Kind: "layer", Status: Waiting, Total: 40 * mib})
	p.Update(Update{ID: layer2, Kind: "layer"})
	p.draw()
	c.advance(600 * time.Millisecond) // t = 1.0s
	p.Update(Update{ID: layer1, Kind: "layer", Status: Downloading, Total: 40 * mib})
	p.Update(Update{ID: layer2, Kind: "layer", Status: Downloading})
	for k := int64(1); k <= 120; k++ {
		c.advance(100 * time.Millisecond) // t = 1.0s + k×0.1s
		switch {
		case k < 100:
			p.Update(Update{ID: layer1, Status: Downloading, Current: k * 40 * mib / 100, Total: 40 * mib})
		case k == 100:
			p.Update(Update{ID: layer1, Status: Downloading, Current: 40 * mib, Total: 40 * mib})
			p.Update(Update{ID: layer1, Status: Unpacking})
		case k < 110:
			p.Update(Update{ID: layer1, Status: Unpacking, Current: (k - 100) * 4 * mib})
		case k == 110:
			p.Update(Update{ID: layer1, Status: Done})
		}
		p.Update(Update{ID: layer2, Status: Downloading, Current: k * 64 * kib})
		p.draw()
	}
	p.Update(Update{ID: layer2, Status: Failed, Err: errors.New("read tcp:\n\x1b[31mconnection reset")})
	p.Close(errors.New("pull " + ref + ": 1 blob failed"))

	want := lines(
		"docker.io/library/alpine:3.20: resolving",
		"docker.io/library/alpine:3.20: done in 0.3s",
		"index sha256:0123456789ab: downloading 1.6 KiB",
		"index sha256:0123456789ab: done 1.6 KiB in 0.1s",
		"manifest sha256:aaaaaaaaaaaa: downloading 2.0 KiB",
		"manifest sha256:aaaaaaaaaaaa: done 2.0 KiB in 0.0s",
		"config sha256:fedcba987654: exists 1.2 KiB",
		"layer sha256:89abcdef0123: waiting",
		"layer sha256:456789abcdef: waiting",
		"layer sha256:89abcdef0123: downloading 40.0 MiB",
		"layer sha256:456789abcdef: downloading",
		"layer sha256:89abcdef0123: downloading 20.0 MiB/40.0 MiB (4.0 MiB/s)", // t = 6s
		"layer sha256:456789abcdef: downloading 3.1 MiB (640.0 KiB/s)",
		"layer sha256:89abcdef0123: unpacking 40.0 MiB", // t = 11s
		"layer sha256:456789abcdef: downloading 6.2 MiB (640.0 KiB/s)",
		"layer sha256:89abcdef0123: done 40.0 MiB in 11.0s", // t = 12s
		"layer sha256:456789abcdef: failed: read tcp:  [31mconnection reset",
		"5 blobs, 47.5 MiB in 13.0s (3.7 MiB/s), 1 failed, incomplete",
	)
	if got := out.String(); got != want {
		t.Errorf("Plain output:\n%s\nwant:\n%s", got, want)
	}
}

func TestPlainQueueFull(t *testing.T) {
	c := newClock()
	var out bytes.Buffer
	p := newPrinter(&out, Plain, c.now, fixedSize(80, 0))
	const n = maxQueue + 100
	for i := range n {
		p.Update(Update{ID: fmt.Sprintf("sha256:%012x%052x", i, 0), Kind: "layer", Status: Exists})
	}
	p.draw()
	got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(got) != n {
		t.Fatalf("%d lines after %d status changes, want one each", len(got), n)
	}
	for i, line := range got {
		if want := fmt.Sprintf("layer sha256:%012x: exists", i); line != want {
			t.Fatalf("line %d = %q, want %q", i, line, want)
		}
	}
}

// ttyScene is a pull in the middle of its layers, as the frame tests draw it.
func ttyScene(c *fakeClock, p *Printer) {
	p.Update(Update{ID: ref, Status: Resolving})
	c.advance(300 * time.Millisecond)
	p.Update(Update{ID: ref, Status: Done})
	p.Update(Update{ID: idx, Kind: "index", Status: Downloading, Current: 1600, Total: 1600})
	c.advance(100 * time.Millisecond)
	p.Update(Update{ID: idx, Kind: "index", Status: Done})
	p.Update(Update{ID: layer1, Kind: "layer", Status: Downloading, Total: 40 * mib})
	p.Update(Update{ID: layer2, Kind: "layer", Status: Downloading})
	p.Update(Update{ID: cfg, Kind: "config", Status: Exists, Total: 1234})
	p.Update(Update{ID: manifest, Kind: "manifest", Status: Failed,
		Err: errors.New("fetch sha256:aaaa: 503 Service Unavailable: the registry is having a very bad day")})
	p.Update(Update{ID: "sha256:" + strings.Repeat("5", 64), Kind: "layer"})
	c.advance(2 * time.Second)
	p.Update(Update{ID: layer1, Status: Downloading, Current: 10 * mib})
	p.Update(Update{ID: layer2, Status: Downloading, Current: 512 * kib})
}

func TestTTYFrame(t *testing.T) {
	c := newClock()
	var out bytes.Buffer
	p := newPrinter(&out, TTY, c.now, fixedSize(80, 0))
	ttyScene(c, p)
	p.draw()
	want := tty(
		"docker.io/library/alpine:3.20 done        0.3s",
		"0123456789ab index    done        1.6 KiB 0.1s",
		"89abcdef0123 layer    downloading [==>       ] 10.0 MiB/40.0 MiB 5.0 MiB/s 2.0s",
		"456789abcdef layer    downloading 512.0 KiB 256.0 KiB/s 2.0s",
		"fedcba987654 config   exists      1.2 KiB",
		"aaaaaaaaaaaa manifest failed      fetch sha256:aaaa: 503 Service Unavailable: th",
		"555555555555 layer    waiting",
	)
	if got := out.String(); got != want {
		t.Fatalf("first frame:\n%q\nwant:\n%q", got, want)
	}

	// Nothing changed and nothing moves but the clocks: the next frame
	// redraws in place; then an idle one is skipped.
	out.Reset()
	c.advance(time.Second)
	p.Update(Update{ID: layer1, Status: Downloading, Current: 40 * mib})
	p.Update(Update{ID: layer1, Status: Done})
	p.Update(Update{ID: layer2, Status: Downloading, Current: 768 * kib})
	p.Update(Update{ID: layer2, Status: Done})
	p.draw()
	want = "\x1b[7A" + tty(
		"docker.io/library/alpine:3.20 done        0.3s",
		"0123456789ab index    done        1.6 KiB 0.1s",
		"89abcdef0123 layer    done        40.0 MiB 3.0s",
		"456789abcdef layer    done        768.0 KiB 3.0s",
		"fedcba987654 config   exists      1.2 KiB",
		"aaaaaaaaaaaa manifest failed      fetch sha256:aaaa: 503 Service Unavailable: th",
		"555555555555 layer    waiting",
	)
	if got := out.String(); got != want {
		t.Fatalf("second frame:\n%q\nwant:\n%q", got, want)
	}
	out.Reset()
	c.advance(time.Second)
	p.draw()
	if out.Len() != 0 {
		t.Fatalf("idle frame wrote %q, want nothing", out.String())
	}

	c.advance(200 * time.Millisecond)
	p.Close(nil)
	want = "\x1b[7A" + tty(
		"docker.io/library/alpine:3.20 done        0.3s",
		"0123456789ab index    done        1.6 KiB 0.1s",
		"89abcdef0123 layer    done        40.0 MiB 3.0s",
		"456789abcdef layer    done        768.0 KiB 3.0s",
		"fedcba987654 config   exists      1.2 KiB",
		"aaaaaaaaaaaa manifest failed      fetch sha256:aaaa: 503 Service Unavailable: th",
		"555555555555 layer    waiting",
	) + "6 blobs, 40.8 MiB in 4.6s (8.9 MiB/s), 1 failed\n"
	if got := out.String(); got != want {
		t.Fatalf("final frame:\n%q\nwant:\n%q", got, want)
	}
}

var escape = regexp.MustCompile(`\x1b\[[0-9]*[A-Za-z]`)

func TestTTYTruncate(t *testing.T) {
	for _, cols := range []int{20, 40, 60, 79, 120} {
		t.Run(fmt.Sprint(cols), func(t *testing.T) {
			c := newClock()
			var out bytes.Buffer
			p := newPrinter(&out, TTY, c.now, fixedSize(cols, 0))
			ttyScene(c, p)
			p.Update(Update{ID: cfg, Status: Failed, Err: errors.New("schlüssel ungültig: ünïcödé ërrör, wïth ä löng tëxt thät göës ön änd ön")})
			p.draw()
			p.Close(nil)
			for _, line := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
				line = escape.ReplaceAllString(line, "")
				if n := utf8.RuneCountInString(line); n > cols {
					t.Errorf("line %q has %d columns, want at most %d", line, n, cols)
				}
				if !utf8.ValidString(line) {
					t.Errorf("line %q cut inside a character", line)
				}
			}
		})
	}

	c := newClock()
	var out bytes.Buffer
	p := newPrinter(&out, TTY, c.now, fixedSize(40, 0))
	ttyScene(c, p)
	p.Update(Update{ID: cfg, Status: Failed, Err: errors.New("schlüssel ungültig: ünïcödé")})
	p.draw()
	want := tty(
		"docker.io/library/alpine:3.20 done",
		"0123456789ab index    done        1.6 Ki",
		"89abcdef0123 layer    downloading 10.0 M",
		"456789abcdef layer    downloading 512.0",
		"fedcba987654 config   failed      schlüs",
		"aaaaaaaaaaaa manifest failed      fetch",
		"555555555555 layer    waiting",
	)
	if got := out.String(); got != want {
		t.Fatalf("40-column frame:\n%q\nwant:\n%q", got, want)
	}
}

func TestTTYTallerThanTerminal(t *testing.T) {
	c := newClock()
	var out bytes.Buffer
	rows := 4
	p := newPrinter(&out, TTY, c.now, func() (int, int) { return 60, rows })
	id := func(i int) string { return fmt.Sprintf("sha256:%012x%052x", i, 0) }
	p.Update(Update{ID: id(1), Kind: "layer", Status: Done})
	p.Update(Update{ID: id(2), Kind: "layer", Status: Exists})
	p.Update(Update{ID: id(3), Kind: "layer", Status: Downloading, Current: 1, Total: 2})
	p.Update(Update{ID: id(4), Kind: "layer"})
	p.Update(Update{ID: id(5), Kind: "layer"})
	p.draw()
	want := tty(
		"000000000001 layer    done        0.0s",
		"000000000002 layer    exists",
		"000000000003 layer    downloading [==>  ] 1 B/2 B 0 B/s 0.0s",
		"000000000004 layer    waiting",
		"000000000005 layer    waiting",
	)
	if got := out.String(); got != want {
		t.Fatalf("frame 1:\n%q\nwant:\n%q", got, want)
	}

	// The live area (3 rows) is full and its top still moves: count the rest.
	out.Reset()
	p.Update(Update{ID: id(6), Kind: "layer"})
	p.draw()
	want = "\x1b[3A" + tty(
		"000000000003 layer    downloading [==>  ] 1 B/2 B 0 B/s 0.0s",
		"000000000004 layer    waiting",
		"... 2 more",
	)
	if got := out.String(); got != want {
		t.Fatalf("frame 2:\n%q\nwant:\n%q", got, want)
	}

	// A finished top is left behind for good.
	out.Reset()
	p.Update(Update{ID: id(3), Status: Done})
	p.draw()
	want = "\x1b[3A" + tty(
		"000000000003 layer    done        1 B 0.0s",
		"000000000004 layer    waiting",
		"000000000005 layer    waiting",
		"000000000006 layer    waiting",
	)
	if got := out.String(); got != want {
		t.Fatalf("frame 3:\n%q\nwant:\n%q", got, want)
	}

	// The terminal shrinks: fewer lines than on screen, the rest is erased.
	out.Reset()
	rows = 3
	p.draw()
	want = "\x1b[3A" + tty(
		"000000000004 layer    waiting",
		"... 2 more",
	) + eraseDown
	if got := out.String(); got != want {
		t.Fatalf("frame 4:\n%q\nwant:\n%q", got, want)
	}

	out.Reset()
	p.Close(nil)
	want = "\x1b[2A" + tty(
		"000000000004 layer    waiting",
		"000000000005 layer    waiting",
		"000000000006 layer    waiting",
	) + "6 blobs, 1 B in 0.0s (0 B/s)\n"
	if got := out.String(); got != want {
		t.Fatalf("final frame:\n%q\nwant:\n%q", got, want)
	}
}
