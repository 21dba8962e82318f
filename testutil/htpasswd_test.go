package testutil

import (
	"net/http"
	"os"
	"strings"
	"testing"
)

// TestHtpasswd runs the real registry with basic auth from Htpasswd.
func TestHtpasswd(t *testing.T) {
	yaml := Htpasswd(t, map[string]string{"alice": "wonderland", "bob": "builder"})
	r := StartRegistry(t, RegistryConfig{ExtraYAML: yaml})

	path := yaml[strings.LastIndex(yaml, "path: ")+len("path: ") : len(yaml)-1]
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "wonderland") || !strings.HasPrefix(string(b), "alice:$2") {
		t.Fatalf("htpasswd file:\n%s", b)
	}

	tests := []struct {
		name, user, password string
		want                 int
	}{
		{"anonymous", "", "", http.StatusUnauthorized},
		{"alice", "alice", "wonderland", http.StatusOK},
		{"bob", "bob", "builder", http.StatusOK},
		{"wrong password", "alice", "builder", http.StatusUnauthorized},
		{"unknown user", "carol", "wonderland", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, "http://"+r.Host+"/v2/", nil)
			if tt.user != "" {
				req.SetBasicAuth(tt.user, tt.password)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("GET /v2/ as %q: %s, want %d", tt.user, resp.Status, tt.want)
			}
			if tt.want == http.StatusUnauthorized && !strings.Contains(resp.Header.Get("WWW-Authenticate"), `Basic realm="`+HtpasswdRealm+`"`) {
				t.Fatalf("challenge %q", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
}
