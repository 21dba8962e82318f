package docker_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/strata-oci/strata/pull"
	"github.com/strata-oci/strata/remotes/docker"
	"github.com/strata-oci/strata/testutil"
)

// tcpFront forwards TCP connections to a server and records how each
// began: with a TLS handshake record or with plain bytes. It shows which
// scheme a client tried and how often it connected, without touching
// the traffic.
type tcpFront struct {
	Host     string
	upstream string
	l        net.Listener
	wg       sync.WaitGroup

	mu         sync.Mutex
	closed     bool
	conns      []net.Conn
	tls, plain int
}

func startTCPFront(t *testing.T, upstream string) *tcpFront {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &tcpFront{Host: l.Addr().String(), upstream: upstream, l: l}
	f.wg.Add(1)
	go f.serve()
	t.Cleanup(f.stop)
	return f
}

// track keeps c to be closed at stop; it reports false once stopped.
func (f *tcpFront) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.conns = append(f.conns, c)
	return true
}

func (f *tcpFront) serve() {
	defer f.wg.Done()
	for {
		c, err := f.l.Accept()
		if err != nil {
			return
		}
		if !f.track(c) {
			c.Close()
			return
		}
		f.wg.Add(1)
		go f.forward(c)
	}
}

func (f *tcpFront) forward(c net.Conn) {
	defer f.wg.Done()
	defer c.Close()
	var first [1]byte
	if _, err := io.ReadFull(c, first[:]); err != nil {
		return
	}
	f.mu.Lock()
	if first[0] == 0x16 { // TLS record type handshake: a ClientHello
		f.tls++
	} else {
		f.plain++
	}
	f.mu.Unlock()
	u, err := net.Dial("tcp", f.upstream)
	if err != nil {
		return
	}
	defer u.Close()
	if !f.track(u) {
		return
	}
	if _, err := u.Write(first[:]); err != nil {
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(c, u)
		c.Close()
	}()
	io.Copy(u, c)
	u.Close()
	<-done
}

// counts returns the connections that began with TLS and with plain bytes.
func (f *tcpFront) counts() (tlsConns, plainConns int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tls, f.plain
}

func (f *tcpFront) stop() {
	f.mu.Lock()
	f.closed = true
	conns := f.conns
	f.conns = nil
	f.mu.Unlock()
	f.l.Close()
	for _, c := range conns {
		c.Close()
	}
	f.wg.Wait()
}

// TestPullTLS pulls from HTTPS registries whose certificates a test CA
// issued, configured by hosts.toml: ca, skip_verify, client certificates.
func TestPullTLS(t *testing.T) {
	ca := testutil.NewCA(t)
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{HTTPExtra: ca.RegistryTLS(t, false)})
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}}
	t.Cleanup(tr.CloseIdleConnections)
	fx := testutil.PushWhiteoutImage(t, pushFront(t, "https://"+reg.Host, tr, ""), "tls/app", "v1")

	mreg := testutil.StartRegistry(t, testutil.RegistryConfig{HTTPExtra: ca.RegistryTLS(t, true)})
	certFile, keyFile := ca.IssueClient(t, "strata")
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	mtr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool, Certificates: []tls.Certificate{pair}}}
	t.Cleanup(mtr.CloseIdleConnections)
	mfx := testutil.PushDockerSchema2(t, pushFront(t, "https://"+mreg.Host, mtr, ""), "mtls/app", "v1")
	// containerd's one-file form: the certificate and its key in one PEM.
	combined := filepath.Join(t.TempDir(), "client.pem")
	{
		c, err1 := os.ReadFile(certFile)
		k, err2 := os.ReadFile(keyFile)
		if err := errors.Join(err1, err2, os.WriteFile(combined, append(c, k...), 0o600)); err != nil {
			t.Fatal(err)
		}
	}

	caPEM, err := os.ReadFile(ca.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	server := func(host string) string { return fmt.Sprintf("server = %q\n", "https://"+host) }
	withCA := func(host, extra string) string {
		return server(host) + fmt.Sprintf("\n[host.%q]\n  ca = %q\n", "https://"+host, ca.CertFile) + extra
	}
	for _, tc := range []struct {
		name  string
		reg   *testutil.Registry
		fx    testutil.Fixture
		repo  string
		hosts string // "" for no hosts.toml
		// files are written next to hosts.toml: name → content.
		files map[string][]byte
		// wantErr checks the error of a pull that must fail; nil when the
		// pull must succeed.
		wantErr func(error) bool
	}{
		{name: "ca", reg: reg, fx: fx, repo: "tls/app", hosts: withCA(reg.Host, "")},
		{name: "ca list", reg: reg, fx: fx, repo: "tls/app", hosts: server(reg.Host) +
			fmt.Sprintf("\n[host.%q]\n  ca = [%q]\n", "https://"+reg.Host, ca.CertFile)},
		{name: "skip_verify", reg: reg, fx: fx, repo: "tls/app", hosts: server(reg.Host) +
			fmt.Sprintf("\n[host.%q]\n  skip_verify = true\n", "https://"+reg.Host)},
		{name: "without the CA", reg: reg, repo: "tls/app", hosts: server(reg.Host), wantErr: isUnknownAuthority},
		{name: "no hosts.toml", reg: reg, repo: "tls/app", wantErr: isUnknownAuthority},
		{name: "client certificate", reg: mreg, fx: mfx, repo: "mtls/app",
			hosts: withCA(mreg.Host, fmt.Sprintf("  client = [[%q, %q]]\n", certFile, keyFile))},
		{name: "client certificate and key in one file", reg: mreg, fx: mfx, repo: "mtls/app",
			hosts: withCA(mreg.Host, fmt.Sprintf("  client = %q\n", combined))},
		{name: "no client certificate", reg: mreg, repo: "mtls/app", hosts: withCA(mreg.Host, ""),
			wantErr: clientCertRefused},
		// containerd's hosts.toml configures the server with the keys at
		// the top level, and reads relative paths from the host's
		// directory.
		{name: "server's ca at the top level", reg: reg, fx: fx, repo: "tls/app",
			hosts: server(reg.Host) + fmt.Sprintf("ca = %q\n", ca.CertFile)},
		{name: "server's skip_verify at the top level", reg: reg, fx: fx, repo: "tls/app",
			hosts: server(reg.Host) + "skip_verify = true\n"},
		{name: "server's client certificate at the top level", reg: mreg, fx: mfx, repo: "mtls/app",
			hosts: server(mreg.Host) + fmt.Sprintf("ca = %q\nclient = [[%q, %q]]\n", ca.CertFile, certFile, keyFile)},
		{name: "no client certificate, server's ca at the top level", reg: mreg, repo: "mtls/app",
			hosts:   server(mreg.Host) + fmt.Sprintf("ca = %q\n", ca.CertFile),
			wantErr: clientCertRefused},
		{name: "ca relative to the host's directory", reg: reg, fx: fx, repo: "tls/app",
			hosts: server(reg.Host) + fmt.Sprintf("\n[host.%q]\n  ca = \"ca.pem\"\n", "https://"+reg.Host),
			files: map[string][]byte{"ca.pem": caPEM}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.hosts != "" {
				writeHosts(t, dir, tc.reg.Host, tc.hosts)
			}
			for name, data := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, tc.reg.Host, name), data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			e := newEnv(t, docker.Options{HostsDir: dir})
			ref := tc.reg.Host + "/" + tc.repo + ":v1"
			if tc.wantErr == nil {
				e.pullImage(ref, tc.fx)
				return
			}
			_, err := e.p.Pull(e.ctx, mustRef(t, ref), pull.Options{})
			t.Logf("Pull(%q) = %v", ref, err)
			if err == nil || !tc.wantErr(err) || !strings.Contains(err.Error(), tc.reg.Host) {
				t.Fatalf("Pull(%q) = %v, want a TLS error naming %s", ref, err, tc.reg.Host)
			}
			e.noImages()
		})
	}

	// A certificate that does not verify will not verify on the next
	// attempt either: it is reported, not retried.
	t.Run("certificate errors are not retried", func(t *testing.T) {
		front := startTCPFront(t, reg.Host)
		dir := t.TempDir()
		writeHosts(t, dir, front.Host, server(front.Host))
		e := newEnv(t, docker.Options{HostsDir: dir, Retries: 3})
		_, err := e.p.Pull(e.ctx, mustRef(t, front.Host+"/tls/app:v1"), pull.Options{})
		if !isUnknownAuthority(err) {
			t.Fatalf("Pull without the CA = %v, want an x509.UnknownAuthorityError", err)
		}
		if n, _ := front.counts(); n != 1 {
			t.Fatalf("the registry saw %d TLS handshakes, want 1: a certificate error was retried", n)
		}
	})
}

func isUnknownAuthority(err error) bool {
	var ua x509.UnknownAuthorityError
	return errors.As(err, &ua)
}

// clientCertRefused: under TLS 1.3 the server refuses a client without a
// certificate after the handshake; the client sees the alert, or only the
// connection dropping before it.
func clientCertRefused(err error) bool {
	return strings.Contains(err.Error(), "certificate") || strings.Contains(err.Error(), "conn could not be established")
}
