package tasks_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/api/types"
	"google.golang.org/grpc/metadata"

	"github.com/strata-oci/strata/containers"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/server/servertest"
	"github.com/strata-oci/strata/testutil"
)

// taskEnv is an in-process daemon serving tasks and a client of it, in a
// namespace of the test's own.
type taskEnv struct {
	d  *servertest.Daemon
	c  tasksapi.TasksClient
	ns string
	// sctx is the store's context; bg the client's, and ctx bg with a
	// safety net (not a timing): a hung call fails the test, and its
	// cleanup, which uses bg, still runs.
	sctx, bg, ctx context.Context
	// rootfs is a bind mount of a busybox tree.
	rootfs []*types.Mount
}

func newTaskEnv(t *testing.T, name string) *taskEnv {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("running tasks needs root")
	}
	e := &taskEnv{d: servertest.StartTasks(t), ns: fmt.Sprintf("strata-test-%s-%d", name, os.Getpid())}
	e.c = tasksapi.NewTasksClient(e.d.Conn)
	e.sctx = namespaces.WithNamespace(context.Background(), e.ns)
	e.bg = metadata.AppendToOutgoingContext(context.Background(), namespaces.GRPCHeader, e.ns)
	ctx, cancel := context.WithTimeout(e.bg, 3*time.Minute)
	t.Cleanup(cancel)
	e.ctx = ctx
	dir := t.TempDir()
	testutil.BusyboxRootfs(t, dir)
	e.rootfs = []*types.Mount{{Type: "bind", Source: dir, Options: []string{"rbind", "rw"}}}
	return e
}

// create makes a container running args under runc's shim and its task
// (created, not started), both gone with the test.
func (e *taskEnv) create(t *testing.T, id string, args ...string) {
	t.Helper()
	if _, err := e.d.Store.DB.Containers().Create(e.sctx, containers.Container{ID: id, Runtime: containers.RuntimeInfo{Name: "io.containerd.runc.v2"},
		Spec: testutil.TaskSpec(t, args...)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.Create(e.ctx, &tasksapi.CreateTaskRequest{ContainerID: id, Rootfs: e.rootfs, Stdout: "file:///dev/null", Stderr: "file:///dev/null"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.c.Kill(e.bg, &tasksapi.KillRequest{ContainerID: id, Signal: 9, All: true})
		e.c.Wait(e.bg, &tasksapi.WaitRequest{ContainerID: id})
		if _, err := e.c.Delete(e.bg, &tasksapi.DeleteTaskRequest{ContainerID: id}); err != nil {
			t.Errorf("delete task %s: %v", id, err)
		}
	})
}
