package credentials

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzParseConfig: any config.json is either parsed or refused with an
// error that does not quote its secrets (auth, password, identity token).
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"auths":{"https://index.docker.io/v1/":{"auth":"dXNlcjpwYXNz"}}}`))
	f.Add([]byte(`{"auths":{"r.example":{"username":"u","password":"p4ssw0rd","identitytoken":"t0k3n"}},"credsStore":"pass","credHelpers":{"g.example":"gcloud"}}`))
	f.Add([]byte(`{"auths":{"x":{"auth":"!!not-base64!!"}}}`))
	f.Add([]byte(`{"auths":{"x":{"auth":"` + "bm9jb2xvbg==" + `"}}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := parseConfig("config.json", data)
		if err == nil {
			return
		}
		var doc any
		if json.Unmarshal(data, &doc) != nil {
			return
		}
		keys := strings.Join(keysOf(doc), "\n")
		for _, secret := range secrets(doc) {
			// A secret that is also part of a key (which errors may name)
			// proves nothing.
			if len(secret) >= 6 && !strings.Contains(keys, secret) && strings.Contains(err.Error(), secret) {
				t.Fatalf("error %q quotes the secret %q", err, secret)
			}
		}
	})
}

// secrets collects the string values of secret-bearing keys, at any depth.
func secrets(v any) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			switch strings.ToLower(k) {
			case "auth", "password", "identitytoken", "registrytoken":
				if s, ok := x.(string); ok {
					out = append(out, s)
				}
			}
			out = append(out, secrets(x)...)
		}
	case []any:
		for _, x := range v {
			out = append(out, secrets(x)...)
		}
	}
	return out
}

// keysOf collects every object key and every non-secret string, at any
// depth: what an error may legitimately name.
func keysOf(v any) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			out = append(out, k)
			switch strings.ToLower(k) {
			case "auth", "password", "identitytoken", "registrytoken":
			default:
				if s, ok := x.(string); ok {
					out = append(out, s)
				}
			}
			out = append(out, keysOf(x)...)
		}
	case []any:
		for _, x := range v {
			out = append(out, keysOf(x)...)
		}
	}
	return out
}
