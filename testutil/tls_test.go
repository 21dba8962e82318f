package testutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"os"
	"testing"
)

// TestCAIssue checks the certificates verify against the CA's pool for
// what they were issued, and not for anything else.
func TestCAIssue(t *testing.T) {
	ca := NewCA(t)
	other := NewCA(t)
	load := func(certFile, keyFile string) *x509.Certificate {
		t.Helper()
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatalf("load %s: %v", certFile, err)
		}
		c, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	server := load(ca.Issue(t, "127.0.0.1", "localhost"))
	client := load(ca.IssueClient(t, "alice"))

	tests := []struct {
		name   string
		cert   *x509.Certificate
		pool   *x509.CertPool
		dns    string
		usage  x509.ExtKeyUsage
		wantOK bool
	}{
		{"server by IP", server, ca.Pool, "127.0.0.1", x509.ExtKeyUsageServerAuth, true},
		{"server by name", server, ca.Pool, "localhost", x509.ExtKeyUsageServerAuth, true},
		{"server, other name", server, ca.Pool, "example.com", x509.ExtKeyUsageServerAuth, false},
		{"server, other CA", server, other.Pool, "127.0.0.1", x509.ExtKeyUsageServerAuth, false},
		{"server as client", server, ca.Pool, "", x509.ExtKeyUsageClientAuth, false},
		{"client", client, ca.Pool, "", x509.ExtKeyUsageClientAuth, true},
		{"client as server", client, ca.Pool, "", x509.ExtKeyUsageServerAuth, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.cert.Verify(x509.VerifyOptions{Roots: tt.pool, DNSName: tt.dns, KeyUsages: []x509.ExtKeyUsage{tt.usage}})
			if (err == nil) != tt.wantOK {
				t.Fatalf("Verify(%s) = %v, want ok %v", tt.name, err, tt.wantOK)
			}
		})
	}
	if client.Subject.CommonName != "alice" {
		t.Fatalf("client CN %q", client.Subject.CommonName)
	}
	pem, err := os.ReadFile(ca.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	if pool := x509.NewCertPool(); !pool.AppendCertsFromPEM(pem) || !ca.Cert.IsCA {
		t.Fatalf("CA file %s does not hold a CA certificate", ca.CertFile)
	}
}

// TestRegistryTLS serves the real registry over HTTPS, with and without
// client certificates.
func TestRegistryTLS(t *testing.T) {
	ca := NewCA(t)
	clientCert, clientKey := ca.IssueClient(t, "strata")
	pair, err := tls.LoadX509KeyPair(clientCert, clientKey)
	if err != nil {
		t.Fatal(err)
	}
	get := func(host string, cfg *tls.Config) error {
		t.Helper()
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
		defer c.CloseIdleConnections()
		resp, err := c.Get("https://" + host + "/v2/")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET https://%s/v2/: %s", host, resp.Status)
		}
		return nil
	}

	plain := StartRegistry(t, RegistryConfig{HTTPExtra: ca.RegistryTLS(t, false)})
	if err := get(plain.Host, &tls.Config{RootCAs: ca.Pool}); err != nil {
		t.Fatalf("trusting the CA: %v", err)
	}
	var unknown x509.UnknownAuthorityError
	if err := get(plain.Host, &tls.Config{RootCAs: NewCA(t).Pool}); !errors.As(err, &unknown) {
		t.Fatalf("trusting another CA: %v, want x509.UnknownAuthorityError", err)
	}

	mtls := StartRegistry(t, RegistryConfig{HTTPExtra: ca.RegistryTLS(t, true)})
	if err := get(mtls.Host, &tls.Config{RootCAs: ca.Pool, Certificates: []tls.Certificate{pair}}); err != nil {
		t.Fatalf("with a client certificate: %v", err)
	}
	if err := get(mtls.Host, &tls.Config{RootCAs: ca.Pool}); err == nil {
		t.Fatal("without a client certificate: the registry answered")
	}
}
