package pull

import (
	"io"
	"sync"
)

// prefetch reads src ahead of its consumer, in a goroutine, up to depth
// chunks of size bytes: the download (and what src does as it is read,
// such as writing the blob to the store) runs beside the decompression
// instead of taking turns with it.
type prefetch struct {
	ch   chan []byte // filled chunks, in order; closed after the last
	free chan []byte // empty buffers
	buf  []byte      // the chunk being consumed
	pos  int
	err  error // the producer's last error, read once ch is closed
	stop chan struct{}
	once sync.Once
	wg   sync.WaitGroup
}

func newPrefetch(src io.Reader, size, depth int) *prefetch {
	p := &prefetch{ch: make(chan []byte, depth), free: make(chan []byte, depth+1), stop: make(chan struct{})}
	for range depth + 1 {
		p.free <- make([]byte, size)
	}
	p.wg.Add(1)
	go p.run(src)
	return p
}

func (p *prefetch) run(src io.Reader) {
	defer p.wg.Done()
	defer close(p.ch)
	for {
		var buf []byte
		select {
		case buf = <-p.free:
		case <-p.stop:
			return
		}
		n, err := io.ReadFull(src, buf[:cap(buf)])
		if n > 0 {
			select {
			case p.ch <- buf[:n]:
			case <-p.stop:
				return
			}
		}
		if err != nil {
			if err == io.ErrUnexpectedEOF {
				err = io.EOF
			}
			p.err = err
			return
		}
	}
}

func (p *prefetch) Read(b []byte) (int, error) {
	if p.buf == nil {
		c, ok := <-p.ch
		if !ok {
			return 0, p.err
		}
		p.buf, p.pos = c, 0
	}
	n := copy(b, p.buf[p.pos:])
	p.pos += n
	if p.pos == len(p.buf) {
		p.free <- p.buf
		p.buf = nil
	}
	return n, nil
}

// Close stops the producer and waits for it: src is not read after.
func (p *prefetch) Close() {
	p.once.Do(func() { close(p.stop) })
	for range p.ch {
	}
	p.wg.Wait()
}
