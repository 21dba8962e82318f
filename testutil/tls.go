package testutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// CA is a test certificate authority: an ECDSA P-256 self-signed root whose
// certificate is written to a file, as registries and hosts.toml want it,
// and whose key stays in memory.
type CA struct {
	// CertFile is the CA certificate, PEM.
	CertFile string
	// Pool holds the CA certificate alone: a client trusting Pool trusts
	// what this CA issues and nothing else.
	Pool *x509.CertPool
	// Cert is the parsed CA certificate.
	Cert *x509.Certificate

	key *ecdsa.PrivateKey
	dir string

	mu sync.Mutex
	n  int // files issued, to keep their names apart
}

// NewCA makes a CA valid for a day around now, with its files in a
// directory of t.TempDir().
func NewCA(t testing.TB) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate CA key: %v", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: "strata test CA", Organization: []string{"strata tests"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("create CA certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse CA certificate: %v", err)
	}
	c := &CA{Cert: cert, Pool: x509.NewCertPool(), key: key, dir: t.TempDir()}
	c.Pool.AddCert(cert)
	c.CertFile = filepath.Join(c.dir, "ca.pem")
	writePEM(t, c.CertFile, "CERTIFICATE", der)
	return c
}

// Issue issues a server certificate for hosts (IP addresses or DNS names,
// such as "127.0.0.1" and "localhost") and returns its certificate and key
// files (PEM).
func (c *CA) Issue(t testing.TB, hosts ...string) (certFile, keyFile string) {
	t.Helper()
	if len(hosts) == 0 {
		t.Fatal("issue server certificate: no hosts")
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: hosts[0]},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	_, _, certFile, keyFile = c.issue(t, "server-"+hosts[0], tmpl)
	return certFile, keyFile
}

// IssueClient issues a client authentication certificate for common name
// cn and returns its certificate and key files (PEM).
func (c *CA) IssueClient(t testing.TB, cn string) (certFile, keyFile string) {
	t.Helper()
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	_, _, certFile, keyFile = c.issue(t, "client-"+cn, tmpl)
	return certFile, keyFile
}

// RegistryTLS issues a server certificate for 127.0.0.1 and localhost and
// returns the YAML to pass as RegistryConfig.HTTPExtra so the registry
// serves HTTPS with it. With requireClientCert the registry also demands a
// client certificate issued by this CA (distribution's http.tls.clientcas).
//
// The YAML is indented by two spaces, as keys under http: are in the
// configuration StartRegistry writes.
func (c *CA) RegistryTLS(t testing.TB, requireClientCert bool) string {
	t.Helper()
	certFile, keyFile := c.Issue(t, "127.0.0.1", "localhost")
	y := fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\n", certFile, keyFile)
	if requireClientCert {
		y += fmt.Sprintf("    clientcas:\n      - %s\n", c.CertFile)
	}
	return y
}

// issue signs tmpl (its validity, serial and key filled in here) and writes
// the certificate and a new key to files named after name.
func (c *CA) issue(t testing.TB, name string, tmpl *x509.Certificate) (*x509.Certificate, *ecdsa.PrivateKey, string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate key for %s: %v", name, err)
	}
	now := time.Now()
	tmpl.SerialNumber = serial(t)
	tmpl.NotBefore = now.Add(-time.Hour)
	tmpl.NotAfter = now.Add(23 * time.Hour)
	tmpl.BasicConstraintsValid = true
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.Cert, &key.PublicKey, c.key)
	if err != nil {
		t.Fatalf("issue certificate %s: %v", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse certificate %s: %v", name, err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatalf("marshal key for %s: %v", name, err)
	}
	c.mu.Lock()
	c.n++
	base := filepath.Join(c.dir, fmt.Sprintf("%d-%s", c.n, sanitizeFileName(name)))
	c.mu.Unlock()
	certFile, keyFile := base+".pem", base+"-key.pem"
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", keyDER)
	return cert, key, certFile, keyFile
}

// serial returns a random 128-bit certificate serial number.
func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		t.Fatalf("certificate serial: %v", err)
	}
	return n
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// sanitizeFileName keeps names like "server-127.0.0.1" or "client-alice"
// usable as file names, whatever the caller passed.
func sanitizeFileName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}
