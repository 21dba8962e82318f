package credentials

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"

	"github.com/containerd/errdefs"
)

// maxConfig bounds what Load reads: a config.json is a few kilobytes.
const maxConfig = 1 << 20

// entry is the credentials of one auths key: a username and password, an
// identity token (no username), or nothing (the placeholder docker leaves
// when a helper holds the secret).
type entry struct {
	username, secret string
}

func (e entry) empty() bool { return e.username == "" && e.secret == "" }

// authFields are the fields of an auths entry docker derives credentials
// from; Put replaces them and keeps the others.
var authFields = map[string]bool{"auth": true, "username": true, "password": true, "identitytoken": true, "registrytoken": true}

// config is one reading of config.json. It is not changed once a Store
// shares it: Put and Erase read the file again and work on a new one.
type config struct {
	fields      map[string]json.RawMessage // every top-level field, as read
	auths       map[string]json.RawMessage // the auths entries, as read
	creds       map[string]entry           // what each auths entry holds
	credsStore  string
	credHelpers map[string]string
}

func newConfig() *config {
	return &config{
		fields:      map[string]json.RawMessage{},
		auths:       map[string]json.RawMessage{},
		creds:       map[string]entry{},
		credHelpers: map[string]string{},
	}
}

// readConfig reads path; a missing file is an empty configuration.
func readConfig(path string) (*config, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return newConfig(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("docker config: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("docker config: %w", err)
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("docker config %s: is a directory: %w", path, errdefs.ErrInvalidArgument)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxConfig+1))
	if err != nil {
		return nil, fmt.Errorf("docker config %s: %w", path, err)
	}
	if len(data) > maxConfig {
		return nil, fmt.Errorf("docker config %s: larger than %d bytes: %w", path, maxConfig, errdefs.ErrInvalidArgument)
	}
	return parseConfig(path, data)
}

// parseConfig parses config.json data, named name in errors. Errors say
// where the problem is but quote nothing from the file: it holds secrets.
// They wrap errdefs.ErrInvalidArgument.
func parseConfig(name string, data []byte) (*config, error) {
	c := newConfig()
	if len(bytes.TrimSpace(data)) == 0 {
		// docker treats an empty file as an empty configuration.
		return c, nil
	}
	invalid := func(where, what string) error {
		return fmt.Errorf("docker config %s: %s%s: %w", name, where, what, errdefs.ErrInvalidArgument)
	}
	if err := json.Unmarshal(data, &c.fields); err != nil {
		return nil, invalid("", describeJSON(data, err, "a JSON object"))
	}
	if c.fields == nil { // the file is "null"
		c.fields = map[string]json.RawMessage{}
	}
	if raw, ok := c.fields["auths"]; ok {
		if err := json.Unmarshal(raw, &c.auths); err != nil {
			return nil, invalid("auths: ", describeJSON(raw, err, "a JSON object"))
		}
		if c.auths == nil {
			c.auths = map[string]json.RawMessage{}
		}
		for key, raw := range c.auths {
			e, err := parseEntry(raw)
			if err != nil {
				return nil, invalid(fmt.Sprintf("auths[%q]: ", key), err.Error())
			}
			c.creds[key] = e
		}
	}
	if raw, ok := c.fields["credsStore"]; ok {
		if err := json.Unmarshal(raw, &c.credsStore); err != nil {
			return nil, invalid("credsStore: ", describeJSON(raw, err, "a JSON string"))
		}
	}
	if raw, ok := c.fields["credHelpers"]; ok {
		if err := json.Unmarshal(raw, &c.credHelpers); err != nil {
			return nil, invalid("credHelpers: ", describeJSON(raw, err, "an object of strings"))
		}
		if c.credHelpers == nil {
			c.credHelpers = map[string]string{}
		}
	}
	return c, nil
}

// parseEntry reads one auths entry. An identity token wins over a username
// and password; "auth" (base64 of user:password) over the separate fields.
func parseEntry(raw json.RawMessage) (entry, error) {
	var f struct {
		Auth          string `json:"auth"`
		Username      string `json:"username"`
		Password      string `json:"password"`
		IdentityToken string `json:"identitytoken"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		return entry{}, errors.New(describeJSON(raw, err, "a JSON object"))
	}
	e := entry{username: f.Username, secret: f.Password}
	if f.Auth != "" {
		b, err := base64.StdEncoding.DecodeString(f.Auth)
		if err != nil {
			// Some tools drop the padding.
			b, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(f.Auth, "="))
		}
		if err != nil {
			return entry{}, errors.New("auth is not valid base64")
		}
		user, password, ok := strings.Cut(string(b), ":")
		if !ok {
			return entry{}, errors.New("auth is not the base64 of user:password")
		}
		// docker trims NULs that some Windows tools appended.
		e = entry{username: user, secret: strings.Trim(password, "\x00")}
	}
	if f.IdentityToken != "" {
		e = entry{secret: f.IdentityToken}
	}
	return e, nil
}

// describeJSON says what is wrong with data without quoting it: a syntax
// error's message holds the offending character, a type error's the number.
func describeJSON(data []byte, err error, want string) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		offset := se.Offset
		if strings.HasPrefix(se.Error(), "invalid character") {
			offset-- // point at the character, not after it
		}
		line, col := position(data, offset)
		return fmt.Sprintf("invalid JSON at line %d, column %d", line, col)
	case errors.As(err, &te):
		kind, _, _ := strings.Cut(te.Value, " ")
		if te.Field != "" {
			if te.Type != nil && te.Type.Kind() == reflect.String {
				want = "a JSON string"
			}
			return fmt.Sprintf("%s is a JSON %s, want %s", te.Field, kind, want)
		}
		return fmt.Sprintf("found a JSON %s, want %s", kind, want)
	default:
		return "invalid JSON"
	}
}

func position(data []byte, offset int64) (line, col int) {
	offset = min(max(offset, 0), int64(len(data)))
	before := data[:offset]
	line = 1 + bytes.Count(before, []byte("\n"))
	col = 1 + len(before) - (bytes.LastIndexByte(before, '\n') + 1)
	return line, col
}

// setAuth files e under key, keeping the entry's other fields (an empty e
// leaves docker's placeholder for credentials a helper holds).
func (c *config) setAuth(key string, e entry) error {
	fields := map[string]json.RawMessage{}
	if raw, ok := c.auths[key]; ok {
		if err := json.Unmarshal(raw, &fields); err != nil {
			return fmt.Errorf("auths[%q]: %s", key, describeJSON(raw, err, "a JSON object"))
		}
		if fields == nil {
			fields = map[string]json.RawMessage{}
		}
	}
	for k := range fields {
		if authFields[strings.ToLower(k)] {
			delete(fields, k)
		}
	}
	switch {
	case e.empty():
	case e.username == "":
		fields["identitytoken"] = jsonString(e.secret)
	default:
		fields["auth"] = jsonString(base64.StdEncoding.EncodeToString([]byte(e.username + ":" + e.secret)))
	}
	raw, err := encode(fields, false)
	if err != nil {
		return err
	}
	c.auths[key] = raw
	c.creds[key] = e
	return c.syncAuths()
}

// deleteAuth drops the auths entry key.
func (c *config) deleteAuth(key string) error {
	delete(c.auths, key)
	delete(c.creds, key)
	return c.syncAuths()
}

func (c *config) syncAuths() error {
	raw, err := encode(c.auths, false)
	if err != nil {
		return err
	}
	c.fields["auths"] = raw
	return nil
}

func jsonString(s string) json.RawMessage {
	b, _ := encode(s, false) // a string always encodes
	return b
}

// encode is json.Marshal without HTML escaping, so what was read ("<token>",
// URLs with &) is written back as it was; indent as docker does.
func encode(v any, indent bool) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if indent {
		enc.SetIndent("", "\t")
	}
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// save writes c to path atomically: a temporary file in the same directory,
// mode 0600, fsynced, renamed over path, the directory fsynced. A symlinked
// config.json stays a symlink: its target is replaced. The directory is
// created 0700 if missing.
func (c *config) save(path string) error {
	data, err := encode(c.fields, true)
	if err != nil {
		return fmt.Errorf("docker config %s: %w", path, err)
	}
	data = append(data, '\n')
	if target, err := filepath.EvalSymlinks(path); err == nil {
		path = target
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("docker config %s: %w", path, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("docker config %s: %w", path, err)
	}
	tmp := f.Name()
	done := false
	defer func() {
		if !done {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("docker config %s: %w", path, err)
	}
	// root editing a user's file (sudo strata login) must leave it the
	// user's, as docker does.
	if fi, err := os.Stat(path); err == nil && os.Geteuid() == 0 {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && (st.Uid != 0 || st.Gid != 0) {
			if err := f.Chown(int(st.Uid), int(st.Gid)); err != nil {
				return fmt.Errorf("docker config %s: %w", path, err)
			}
		}
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("docker config %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("docker config %s: sync: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("docker config %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("docker config %s: %w", path, err)
	}
	done = true
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("docker config %s: sync directory: %w", path, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
