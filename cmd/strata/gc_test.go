package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-oci/strata/mount"
	"github.com/strata-oci/strata/testutil"
)

// smallContent puts the store's content directory on a tmpfs of size
// bytes. In daemon mode the store is open already: the tmpfs then hides
// its empty content directory, whose two subdirectories are made again.
func (c *cli) smallContent(size int64) string {
	c.t.Helper()
	dir := filepath.Join(c.root, "content")
	testutil.SmallFS(c.t, dir, size)
	for _, sub := range []string{"blobs/sha256", "ingest"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o711); err != nil {
			c.t.Fatal(err)
		}
	}
	return dir
}

// activeRefs lists the refs of the namespace's ingests.
func (c *cli) activeRefs() []string {
	c.t.Helper()
	var rows []struct {
		Ref string `json:"ref"`
	}
	if err := json.Unmarshal([]byte(c.ok("content", "active", "-o", "json")), &rows); err != nil {
		c.t.Fatal(err)
	}
	var refs []string
	for _, r := range rows {
		refs = append(refs, r.Ref)
	}
	return refs
}

// TestGCAfterDiskFull: a pull bigger than the store's filesystem fails
// saying so and naming the blob, leaves no partial download, and strata
// gc gives the space back; partial downloads that remain are reported by
// gc and dropped by gc --ingests (issue 11, item 7).
func TestGCAfterDiskFull(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	fx := testutil.PushRandomImage(t, reg.Host, "cli/big", "v1", 3, 2<<20)
	c := newCLI(t)
	t.Cleanup(func() {
		if err := mount.UnmountUnder(c.root); err != nil {
			t.Error(err)
		}
	})
	contentDir := c.smallContent(3 << 20)
	empty := testutil.FreeBytes(t, contentDir)

	r := c.run("pull", fx.Ref)
	if r.code != 1 || !strings.Contains(r.stderr, "no space left") || !strings.Contains(r.stderr, "layer sha256:") {
		t.Fatalf("pull onto a 3 MiB filesystem: exit %d, stderr %q; want a no-space error naming the layer", r.code, r.stderr)
	}
	if refs := c.activeRefs(); len(refs) != 0 {
		t.Fatalf("partial downloads left by a pull that ran out of space: %q", refs)
	}
	c.ok("gc")
	if free := testutil.FreeBytes(t, contentDir); free < empty-64<<10 {
		t.Fatalf("after strata gc %d bytes free of %d when empty", free, empty)
	}
	if out := c.ok("images", "ls", "-q"); out != "" {
		t.Fatalf("images after a failed pull: %q", out)
	}

	// A partial download: kept by gc, which says so, dropped by --ingests.
	data, dgst := blob(t, 1<<20+10)
	r = c.runIn(bytes.NewReader(data[:1<<20]), "content", "ingest", "part", "--expected-digest", dgst, "--expected-size", "1048586")
	if r.code != 1 {
		t.Fatalf("short ingest = %+v", r)
	}
	out := c.ok("gc")
	if !strings.Contains(out, "1 partial downloads kept, holding 1.0 MiB") || !strings.Contains(out, "strata gc --ingests") {
		t.Fatalf("strata gc with a partial download: %q", out)
	}
	if refs := c.activeRefs(); len(refs) != 1 || refs[0] != "part" {
		t.Fatalf("content active after gc = %q, want the partial download", refs)
	}
	c.fails(2, "give one", "gc", "--ingests", "--min-free", "10%")
	c.fails(2, "--min-free", "gc", "--min-free", "lots")
	out = c.ok("gc", "--ingests", "-v")
	if !strings.Contains(out, "removed ingest default/part") || strings.Contains(out, "partial downloads kept") {
		t.Fatalf("strata gc --ingests: %q", out)
	}
	if refs := c.activeRefs(); len(refs) != 0 {
		t.Fatalf("content active after gc --ingests = %q", refs)
	}
}
