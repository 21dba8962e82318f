package tasks_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/api/types"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/metadata"

	"github.com/strata-oci/strata/containers"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/server/servertest"
	"github.com/strata-oci/strata/testutil"
)

// TestHungShim: a shim that never answers (stopped with SIGSTOP) does not
// hold List, which every client of the namespace calls (ctr tasks ls,
// BuildKit, kubelet), for others: the task is listed UNKNOWN and Get
// names it and its shim, as containerd bounds its state calls.
func TestHungShim(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("running tasks needs root")
	}
	d := servertest.StartTasks(t)
	// A namespace of its own: runc's state is /run/containerd/runc/<ns>/<id>
	// for every daemon on the machine.
	ns := fmt.Sprintf("strata-test-hung-%d", os.Getpid())
	t.Cleanup(func() { os.Remove(filepath.Join("/run/containerd/runc", ns)) }) // runc's root of the namespace, once empty
	sctx := namespaces.WithNamespace(context.Background(), ns)
	bg := metadata.AppendToOutgoingContext(context.Background(), namespaces.GRPCHeader, ns)
	// A safety net, not a timing: without the bound, List hangs to here.
	ctx, cancel := context.WithTimeout(bg, 3*time.Minute)
	defer cancel()
	c := tasksapi.NewTasksClient(d.Conn)
	rootfs := t.TempDir()
	testutil.BusyboxRootfs(t, rootfs)
	mounts := []*types.Mount{{Type: "bind", Source: rootfs, Options: []string{"rbind", "rw"}}}
	for _, id := range []string{"hung", "well"} {
		if _, err := d.Store.DB.Containers().Create(sctx, containers.Container{ID: id, Runtime: containers.RuntimeInfo{Name: "io.containerd.runc.v2"},
			Spec: testutil.TaskSpec(t, "sleep", "1000")}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Create(ctx, &tasksapi.CreateTaskRequest{ContainerID: id, Rootfs: mounts}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			c.Kill(bg, &tasksapi.KillRequest{ContainerID: id, Signal: 9, All: true})
			c.Delete(bg, &tasksapi.DeleteTaskRequest{ContainerID: id})
		})
	}
	shim := shimPid(t, ns, "hung")
	t.Cleanup(func() { unix.Kill(shim, unix.SIGCONT) })
	if err := unix.Kill(shim, unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}

	l, err := c.List(ctx, &tasksapi.ListTasksRequest{})
	if err != nil {
		t.Fatalf("List with a hung shim: %v", err)
	}
	got := map[string]tasktypes.Status{}
	for _, p := range l.Tasks {
		got[p.ContainerID] = p.Status
	}
	if got["hung"] != tasktypes.Status_UNKNOWN || got["well"] != tasktypes.Status_CREATED || len(got) != 2 {
		t.Errorf("List with a hung shim = %v, want hung UNKNOWN and well CREATED", got)
	}
	_, err = c.Get(ctx, &tasksapi.GetRequest{ContainerID: "hung"})
	if !errors.Is(errgrpc.ToNative(err), errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "hung") || !strings.Contains(err.Error(), "shim") {
		t.Errorf("Get of the hung task = %v, want unavailable naming the task and its shim", err)
	}
	if _, err := c.Get(ctx, &tasksapi.GetRequest{ContainerID: "well"}); err != nil {
		t.Errorf("Get of the other task: %v", err)
	}
}

// shimPid finds the shim of task id in namespace ns (one the test made
// unique) among the machine's processes, by its command line.
func shimPid(t *testing.T, ns, id string) int {
	t.Helper()
	want := "\x00-namespace\x00" + ns + "\x00-id\x00" + id + "\x00"
	procs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if strings.Contains(string(cmdline), want) {
			return pid
		}
	}
	t.Fatalf("no shim of task %s in namespace %s", id, ns)
	return 0
}
