// Package credentials reads and writes registry credentials where docker,
// podman (given docker's file) and ctr keep them: docker's config.json,
// and the credential helpers it names.
//
//	$DOCKER_CONFIG/config.json, else ~/.docker/config.json   mode 0600, directory 0700
//	{
//	  "auths": {
//	    "https://index.docker.io/v1/": {"auth": "<base64 of user:password>"},
//	    "ghcr.io":        {"username": "u", "password": "p"},
//	    "registry.corp":  {"identitytoken": "<OAuth2 refresh token>"},
//	    "quay.io":        {}                 placeholder: a helper holds it
//	  },
//	  "credsStore": "pass",                  default helper: docker-credential-pass
//	  "credHelpers": {"123.dkr.ecr.us-east-1.amazonaws.com": "ecr-login"},
//	  "psFormat": "…"                        everything else is kept as it is
//	}
//
// Keys name a registry as "host", "https://host" or "http://host", with or
// without a path ("https://host/v1/"); Docker Hub (docker.io,
// index.docker.io, registry-1.docker.io) is filed under
// "https://index.docker.io/v1/". Get asks credHelpers[host], then the
// credsStore helper, then auths, and takes the first that has credentials.
//
// A helper is a program docker-credential-<name> on $PATH, run with one
// argument: "get" (stdin: server URL; stdout: {"ServerURL", "Username",
// "Secret"}, or "credentials not found in native keychain" and exit status
// 1), "store" (stdin: that JSON) or "erase" (stdin: server URL). The
// Username "<token>" makes Secret an identity token. Helpers get the server
// URL docker gives them: "https://index.docker.io/v1/" or the host.
//
// Errors quote no secret: a malformed file is reported by position, a
// failing helper by its stderr (or its stdout, unless that looks like
// credentials), with any line holding part of a secret being stored withheld.
package credentials

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"sync"

	"github.com/containerd/errdefs"
)

// DefaultPath returns where docker keeps its configuration:
// $DOCKER_CONFIG/config.json, else $HOME/.docker/config.json (the user
// database's home directory when $HOME is unset).
func DefaultPath() string {
	if dir := os.Getenv("DOCKER_CONFIG"); dir != "" {
		return filepath.Join(dir, "config.json")
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		if u, err := user.Current(); err == nil {
			home = u.HomeDir
		}
	}
	return filepath.Join(home, ".docker", "config.json")
}

// Store is the credentials of one config.json. Get answers from the file
// as Load (or the last Put or Erase) read it; Put and Erase read the file
// again, so they keep what other programs wrote in between. A Store is safe
// for concurrent use; two processes writing the file at once may lose one
// update, as with docker.
type Store struct {
	path string

	mu  sync.Mutex // serialises Put and Erase, guards cfg
	cfg *config
}

// Load reads the config.json at path. A missing file is an empty store that
// Put creates. A malformed file, or one over 1 MiB, is an error naming the
// file and the problem, wrapping errdefs.ErrInvalidArgument.
func Load(path string) (*Store, error) {
	if path == "" {
		return nil, fmt.Errorf("docker config: empty path: %w", errdefs.ErrInvalidArgument)
	}
	c, err := readConfig(path)
	if err != nil {
		return nil, err
	}
	return &Store{path: path, cfg: c}, nil
}

// Path returns the file the store reads and writes.
func (s *Store) Path() string { return s.path }

func (s *Store) config() *config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg
}

// helpers returns the helpers that may hold reg's credentials, in the
// order they are asked: credHelpers' entry for reg, then credsStore.
func (c *config) helpers(reg string) []helper {
	var out []helper
	if keys := matchKeys(c.credHelpers, reg); len(keys) > 0 && c.credHelpers[keys[0]] != "" {
		out = append(out, helper(c.credHelpers[keys[0]]))
	}
	if c.credsStore != "" && (len(out) == 0 || out[0] != helper(c.credsStore)) {
		out = append(out, helper(c.credsStore))
	}
	return out
}

// Helper returns the name of the credential helper Put uses for host
// (docker-credential-<name>), or "" when Put writes the credentials into
// the file itself, base64-encoded but not encrypted.
func (s *Store) Helper(host string) string {
	reg, err := registry(host)
	if err != nil {
		return ""
	}
	if hs := s.config().helpers(reg); len(hs) > 0 {
		return string(hs[0])
	}
	return ""
}

// Get returns the credentials for a registry host ("docker.io",
// "127.0.0.1:5000", "ghcr.io"): an identity token as ("", token), none as
// ("", "", nil). It has the signature of auth.Credentials. A helper that
// is missing, fails or times out is an error: credentials configured but
// out of reach must not turn into an anonymous pull.
func (s *Store) Get(ctx context.Context, host string) (username, secret string, err error) {
	reg, err := registry(host)
	if err != nil {
		return "", "", err
	}
	c := s.config()
	for _, h := range c.helpers(reg) {
		username, secret, err := h.get(ctx, serverURL(reg))
		if errors.Is(err, errNoCredentials) {
			continue
		}
		if err != nil {
			return "", "", fmt.Errorf("credentials for %s: %w", reg, err)
		}
		return username, secret, nil
	}
	for _, key := range matchKeys(c.creds, reg) {
		if e := c.creds[key]; !e.empty() {
			return e.username, e.secret, nil
		}
	}
	return "", "", nil
}

// Put stores credentials for host; an empty username makes secret an
// identity token. They go to the helper Get asks first (credHelpers, then
// credsStore), leaving an empty auths entry as docker does, or else into
// auths as base64 "auth". The file is replaced atomically, mode 0600, its
// directory created 0700; every other field is kept. A username with ':'
// or an empty secret is errdefs.ErrInvalidArgument.
func (s *Store) Put(ctx context.Context, host, username, secret string) error {
	reg, err := registry(host)
	if err != nil {
		return err
	}
	if secret == "" {
		return fmt.Errorf("store credentials for %s: empty secret: %w", reg, errdefs.ErrInvalidArgument)
	}
	if strings.Contains(username, ":") {
		return fmt.Errorf("store credentials for %s: username contains ':': %w", reg, errdefs.ErrInvalidArgument)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := readConfig(s.path)
	if err != nil {
		return err
	}
	key := serverURL(reg)
	e := entry{username: username, secret: secret}
	if hs := c.helpers(reg); len(hs) > 0 {
		if err := hs[0].store(ctx, key, username, secret); err != nil {
			return fmt.Errorf("store credentials for %s: %w", reg, err)
		}
		e = entry{}
	}
	if err := c.setAuth(key, e); err != nil {
		return fmt.Errorf("docker config %s: %w", s.path, err)
	}
	if err := c.save(s.path); err != nil {
		return err
	}
	s.cfg = c
	return nil
}

// Erase removes host's credentials from everywhere Get looks: the helpers
// and every auths key naming host. It returns errdefs.ErrNotFound ("not
// logged in to <host>") when none held any.
func (s *Store) Erase(ctx context.Context, host string) error {
	reg, err := registry(host)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := readConfig(s.path)
	if err != nil {
		return err
	}
	found := false
	for _, h := range c.helpers(reg) {
		err := h.erase(ctx, serverURL(reg))
		if errors.Is(err, errNoCredentials) {
			continue
		}
		if err != nil {
			return fmt.Errorf("erase credentials for %s: %w", reg, err)
		}
		found = true
	}
	keys := matchKeys(c.auths, reg)
	for _, key := range keys {
		if !c.creds[key].empty() {
			found = true
		}
		if err := c.deleteAuth(key); err != nil {
			return fmt.Errorf("docker config %s: %w", s.path, err)
		}
	}
	if len(keys) > 0 {
		if err := c.save(s.path); err != nil {
			return err
		}
	}
	s.cfg = c
	if !found {
		return fmt.Errorf("not logged in to %s: %w", reg, errdefs.ErrNotFound)
	}
	return nil
}
