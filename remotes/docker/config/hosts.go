// Package config reads registry host configuration in containerd's
// certs.d format: <dir>/<host>/hosts.toml lists mirrors, in order, before
// the upstream server, each with its capabilities, TLS material and headers.
//
//	server = "https://registry-1.docker.io"
//
//	[host."https://mirror.internal:5000"]
//	  capabilities = ["pull", "resolve"]
//	  ca = "/etc/strata/certs.d/mirror.pem"
//	  client = [["/etc/strata/client.crt", "/etc/strata/client.key"]]
//	  skip_verify = false
//	  override_path = false
//	  [host."https://mirror.internal:5000".header]
//	    x-team = "infra"
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/containerd/errdefs"
	toml "github.com/pelletier/go-toml/v2"
)

// Capability is what a host may be used for.
type Capability string

// Capabilities of a host, as containerd names them.
const (
	Pull    Capability = "pull"
	Resolve Capability = "resolve"
	Push    Capability = "push"
)

// Host is one endpoint to try, in order.
type Host struct {
	// Scheme and Host of the endpoint; Path is "/v2" unless override_path.
	Scheme, Host, Path string
	Capabilities       []Capability
	CAs                []string    // extra root CA files
	ClientPairs        [][2]string // client certificate and key files
	SkipVerify         bool
	Header             http.Header
}

// Can reports whether the host has capability c.
func (h Host) Can(c Capability) bool {
	for _, x := range h.Capabilities {
		if x == c {
			return true
		}
	}
	return false
}

type hostEntry struct {
	Capabilities []string       `toml:"capabilities"`
	CA           any            `toml:"ca"`
	Client       any            `toml:"client"`
	SkipVerify   bool           `toml:"skip_verify"`
	OverridePath bool           `toml:"override_path"`
	Header       map[string]any `toml:"header"`
}

// file is a hosts.toml: the top-level keys other than server and host
// configure the server, as in containerd.
type file struct {
	Server string               `toml:"server"`
	Host   map[string]hostEntry `toml:"host"`
	hostEntry
}

// maxFile bounds a hosts.toml.
const maxFile = 1 << 20

var hostHeader = regexp.MustCompile(`(?m)^\s*\[\s*host\s*\.\s*"([^"]+)"\s*\]`)

// HostDirs are the directories of dir searched for host's hosts.toml, in
// order: containerd's names ("host:port", "host_port_"), an older form
// ("host_port") and "_default".
func HostDirs(host string) []string {
	out := []string{host}
	if strings.Contains(host, ":") {
		u := strings.ReplaceAll(host, ":", "_")
		out = append(out, u+"_", u)
	}
	return append(out, "_default")
}

// DefaultHost returns the upstream endpoint of registry host (docker.io is
// served at registry-1.docker.io), with every capability.
func DefaultHost(host string) Host {
	h := host
	if host == "docker.io" {
		h = "registry-1.docker.io"
	}
	return Host{Scheme: "https", Host: h, Path: "/v2", Capabilities: []Capability{Pull, Resolve, Push}}
}

// ForHost returns the endpoints for registry host from dir/<host>/hosts.toml
// (or dir/_default/hosts.toml): the mirrors in file order, then the server.
// With no file, it is the upstream alone. Errors name the file and the
// problem; they wrap errdefs.ErrInvalidArgument.
func ForHost(dir, host string) ([]Host, error) {
	if dir == "" {
		return []Host{DefaultHost(host)}, nil
	}
	var path string
	var data []byte
	for _, d := range HostDirs(host) {
		p := filepath.Join(dir, d, "hosts.toml")
		b, err := readLimited(p)
		if err == nil {
			path, data = p, b
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	if path == "" {
		return []Host{DefaultHost(host)}, nil
	}
	return Parse(path, data, host)
}

func readLimited(p string) ([]byte, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if fi.Size() > maxFile {
		return nil, fmt.Errorf("%s: %d bytes exceeds %d: %w", p, fi.Size(), maxFile, errdefs.ErrInvalidArgument)
	}
	return os.ReadFile(p)
}

// Parse reads the hosts.toml data (named name in errors) for registry host.
func Parse(name string, data []byte, host string) ([]Host, error) {
	var f file
	if err := toml.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("%s: %w: %w", name, err, errdefs.ErrInvalidArgument)
	}
	var out []Host
	seen := map[string]bool{}
	// The TOML map has no order; the file's order is the mirrors' order.
	for _, m := range hostHeader.FindAllStringSubmatch(string(data), -1) {
		key := m[1]
		if seen[key] {
			continue
		}
		seen[key] = true
		e, ok := f.Host[key]
		if !ok {
			continue
		}
		h, err := toHost(name, key, e, allCaps)
		if err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	for key, e := range f.Host { // inline tables the header scan missed
		if !seen[key] {
			h, err := toHost(name, key, e, allCaps)
			if err != nil {
				return nil, err
			}
			out = append(out, h)
		}
	}
	srv := f.Server
	if srv == "" {
		d := DefaultHost(host)
		srv = d.Scheme + "://" + d.Host
	}
	server, err := toHost(name, srv, f.hostEntry, allCaps)
	if err != nil {
		return nil, err
	}
	return append(out, server), nil
}

// allCaps is what a host may do when hosts.toml does not say: everything,
// as in containerd (mirrors usually say capabilities = ["pull", "resolve"]).
var allCaps = []Capability{Pull, Resolve, Push}

// relTo makes a relative file path relative to the hosts.toml's directory.
func relTo(name, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(name), p)
}

func toHost(name, raw string, e hostEntry, defaultCaps []Capability) (Host, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return Host{}, fmt.Errorf("%s: host %q: want http(s)://host[:port][/path]: %w", name, raw, errdefs.ErrInvalidArgument)
	}
	h := Host{Scheme: u.Scheme, Host: u.Host, Path: strings.TrimSuffix(u.Path, "/"), SkipVerify: e.SkipVerify}
	if !e.OverridePath && !strings.HasSuffix(h.Path, "/v2") {
		h.Path += "/v2"
	}
	if e.Capabilities == nil {
		h.Capabilities = defaultCaps
	}
	for _, c := range e.Capabilities {
		switch Capability(c) {
		case Pull, Resolve, Push:
			h.Capabilities = append(h.Capabilities, Capability(c))
		default:
			return Host{}, fmt.Errorf("%s: host %q: capability %q: want pull, resolve or push: %w", name, raw, c, errdefs.ErrInvalidArgument)
		}
	}
	switch ca := e.CA.(type) {
	case nil:
	case string:
		h.CAs = []string{relTo(name, ca)}
	case []any:
		for _, c := range ca {
			s, ok := c.(string)
			if !ok {
				return Host{}, fmt.Errorf("%s: host %q: ca must be a path or a list of paths: %w", name, raw, errdefs.ErrInvalidArgument)
			}
			h.CAs = append(h.CAs, relTo(name, s))
		}
	default:
		return Host{}, fmt.Errorf("%s: host %q: ca must be a path or a list of paths: %w", name, raw, errdefs.ErrInvalidArgument)
	}
	pairs, err := clientPairs(e.Client)
	if err != nil {
		return Host{}, fmt.Errorf("%s: host %q: %w: %w", name, raw, err, errdefs.ErrInvalidArgument)
	}
	for _, p := range pairs {
		h.ClientPairs = append(h.ClientPairs, [2]string{relTo(name, p[0]), relTo(name, p[1])})
	}
	if len(e.Header) > 0 {
		h.Header = http.Header{}
		for k, v := range e.Header {
			switch v := v.(type) {
			case string:
				h.Header.Add(k, v)
			case []any:
				for _, x := range v {
					s, ok := x.(string)
					if !ok {
						return Host{}, fmt.Errorf("%s: host %q: header %q: values must be strings: %w", name, raw, k, errdefs.ErrInvalidArgument)
					}
					h.Header.Add(k, s)
				}
			default:
				return Host{}, fmt.Errorf("%s: host %q: header %q: values must be strings: %w", name, raw, k, errdefs.ErrInvalidArgument)
			}
		}
	}
	return h, nil
}

// clientPairs accepts containerd's forms: "cert.pem" (certificate and key
// in one file), ["a.pem", "b.pem"], and [["cert", "key"], …].
func clientPairs(v any) ([][2]string, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case string:
		return [][2]string{{v, ""}}, nil
	case []any:
		var out [][2]string
		for _, x := range v {
			switch x := x.(type) {
			case string:
				out = append(out, [2]string{x, ""})
			case []any:
				if len(x) != 2 {
					return nil, fmt.Errorf("client pair must be [cert, key]")
				}
				c, ok1 := x[0].(string)
				k, ok2 := x[1].(string)
				if !ok1 || !ok2 {
					return nil, fmt.Errorf("client pair must be [cert, key]")
				}
				out = append(out, [2]string{c, k})
			default:
				return nil, fmt.Errorf("client must be a path, a list of paths or of [cert, key] pairs")
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("client must be a path, a list of paths or of [cert, key] pairs")
}
