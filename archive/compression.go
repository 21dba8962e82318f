package archive

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"os"
	"os/exec"
	"sync"

	"github.com/containerd/errdefs"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
)

// Compression is a layer's compression, as found by its magic bytes.
type Compression int

// The compressions strata reads and writes.
const (
	Uncompressed Compression = iota
	Gzip
	Zstd
)

func (c Compression) String() string {
	switch c {
	case Gzip:
		return "gzip"
	case Zstd:
		return "zstd"
	}
	return "uncompressed"
}

var (
	magicGzip = []byte{0x1f, 0x8b, 0x08}
	magicZstd = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// DetectCompression names the compression of a stream from its first bytes.
func DetectCompression(head []byte) Compression {
	switch {
	case bytes.HasPrefix(head, magicGzip):
		return Gzip
	case bytes.HasPrefix(head, magicZstd):
		return Zstd
	}
	return Uncompressed
}

// DecompressStream returns the uncompressed bytes of r, whatever its
// compression, and which compression that was.
func DecompressStream(r io.Reader) (io.ReadCloser, Compression, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(4)
	if err != nil && err != io.EOF {
		return nil, Uncompressed, fmt.Errorf("archive: read layer: %w", err)
	}
	switch c := DetectCompression(head); c {
	case Gzip:
		if path := igzipPath(); path != "" {
			rc, err := startDecompressor(path, br)
			if err == nil {
				return rc, c, nil
			}
			// Could not start it: decompress here.
		}
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, c, &streamError{op: "archive: gzip", err: err}
		}
		return zr, c, nil
	case Zstd:
		// One goroutine: the applier already decompresses beside the
		// goroutine that creates files. Lowmem off: 9% faster here
		// (reused buffers), for a few MiB more.
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(false), zstd.WithDecoderMaxWindow(32<<20))
		if err != nil {
			return nil, c, &streamError{op: "archive: zstd", err: err}
		}
		return zr.IOReadCloser(), c, nil
	default:
		return io.NopCloser(br), c, nil
	}
}

// IgzipEnv names the environment variable that turns the external gzip
// decompressor off ("0") or names its binary.
const IgzipEnv = "STRATA_IGZIP"

var (
	igzipOnce sync.Once
	igzip     string
)

// igzipPath returns ISA-L's igzip (Debian package isal) when it is
// installed and not turned off by $STRATA_IGZIP=0. It inflates three to
// four times faster than any Go decompressor; containerd runs unpigz the
// same way when it finds one. The trade: hostile gzip streams are parsed by
// a C program, in a process of its own.
func igzipPath() string {
	igzipOnce.Do(func() {
		switch v := os.Getenv(IgzipEnv); v {
		case "0", "false", "off":
		case "":
			igzip, _ = exec.LookPath("igzip")
		default:
			igzip = v
		}
	})
	return igzip
}

// decompressor reads the output of an external decompressor; at its end it
// reports how the process ended.
type decompressor struct {
	cmd    *exec.Cmd
	out    io.ReadCloser
	stderr bytes.Buffer
	done   bool
	err    error
}

func startDecompressor(path string, in io.Reader) (*decompressor, error) {
	d := &decompressor{cmd: exec.Command(path, "-dc")}
	d.cmd.Stdin = in
	d.cmd.Stderr = &d.stderr
	out, err := d.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	d.out = out
	if err := d.cmd.Start(); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *decompressor) Read(p []byte) (int, error) {
	if d.done {
		return 0, d.err
	}
	n, err := d.out.Read(p)
	if err == io.EOF {
		d.done = true
		if werr := d.cmd.Wait(); werr != nil {
			d.err = fmt.Errorf("archive: gzip: %s: %s: %w", werr, bytes.TrimSpace(d.stderr.Bytes()), errdefs.ErrInvalidArgument)
			return n, d.err
		}
		d.err = io.EOF
	}
	return n, err
}

// Close stops the decompressor if it still runs.
func (d *decompressor) Close() error {
	if !d.done {
		d.done, d.err = true, io.ErrClosedPipe
		d.cmd.Process.Kill()
		d.out.Close()
		d.cmd.Wait()
	}
	return nil
}

// aheadReader decompresses in one goroutine and hashes in another, a few
// blocks ahead of the reader: decompression, hashing and file creation run
// at once. The digest covers every uncompressed byte (the diff ID).
type aheadReader struct {
	blocks chan []byte
	free   chan []byte
	blk    []byte // the block being read, whole
	cur    []byte // what is left of it
	err    error  // the decompressor's final error, valid after blocks closes
	hash   hash.Hash
	size   int64
	done   chan struct{}
	stop   chan struct{}
}

const (
	aheadBlock = 256 << 10
	aheadDepth = 16
)

func newAheadReader(src io.Reader) *aheadReader {
	a := &aheadReader{
		blocks: make(chan []byte, aheadDepth),
		free:   make(chan []byte, aheadDepth+1),
		hash:   sha256.New(),
		done:   make(chan struct{}),
		stop:   make(chan struct{}),
	}
	for i := 0; i < aheadDepth+1; i++ {
		a.free <- make([]byte, aheadBlock)
	}
	toHash := make(chan []byte, aheadDepth)
	go a.produce(src, toHash)
	go a.hashBlocks(toHash)
	return a
}

// produce decompresses into free blocks and hands them to hashBlocks.
func (a *aheadReader) produce(src io.Reader, toHash chan<- []byte) {
	defer close(toHash)
	for {
		var b []byte
		select {
		case b = <-a.free:
		case <-a.stop:
			return
		}
		n, err := fill(src, b[:cap(b)])
		if n > 0 {
			select {
			case toHash <- b[:n]:
			case <-a.stop:
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				a.err = err
			}
			return
		}
	}
}

// hashBlocks hashes each block and passes it on to the reader.
func (a *aheadReader) hashBlocks(toHash <-chan []byte) {
	defer close(a.done)
	defer close(a.blocks)
	for b := range toHash {
		a.hash.Write(b)
		a.size += int64(len(b))
		select {
		case a.blocks <- b:
		case <-a.stop:
			for range toHash { // let produce finish
			}
			return
		}
	}
}

// fill reads into b until it is full or src ends; only a clean end of
// src is io.EOF (a truncated gzip stream says io.ErrUnexpectedEOF).
func fill(src io.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := src.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (a *aheadReader) Read(p []byte) (int, error) {
	for len(a.cur) == 0 {
		if a.blk != nil {
			a.free <- a.blk[:cap(a.blk)]
			a.blk = nil
		}
		b, ok := <-a.blocks
		if !ok {
			if a.err != nil {
				return 0, a.err
			}
			return 0, io.EOF
		}
		a.blk, a.cur = b, b
	}
	n := copy(p, a.cur)
	a.cur = a.cur[n:]
	return n, nil
}

// finish reads to the end of the stream and returns its digest and size.
func (a *aheadReader) finish() (digest.Digest, int64, error) {
	if _, err := io.Copy(io.Discard, a); err != nil {
		return "", 0, err
	}
	<-a.done
	return digest.NewDigest(digest.SHA256, a.hash), a.size, nil
}

// close stops the producer if it still runs.
func (a *aheadReader) close() {
	select {
	case <-a.stop:
	default:
		close(a.stop)
	}
	<-a.done
}
