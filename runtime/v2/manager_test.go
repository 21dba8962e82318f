package v2

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/containerd/api/types"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/strata-oci/strata/mount"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/testutil"
)

type env struct {
	m      *Manager
	events chan *types.Envelope
	state  string
	runc   string // runc's root (Config.RuncRoot)
	addr   string
}

func requireShim(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("running tasks needs root")
	}
	if _, err := resolveBinary("io.containerd.runc.v2", ""); err != nil {
		t.Fatalf("%v (install Debian's containerd: scripts/deps.sh)", err)
	}
}

func newEnv(t *testing.T) *env {
	t.Helper()
	requireShim(t)
	dir, err := os.MkdirTemp("", "strata-rt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	e := &env{events: make(chan *types.Envelope, 100), state: filepath.Join(dir, "state"), runc: filepath.Join(dir, "runc"), addr: filepath.Join(dir, "s.sock")}
	e.m = e.open(t)
	return e
}

func (e *env) open(t *testing.T) *Manager {
	m, err := New(Config{State: e.state, RuncRoot: e.runc, Address: e.addr, Logger: testutil.Logger(t),
		Events: func(ctx context.Context, env *types.Envelope) error { e.events <- env; return nil }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// waitEvent returns the next event on topic, failing after a minute.
func (e *env) waitEvent(t *testing.T, topic string) *types.Envelope {
	t.Helper()
	deadline := time.After(time.Minute)
	for {
		select {
		case env := <-e.events:
			if env.Topic == topic {
				return env
			}
		case <-deadline:
			t.Fatalf("no %s event", topic)
		}
	}
}

// busyboxMounts is a bind mount of a busybox tree, the rootfs of a task.
func busyboxMounts(t *testing.T) []*types.Mount {
	dir := t.TempDir()
	testutil.BusyboxRootfs(t, dir)
	return []*types.Mount{{Type: "bind", Source: dir, Options: []string{"rbind", "rw"}}}
}

// shimPid asks a task's shim for its pid, and makes sure the shim ends
// with the test (it was started by the test).
func shimPid(t *testing.T, task *Task) int {
	t.Helper()
	c, err := task.API().Connect(context.Background(), &taskapi.ConnectRequest{ID: task.ID})
	if err != nil {
		t.Fatalf("shim pid: %v", err)
	}
	pid := int(c.ShimPid)
	t.Cleanup(func() {
		if unix.Kill(pid, 0) == nil {
			unix.Kill(pid, unix.SIGKILL)
		}
	})
	return pid
}

// waitGone waits for a process to end (the shim's exit after Shutdown).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	for i := 0; i < 600; i++ {
		if err := unix.Kill(pid, 0); errors.Is(err, unix.ESRCH) {
			return
		}
		b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
		if f := strings.Fields(string(b)); len(f) > 2 && f[2] == "Z" {
			return // ended; its parent (init) reaps it
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("process %d still runs", pid)
}

// checkClean fails when a bundle or a mount of e's state is left.
func (e *env) checkClean(t *testing.T) {
	t.Helper()
	left, err := mount.Under(e.state)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("mounts left: %v", left)
		mount.UnmountUnder(e.state)
	}
	filepath.WalkDir(e.state, func(p string, d os.DirEntry, err error) error {
		if p != e.state && err == nil {
			t.Errorf("left in the state directory: %s", p)
		}
		return nil
	})
	nss, _ := os.ReadDir(e.runc)
	for _, ns := range nss {
		ids, _ := os.ReadDir(filepath.Join(e.runc, ns.Name()))
		for _, id := range ids {
			t.Errorf("runc state left: %s/%s", ns.Name(), id.Name())
		}
	}
}

// TestRuncRootPerManager: two managers (two daemons) run a task of the
// same namespace and id at once, each in its own runc root; with runc's
// host-wide default the second create failed ("container with given ID
// already exists") and the first's cleanup could delete the second's.
func TestRuncRootPerManager(t *testing.T) {
	ctx := namespaces.WithNamespace(context.Background(), "strata-test")
	var envs []*env
	for i := 0; i < 2; i++ {
		e := newEnv(t)
		task, err := e.m.Create(ctx, CreateOpts{ID: "same", Runtime: "io.containerd.runc.v2",
			Spec: testutil.TaskSpec(t, "sleep", "600"), Rootfs: busyboxMounts(t)})
		if err != nil {
			t.Fatalf("manager %d: %v", i, err)
		}
		shimPid(t, task)
		if _, err := task.API().Start(ctx, &taskapi.StartRequest{ID: "same"}); err != nil {
			t.Fatalf("manager %d: start: %v", i, err)
		}
		envs = append(envs, e)
	}
	for i, e := range envs {
		if s := e.runcStatus("strata-test", "same"); s != "running" {
			t.Errorf("manager %d's task is %s in its runc root, want running", i, s)
		}
	}
	for i, e := range envs {
		task, err := e.m.Get(ctx, "same")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := task.API().Kill(ctx, &taskapi.KillRequest{ID: "same", Signal: 9}); err != nil {
			t.Fatalf("manager %d: kill: %v", i, err)
		}
		if _, err := task.API().Wait(ctx, &taskapi.WaitRequest{ID: "same"}); err != nil {
			t.Fatalf("manager %d: wait: %v", i, err)
		}
		if _, err := e.m.Delete(ctx, "same"); err != nil {
			t.Fatalf("manager %d: delete: %v", i, err)
		}
		e.checkClean(t)
	}
}

// TestRunTask runs a task to its end under Debian's runc shim (containerd
// 1.6, task API v2) and containerd 2.4's (task API v3): events, exit
// status, stdout, and nothing left after Delete.
func TestRunTask(t *testing.T) {
	for _, tc := range []struct {
		name    string
		path    func(t *testing.T) string
		version int
	}{
		{"containerd1.6", func(*testing.T) string { return "" }, 2},
		{"containerd2.4", func(t *testing.T) string { return testutil.Tool(t, "containerd-shim-runc-v2", "v2.4.2") }, 3},
	} {
		t.Run(tc.name, func(t *testing.T) { runTask(t, tc.path(t), tc.version) })
	}
}

func runTask(t *testing.T, shim string, version int) {
	e := newEnv(t)
	ctx := namespaces.WithNamespace(context.Background(), "strata-test")
	out := filepath.Join(t.TempDir(), "out")
	task, err := e.m.Create(ctx, CreateOpts{ID: "echo", Runtime: "io.containerd.runc.v2", RuntimePath: shim,
		Spec: testutil.TaskSpec(t, "sh", "-c", "echo hi; exit 3"), Rootfs: busyboxMounts(t), Stdout: "file://" + out, Stderr: "file://" + out + ".err"})
	if err != nil {
		t.Fatal(err)
	}
	pid := shimPid(t, task)
	if task.Version != version {
		t.Errorf("task API v%d, want v%d", task.Version, version)
	}
	e.waitEvent(t, "/tasks/create")
	if _, err := task.API().Start(ctx, &taskapi.StartRequest{ID: "echo"}); err != nil {
		t.Fatal(err)
	}
	e.waitEvent(t, "/tasks/start")
	w, err := task.API().Wait(ctx, &taskapi.WaitRequest{ID: "echo"})
	if err != nil {
		t.Fatal(err)
	}
	if w.ExitStatus != 3 {
		t.Errorf("exit status %d, want 3", w.ExitStatus)
	}
	exit := e.waitEvent(t, "/tasks/exit")
	var ev apievents.TaskExit
	if err := exit.Event.UnmarshalTo(&ev); err != nil || ev.ExitStatus != 3 || exit.Namespace != "strata-test" {
		t.Errorf("exit event %v (%v) in %q, want status 3 in strata-test", &ev, err, exit.Namespace)
	}
	st, err := task.API().State(ctx, &taskapi.StateRequest{ID: "echo"})
	if err != nil || st.Status != tasktypes.Status_STOPPED {
		t.Errorf("State = %v, %v; want STOPPED", st, err)
	}
	if b, _ := os.ReadFile(out); string(b) != "hi\n" {
		t.Errorf("stdout %q, want hi", b)
	}
	d, err := e.m.Delete(ctx, "echo")
	if err != nil {
		t.Fatal(err)
	}
	if d.ExitStatus != 3 {
		t.Errorf("Delete: exit status %d, want 3", d.ExitStatus)
	}
	e.waitEvent(t, "/tasks/delete")
	waitGone(t, pid)
	if _, err := e.m.Get(ctx, "echo"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Get after Delete: %v, want not found", err)
	}
	e.checkClean(t)
}

func TestCreateFails(t *testing.T) {
	e := newEnv(t)
	ctx := namespaces.WithNamespace(context.Background(), "strata-test")
	bad := testutil.TaskSpec(t, "sh")
	var s specs.Spec
	json.Unmarshal(bad.Value, &s)
	s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "bogus"})
	bad.Value, _ = json.Marshal(s)
	for _, tc := range []struct {
		name string
		o    CreateOpts
		want error
		msg  string
	}{
		{"shim not installed", CreateOpts{ID: "a", Runtime: "io.containerd.nosuch.v1", Spec: testutil.TaskSpec(t, "true")}, errdefs.ErrNotFound, "containerd-shim-nosuch-v1"},
		{"bad runtime name", CreateOpts{ID: "a", Runtime: "runc", Spec: testutil.TaskSpec(t, "true")}, errdefs.ErrInvalidArgument, "runc"},
		{"no spec", CreateOpts{ID: "a", Runtime: "io.containerd.runc.v2"}, errdefs.ErrInvalidArgument, "spec"},
		{"bad id", CreateOpts{ID: "../a", Runtime: "io.containerd.runc.v2", Spec: testutil.TaskSpec(t, "true")}, errdefs.ErrInvalidArgument, "../a"},
		{"spec runc rejects", CreateOpts{ID: "bogus", Runtime: "io.containerd.runc.v2", Spec: bad, Rootfs: busyboxMounts(t)}, nil, "bogus"},
		{"rootfs gone", CreateOpts{ID: "gone", Runtime: "io.containerd.runc.v2", Spec: testutil.TaskSpec(t, "true"),
			Rootfs: []*types.Mount{{Type: "bind", Source: "/nonexistent/strata", Options: []string{"rbind"}}}}, nil, "gone"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.m.Create(ctx, tc.o)
			if err == nil {
				e.m.Delete(ctx, tc.o.ID)
				t.Fatal("Create succeeded")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("Create: %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("Create: %v, want it to name %q", err, tc.msg)
			}
			t.Logf("Create: %v", err)
			e.checkClean(t)
		})
	}
}

func TestParseBootstrap(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     Bootstrap
		err      bool
	}{
		{"plain", "unix:///run/containerd/s/abc\n", Bootstrap{2, "unix:///run/containerd/s/abc", "ttrpc"}, false},
		{"json v3", `{"version":3,"address":"unix:///x","protocol":"ttrpc"}`, Bootstrap{3, "unix:///x", "ttrpc"}, false},
		{"json v2", `{"version":2,"address":"unix:///x","protocol":"ttrpc"}`, Bootstrap{2, "unix:///x", "ttrpc"}, false},
		{"protobuf", "\x08\x03\x12\x09unix:///x\x1a\x05ttrpc", Bootstrap{3, "unix:///x", "ttrpc"}, false},
		{"too new", `{"version":4,"address":"unix:///x","protocol":"ttrpc"}`, Bootstrap{}, true},
		{"grpc", `{"version":3,"address":"unix:///x","protocol":"grpc"}`, Bootstrap{}, true},
		{"empty", "", Bootstrap{}, true},
		{"garbage", "\xff\xfe", Bootstrap{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseBootstrap([]byte(tc.in))
			if (err != nil) != tc.err || (!tc.err && got != tc.want) {
				t.Errorf("parseBootstrap(%q) = %v, %v; want %v (error %v)", tc.in, got, err, tc.want, tc.err)
			}
		})
	}
}

// TestShimDies kills a task's shim while the manager is connected: the
// task is cleaned up at once (runc's container, the bundle, the mount),
// with an exit and a delete event, and is no longer listed.
func TestShimDies(t *testing.T) {
	e := newEnv(t)
	ctx := namespaces.WithNamespace(context.Background(), "strata-test")
	task, err := e.m.Create(ctx, CreateOpts{ID: "victim", Runtime: "io.containerd.runc.v2", Spec: testutil.TaskSpec(t, "sleep", "1000"),
		Rootfs: busyboxMounts(t), Stdout: "file:///dev/null", Stderr: "file:///dev/null"})
	if err != nil {
		t.Fatal(err)
	}
	pid := shimPid(t, task)
	if _, err := task.API().Start(ctx, &taskapi.StartRequest{ID: "victim"}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Kill(pid, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	exit := e.waitEvent(t, TopicTaskExit)
	var ev apievents.TaskExit
	if err := exit.Event.UnmarshalTo(&ev); err != nil || ev.ContainerID != "victim" {
		t.Errorf("exit event %v, %v", &ev, err)
	}
	e.waitEvent(t, TopicTaskDelete)
	// The delete event comes before the bundle goes: wait for the cleanup.
	for i := 0; ; i++ {
		if _, err := e.m.Get(ctx, "victim"); errors.Is(err, errdefs.ErrNotFound) {
			break
		}
		if i > 600 {
			t.Fatal("the task whose shim died is still listed")
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.m.background.Wait()
	if s := e.runcStatus("strata-test", "victim"); s != "gone" {
		t.Errorf("runc still has the container (%s)", s)
	}
	e.checkClean(t)
}

// TestBundleClosed: a task's bundle is root's alone (0700, as containerd's
// since CVE-2021-41103): its rootfs is the container's root filesystem,
// where the container's root may have left a setuid-root program, so a
// user of the host must not be able to reach it through the bundle even
// when the state directory above can be traversed.
func TestBundleClosed(t *testing.T) {
	e := newEnv(t)
	// The state directory's parent open to all, as /run or /var/lib are.
	if err := os.Chmod(filepath.Dir(e.state), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx := namespaces.WithNamespace(context.Background(), "strata-test")
	task, err := e.m.Create(ctx, CreateOpts{ID: "closed", Runtime: "io.containerd.runc.v2", Spec: testutil.TaskSpec(t, "true"),
		Rootfs: busyboxMounts(t), Stdout: "file:///dev/null", Stderr: "file:///dev/null"})
	if err != nil {
		t.Fatal(err)
	}
	shimPid(t, task)
	t.Cleanup(func() { e.m.Delete(ctx, "closed") })
	st, err := os.Stat(task.Bundle)
	if err != nil {
		t.Fatal(err)
	}
	if mode := st.Mode().Perm(); mode != 0o700 {
		t.Errorf("bundle mode %o, want 700", mode)
	}
	busybox := filepath.Join(task.Bundle, "rootfs", "bin", "busybox")
	if _, err := os.Stat(busybox); err != nil {
		t.Fatalf("the rootfs is not mounted in the bundle: %v", err)
	}
	nobody := testutil.AsNobody(t, "peek")
	if out, err := nobody([]string{"STRATA_TEST_PEEK=" + busybox}).CombinedOutput(); err == nil {
		t.Errorf("nobody opened %s through the bundle", busybox)
	} else {
		t.Logf("nobody: %s", out)
	}

	// A bundle an older daemon made open is closed when it is loaded.
	if err := os.Chmod(task.Bundle, 0o711); err != nil {
		t.Fatal(err)
	}
	e.m.Close()
	e.m = e.open(t)
	if err := e.m.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(task.Bundle); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("bundle of an older daemon after Load: %v, %v; want mode 700", st.Mode(), err)
	}
}
