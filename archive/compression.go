package archive

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"

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
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, c, fmt.Errorf("archive: gzip: %v: %w", err, errdefs.ErrInvalidArgument)
		}
		return zr, c, nil
	case Zstd:
		// One goroutine: the applier already decompresses beside the
		// goroutine that creates files.
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxWindow(32<<20))
		if err != nil {
			return nil, c, fmt.Errorf("archive: zstd: %v: %w", err, errdefs.ErrInvalidArgument)
		}
		return zr.IOReadCloser(), c, nil
	default:
		return io.NopCloser(br), c, nil
	}
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
