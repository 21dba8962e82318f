// Package tartest builds layer tar streams in code for tests: adversarial
// ones included, which is why it writes headers exactly as given.
package tartest

import (
	"archive/tar"
	"bytes"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Entry is one tar entry; zero fields get sensible defaults.
type Entry struct {
	Name     string
	Type     byte // tar.TypeReg when zero
	Body     string
	Link     string
	Mode     int64 // 0644 for files, 0755 for directories when zero
	UID, GID int
	Major    int64
	Minor    int64
	ModTime  time.Time
	Xattrs   map[string]string
}

// Epoch is the default modification time.
var Epoch = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

// Tar returns the uncompressed tar stream of entries, in order.
func Tar(entries ...Entry) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.Name, Typeflag: e.Type, Linkname: e.Link, Mode: e.Mode, Uid: e.UID, Gid: e.GID,
			Devmajor: e.Major, Devminor: e.Minor, ModTime: e.ModTime, Format: tar.FormatPAX}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if h.ModTime.IsZero() {
			h.ModTime = Epoch
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.Body))
		}
		for k, v := range e.Xattrs {
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords["SCHILY.xattr."+k] = v
		}
		if err := tw.WriteHeader(h); err != nil {
			panic(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(e.Body))
		}
	}
	tw.Close()
	return buf.Bytes()
}

// Gzip compresses b.
func Gzip(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// Zstd compresses b.
func Zstd(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := zstd.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// Convenience constructors.
func Dir(name string) Entry        { return Entry{Name: name, Type: tar.TypeDir} }
func File(name, body string) Entry { return Entry{Name: name, Body: body} }
func Symlink(name, target string) Entry {
	return Entry{Name: name, Type: tar.TypeSymlink, Link: target}
}
func Link(name, target string) Entry { return Entry{Name: name, Type: tar.TypeLink, Link: target} }
