package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

const sample = `
server = "https://upstream.example"

[host."https://mirror-b.internal:5000"]
  capabilities = ["pull", "resolve"]
  ca = "/etc/strata/b.pem"
  client = [["/etc/c.crt", "/etc/c.key"]]
  [host."https://mirror-b.internal:5000".header]
    x-team = "infra"
    x-multi = ["1", "2"]

[host."http://mirror-a.internal/custom/v2"]
  capabilities = ["pull"]
  skip_verify = true
  override_path = true
  ca = ["/a1.pem", "/a2.pem"]
  client = "/etc/both.pem"
`

func describe(hs []Host) string {
	var out []string
	for _, h := range hs {
		out = append(out, fmt.Sprintf("%s://%s%s caps=%v ca=%v client=%v skip=%v header=%v", h.Scheme, h.Host, h.Path, h.Capabilities, h.CAs, h.ClientPairs, h.SkipVerify, h.Header))
	}
	return strings.Join(out, "\n")
}

func TestParse(t *testing.T) {
	hs, err := Parse("hosts.toml", []byte(sample), "docker.io")
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"https://mirror-b.internal:5000/v2 caps=[pull resolve] ca=[/etc/strata/b.pem] client=[[/etc/c.crt /etc/c.key]] skip=false header=map[X-Multi:[1 2] X-Team:[infra]]",
		"http://mirror-a.internal/custom/v2 caps=[pull] ca=[/a1.pem /a2.pem] client=[[/etc/both.pem ]] skip=true header=map[]",
		"https://upstream.example/v2 caps=[pull resolve push] ca=[] client=[] skip=false header=map[]",
	}, "\n")
	if got := describe(hs); got != want {
		t.Fatalf("Parse =\n%s\nwant (file order, then the server):\n%s", got, want)
	}
	if !hs[0].Can(Resolve) || hs[1].Can(Push) {
		t.Fatal("Can reports wrong capabilities")
	}
}

func TestForHost(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "127.0.0.1:5000"), 0o755)
	os.WriteFile(filepath.Join(dir, "127.0.0.1:5000", "hosts.toml"), []byte(`[host."http://127.0.0.1:6000"]`+"\n"), 0o644)
	hs, err := ForHost(dir, "127.0.0.1:5000")
	if err != nil {
		t.Fatal(err)
	}
	if got := describe(hs); !strings.HasPrefix(got, "http://127.0.0.1:6000/v2 caps=[pull resolve push]") || !strings.Contains(got, "https://127.0.0.1:5000/v2 caps=[pull resolve push]") {
		t.Fatalf("ForHost = %s", got)
	}
	// No file: the upstream, and docker.io's real host.
	hs, err = ForHost(dir, "docker.io")
	if err != nil || len(hs) != 1 || hs[0].Host != "registry-1.docker.io" {
		t.Fatalf("ForHost(docker.io) = %+v, %v", hs, err)
	}
	// _default applies to hosts without their own file.
	os.MkdirAll(filepath.Join(dir, "_default"), 0o755)
	os.WriteFile(filepath.Join(dir, "_default", "hosts.toml"), []byte(`[host."https://any-mirror"]`+"\n"), 0o644)
	if hs, _ := ForHost(dir, "quay.io"); len(hs) != 2 || hs[0].Host != "any-mirror" || hs[1].Host != "quay.io" {
		t.Fatalf("ForHost with _default = %s", describe(hs))
	}
}

func TestParseInvalid(t *testing.T) {
	for _, tc := range []struct{ name, data, msg string }{
		{"toml", `server = `, "hosts.toml"},
		{"scheme", `[host."ftp://x"]`, `host "ftp://x"`},
		{"capability", "[host.\"https://x\"]\ncapabilities = [\"delete\"]", `capability "delete"`},
		{"ca", "[host.\"https://x\"]\nca = 3", "ca must be"},
		{"client", "[host.\"https://x\"]\nclient = [[\"a\"]]", "client pair"},
		{"header", "[host.\"https://x\".header]\nx = 1", `header "x"`},
	} {
		_, err := Parse("hosts.toml", []byte(tc.data), "x")
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: Parse = %v, want invalid argument mentioning %q", tc.name, err, tc.msg)
		}
	}
}
