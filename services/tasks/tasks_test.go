package tasks_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/api/types"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/strata-oci/strata/containers"
	"github.com/strata-oci/strata/mount"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/server/servertest"
	"github.com/strata-oci/strata/testutil"
)

// TestTasksService runs a busybox task through the gRPC service of an
// in-process server, on the real runc shim: a container record from the
// store, a bind-mounted rootfs, stdout to a file.
func TestTasksService(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("running tasks needs root")
	}
	d := servertest.StartTasks(t)
	const ns = "strata-test"
	sctx := namespaces.WithNamespace(context.Background(), ns)
	bg := metadata.AppendToOutgoingContext(context.Background(), namespaces.GRPCHeader, ns)
	// A safety net, not a timing: a hung call fails the test and its
	// cleanup still runs.
	ctx, cancel := context.WithTimeout(bg, 3*time.Minute)
	defer cancel()
	c := tasksapi.NewTasksClient(d.Conn)
	rootfs := t.TempDir()
	testutil.BusyboxRootfs(t, rootfs)
	mounts := []*types.Mount{{Type: "bind", Source: rootfs, Options: []string{"rbind", "rw"}}}
	out := filepath.Join(t.TempDir(), "out")

	if _, err := c.Create(ctx, &tasksapi.CreateTaskRequest{ContainerID: "none"}); !errors.Is(errgrpc.ToNative(err), errdefs.ErrNotFound) || !strings.Contains(err.Error(), "none") {
		t.Errorf("Create without a container: %v, want not found naming it", err)
	}
	if _, err := d.Store.DB.Containers().Create(sctx, containers.Container{ID: "top", Runtime: containers.RuntimeInfo{Name: "io.containerd.runc.v2"},
		Spec: testutil.TaskSpec(t, "sh", "-c", "echo started; exec sleep 1000")}); err != nil {
		t.Fatal(err)
	}
	cr, err := c.Create(ctx, &tasksapi.CreateTaskRequest{ContainerID: "top", Rootfs: mounts, Stdout: "file://" + out, Stderr: "file://" + out + ".err"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Kill(bg, &tasksapi.KillRequest{ContainerID: "top", Signal: 9, All: true})
		c.Wait(bg, &tasksapi.WaitRequest{ContainerID: "top"})
		c.Delete(bg, &tasksapi.DeleteTaskRequest{ContainerID: "top"})
	})
	if _, err := c.Create(ctx, &tasksapi.CreateTaskRequest{ContainerID: "top", Rootfs: mounts}); !errors.Is(errgrpc.ToNative(err), errdefs.ErrAlreadyExists) {
		t.Errorf("second Create: %v, want already exists", err)
	}
	if err := d.Server.CheckContainerDeletable(sctx, "top"); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("CheckContainerDeletable with a task: %v, want failed precondition", err)
	}
	get := func(exec string) *tasktypes.Process {
		t.Helper()
		r, err := c.Get(ctx, &tasksapi.GetRequest{ContainerID: "top", ExecID: exec})
		if err != nil {
			t.Fatal(err)
		}
		return r.Process
	}
	if p := get(""); p.Status != tasktypes.Status_CREATED || p.Pid != cr.Pid {
		t.Errorf("after Create: %v, want CREATED pid %d", p, cr.Pid)
	}
	if _, err := c.Start(ctx, &tasksapi.StartRequest{ContainerID: "top"}); err != nil {
		t.Fatal(err)
	}
	if p := get(""); p.Status != tasktypes.Status_RUNNING {
		t.Errorf("after Start: %v, want RUNNING", p)
	}
	l, err := c.List(ctx, &tasksapi.ListTasksRequest{})
	if err != nil || len(l.Tasks) != 1 || l.Tasks[0].ContainerID != "top" {
		t.Errorf("List = %v, %v", l, err)
	}
	pids, err := c.ListPids(ctx, &tasksapi.ListPidsRequest{ContainerID: "top"})
	if err != nil || len(pids.Processes) == 0 {
		t.Errorf("ListPids = %v, %v", pids, err)
	}
	m, err := c.Metrics(ctx, &tasksapi.MetricsRequest{Filters: []string{"id==top"}})
	if err != nil || len(m.Metrics) != 1 || m.Metrics[0].Data == nil {
		t.Errorf("Metrics = %v, %v", m, err)
	}
	if _, err := c.Pause(ctx, &tasksapi.PauseTaskRequest{ContainerID: "top"}); err != nil {
		t.Fatal(err)
	}
	if p := get(""); p.Status != tasktypes.Status_PAUSED {
		t.Errorf("after Pause: %v, want PAUSED", p)
	}
	if _, err := c.Resume(ctx, &tasksapi.ResumeTaskRequest{ContainerID: "top"}); err != nil {
		t.Fatal(err)
	}
	// An exec process, with its own exit status.
	var s specs.Spec
	json.Unmarshal(testutil.TaskSpec(t, "sh", "-c", "exit 7").Value, &s)
	pb, _ := json.Marshal(s.Process)
	execOut := filepath.Join(t.TempDir(), "exec")
	if _, err := c.Exec(ctx, &tasksapi.ExecProcessRequest{ContainerID: "top", ExecID: "x", Stdout: "file://" + execOut, Stderr: "file://" + execOut + ".err",
		Spec: &anypb.Any{TypeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Process", Value: pb}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Start(ctx, &tasksapi.StartRequest{ContainerID: "top", ExecID: "x"}); err != nil {
		t.Fatal(err)
	}
	w, err := c.Wait(ctx, &tasksapi.WaitRequest{ContainerID: "top", ExecID: "x"})
	if err != nil || w.ExitStatus != 7 {
		t.Errorf("Wait for the exec: %v, %v; want status 7", w, err)
	}
	if _, err := c.DeleteProcess(ctx, &tasksapi.DeleteProcessRequest{ContainerID: "top", ExecID: "x"}); err != nil {
		t.Errorf("DeleteProcess: %v", err)
	}
	if _, err := c.Checkpoint(ctx, &tasksapi.CheckpointTaskRequest{ContainerID: "top"}); !errors.Is(errgrpc.ToNative(err), errdefs.ErrNotImplemented) || !strings.Contains(err.Error(), "checkpoint") {
		t.Errorf("Checkpoint: %v, want not implemented, saying so", err)
	}
	if _, err := c.Delete(ctx, &tasksapi.DeleteTaskRequest{ContainerID: "top"}); !errors.Is(errgrpc.ToNative(err), errdefs.ErrFailedPrecondition) {
		t.Errorf("Delete of a running task: %v, want failed precondition", err)
	}
	// SIGKILL: sleep, pid 1 of its namespace, ignores SIGTERM.
	if _, err := c.Kill(ctx, &tasksapi.KillRequest{ContainerID: "top", Signal: 9}); err != nil {
		t.Fatal(err)
	}
	w, err = c.Wait(ctx, &tasksapi.WaitRequest{ContainerID: "top"})
	if err != nil || w.ExitStatus != 128+9 {
		t.Errorf("Wait after SIGKILL: %v, %v; want status 137", w, err)
	}
	dr, err := c.Delete(ctx, &tasksapi.DeleteTaskRequest{ContainerID: "top"})
	if err != nil || dr.ExitStatus != 137 {
		t.Errorf("Delete: %v, %v; want status 137", dr, err)
	}
	if b, _ := os.ReadFile(out); string(b) != "started\n" {
		t.Errorf("stdout %q", b)
	}
	if _, err := c.Get(ctx, &tasksapi.GetRequest{ContainerID: "top"}); !errors.Is(errgrpc.ToNative(err), errdefs.ErrNotFound) {
		t.Errorf("Get after Delete: %v, want not found", err)
	}
	if err := d.Server.CheckContainerDeletable(sctx, "top"); err != nil {
		t.Errorf("CheckContainerDeletable without a task: %v", err)
	}
	if left, _ := mount.Under(filepath.Dir(d.Address)); len(left) > 0 {
		t.Errorf("mounts left: %v", left)
	}
}
