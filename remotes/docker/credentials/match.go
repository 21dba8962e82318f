package credentials

import (
	"fmt"
	"sort"
	"strings"

	"github.com/containerd/errdefs"
)

// hubKey is the key docker has always filed Docker Hub's credentials under,
// in auths and in credential helpers.
const hubKey = "https://index.docker.io/v1/"

// hubHosts are the names Docker Hub goes by; all of them are "docker.io".
var hubHosts = map[string]bool{"docker.io": true, "index.docker.io": true, "registry-1.docker.io": true}

// registry turns a registry host as callers write it ("ghcr.io",
// "127.0.0.1:5000", "Docker.IO", even "https://ghcr.io/v2/") into the form
// keys are compared in: lower case, no scheme, no path, Docker Hub's aliases
// folded into "docker.io".
func registry(host string) (string, error) {
	h, _ := splitKey(strings.TrimSpace(host))
	if h == "" {
		return "", fmt.Errorf("registry host %q: empty: %w", host, errdefs.ErrInvalidArgument)
	}
	for _, r := range h {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune(".-_:[]", r)
		if !ok {
			return "", fmt.Errorf("registry host %q: invalid character %q: %w", host, r, errdefs.ErrInvalidArgument)
		}
	}
	return h, nil
}

// splitKey splits a config key ("ghcr.io", "https://ghcr.io/v1/",
// "docker.io/library") into its registry, normalised as registry does, and
// its path ("" or starting with "/").
func splitKey(key string) (host, path string) {
	rest := key
	for _, scheme := range []string{"https://", "http://"} {
		if len(rest) >= len(scheme) && strings.EqualFold(rest[:len(scheme)], scheme) {
			rest = rest[len(scheme):]
			break
		}
	}
	host, path = rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		host, path = rest[:i], rest[i:]
	}
	host = strings.ToLower(host)
	if hubHosts[host] {
		host = "docker.io"
	}
	return host, path
}

// serverURL is the key docker writes for reg, in auths and to helpers.
func serverURL(reg string) string {
	if reg == "docker.io" {
		return hubKey
	}
	return reg
}

// rank says how well key names reg, lower is better, and whether it does at
// all: the key docker itself writes, then the bare host with any scheme, then
// docker's API-version paths, then anything else under the host (podman
// files credentials for a repository namespace, "docker.io/library").
func rank(key, reg string) (int, bool) {
	host, path := splitKey(key)
	switch {
	case host != reg:
		return 0, false
	case key == serverURL(reg):
		return 0, true
	case path == "" || path == "/":
		return 1, true
	case path == "/v1" || path == "/v1/" || path == "/v2" || path == "/v2/":
		return 2, true
	default:
		return 3, true
	}
}

// matchKeys returns the keys of m that name reg, best first; keys of equal
// rank are in byte order, so the choice does not depend on map order.
func matchKeys[V any](m map[string]V, reg string) []string {
	type ranked struct {
		key  string
		rank int
	}
	var found []ranked
	for k := range m {
		if r, ok := rank(k, reg); ok {
			found = append(found, ranked{k, r})
		}
	}
	sort.Slice(found, func(i, j int) bool {
		if found[i].rank != found[j].rank {
			return found[i].rank < found[j].rank
		}
		return found[i].key < found[j].key
	})
	keys := make([]string, len(found))
	for i, f := range found {
		keys[i] = f.key
	}
	return keys
}
