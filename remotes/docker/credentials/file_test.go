package credentials

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// writeConfig writes data as config.json in a fresh directory and returns
// its path.
func writeConfig(t *testing.T, data string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func load(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Load(path)
	if err != nil {
		t.Fatalf("Load(%s): %v", path, err)
	}
	return s
}

func TestGetFromAuths(t *testing.T) {
	for _, tc := range []struct {
		name, config, host string
		user, secret       string
	}{
		{"auth", `{"auths":{"ghcr.io":{"auth":"` + b64("alice:s3cret") + `"}}}`, "ghcr.io", "alice", "s3cret"},
		{"auth without padding", `{"auths":{"ghcr.io":{"auth":"` + strings.TrimRight(b64("al:pw"), "=") + `"}}}`, "ghcr.io", "al", "pw"},
		{"password with colons", `{"auths":{"ghcr.io":{"auth":"` + b64("alice:a:b:c") + `"}}}`, "ghcr.io", "alice", "a:b:c"},
		{"username and password", `{"auths":{"ghcr.io":{"username":"bob","password":"pw"}}}`, "ghcr.io", "bob", "pw"},
		{"auth wins over fields", `{"auths":{"ghcr.io":{"auth":"` + b64("a:1") + `","username":"b","password":"2"}}}`, "ghcr.io", "a", "1"},
		{"identity token", `{"auths":{"ghcr.io":{"auth":"` + b64("u:p") + `","identitytoken":"tok"}}}`, "ghcr.io", "", "tok"},
		{"https key", `{"auths":{"https://ghcr.io":{"auth":"` + b64("a:1") + `"}}}`, "ghcr.io", "a", "1"},
		{"http key with port", `{"auths":{"http://127.0.0.1:5000":{"auth":"` + b64("a:1") + `"}}}`, "127.0.0.1:5000", "a", "1"},
		{"key with v1 path", `{"auths":{"https://quay.io/v1/":{"auth":"` + b64("a:1") + `"}}}`, "quay.io", "a", "1"},
		{"host case", `{"auths":{"GHCR.io":{"auth":"` + b64("a:1") + `"}}}`, "ghcr.IO", "a", "1"},
		{"other port", `{"auths":{"127.0.0.1:5000":{"auth":"` + b64("a:1") + `"}}}`, "127.0.0.1:5001", "", ""},
		{"longer host", `{"auths":{"ghcr.io.evil.example":{"auth":"` + b64("a:1") + `"}}}`, "ghcr.io", "", ""},
		{"no entry", `{"auths":{"quay.io":{"auth":"` + b64("a:1") + `"}}}`, "ghcr.io", "", ""},
		{"no auths", `{"psFormat":"x"}`, "ghcr.io", "", ""},
		{"empty file", ``, "ghcr.io", "", ""},
		{"null", `null`, "ghcr.io", "", ""},
		{"exact key first", `{"auths":{"https://ghcr.io":{"auth":"` + b64("b:2") + `"},"ghcr.io":{"auth":"` + b64("a:1") + `"}}}`, "ghcr.io", "a", "1"},
		{"bare host before path", `{"auths":{"https://ghcr.io/v2/":{"auth":"` + b64("b:2") + `"},"https://ghcr.io":{"auth":"` + b64("a:1") + `"}}}`, "ghcr.io", "a", "1"},
		{"placeholder skipped", `{"auths":{"ghcr.io":{},"https://ghcr.io":{"auth":"` + b64("a:1") + `"}}}`, "ghcr.io", "a", "1"},

		{"hub key, docker.io", `{"auths":{"https://index.docker.io/v1/":{"auth":"` + b64("h:1") + `"}}}`, "docker.io", "h", "1"},
		{"hub key, index.docker.io", `{"auths":{"https://index.docker.io/v1/":{"auth":"` + b64("h:1") + `"}}}`, "index.docker.io", "h", "1"},
		{"hub key, registry-1.docker.io", `{"auths":{"https://index.docker.io/v1/":{"auth":"` + b64("h:1") + `"}}}`, "registry-1.docker.io", "h", "1"},
		{"podman's docker.io key", `{"auths":{"docker.io":{"auth":"` + b64("p:1") + `"}}}`, "docker.io", "p", "1"},
		{"registry-1 key", `{"auths":{"registry-1.docker.io":{"auth":"` + b64("r:1") + `"}}}`, "index.docker.io", "r", "1"},
		{"docker's hub key first", `{"auths":{"docker.io":{"auth":"` + b64("p:1") + `"},"https://index.docker.io/v1/":{"auth":"` + b64("h:1") + `"}}}`, "docker.io", "h", "1"},
		{"hub is not docker.io.example", `{"auths":{"docker.io.example":{"auth":"` + b64("p:1") + `"}}}`, "docker.io", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := load(t, writeConfig(t, tc.config))
			user, secret, err := s.Get(context.Background(), tc.host)
			if err != nil {
				t.Fatalf("Get(%q): %v", tc.host, err)
			}
			if user != tc.user || secret != tc.secret {
				t.Fatalf("Get(%q) = %q, %q, want %q, %q", tc.host, user, secret, tc.user, tc.secret)
			}
		})
	}
}

func TestLoadMalformed(t *testing.T) {
	const secret = "S3CRETvalue"
	for _, tc := range []struct {
		name, config, want string
	}{
		{"truncated", `{"auths":{"ghcr.io":{"auth":"` + b64("u:"+secret), "invalid JSON at line 1, column 50"},
		{"bad character in secret", `{"auths":{"ghcr.io":{"password":"x"` + secret + `}}}`, "invalid JSON at line 1, column 36"},
		{"second line", "{\n  \"auths\": {\"h\": {\"password\": " + secret + "}}}", "invalid JSON at line 2, column 31"},
		{"not an object", `["` + secret + `"]`, "found a JSON array, want a JSON object"},
		{"auths not an object", `{"auths":"` + secret + `"}`, `auths: found a JSON string, want a JSON object`},
		{"entry not an object", `{"auths":{"ghcr.io":"` + secret + `"}}`, `auths["ghcr.io"]: found a JSON string, want a JSON object`},
		{"password a number", `{"auths":{"ghcr.io":{"password":12345` + `}}}`, `auths["ghcr.io"]: password is a JSON number, want a JSON string`},
		{"auth not base64", `{"auths":{"ghcr.io":{"auth":"` + secret + `!!"}}}`, `auths["ghcr.io"]: auth is not valid base64`},
		{"auth without colon", `{"auths":{"ghcr.io":{"auth":"` + b64(secret) + `"}}}`, `auths["ghcr.io"]: auth is not the base64 of user:password`},
		{"credsStore not a string", `{"credsStore":{"x":"` + secret + `"}}`, "credsStore: found a JSON object, want a JSON string"},
		{"credHelpers value not a string", `{"credHelpers":{"ghcr.io":12345}}`, "credHelpers: found a JSON number, want an object of strings"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConfig(t, tc.config)
			_, err := Load(path)
			if err == nil {
				t.Fatalf("Load(%s) succeeded on %s", path, tc.config)
			}
			msg := err.Error()
			if !strings.Contains(msg, path) || !strings.Contains(msg, tc.want) {
				t.Fatalf("Load error = %q, want it to name %s and say %q", msg, path, tc.want)
			}
			for _, leak := range []string{secret, b64("u:" + secret), b64(secret), "12345", "'"} {
				if strings.Contains(msg, leak) {
					t.Fatalf("Load error %q quotes the file (%q)", msg, leak)
				}
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("Load error %v is not ErrInvalidArgument", err)
			}
		})
	}
}

func TestLoadLimits(t *testing.T) {
	big := `{"psFormat":"` + strings.Repeat("x", maxConfig) + `"}`
	path := writeConfig(t, big)
	if _, err := Load(path); !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Load of %d bytes = %v, want ErrInvalidArgument naming the file", len(big), err)
	}
	dir := t.TempDir()
	if _, err := Load(dir); !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "is a directory") {
		t.Fatalf("Load(directory) = %v, want ErrInvalidArgument saying it is a directory", err)
	}
	if _, err := Load(""); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf(`Load("") = %v, want ErrInvalidArgument`, err)
	}
	missing := filepath.Join(t.TempDir(), "none", "config.json")
	s := load(t, missing)
	if u, p, err := s.Get(context.Background(), "docker.io"); u != "" || p != "" || err != nil {
		t.Fatalf("Get on a missing file = %q, %q, %v, want nothing", u, p, err)
	}
	if _, err := os.Stat(filepath.Dir(missing)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load created %s: %v", filepath.Dir(missing), err)
	}
}

func TestBadHost(t *testing.T) {
	s := load(t, writeConfig(t, `{}`))
	ctx := context.Background()
	for _, host := range []string{"", " ", "gh cr.io", "ghcr.io\x00x", "https://"} {
		if _, _, err := s.Get(ctx, host); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Get(%q) = %v, want ErrInvalidArgument", host, err)
		}
		if err := s.Put(ctx, host, "u", "p"); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Put(%q) = %v, want ErrInvalidArgument", host, err)
		}
		if err := s.Erase(ctx, host); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Erase(%q) = %v, want ErrInvalidArgument", host, err)
		}
	}
}
