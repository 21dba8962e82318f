package credentials

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/strata-oci/strata/testutil"
)

// keychainHelper is a credential helper speaking the protocol of
// docker-credential-helpers, its keychain a directory: one file per server
// URL (named by the URL in hex) holding the JSON that store was given. It
// logs each call, without the secret, to <keychain>/calls.
const keychainHelper = `#!/bin/sh
set -eu
keychain='@KEYCHAIN@'
input=$(cat)
name() { printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n'; }
case "${1:-}" in
get)
	echo "get $input" >> "$keychain/calls"
	f="$keychain/$(name "$input")"
	if [ -f "$f" ]; then cat "$f"; exit 0; fi
	echo "credentials not found in native keychain"
	exit 1 ;;
store)
	url=$(printf '%s' "$input" | sed -n 's/.*"ServerURL":"\([^"]*\)".*/\1/p')
	echo "store $url" >> "$keychain/calls"
	printf '%s' "$input" > "$keychain/$(name "$url")" ;;
erase)
	echo "erase $input" >> "$keychain/calls"
	f="$keychain/$(name "$input")"
	if [ -f "$f" ]; then rm "$f"; exit 0; fi
	echo "credentials not found in native keychain"
	exit 1 ;;
*)
	echo "unknown action ${1:-}" >&2
	exit 1 ;;
esac
`

// installHelper writes script as docker-credential-<name> into a fresh
// directory put first on $PATH.
func installHelper(t *testing.T, name, script string) {
	t.Helper()
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "docker-credential-"+name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// installKeychain installs a keychainHelper called name and returns its
// keychain directory.
func installKeychain(t *testing.T, name string) string {
	t.Helper()
	keychain := t.TempDir()
	installHelper(t, name, strings.ReplaceAll(keychainHelper, "@KEYCHAIN@", keychain))
	return keychain
}

// seed puts credentials into a keychain as the helper's store would.
func seed(t *testing.T, keychain, serverURL, user, secret string) {
	t.Helper()
	data, err := json.Marshal(helperCredentials{ServerURL: serverURL, Username: user, Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(keychain, hex.EncodeToString([]byte(serverURL))), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// calls returns what the keychain helper was asked, one call a line.
func calls(t *testing.T, keychain string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(keychain, "calls"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}

func TestHelperPrecedence(t *testing.T) {
	perHost := installKeychain(t, "perhost")
	store := installKeychain(t, "store")
	seed(t, perHost, "ghcr.io", "from-credhelper", "1")
	seed(t, store, "ghcr.io", "from-credsstore", "2")
	seed(t, store, "quay.io", "from-credsstore", "3")
	seed(t, perHost, "https://index.docker.io/v1/", "", "hub-token")
	seed(t, store, "https://index.docker.io/v1/", "hub", "4")
	path := writeConfig(t, `{
		"auths": {
			"ghcr.io": {"auth": "`+b64("from-auths:5")+`"},
			"quay.io": {"auth": "`+b64("from-auths:6")+`"},
			"gcr.io": {"auth": "`+b64("from-auths:7")+`"},
			"registry.example": {"auth": "`+b64("from-auths:8")+`"}
		},
		"credsStore": "store",
		"credHelpers": {"ghcr.io": "perhost", "https://index.docker.io/v1/": "perhost", "registry.example": "perhost"}
	}`)
	s := load(t, path)
	wantGet(t, s, "ghcr.io", "from-credhelper", "1")       // credHelpers first
	wantGet(t, s, "quay.io", "from-credsstore", "3")       // then credsStore
	wantGet(t, s, "gcr.io", "from-auths", "7")             // then auths, when the helpers have nothing
	wantGet(t, s, "registry.example", "from-auths", "8")   // nor does the per-host helper
	wantGet(t, s, "registry-1.docker.io", "", "hub-token") // "<token>": an identity token
	wantGet(t, s, "index.docker.io", "", "hub-token")      // docker's key for the hub
	if got, want := calls(t, perHost), "get ghcr.io\nget registry.example\nget https://index.docker.io/v1/\nget https://index.docker.io/v1/"; got != want {
		t.Fatalf("per-host helper was asked:\n%s\nwant:\n%s", got, want)
	}
	if got, want := calls(t, store), "get quay.io\nget gcr.io\nget registry.example"; got != want {
		t.Fatalf("credsStore helper was asked:\n%s\nwant:\n%s", got, want)
	}
	if got, want := s.Helper("docker.io"), "perhost"; got != want {
		t.Fatalf("Helper(docker.io) = %q, want %q", got, want)
	}
	if got, want := s.Helper("gcr.io"), "store"; got != want {
		t.Fatalf("Helper(gcr.io) = %q, want %q", got, want)
	}
	if got := load(t, writeConfig(t, `{}`)).Helper("gcr.io"); got != "" {
		t.Fatalf("Helper without helpers = %q, want none", got)
	}
}

func TestHelperPutGetErase(t *testing.T) {
	keychain := installKeychain(t, "store")
	path := writeConfig(t, `{"credsStore": "store", "auths": {"ghcr.io": {"auth": "`+b64("stale:old")+`", "email": "e"}}}`)
	s := load(t, path)
	ctx := context.Background()
	const secret = `pa"ss\word`
	if err := s.Put(ctx, "ghcr.io", "alice", secret); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if err := s.Put(ctx, "docker.io", "", "hub-token"); err != nil {
		t.Fatalf("Put identity token: %v", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "pa") || strings.Contains(string(data), "hub-token") || strings.Contains(string(data), b64("stale:old")) {
		t.Fatalf("config.json holds a secret the helper keeps:\n%s", data)
	}
	// docker's placeholders, the entry's other fields kept.
	want := map[string]any{"credsStore": "store", "auths": map[string]any{
		"ghcr.io":                     map[string]any{"email": "e"},
		"https://index.docker.io/v1/": map[string]any{},
	}}
	if got := readJSON(t, path); !equalJSON(got, want) {
		t.Fatalf("config.json = %v, want %v", got, want)
	}
	token, err := os.ReadFile(filepath.Join(keychain, hex.EncodeToString([]byte("https://index.docker.io/v1/"))))
	if err != nil || !strings.Contains(string(token), `"Username":"<token>"`) {
		t.Fatalf("helper got %s (%v), want Username <token> for an identity token", token, err)
	}
	for _, s := range []*Store{s, load(t, path)} {
		wantGet(t, s, "ghcr.io", "alice", secret)
		wantGet(t, s, "docker.io", "", "hub-token")
	}

	if err := s.Erase(ctx, "ghcr.io"); err != nil {
		t.Fatalf("Erase: %v", err)
	}
	wantGet(t, s, "ghcr.io", "", "")
	if _, ok := readJSON(t, path)["auths"].(map[string]any)["ghcr.io"]; ok {
		t.Fatal("Erase left the auths placeholder")
	}
	if err := s.Erase(ctx, "ghcr.io"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("second Erase = %v, want ErrNotFound", err)
	}
	if got, want := calls(t, keychain), "store ghcr.io\nstore https://index.docker.io/v1/\nget ghcr.io\nget https://index.docker.io/v1/\nget ghcr.io\nget https://index.docker.io/v1/\nerase ghcr.io\nget ghcr.io\nerase ghcr.io"; got != want {
		t.Fatalf("helper was asked:\n%s\nwant:\n%s", got, want)
	}
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func TestHelperMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	s := load(t, writeConfig(t, `{"credsStore": "nowhere", "auths": {"ghcr.io": {"auth": "`+b64("u:p")+`"}}}`))
	ctx := context.Background()
	_, _, err := s.Get(ctx, "ghcr.io")
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "docker-credential-nowhere") {
		t.Fatalf("Get with a missing helper = %v, want ErrFailedPrecondition naming docker-credential-nowhere", err)
	}
	if err := s.Put(ctx, "ghcr.io", "u", "p"); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("Put with a missing helper = %v, want ErrFailedPrecondition", err)
	}
	if err := s.Erase(ctx, "ghcr.io"); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("Erase with a missing helper = %v, want ErrFailedPrecondition", err)
	}

	s = load(t, writeConfig(t, `{"credHelpers": {"ghcr.io": "../../bin/sh"}}`))
	if _, _, err := s.Get(ctx, "ghcr.io"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("Get with helper name ../../bin/sh = %v, want ErrInvalidArgument", err)
	}
}

func TestHelperFailing(t *testing.T) {
	// Like a keychain that is locked: it says so on stderr, echoing its
	// input (with the secret) as a careless helper might.
	installHelper(t, "locked", "#!/bin/sh\ninput=$(cat)\necho keychain is locked >&2\necho \"input was: $input\" >&2\nexit 3\n")
	s := load(t, writeConfig(t, `{"credsStore": "locked"}`))
	ctx := context.Background()
	const secret = `top"secret\value`

	err := s.Put(ctx, "ghcr.io", "u", secret)
	if err == nil || !strings.Contains(err.Error(), "docker-credential-locked store") || !strings.Contains(err.Error(), "keychain is locked") {
		t.Fatalf("Put = %v, want the helper, the action and its message", err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Fatalf("Put error leaks the secret: %v", err)
	}
	_, _, err = s.Get(ctx, "ghcr.io")
	if err == nil || !strings.Contains(err.Error(), "docker-credential-locked get") || !strings.Contains(err.Error(), "keychain is locked") || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("Get = %v, want the helper, the action, its message and exit status", err)
	}
	if err := s.Erase(ctx, "ghcr.io"); err == nil || errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Erase = %v, want the helper's failure, not ErrNotFound", err)
	}
}

func TestHelperBadAnswer(t *testing.T) {
	installHelper(t, "garbled", "#!/bin/sh\ncat >/dev/null\nprintf '{\"Username\":\"u\",\"Secret\":\"t0ps3cret'\n")
	s := load(t, writeConfig(t, `{"credsStore": "garbled"}`))
	_, _, err := s.Get(context.Background(), "ghcr.io")
	if err == nil || !strings.Contains(err.Error(), "docker-credential-garbled get ghcr.io") {
		t.Fatalf("Get = %v, want an error naming the helper", err)
	}
	if strings.Contains(err.Error(), "t0ps3cret") {
		t.Fatalf("Get error leaks the answer: %v", err)
	}
}

func TestHelperSilent(t *testing.T) {
	// Helpers for one cloud exit 0 without a word for other registries.
	installHelper(t, "cloud", "#!/bin/sh\ncat >/dev/null\nexit 0\n")
	s := load(t, writeConfig(t, `{"credsStore": "cloud", "auths": {"ghcr.io": {"auth": "`+b64("u:p")+`"}}}`))
	wantGet(t, s, "ghcr.io", "u", "p")
	wantGet(t, s, "quay.io", "", "")
}

func TestHelperCanceled(t *testing.T) {
	keychain := installKeychain(t, "store")
	seed(t, keychain, "ghcr.io", "u", "p")
	s := load(t, writeConfig(t, `{"credsStore": "store"}`))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := s.Get(ctx, "ghcr.io"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get with a canceled context = %v, want context.Canceled", err)
	}
	if err := s.Put(ctx, "ghcr.io", "u", "p2"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with a canceled context = %v, want context.Canceled", err)
	}
	wantGet(t, s, "ghcr.io", "u", "p")
}

// TestRegistryLogin stores credentials through a helper and signs in to a
// real registry with what Get returns.
func TestRegistryLogin(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{ExtraYAML: testutil.Htpasswd(t, map[string]string{"alice": "wonder:land"})})
	installKeychain(t, "store")
	t.Setenv("DOCKER_CONFIG", filepath.Join(t.TempDir(), "docker"))
	ctx := context.Background()
	if err := load(t, DefaultPath()).Put(ctx, reg.Host, "alice", "wonder:land"); err != nil {
		t.Fatal(err)
	}
	user, secret, err := load(t, DefaultPath()).Get(ctx, reg.Host)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		user, secret string
		status       int
	}{{user, secret, http.StatusOK}, {user, "wrong", http.StatusUnauthorized}} {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+reg.Host+"/v2/", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth(c.user, c.secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Fatalf("GET /v2/ as %q = %s, want %d", c.user, resp.Status, c.status)
		}
	}
}

func TestHelperMessage(t *testing.T) {
	const secret = `pa$$"w\ord-1234`
	for _, tc := range []struct {
		name, stdout, stderr, want string
	}{
		{"stderr", "ignored", "  locked\n\n  try again \n", "locked; try again"},
		{"stdout when stderr is empty", "keychain unavailable\n", "", "keychain unavailable"},
		{"stdout that looks like credentials", `{"Username":"u","Secret":"x"}`, "", ""},
		{"raw secret", "", "got " + secret + "\nbye", "<withheld>; bye"},
		{"JSON-escaped secret", "", `{"Secret":"pa$$\"w\\ord-1234"}`, "<withheld>"},
		{"part of the secret", "", "echo: w\\ord-1234!", "<withheld>"},
		{"long", "", strings.Repeat("x", 2*maxHelperMessage), strings.Repeat("x", maxHelperMessage) + "…"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := helperMessage([]byte(tc.stdout), []byte(tc.stderr), secret); got != tc.want {
				t.Fatalf("helperMessage(%q, %q) = %q, want %q", tc.stdout, tc.stderr, got, tc.want)
			}
		})
	}
}
