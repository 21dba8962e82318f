package testutil

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// HtpasswdRealm is the realm a registry configured by Htpasswd names in its
// Basic challenges.
const HtpasswdRealm = "strata-test"

// Htpasswd writes an htpasswd file of users (username -> password, bcrypt
// hashed: the only format distribution reads) in t.TempDir() and returns
// the ExtraYAML that makes a registry ask for HTTP Basic authentication
// against it.
func Htpasswd(t testing.TB, users map[string]string) (yaml string) {
	t.Helper()
	names := make([]string, 0, len(users))
	for u := range users {
		if u == "" || strings.ContainsAny(u, ":\n") {
			t.Fatalf("htpasswd: user name %q is empty or holds ':' or a newline", u)
		}
		names = append(names, u)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, u := range names {
		// MinCost: these hashes guard test data; a higher cost only slows
		// the registry's every request down.
		h, err := bcrypt.GenerateFromPassword([]byte(users[u]), bcrypt.MinCost)
		if err != nil {
			t.Fatalf("htpasswd: hash password of %q: %v", u, err)
		}
		fmt.Fprintf(&b, "%s:%s\n", u, h)
	}
	path := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("auth:\n  htpasswd:\n    realm: %s\n    path: %s\n", HtpasswdRealm, path)
}
