package config

import (
	"strings"
	"testing"
)

// FuzzParse: any hosts.toml either fails with an error or yields hosts
// that are usable endpoints, the server last.
func FuzzParse(f *testing.F) {
	f.Add([]byte(sample), "docker.io")
	f.Add([]byte("server = \"https://r.example\"\nca = \"a.pem\"\n[host.\"http://m:5000\"]\n  capabilities = [\"pull\"]\n  client = [[\"c\", \"k\"]]\n"), "r.example")
	f.Add([]byte("[host.\"https://m\"]\nheader = {X = [\"1\", \"2\"]}\noverride_path = true\n"), "127.0.0.1:5000")
	f.Add([]byte(""), "quay.io")
	f.Fuzz(func(t *testing.T, data []byte, host string) {
		hs, err := Parse("/etc/strata/certs.d/x/hosts.toml", data, host)
		if err != nil {
			return
		}
		if len(hs) == 0 {
			t.Fatal("no hosts and no error")
		}
		for _, h := range hs {
			if (h.Scheme != "http" && h.Scheme != "https") || h.Host == "" || !strings.HasPrefix(h.Path, "/") && h.Path != "" {
				t.Fatalf("unusable host %+v from %q", h, data)
			}
		}
	})
}
