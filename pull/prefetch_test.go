package pull

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"testing"
	"testing/iotest"
)

func TestPrefetch(t *testing.T) {
	data := make([]byte, 5<<20+123)
	rand.New(rand.NewSource(1)).Read(data)
	// Same bytes, through odd read sizes on both sides.
	p := newPrefetch(iotest.HalfReader(bytes.NewReader(data)), 64<<10, 3)
	got, err := io.ReadAll(iotest.OneByteReader(io.LimitReader(p, 1000)))
	if err != nil || !bytes.Equal(got, data[:1000]) {
		t.Fatalf("first 1000 bytes differ (%v)", err)
	}
	rest, err := io.ReadAll(p)
	p.Close()
	if err != nil || !bytes.Equal(rest, data[1000:]) {
		t.Fatalf("rest: %d bytes, %v; want %d bytes", len(rest), err, len(data)-1000)
	}
	// The source's error reaches the consumer after its bytes.
	boom := errors.New("boom")
	p = newPrefetch(io.MultiReader(bytes.NewReader(data[:100]), iotest.ErrReader(boom)), 64, 2)
	got, err = io.ReadAll(p)
	p.Close()
	if !errors.Is(err, boom) || !bytes.Equal(got, data[:100]) {
		t.Fatalf("ReadAll = %d bytes, %v; want 100 bytes then boom", len(got), err)
	}
	// Closing early stops the producer: it reads no more than it has room for.
	src := &countingReader{r: bytes.NewReader(data)}
	p = newPrefetch(src, 1<<10, 2)
	buf := make([]byte, 10)
	if _, err := p.Read(buf); err != nil {
		t.Fatal(err)
	}
	p.Close()
	if src.n > 4<<10 {
		t.Fatalf("producer read %d bytes after Close; at most 4 KiB of buffers exist", src.n)
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}
