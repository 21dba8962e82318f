package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-oci/strata/server/servertest"
)

// The test binary doubles as the strata binary: with STRATA_TEST_MAIN set
// it runs the CLI, so these tests exercise the real process, exit codes and
// all, as a user's shell does.
func TestMain(m *testing.M) {
	// The shim starts the logger with an environment of its own.
	if os.Getenv("STRATA_TEST_MAIN") == "1" || len(os.Args) > 1 && os.Args[1] == "logger" {
		os.Exit(run(os.Args[1:]))
	}
	if addr := os.Getenv("STRATA_TEST_RUNJOB"); addr != "" {
		os.Exit(runJobMain(addr))
	}
	os.Exit(m.Run())
}

// daemonMode runs every command through a daemon (STRATA_TEST_MODE=daemon,
// as `make test` does in a second pass): each test's store is then served
// by a stratad in this test process and the CLI talks to it with
// --address, so the same tests check that client mode behaves like
// embedded mode.
var daemonMode = os.Getenv("STRATA_TEST_MODE") == "daemon"

// embeddedOnly skips a test that is about embedded mode itself (the lock
// on a root, damage done to the files under a root) when every command
// goes through a daemon.
func embeddedOnly(t *testing.T, why string) {
	if daemonMode {
		t.Skipf("embedded mode only: %s", why)
	}
}

type cli struct {
	t    *testing.T
	root string
	env  []string
	// daemon serves root in daemon mode.
	daemon *servertest.Daemon
	// bare: neither --root nor --address; the command chooses.
	bare bool
}

type result struct {
	stdout, stderr string
	code           int
}

func newCLI(t *testing.T) *cli {
	if daemonMode {
		d := servertest.Start(t)
		return &cli{t: t, root: d.Store.Root, daemon: d}
	}
	return &cli{t: t, root: t.TempDir()}
}

func (c *cli) cmd(stdin io.Reader, args ...string) *exec.Cmd {
	exe, err := os.Executable()
	if err != nil {
		c.t.Fatal(err)
	}
	where := []string{"--root", c.root}
	switch {
	case c.bare:
		where = nil
	case c.daemon != nil:
		where = []string{"--address", c.daemon.Address}
	}
	cmd := exec.Command(exe, append(where, args...)...)
	// GORACE: a -race binary otherwise sleeps a second at every exit.
	cmd.Env = append(append(os.Environ(), "STRATA_TEST_MAIN=1", "GORACE=atexit_sleep_ms=0"), c.env...)
	cmd.Stdin = stdin
	return cmd
}

func (c *cli) runIn(stdin io.Reader, args ...string) result {
	c.t.Helper()
	return runCmd(c.t, c.cmd(stdin, args...))
}

// runCmd runs a strata process to its end: its output and exit code.
func runCmd(t *testing.T, cmd *exec.Cmd) result {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("strata %q: %v", cmd.Args[1:], err)
	}
	return result{out.String(), errb.String(), code}
}

func (c *cli) run(args ...string) result { c.t.Helper(); return c.runIn(nil, args...) }

// ok runs a command that must succeed and returns its stdout.
func (c *cli) ok(args ...string) string {
	c.t.Helper()
	r := c.run(args...)
	if r.code != 0 {
		c.t.Fatalf("strata %q: exit %d, stderr %q", args, r.code, r.stderr)
	}
	return r.stdout
}

func (c *cli) fails(code int, stderrHas string, args ...string) {
	c.t.Helper()
	r := c.run(args...)
	if r.code != code || !strings.Contains(r.stderr, stderrHas) {
		c.t.Fatalf("strata %q: exit %d, stderr %q; want exit %d with %q", args, r.code, r.stderr, code, stderrHas)
	}
}

// collected checks what a removal's garbage collection should have done:
// at once in embedded mode, where the collection runs before the command
// exits; within seconds in daemon mode, where it is scheduled.
func (c *cli) collected(what string, check func() error) {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if c.daemon == nil || time.Now().After(deadline) {
			c.t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func blob(t *testing.T, n int) ([]byte, string) {
	b := make([]byte, n)
	rand.New(rand.NewSource(int64(n))).Read(b)
	sum := sha256.Sum256(b)
	return b, "sha256:" + hex.EncodeToString(sum[:])
}

func TestNamespacesCommands(t *testing.T) {
	c := newCLI(t)
	c.ok("namespaces", "create", "team-a", "owner=alice", "tier=gold")
	c.fails(1, `namespace "team-a": already exists`, "ns", "create", "team-a")
	c.fails(1, "must be letters and digits", "ns", "create", "bad name")
	c.ok("ns", "label", "team-a", "tier=", "env=prod")
	var rows []struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels"`
	}
	if err := json.Unmarshal([]byte(c.ok("ns", "ls", "-o", "json")), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Name != "team-a" || rows[0].Labels["owner"] != "alice" || rows[0].Labels["env"] != "prod" || rows[0].Labels["tier"] != "" {
		t.Fatalf("ns ls -o json = %+v", rows)
	}
	if out := c.ok("ns", "ls"); !strings.Contains(out, "NAME") || !strings.Contains(out, "env=prod,owner=alice") {
		t.Fatalf("ns ls table = %q", out)
	}
	c.ok("ns", "create", "empty")
	r := c.run("ns", "rm", "empty", "missing")
	if r.code != 1 || r.stdout != "empty\n" || !strings.Contains(r.stderr, `namespace "missing": not found`) || !strings.Contains(r.stderr, "1 of 2 namespaces not removed") {
		t.Fatalf("ns rm empty missing = %+v", r)
	}
	if out := c.ok("ns", "ls", "-q"); out != "team-a\n" {
		t.Fatalf("ns ls -q = %q", out)
	}
}

func TestContentIngestResumeAndGC(t *testing.T) {
	c := newCLI(t)
	data, dgst := blob(t, 3<<20+5)
	size := "3145733"

	// An interrupted transfer: the input ends early.
	r := c.runIn(bytes.NewReader(data[:1<<20]), "content", "ingest", "layer-1", "--expected-digest", dgst, "--expected-size", size, "--label", "team=a")
	if r.code != 1 || !strings.Contains(r.stderr, "run the same command again to resume at offset 1048576") {
		t.Fatalf("short ingest = %+v", r)
	}
	var active []struct {
		Ref      string `json:"ref"`
		Offset   int64  `json:"offset"`
		Total    int64  `json:"total"`
		Expected string `json:"expected"`
	}
	if err := json.Unmarshal([]byte(c.ok("content", "active", "-o", "json")), &active); err != nil {
		t.Fatal(err)
	}
	if len(active) != 1 || active[0].Ref != "layer-1" || active[0].Offset != 1<<20 || active[0].Total != int64(len(data)) || active[0].Expected != dgst {
		t.Fatalf("content active = %+v", active)
	}
	// The same command with the whole input resumes.
	r = c.runIn(bytes.NewReader(data), "content", "ingest", "layer-1", "--expected-digest", dgst, "--expected-size", size, "--label", "team=a")
	if r.code != 0 || r.stdout != dgst+"\n" || !strings.Contains(r.stderr, "resuming ingest \"layer-1\" at offset 1048576") {
		t.Fatalf("resumed ingest = %+v", r)
	}
	if out := c.ok("content", "active"); strings.Count(out, "\n") != 1 {
		t.Fatalf("ingests left after commit: %q", out)
	}
	if got := c.ok("content", "get", dgst); got != string(data) {
		t.Fatal("content get returned different bytes")
	}

	// Another namespace gets the blob without sending it again.
	c.env = []string{"STRATA_NAMESPACE=other"}
	r = c.runIn(strings.NewReader(""), "content", "ingest", "x", "--expected-digest", dgst)
	if r.code != 0 || !strings.Contains(r.stdout, "already present") {
		t.Fatalf("ingest of present blob in other namespace = %+v", r)
	}
	c.env = nil

	// Wrong data is refused, nothing becomes visible, the ingest is dropped.
	bad, _ := blob(t, 1000)
	_, otherDgst := blob(t, 1001)
	r = c.runIn(bytes.NewReader(bad), "content", "ingest", "bad", "--expected-digest", otherDgst, "--expected-size", "1000")
	if r.code != 1 || !strings.Contains(r.stderr, "expected "+otherDgst) || !strings.Contains(r.stderr, "ingest aborted") {
		t.Fatalf("bad ingest = %+v", r)
	}
	if out := c.ok("content", "ls", "-q"); out != dgst+"\n" {
		t.Fatalf("content ls -q after refused ingest = %q", out)
	}

	// Labels and filters.
	c.ok("content", "label", dgst, "containerd.io/gc.root=yes", "team=")
	var infos []struct {
		Digest string            `json:"digest"`
		Size   int64             `json:"size"`
		Labels map[string]string `json:"labels"`
	}
	if err := json.Unmarshal([]byte(c.ok("content", "ls", "-o", "json", `labels."containerd.io/gc.root"==yes`)), &infos); err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].Digest != dgst || infos[0].Size != int64(len(data)) || len(infos[0].Labels) != 1 {
		t.Fatalf("content ls with label filter = %+v", infos)
	}
	c.fails(2, `filters: parse "size=="`, "content", "ls", "size==")

	// The CLI's ingests are held by leases that expire in 24 hours: a
	// collection now keeps everything.
	if out := c.ok("gc"); !strings.Contains(out, "removed 0 objects") {
		t.Fatalf("gc right after ingest = %q", out)
	}
	c.ok("-n", "other", "content", "label", dgst, "containerd.io/gc.root=1")
	for _, ns := range []string{"default", "other"} {
		ids := strings.Fields(c.ok("-n", ns, "leases", "ls", "-q"))
		if len(ids) == 0 {
			t.Fatalf("no lease holds the ingested blob in namespace %s", ns)
		}
		c.ok(append([]string{"-n", ns, "leases", "rm"}, ids...)...)
	}
	// The lease removals scheduled a collection (through a daemon it runs
	// 100 ms later, and could run after the label below is removed); an
	// explicit one stands for it, so the dry runs below see what they
	// should whichever goroutine is faster.
	if out := c.ok("gc"); !strings.Contains(out, "removed 0 objects") {
		t.Fatalf("gc with rooted blobs = %q", out)
	}
	// Both records are rooted now.
	if out := c.ok("gc", "--dry-run"); !strings.Contains(out, "would remove 0 objects") {
		t.Fatalf("gc --dry-run with rooted blobs = %q", out)
	}
	c.ok("content", "label", dgst, "containerd.io/gc.root=")
	// Only default's record would go; namespace other keeps the bytes.
	if out := c.ok("gc", "--dry-run"); !strings.Contains(out, "would remove content default/"+dgst) || !strings.Contains(out, "0 blobs") {
		t.Fatalf("gc --dry-run = %q", out)
	}
	var st struct {
		ContentRemoved int   `json:"content_removed"`
		BlobsRemoved   int   `json:"blobs_removed"`
		BytesFreed     int64 `json:"bytes_freed"`
	}
	if err := json.Unmarshal([]byte(c.ok("gc", "-o", "json")), &st); err != nil {
		t.Fatal(err)
	}
	if st.ContentRemoved != 1 || st.BlobsRemoved != 0 || st.BytesFreed != 0 {
		t.Fatalf("gc = %+v, want default's record removed and the blob kept for namespace other", st)
	}
	// Removing the last reference frees the bytes before the command
	// returns: the collection it schedules runs when the store closes.
	blobPath := filepath.Join(c.root, "content", "blobs", "sha256", strings.TrimPrefix(dgst, "sha256:"))
	if _, err := os.Stat(blobPath); err != nil {
		t.Fatalf("blob file before rm: %v", err)
	}
	if out := c.ok("-n", "other", "content", "rm", dgst); out != dgst+"\n" {
		t.Fatalf("content rm printed %q", out)
	}
	c.collected("blob file after its last reference was removed", func() error {
		if _, err := os.Stat(blobPath); !os.IsNotExist(err) {
			return fmt.Errorf("stat: %v", err)
		}
		return nil
	})
	if out := c.ok("gc"); !strings.Contains(out, "removed 0 objects") {
		t.Fatalf("gc after rm = %q", out)
	}
	if out := c.ok("fsck"); !strings.Contains(out, "checked 0 blobs") || !strings.HasSuffix(out, ": ok\n") {
		t.Fatalf("fsck of empty store = %q", out)
	}
}

func TestLeasesCommands(t *testing.T) {
	c := newCLI(t)
	if id := strings.TrimSpace(c.ok("leases", "create", "--id", "build-1", "--expires", "1h", "--label", "who=ci")); id != "build-1" {
		t.Fatalf("leases create printed %q", id)
	}
	gen := strings.TrimSpace(c.ok("leases", "create"))
	if gen == "" || gen == "build-1" {
		t.Fatalf("generated lease id %q", gen)
	}
	var ls []struct {
		ID     string            `json:"id"`
		Labels map[string]string `json:"labels"`
	}
	if err := json.Unmarshal([]byte(c.ok("leases", "ls", "-o", "json", "labels.who==ci")), &ls); err != nil {
		t.Fatal(err)
	}
	if len(ls) != 1 || ls[0].ID != "build-1" || ls[0].Labels["containerd.io/gc.expire"] == "" {
		t.Fatalf("leases ls = %+v", ls)
	}
	c.fails(1, `lease "build-1" in namespace "default": already exists`, "leases", "create", "--id", "build-1")
	if out := c.ok("leases", "rm", "--sync", "build-1", gen); out != "build-1\n"+gen+"\n" {
		t.Fatalf("leases rm = %q", out)
	}
	if out := c.ok("leases", "ls", "-q"); out != "" {
		t.Fatalf("leases left: %q", out)
	}
}

func TestFsckDamage(t *testing.T) {
	c := newCLI(t)
	data, dgst := blob(t, 4096)
	c.runIn(bytes.NewReader(data), "content", "ingest", "b", "--expected-digest", dgst)
	path := filepath.Join(c.root, "content", "blobs", "sha256", strings.TrimPrefix(dgst, "sha256:"))
	os.Chmod(path, 0o644)
	data[10] ^= 1
	if err := os.WriteFile(path, data, 0o444); err != nil {
		t.Fatal(err)
	}
	r := c.run("fsck")
	if r.code != 1 || !strings.Contains(r.stdout, "DAMAGE   corrupt-blob") || !strings.Contains(r.stdout, "DAMAGED") {
		t.Fatalf("fsck of a corrupt blob = %+v", r)
	}
	r = c.run("fsck", "--repair")
	if r.code != 0 || !strings.Contains(r.stdout, "repaired corrupt-blob") {
		t.Fatalf("fsck --repair = %+v", r)
	}
	if out := c.ok("fsck"); !strings.HasSuffix(out, ": ok\n") {
		t.Fatalf("fsck after repair = %q", out)
	}
	if out := c.ok("content", "ls", "-q"); out != "" {
		t.Fatalf("corrupt blob still listed after repair: %q", out)
	}
}

func TestUsageAndErrors(t *testing.T) {
	c := newCLI(t)
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"unknown-command", []string{"frobnicate"}, 2, "unknown command"},
		{"unknown-flag", []string{"content", "ls", "--bogus"}, 2, "unknown flag"},
		{"missing-arg", []string{"content", "get"}, 2, "takes 1 argument(s), got 0"},
		{"bad-digest", []string{"content", "get", "sha256:abc"}, 2, `digest "sha256:abc"`},
		{"no-expected", []string{"content", "ingest", "r"}, 2, "--expected-digest is required"},
		{"bad-output", []string{"-o", "yaml", "ns", "ls"}, 2, `--output "yaml"`},
		{"bad-namespace", []string{"-n", "a b", "content", "ls"}, 2, `namespace "a b"`},
		{"bad-label", []string{"ns", "create", "x", "=v"}, 2, `label "=v": want key=value`},
		{"absent-blob", []string{"content", "get", "sha256:" + strings.Repeat("ab", 32)}, 1, "not found"},
		{"bad-log-level", []string{"--log-level", "loud", "version"}, 2, "--log-level"},
		{"unknown-subcommand", []string{"content", "bogus"}, 2, `unknown subcommand "bogus"`},
		{"missing-subcommand", []string{"leases"}, 2, "needs a subcommand"},
		{"bad-filter", []string{"content", "ls", "labels."}, 2, `filters: parse "labels."`},
		{"negative-size", []string{"content", "ingest", "r", "--expected-digest", "sha256:" + strings.Repeat("ab", 32), "--expected-size", "-5"}, 2, "must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) { c.fails(tc.code, tc.msg, tc.args...) })
	}
	if out := c.ok("version"); !strings.HasPrefix(out, "strata ") {
		t.Fatalf("version = %q", out)
	}
}

// TestStoreLocked: a second strata command on a root another one holds
// waits for it, saying who holds it, and gets the store once it is free;
// --lock-timeout bounds the wait with an error naming the holder.
func TestStoreLocked(t *testing.T) {
	embeddedOnly(t, "the lock on a root opened in-process")
	c := newCLI(t)
	_, dgst := blob(t, 10)
	pr, pw := io.Pipe()
	holder := c.cmd(pr, "content", "ingest", "slow", "--expected-digest", dgst)
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { pw.Close(); holder.Process.Kill(); holder.Wait() }()
	pw.Write([]byte("x")) // the holder has the store open once it reads
	want := fmt.Sprintf("locked by another process (pid %d: strata content ingest); gave up waiting", holder.Process.Pid)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := c.run("--lock-timeout", "200ms", "content", "ls")
		if r.code == 1 && strings.Contains(r.stderr, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("content ls --lock-timeout while another strata holds the store = %+v, want %q", r, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.fails(2, "--lock-timeout", "--lock-timeout", "-1s", "content", "ls")

	// Without a bound it waits, says for whom, and runs once the holder is
	// gone.
	waiter := c.cmd(nil, "content", "ls", "-q")
	var stdout bytes.Buffer
	waiter.Stdout = &stdout
	stderr, err := waiter.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := waiter.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { waiter.Process.Kill(); waiter.Wait() }()
	line, err := bufio.NewReader(stderr).ReadString('\n')
	if err != nil || !strings.Contains(line, fmt.Sprintf("waiting for the store at %s, held by pid %d: strata content ingest", c.root, holder.Process.Pid)) {
		t.Fatalf("first line of a waiting command = %q, %v", line, err)
	}
	pw.Close() // the holder's input ends: it stops, keeping its ingest
	holder.Wait()
	go io.Copy(io.Discard, stderr)
	if err := waiter.Wait(); err != nil {
		t.Fatalf("content ls after the holder finished: %v", err)
	}
}

// TestIngestInterrupt: Ctrl-C stops an ingest that is waiting on its input,
// promptly, and the same command then resumes where it stopped.
func TestIngestInterrupt(t *testing.T) {
	c := newCLI(t)
	data, dgst := blob(t, 4<<20)
	// An OS pipe, so that Wait does not also wait for a copying goroutine.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := c.cmd(pr, "content", "ingest", "slow", "--expected-digest", dgst)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pr.Close()
	t.Cleanup(func() { pw.Close(); cmd.Process.Kill(); cmd.Wait() })
	if _, err := pw.Write(data[:2<<20]); err != nil {
		t.Fatal(err)
	}
	// Wait until the first 2 MiB are on disk.
	deadline := time.Now().Add(10 * time.Second)
	for {
		files, _ := filepath.Glob(filepath.Join(c.root, "content", "ingest", "*", "data"))
		if len(files) == 1 {
			if fi, err := os.Stat(files[0]); err == nil && fi.Size() >= 2<<20 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("ingest data never reached 2 MiB")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(errb.String(), "interrupted") {
			t.Fatalf("interrupted ingest: %v, stderr %q; want exit 1 saying interrupted", err, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ingest did not stop within 10s of SIGINT while waiting on its input")
	}
	r := c.runIn(bytes.NewReader(data), "content", "ingest", "slow", "--expected-digest", dgst)
	if r.code != 0 || !strings.Contains(r.stderr, "resuming ingest \"slow\" at offset 2097152") {
		t.Fatalf("resume after interrupt = %+v", r)
	}
	if got := c.ok("content", "get", dgst); got != string(data) {
		t.Fatal("resumed blob differs")
	}
}
