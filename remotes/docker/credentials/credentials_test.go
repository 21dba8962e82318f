package credentials

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
)

func TestDefaultPath(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("DOCKER_CONFIG", "")
	if got, want := DefaultPath(), filepath.Join(home, ".docker", "config.json"); got != want {
		t.Fatalf("DefaultPath() = %q, want %q", got, want)
	}
	dir := filepath.Join(t.TempDir(), "cfg")
	t.Setenv("DOCKER_CONFIG", dir)
	if got, want := DefaultPath(), filepath.Join(dir, "config.json"); got != want {
		t.Fatalf("DefaultPath() with DOCKER_CONFIG = %q, want %q", got, want)
	}
}

// readJSON reads a JSON file into a generic value, numbers kept as written.
func readJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v map[string]any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

func wantMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Fatalf("%s has mode %v, want %v", path, got, want)
	}
}

func wantGet(t *testing.T, s *Store, host, user, secret string) {
	t.Helper()
	u, p, err := s.Get(context.Background(), host)
	if err != nil {
		t.Fatalf("Get(%q): %v", host, err)
	}
	if u != user || p != secret {
		t.Fatalf("Get(%q) = %q, %q, want %q, %q", host, u, p, user, secret)
	}
}

func TestPutGet(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("DOCKER_CONFIG", "")
	path := DefaultPath()
	ctx := context.Background()
	s := load(t, path)
	for _, c := range []struct{ host, user, secret string }{
		{"docker.io", "hubuser", "hub:pass"},
		{"127.0.0.1:5000", "local", "pw"},
		{"ghcr.io", "", "identity-token"},
	} {
		if err := s.Put(ctx, c.host, c.user, c.secret); err != nil {
			t.Fatalf("Put(%q): %v", c.host, err)
		}
	}
	wantMode(t, filepath.Join(home, ".docker"), 0o700)
	wantMode(t, path, 0o600)

	// What docker writes, under the keys docker uses.
	got := readJSON(t, path)
	want := map[string]any{"auths": map[string]any{
		"https://index.docker.io/v1/": map[string]any{"auth": b64("hubuser:hub:pass")},
		"127.0.0.1:5000":              map[string]any{"auth": b64("local:pw")},
		"ghcr.io":                     map[string]any{"identitytoken": "identity-token"},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("config.json = %v, want %v", got, want)
	}

	for _, s := range []*Store{s, load(t, path)} {
		wantGet(t, s, "docker.io", "hubuser", "hub:pass")
		wantGet(t, s, "registry-1.docker.io", "hubuser", "hub:pass")
		wantGet(t, s, "127.0.0.1:5000", "local", "pw")
		wantGet(t, s, "ghcr.io", "", "identity-token")
	}

	// A second Put replaces the first.
	if err := s.Put(ctx, "index.docker.io", "other", "pw2"); err != nil {
		t.Fatal(err)
	}
	wantGet(t, load(t, path), "docker.io", "other", "pw2")
}

func TestPutKeepsFields(t *testing.T) {
	const original = `{
	"auths": {
		"quay.io": {"auth": "` + "cXVheTpwdw==" + `", "email": "q@example.com"},
		"ghcr.io": {"username": "old", "password": "stale", "email": "g@example.com", "registrytoken": "rt"}
	},
	"HttpHeaders": {"User-Agent": "Docker-Client/<version> & more"},
	"psFormat": "table {{.ID}}",
	"currentContext": "remote",
	"proxies": {"default": {"httpProxy": "http://proxy:3128"}},
	"plugins": {"x": {"enabled": true}},
	"big": 123456789012345678901234567890,
	"unknownList": [1, "two", null, {"three": 3.0e10}]
}`
	path := writeConfig(t, original)
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	var before map[string]any
	dec := json.NewDecoder(strings.NewReader(original))
	dec.UseNumber()
	if err := dec.Decode(&before); err != nil {
		t.Fatal(err)
	}
	s := load(t, path)
	if err := s.Put(context.Background(), "ghcr.io", "new", "fresh"); err != nil {
		t.Fatal(err)
	}
	wantMode(t, path, 0o600)
	after := readJSON(t, path)

	ghcr := after["auths"].(map[string]any)["ghcr.io"]
	if want := map[string]any{"auth": b64("new:fresh"), "email": "g@example.com"}; !reflect.DeepEqual(ghcr, want) {
		t.Fatalf(`auths["ghcr.io"] = %v, want %v (other fields kept, stale credentials gone)`, ghcr, want)
	}
	before["auths"].(map[string]any)["ghcr.io"] = ghcr
	if !reflect.DeepEqual(after, before) {
		t.Fatalf("Put changed other fields:\n got %v\nwant %v", after, before)
	}
	data, _ := os.ReadFile(path)
	if !bytes.Contains(data, []byte("<version> & more")) || !bytes.Contains(data, []byte("123456789012345678901234567890")) {
		t.Fatalf("Put rewrote values it does not own:\n%s", data)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("Put left files behind: %v", entries)
	}
}

func TestPutFollowsSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "dotfiles", "docker.json")
	if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(target, []byte(`{"psFormat":"x"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "config.json")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := load(t, link).Put(context.Background(), "ghcr.io", "u", "p"); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("config.json is no longer a symlink: %v, %v", fi, err)
	}
	wantGet(t, load(t, target), "ghcr.io", "u", "p")
}

func TestPutRereadsFile(t *testing.T) {
	path := writeConfig(t, `{}`)
	s := load(t, path)
	// Another program logs in after Load.
	if err := os.WriteFile(path, []byte(`{"auths":{"quay.io":{"auth":"`+b64("q:1")+`"}},"psFormat":"x"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(context.Background(), "ghcr.io", "g", "2"); err != nil {
		t.Fatal(err)
	}
	wantGet(t, s, "quay.io", "q", "1")
	wantGet(t, s, "ghcr.io", "g", "2")
	if got := readJSON(t, path)["psFormat"]; got != "x" {
		t.Fatalf("psFormat = %v after Put, want x", got)
	}
}

func TestPutInvalid(t *testing.T) {
	path := writeConfig(t, `{}`)
	s := load(t, path)
	ctx := context.Background()
	if err := s.Put(ctx, "ghcr.io", "u", ""); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("Put with empty secret = %v, want ErrInvalidArgument", err)
	}
	if err := s.Put(ctx, "ghcr.io", "a:b", "p"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("Put with ':' in the username = %v, want ErrInvalidArgument", err)
	}
	// A file that went bad after Load is not overwritten.
	if err := os.WriteFile(path, []byte(`{"auths":`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "ghcr.io", "u", "p"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("Put on a malformed file = %v, want ErrInvalidArgument", err)
	}
	if data, _ := os.ReadFile(path); string(data) != `{"auths":` {
		t.Fatalf("Put overwrote a malformed file: %s", data)
	}
}

func TestErase(t *testing.T) {
	path := writeConfig(t, `{
		"auths": {
			"ghcr.io": {"auth": "`+b64("a:1")+`"},
			"https://ghcr.io/v1/": {"auth": "`+b64("b:2")+`"},
			"http://GHCR.io": {"username": "c", "password": "3"},
			"quay.io": {"auth": "`+b64("q:1")+`"},
			"https://index.docker.io/v1/": {"auth": "`+b64("h:1")+`"},
			"docker.io": {"auth": "`+b64("p:1")+`"}
		},
		"psFormat": "x"
	}`)
	s := load(t, path)
	ctx := context.Background()
	if err := s.Erase(ctx, "ghcr.io"); err != nil {
		t.Fatalf("Erase(ghcr.io): %v", err)
	}
	wantGet(t, s, "ghcr.io", "", "")
	wantGet(t, s, "quay.io", "q", "1")
	if err := s.Erase(ctx, "registry-1.docker.io"); err != nil {
		t.Fatalf("Erase(registry-1.docker.io): %v", err)
	}
	wantGet(t, s, "docker.io", "", "")

	got := readJSON(t, path)
	want := map[string]any{"auths": map[string]any{"quay.io": map[string]any{"auth": b64("q:1")}}, "psFormat": "x"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("config.json after Erase = %v, want %v", got, want)
	}
	wantMode(t, path, 0o600)

	for _, host := range []string{"ghcr.io", "docker.io", "example.com"} {
		err := s.Erase(ctx, host)
		if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "not logged in to "+host) {
			t.Fatalf("Erase(%q) again = %v, want ErrNotFound saying not logged in to %s", host, err, host)
		}
	}
	missing := filepath.Join(t.TempDir(), "config.json")
	if err := load(t, missing).Erase(ctx, "ghcr.io"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Erase with no file = %v, want ErrNotFound", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Erase with nothing to erase created %s", missing)
	}
}

// TestConcurrent runs Gets alongside Puts and Erases, for the race
// detector.
func TestConcurrent(t *testing.T) {
	s := load(t, writeConfig(t, `{}`))
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 4 {
		wg.Add(2)
		host := fmt.Sprintf("r%d.example", i)
		go func() {
			defer wg.Done()
			for j := range 10 {
				if err := s.Put(ctx, host, "u", fmt.Sprint(j)); err != nil {
					errs <- err
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for range 50 {
				if _, _, err := s.Get(ctx, host); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i := range 4 {
		wantGet(t, load(t, s.Path()), fmt.Sprintf("r%d.example", i), "u", "9")
	}
}

// Get is what auth.Credentials wants.
var _ func(ctx context.Context, host string) (username, secret string, err error) = new(Store).Get
