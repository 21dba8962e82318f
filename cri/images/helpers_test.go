package images

import (
	"context"
	"encoding/base64"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/strata-oci/strata/reference"
)

func TestUser(t *testing.T) {
	for _, tc := range []struct {
		name, user string
		uid        int64 // -1: none
		username   string
	}{
		{name: "empty", user: "", uid: -1},
		{name: "uid", user: "1002", uid: 1002},
		{name: "uid and group", user: "1003:50", uid: 1003},
		{name: "name", user: "www-data", uid: -1, username: "www-data"},
		{name: "name and group", user: "www-data:www-data", uid: -1, username: "www-data"},
		{name: "root", user: "0", uid: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uid, name := user(tc.user)
			got := int64(-1)
			if uid != nil {
				got = uid.Value
			}
			if got != tc.uid || name != tc.username {
				t.Fatalf("user(%q) = %d, %q, want %d, %q", tc.user, got, name, tc.uid, tc.username)
			}
		})
	}
}

// TestProgressed: a trickle under the minimum rate is no progress, nor is
// nothing at all, whatever the rate.
func TestProgressed(t *testing.T) {
	for _, tc := range []struct {
		name    string
		n, rate int64
		timeout time.Duration
		want    bool
	}{
		{name: "nothing, any rate", n: 0, rate: 0, timeout: time.Minute, want: false},
		{name: "a byte, any rate", n: 1, rate: 0, timeout: time.Minute, want: true},
		{name: "trickle", n: 60, rate: 1024, timeout: time.Minute, want: false},
		{name: "just enough", n: 1024 * 60, rate: 1024, timeout: time.Minute, want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := progressed(tc.n, tc.rate, tc.timeout); got != tc.want {
				t.Fatalf("progressed(%d, %d, %s) = %v, want %v", tc.n, tc.rate, tc.timeout, got, tc.want)
			}
		})
	}
}

func TestCredentials(t *testing.T) {
	ref, err := reference.Parse("registry.example:5000/app:1")
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString([]byte("bob:pa:ss"))
	for _, tc := range []struct {
		name             string
		auth             *runtime.AuthConfig
		host             string
		user, secret     string
		anonymous, fails bool
	}{
		{name: "none", auth: nil, anonymous: true},
		{name: "password", auth: &runtime.AuthConfig{Username: "alice", Password: "pw"}, host: "registry.example:5000", user: "alice", secret: "pw"},
		{name: "auth", auth: &runtime.AuthConfig{Auth: b64}, host: "registry.example:5000", user: "bob", secret: "pa:ss"},
		{name: "identity token", auth: &runtime.AuthConfig{IdentityToken: "tok"}, host: "registry.example:5000", secret: "tok"},
		{name: "other server", auth: &runtime.AuthConfig{Username: "alice", Password: "pw", ServerAddress: "https://elsewhere.example/v1/"}, host: "registry.example:5000"},
		{name: "same server as URL", auth: &runtime.AuthConfig{Username: "alice", Password: "pw", ServerAddress: "https://registry.example:5000/v2/"}, host: "mirror.example", user: "alice", secret: "pw"},
		{name: "auth not base64", auth: &runtime.AuthConfig{Auth: "%%"}, fails: true},
		{name: "auth without colon", auth: &runtime.AuthConfig{Auth: base64.StdEncoding.EncodeToString([]byte("bob"))}, fails: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			creds, err := credentials(tc.auth, ref)
			if tc.fails {
				if err == nil {
					t.Fatalf("credentials(%v) = nil error, want one", tc.auth)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.anonymous {
				if creds != nil {
					t.Fatalf("credentials(nil) is a source, want none")
				}
				return
			}
			u, s, err := creds(context.Background(), tc.host)
			if err != nil || u != tc.user || s != tc.secret {
				t.Fatalf("credentials(%v)(%q) = %q, %q, %v; want %q, %q", tc.auth, tc.host, u, s, err, tc.user, tc.secret)
			}
		})
	}
}
