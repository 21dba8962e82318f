package archivetest

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// blobEntries counts the blob entries of an archive by digest.
func blobEntries(t *testing.T, b []byte) map[digest.Digest]int {
	t.Helper()
	out := map[digest.Digest]int{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("read archive: %v", err)
		}
		if hex, ok := strings.CutPrefix(hdr.Name, "blobs/sha256/"); ok {
			out[digest.NewDigestFromEncoded(digest.SHA256, hex)]++
		}
	}
}

// lastBlob returns where the data of the archive's last non-empty entry
// starts and its size.
func lastBlob(t *testing.T, b []byte) (offset, size int64) {
	t.Helper()
	cr := &countingReader{r: bytes.NewReader(b)}
	tr := tar.NewReader(cr)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return offset, size
		}
		if err != nil {
			t.Fatalf("read archive: %v", err)
		}
		if hdr.Size > 0 {
			// The tar reader has read the header and nothing more.
			offset, size = cr.n, hdr.Size
		}
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// rewrite returns the archive b with the JSON files fn changes.
func rewrite(t *testing.T, b []byte, fn func(name string, body []byte) ([]byte, bool)) []byte {
	t.Helper()
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read archive: %v", err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		body, keep := fn(hdr.Name, body)
		if !keep {
			continue
		}
		hdr.Size = int64(len(body))
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// stripNames removes every name an archive gives its images: the
// annotations of index.json, the RepoTags of manifest.json, the
// repositories file.
func stripNames(t *testing.T, b []byte) []byte {
	t.Helper()
	return rewrite(t, b, func(name string, body []byte) ([]byte, bool) {
		switch name {
		case "repositories":
			return nil, false
		case "index.json":
			var idx ocispec.Index
			if err := json.Unmarshal(body, &idx); err != nil {
				t.Fatal(err)
			}
			for i := range idx.Manifests {
				a := maps.Clone(idx.Manifests[i].Annotations)
				delete(a, "io.containerd.image.name")
				delete(a, ocispec.AnnotationRefName)
				if len(a) == 0 {
					a = nil
				}
				idx.Manifests[i].Annotations = a
			}
			nb, err := json.Marshal(idx)
			if err != nil {
				t.Fatal(err)
			}
			return nb, true
		case "manifest.json":
			var items []map[string]any
			if err := json.Unmarshal(body, &items); err != nil {
				t.Fatal(err)
			}
			for _, it := range items {
				delete(it, "RepoTags")
			}
			nb, err := json.Marshal(items)
			if err != nil {
				t.Fatal(err)
			}
			return nb, true
		}
		return body, true
	})
}

// diffArchives fails naming the entries in which a and b differ.
func diffArchives(t *testing.T, a, b []byte) {
	t.Helper()
	if bytes.Equal(a, b) {
		return
	}
	read := func(arc []byte) (names []string, files map[string][]byte) {
		files = map[string][]byte{}
		rewrite(t, arc, func(name string, body []byte) ([]byte, bool) {
			names = append(names, name)
			files[name] = body
			return body, true
		})
		return names, files
	}
	an, af := read(a)
	bn, bf := read(b)
	if !slices.Equal(an, bn) {
		t.Errorf("entries differ:\n%q\n%q", an, bn)
	}
	for _, n := range an {
		if !bytes.Equal(af[n], bf[n]) {
			t.Errorf("%s differs:\n%s\n%s", n, af[n], bf[n])
		}
	}
	t.Errorf("archives differ (%d and %d bytes)", len(a), len(b))
}

// reorder returns the archive b with its entries in reverse order and
// named under "./".
func reorder(t *testing.T, b []byte) []byte {
	t.Helper()
	type entry struct {
		hdr  *tar.Header
		body []byte
	}
	var entries []entry
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read archive: %v", err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, entry{hdr, body})
	}
	slices.Reverse(entries)
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	for _, en := range entries {
		en.hdr.Name = "./" + en.hdr.Name
		if err := tw.WriteHeader(en.hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(en.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}
