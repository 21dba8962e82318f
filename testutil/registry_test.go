package testutil

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestRegistry uploads a blob through the distribution API (monolithic
// upload) and reads it back: the helper gives a working registry.
func TestRegistry(t *testing.T) {
	r := StartRegistry(t, RegistryConfig{})
	data := []byte("a blob for the test registry")
	sum := sha256.Sum256(data)
	dgst := "sha256:" + hex.EncodeToString(sum[:])
	resp, err := http.Post("http://"+r.Host+"/v2/test/repo/blobs/uploads/", "application/octet-stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusAccepted || loc == "" {
		t.Fatalf("start upload: %s, Location %q", resp.Status, loc)
	}
	if !strings.HasPrefix(loc, "http") {
		loc = "http://" + r.Host + loc
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	req, _ := http.NewRequest(http.MethodPut, loc+sep+"digest="+dgst, bytes.NewReader(data))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("finish upload: %s", resp.Status)
	}
	resp, err = http.Get("http://" + r.Host + "/v2/test/repo/blobs/" + dgst)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, data) {
		t.Fatalf("get blob: %s, %q", resp.Status, got)
	}
	if !r.WaitLog("/v2/test/repo/blobs/" + dgst) {
		t.Fatalf("access log lacks the blob request:\n%s", r.Log())
	}
	r.Stop()
	if _, err := http.Get("http://" + r.Host + "/v2/"); err == nil {
		t.Fatal("registry still answers after Stop")
	}
}

// TestPushImage pushes a two-platform image and reads the index back as a
// puller would: the fixtures the pull tests build on.
func TestPushImage(t *testing.T) {
	r := StartRegistry(t, RegistryConfig{})
	layer := []byte("not really gzip, the registry does not care")
	amd := PushImage(t, r.Host, "fixtures/app", "", "linux", "amd64", []Layer{{Data: layer}}, nil)
	arm := PushImage(t, r.Host, "fixtures/app", "", "linux", "arm64", []Layer{{Data: layer}}, nil)
	idx := PushIndex(t, r.Host, "fixtures/app", "v1", amd, arm)
	body, dgst := FetchManifest(t, r.Host, "fixtures/app", "v1")
	if dgst != idx.Digest.String() || int64(len(body)) != idx.Size {
		t.Fatalf("index by tag: digest %s (%d bytes), pushed %s (%d)", dgst, len(body), idx.Digest, idx.Size)
	}
	if !strings.Contains(string(body), amd.Digest.String()) || !strings.Contains(string(body), `"architecture":"arm64"`) {
		t.Fatalf("index body: %s", body)
	}
	if _, dg := FetchManifest(t, r.Host, "fixtures/app", amd.Digest.String()); dg != amd.Digest.String() {
		t.Fatalf("manifest by digest: %s, want %s", dg, amd.Digest)
	}
}
