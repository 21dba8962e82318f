package dockerarchive

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
)

func TestLegacyBlobName(t *testing.T) {
	hex := digest.FromString("x").Encoded()
	for _, tc := range []struct {
		name string
		want digest.Digest
		ok   bool
	}{
		{hex + ".json", "sha256:" + digest.Digest(hex), true},
		{hex + ".tar", "sha256:" + digest.Digest(hex), true},
		{hex + "/layer.tar", "", true},
		{"anything/layer.tar", "", true},
		{"a/b/layer.tar", "", false},
		{hex + "/json", "", false},
		{hex + "/VERSION", "", false},
		{"manifest.json", "", false},
		{"repositories", "", false},
		{strings.ToUpper(hex) + ".json", "", false},
		{hex[:10] + ".tar", "", false},
		{"layer.tar", "", false},
	} {
		want, ok := LegacyBlobName(tc.name)
		if want != tc.want || ok != tc.ok {
			t.Errorf("LegacyBlobName(%q) = %q, %v; want %q, %v", tc.name, want, ok, tc.want, tc.ok)
		}
	}
}

func TestParseLoadManifest(t *testing.T) {
	items, err := ParseLoadManifest([]byte(`[{"Config":"c.json","RepoTags":["alpine:3.20","127.0.0.1:5000/app"],"Layers":["a/layer.tar"]},{"Config":"d.json"}]`))
	if err != nil {
		t.Fatal(err)
	}
	names, err := items[0].Names()
	if err != nil || !slices.Equal(names, []string{"docker.io/library/alpine:3.20", "127.0.0.1:5000/app:latest"}) {
		t.Fatalf("Names() = %q, %v", names, err)
	}
	if names, err := items[1].Names(); err != nil || len(names) != 0 {
		t.Fatalf("Names() of an untagged image = %q, %v", names, err)
	}
	for _, tc := range []struct{ body, err string }{
		{`{}`, "cannot unmarshal"},
		{`[]`, "lists no images"},
		{`[{"RepoTags":["a:1"]}]`, "image 0 has no Config"},
	} {
		if _, err := ParseLoadManifest([]byte(tc.body)); err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("ParseLoadManifest(%s) = %v, want an invalid argument error with %q", tc.body, err, tc.err)
		}
	}
	bad := LoadItem{Config: "c.json", RepoTags: []string{"Not A Tag"}}
	if _, err := bad.Names(); err == nil || !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("Names() of a bad tag = %v", err)
	}
}
