package oci

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/containerd/errdefs"
)

// maxEnvFile bounds an --env-file: it is read whole.
const maxEnvFile = 1 << 20

// environment merges, later wins by key and keeps the first position: the
// image's env, the env files, -e; then what docker adds when absent: PATH,
// HOSTNAME, TERM (with a terminal) and HOME (the user's).
func environment(opts Options, hostname, home string) ([]string, error) {
	var env envList
	for _, kv := range opts.Image.Env {
		env.set(kv)
	}
	for _, f := range opts.EnvFiles {
		entries, err := ReadEnvFile(f)
		if err != nil {
			return nil, err
		}
		for _, kv := range entries {
			env.set(kv)
		}
	}
	for _, kv := range opts.Env {
		k, _, ok := strings.Cut(kv, "=")
		if k == "" || strings.IndexFunc(k, unicode.IsSpace) >= 0 {
			return nil, fmt.Errorf("oci: env %q: the name is empty or has white space: %w", kv, errdefs.ErrInvalidArgument)
		}
		if !ok {
			return nil, fmt.Errorf("oci: env %q: not KEY=VALUE (a bare name is resolved by the client): %w", kv, errdefs.ErrInvalidArgument)
		}
		env.set(kv)
	}
	env.setDefault("PATH=" + DefaultPath)
	env.setDefault("HOSTNAME=" + hostname)
	if opts.TTY {
		env.setDefault("TERM=xterm")
	}
	env.setDefault("HOME=" + home)
	return env, nil
}

type envList []string

func (e *envList) index(key string) int {
	for i, kv := range *e {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			return i
		}
	}
	return -1
}

func (e *envList) set(kv string) {
	k, _, _ := strings.Cut(kv, "=")
	if i := e.index(k); i >= 0 {
		(*e)[i] = kv
		return
	}
	*e = append(*e, kv)
}

func (e *envList) setDefault(kv string) {
	k, _, _ := strings.Cut(kv, "=")
	if e.index(k) < 0 {
		*e = append(*e, kv)
	}
}

// ReadEnvFile reads a docker --env-file: one KEY=VALUE per line, the value
// taken as it is (no quotes, no expansion), blank lines and lines starting
// with # skipped, leading white space ignored. A bare KEY takes the value
// of the calling process's environment and is dropped when unset, as
// docker's client does. A name with white space, or a file that is not
// UTF-8 text, is ErrInvalidArgument naming the file and line.
func ReadEnvFile(name string) ([]string, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("oci: env file %s: %w", name, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxEnvFile+1))
	if err != nil {
		return nil, fmt.Errorf("oci: env file %s: %w", name, err)
	}
	if len(data) > maxEnvFile {
		return nil, fmt.Errorf("oci: env file %s: larger than %d bytes: %w", name, maxEnvFile, errdefs.ErrInvalidArgument)
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), maxEnvFile)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimLeftFunc(sc.Text(), unicode.IsSpace)
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		if !utf8.ValidString(text) {
			return nil, fmt.Errorf("oci: env file %s line %d: not UTF-8 text: %w", name, line, errdefs.ErrInvalidArgument)
		}
		k, _, ok := strings.Cut(text, "=")
		if k == "" || strings.IndexFunc(k, unicode.IsSpace) >= 0 {
			return nil, fmt.Errorf("oci: env file %s line %d: name %q is empty or has white space: %w", name, line, k, errdefs.ErrInvalidArgument)
		}
		if ok {
			out = append(out, text)
		} else if v, found := os.LookupEnv(k); found {
			out = append(out, k+"="+v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("oci: env file %s: %w", name, err)
	}
	return out, nil
}
