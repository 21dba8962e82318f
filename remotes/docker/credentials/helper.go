package credentials

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/containerd/errdefs"
)

// helperTimeout bounds one helper call: a keychain that waits for a click
// nobody makes must not hang a pull.
const helperTimeout = 30 * time.Second

// maxHelperOutput bounds what a helper may print.
const maxHelperOutput = 1 << 20

// maxHelperMessage bounds how much of a failing helper's message an error
// carries.
const maxHelperMessage = 1 << 10

// notFoundMessage is what docker-credential-helpers print (on stdout, exit
// status 1) when they hold nothing for a server.
const notFoundMessage = "credentials not found in native keychain"

// tokenUsername in a helper's Username says the Secret is an identity token.
const tokenUsername = "<token>"

// errNoCredentials is a helper saying it holds nothing for the server.
var errNoCredentials = errors.New("credentials: helper has no credentials")

// helperCredentials is the protocol's JSON, both ways.
type helperCredentials struct {
	ServerURL string
	Username  string
	Secret    string
}

// helper runs docker-credential-<name>.
type helper string

func (h helper) program() string { return "docker-credential-" + string(h) }

// get asks the helper for serverURL's credentials: ("", token) for an
// identity token, errNoCredentials when it has none.
func (h helper) get(ctx context.Context, serverURL string) (username, secret string, err error) {
	out, err := h.run(ctx, "get", []byte(serverURL), "")
	if err != nil {
		return "", "", err
	}
	out = bytes.TrimSpace(out)
	if len(out) == 0 || string(out) == notFoundMessage {
		// Some helpers answer for the servers they know and exit 0 silently
		// for the others.
		return "", "", errNoCredentials
	}
	var c helperCredentials
	if err := json.Unmarshal(out, &c); err != nil {
		return "", "", fmt.Errorf("credential helper %s get %s: answer is not the credentials JSON (%s)", h.program(), serverURL, describeJSON(out, err, "a JSON object"))
	}
	switch {
	case c.Username == "" && c.Secret == "":
		return "", "", errNoCredentials
	case c.Username == tokenUsername:
		return "", c.Secret, nil
	default:
		return c.Username, c.Secret, nil
	}
}

// store hands the helper serverURL's credentials; an empty username makes
// secret an identity token.
func (h helper) store(ctx context.Context, serverURL, username, secret string) error {
	if username == "" {
		username = tokenUsername
	}
	in, err := encode(helperCredentials{ServerURL: serverURL, Username: username, Secret: secret}, false)
	if err != nil {
		return err
	}
	_, err = h.run(ctx, "store", in, secret)
	return err
}

// erase makes the helper forget serverURL; errNoCredentials when it held
// nothing (as far as the helper says: some succeed either way).
func (h helper) erase(ctx context.Context, serverURL string) error {
	_, err := h.run(ctx, "erase", []byte(serverURL), "")
	return err
}

// run runs the helper with action, input on stdin, and returns its stdout.
// Errors name the program, the action and the helper's own message (stderr,
// or stdout where helpers print it) with secret, when known, cut out.
func (h helper) run(ctx context.Context, action string, input []byte, secret string) ([]byte, error) {
	prog := h.program()
	if h == "" || strings.ContainsAny(string(h), `/\`) || strings.TrimSpace(string(h)) != string(h) {
		return nil, fmt.Errorf("credential helper %q: invalid name: %w", string(h), errdefs.ErrInvalidArgument)
	}
	path, err := exec.LookPath(prog)
	if errors.Is(err, exec.ErrNotFound) {
		return nil, fmt.Errorf("credential helper %s: not found in $PATH: %w", prog, errdefs.ErrFailedPrecondition)
	}
	if err != nil {
		return nil, fmt.Errorf("credential helper %s: %w", prog, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("credential helper %s %s: %w", prog, action, err)
	}
	runCtx, cancel := context.WithTimeout(ctx, helperTimeout)
	defer cancel()
	cmd := exec.CommandContext(runCtx, path, action)
	cmd.Stdin = bytes.NewReader(input)
	var stdout, stderr capped
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// A helper's children may keep its stdout open after it is killed.
	cmd.WaitDelay = 2 * time.Second
	err = cmd.Run()
	if ctxErr := ctx.Err(); ctxErr != nil {
		return nil, fmt.Errorf("credential helper %s %s: %w", prog, action, ctxErr)
	}
	if runCtx.Err() != nil {
		return nil, fmt.Errorf("credential helper %s %s: no answer within %s: %w", prog, action, helperTimeout, runCtx.Err())
	}
	if stdout.over || stderr.over {
		return nil, fmt.Errorf("credential helper %s %s: output larger than %d bytes: %w", prog, action, maxHelperOutput, errdefs.ErrInvalidArgument)
	}
	if err != nil {
		if notFound(stdout.buf.Bytes()) || notFound(stderr.buf.Bytes()) {
			return nil, errNoCredentials
		}
		if msg := helperMessage(stdout.buf.Bytes(), stderr.buf.Bytes(), secret); msg != "" {
			return nil, fmt.Errorf("credential helper %s %s: %w: %s", prog, action, err, msg)
		}
		return nil, fmt.Errorf("credential helper %s %s: %w", prog, action, err)
	}
	return stdout.buf.Bytes(), nil
}

func notFound(out []byte) bool {
	return bytes.Contains(out, []byte(notFoundMessage))
}

// helperMessage is what a failing helper said: its stderr, else its stdout
// (docker-credential-helpers print errors there) unless that looks like
// credentials. Lines holding a piece of secret are withheld: a helper may
// echo its input.
func helperMessage(stdout, stderr []byte, secret string) string {
	msg := strings.TrimSpace(string(stderr))
	if msg == "" {
		out := strings.TrimSpace(string(stdout))
		if !strings.HasPrefix(out, "{") && !strings.Contains(strings.ToLower(out), "secret") {
			msg = out
		}
	}
	// One line, for logs.
	var lines []string
	for _, line := range strings.Split(msg, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "":
		case secret != "" && holdsPart(line, secret):
			lines = append(lines, "<withheld>")
		default:
			lines = append(lines, line)
		}
	}
	msg = strings.Join(lines, "; ")
	if len(msg) > maxHelperMessage {
		msg = strings.ToValidUTF8(msg[:maxHelperMessage], "") + "…"
	}
	return msg
}

// unquote drops what quoting adds, so a secret matches however a helper
// escaped it (JSON, a shell's echo).
var unquote = strings.NewReplacer(`\`, "", `"`, "", `'`, "")

// holdsPart reports whether line holds any 8 consecutive bytes of secret
// (all of a shorter one), compared without quotes and backslashes.
func holdsPart(line, secret string) bool {
	if strings.Contains(line, secret) {
		return true
	}
	line, secret = unquote.Replace(line), unquote.Replace(secret)
	k := min(len(secret), 8)
	for i := 0; k > 0 && i+k <= len(secret); i++ {
		if strings.Contains(line, secret[i:i+k]) {
			return true
		}
	}
	return false
}

// capped keeps the first maxHelperOutput bytes written to it and notes
// whether more came; it never fails a write, so the helper never blocks.
type capped struct {
	buf  bytes.Buffer
	over bool
}

func (c *capped) Write(p []byte) (int, error) {
	if room := maxHelperOutput - c.buf.Len(); len(p) > room {
		c.buf.Write(p[:max(room, 0)])
		c.over = true
		return len(p), nil
	}
	return c.buf.Write(p)
}
