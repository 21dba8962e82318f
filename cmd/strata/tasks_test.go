package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/api/types"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/strata-oci/strata/containers"
	"github.com/strata-oci/strata/internal/testutil"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/server/servertest"
)

// TestTasksCommands: strata tasks ls, ps, exec and kill on a busybox task
// the daemon runs; without a daemon there are no tasks to see.
func TestTasksCommands(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("running tasks needs root")
	}
	embedded := newCLI(t)
	if !daemonMode {
		embedded.fails(1, "tasks run under stratad", "tasks", "ls")
	}
	d := servertest.StartTasks(t)
	c := &cli{t: t, root: d.Store.Root, daemon: d}
	const ns = "strata-cli"
	c.env = []string{namespaces.EnvVar + "=" + ns}
	sctx := namespaces.WithNamespace(context.Background(), ns)
	ctx := metadata.AppendToOutgoingContext(context.Background(), namespaces.GRPCHeader, ns)
	rootfs := t.TempDir()
	testutil.BusyboxRootfs(t, rootfs)
	s := specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{Args: []string{"sleep", "1000"}, Cwd: "/", Env: []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "WHO=task"}},
		Root:    &specs.Root{Path: "rootfs"},
		Mounts:  []specs.Mount{{Destination: "/proc", Type: "proc", Source: "proc"}},
		Linux:   &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: "pid"}, {Type: "ipc"}, {Type: "uts"}, {Type: "mount"}}},
	}
	sb, _ := json.Marshal(s)
	if _, err := d.Store.DB.Containers().Create(sctx, containers.Container{ID: "box", Runtime: containers.RuntimeInfo{Name: "io.containerd.runc.v2"},
		Spec: &anypb.Any{TypeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Spec", Value: sb}}); err != nil {
		t.Fatal(err)
	}
	tc := tasksapi.NewTasksClient(d.Conn)
	if _, err := tc.Create(ctx, &tasksapi.CreateTaskRequest{ContainerID: "box", Stdout: "file:///dev/null", Stderr: "file:///dev/null",
		Rootfs: []*types.Mount{{Type: "bind", Source: rootfs, Options: []string{"rbind", "rw"}}}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		tc.Kill(ctx, &tasksapi.KillRequest{ContainerID: "box", Signal: 9, All: true})
		tc.Wait(ctx, &tasksapi.WaitRequest{ContainerID: "box"})
		tc.Delete(ctx, &tasksapi.DeleteTaskRequest{ContainerID: "box"})
	})
	if _, err := tc.Start(ctx, &tasksapi.StartRequest{ContainerID: "box"}); err != nil {
		t.Fatal(err)
	}

	plugins := c.ok("plugins", "ls")
	for _, want := range []string{"io.containerd.runtime.v2", "io.containerd.grpc.v1"} {
		found := false
		for _, l := range strings.Split(plugins, "\n") {
			f := strings.Fields(l)
			found = found || len(f) >= 2 && f[0] == want && (f[1] == "task" || f[1] == "tasks")
		}
		if !found {
			t.Errorf("plugins ls lacks the %s tasks row:\n%s", want, plugins)
		}
	}
	ls := strings.Split(strings.TrimSpace(c.ok("tasks", "ls")), "\n")
	if len(ls) != 2 || strings.Join(strings.Fields(ls[0]), " ") != "TASK PID STATUS" {
		t.Fatalf("tasks ls:\n%s", strings.Join(ls, "\n"))
	}
	if f := strings.Fields(ls[1]); len(f) != 3 || f[0] != "box" || f[2] != "RUNNING" {
		t.Errorf("tasks ls row %q, want box <pid> RUNNING", ls[1])
	}
	if got := c.ok("t", "ls", "-q", "status==RUNNING"); got != "box\n" {
		t.Errorf("tasks ls -q status==RUNNING = %q", got)
	}
	if ps := strings.Fields(c.ok("tasks", "ps", "box")); len(ps) < 2 || ps[0] != "PID" {
		t.Errorf("tasks ps box: %q", ps)
	}
	// exec: the task's environment, our stdout and stderr, its exit status.
	r := c.run("tasks", "exec", "box", "sh", "-c", "echo $WHO; echo oops >&2; exit 6")
	if r.code != 6 || r.stdout != "task\n" || r.stderr != "oops\n" {
		t.Errorf("tasks exec: exit %d, stdout %q, stderr %q; want 6, task, oops", r.code, r.stdout, r.stderr)
	}
	c.fails(1, "nosuch", "tasks", "exec", "nosuch", "true")
	c.fails(2, "bogus", "tasks", "kill", "-s", "bogus", "box")
	c.fails(1, "containers not removed", "containers", "rm", "box")
	if got := c.ok("tasks", "kill", "-s", "KILL", "box"); got != "box\n" {
		t.Errorf("tasks kill printed %q", got)
	}
	w, err := tc.Wait(ctx, &tasksapi.WaitRequest{ContainerID: "box"})
	if err != nil || w.ExitStatus != 137 {
		t.Errorf("Wait after tasks kill: %v, %v", w, err)
	}
	if got := c.ok("t", "ls", "-q", "status==STOPPED"); got != "box\n" {
		t.Errorf("tasks ls -q status==STOPPED after kill = %q", got)
	}
	if _, err := tc.Delete(ctx, &tasksapi.DeleteTaskRequest{ContainerID: "box"}); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(filepath.Join(filepath.Dir(d.Address), "runtime")); len(left) > 0 {
		t.Errorf("bundles left: %v", left)
	}
}
