// Package testutil starts the real parts that tests run against: a CNCF
// distribution registry process on 127.0.0.1 (Debian's docker-registry),
// with its storage in the test's temporary directory and its process
// stopped, by PID, when the test ends.
package testutil

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Registry is a running registry process.
type Registry struct {
	// Host is "127.0.0.1:<port>".
	Host string
	// Dir holds its storage and configuration.
	Dir string
	cmd *exec.Cmd
	log *syncBuffer
}

// syncBuffer collects the process's output, which exec copies from other
// goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// RegistryConfig adds to a registry's configuration: extra YAML under the
// top level (auth, proxy, http.tls …) is appended as given.
type RegistryConfig struct {
	ExtraYAML string
	// HTTPExtra is YAML placed under the http: key, indented by the caller
	// with four spaces (e.g. "    tls:\n      certificate: …").
	HTTPExtra string
}

// StartRegistry starts docker-registry on a free port of 127.0.0.1 and
// waits until it answers. The test fails if the binary is missing: CI
// installs it (.ci/run).
func StartRegistry(t testing.TB, cfg RegistryConfig) *Registry {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Fatal("docker-registry not installed (Debian package docker-registry; .ci/run installs it)")
	}
	dir := t.TempDir()
	port := freePort(t)
	host := fmt.Sprintf("127.0.0.1:%d", port)
	conf := fmt.Sprintf(`version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
%s%s`, filepath.Join(dir, "data"), host, cfg.HTTPExtra, cfg.ExtraYAML)
	confPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &Registry{Host: host, Dir: dir, log: &syncBuffer{}}
	r.cmd = exec.Command(bin, "serve", confPath)
	r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start docker-registry: %v", err)
	}
	t.Cleanup(r.Stop)
	scheme := "http"
	if strings.Contains(cfg.HTTPExtra, "tls:") {
		scheme = "https"
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if scheme == "https" {
			if c, err := net.DialTimeout("tcp", host, time.Second); err == nil {
				c.Close()
				return r
			}
		} else if resp, err := http.Get("http://" + host + "/v2/"); err == nil {
			resp.Body.Close()
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("docker-registry did not answer on %s within 15s; its log:\n%s", host, r.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop ends the registry process (by its PID) and waits for it.
func (r *Registry) Stop() {
	if r.cmd == nil || r.cmd.Process == nil || r.cmd.ProcessState != nil {
		return
	}
	r.cmd.Process.Kill()
	r.cmd.Wait()
}

// Log returns what the registry printed: its access log among it.
func (r *Registry) Log() string { return r.log.String() }

// WaitLog waits up to 10s for the registry to print substr (its log lines
// reach us a little after the responses) and reports whether it did.
func (r *Registry) WaitLog(substr string) bool {
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(r.Log(), substr) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// freePort asks the kernel for a port free on 127.0.0.1.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
