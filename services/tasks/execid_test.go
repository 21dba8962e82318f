package tasks_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/strata-oci/strata/containers"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/server/servertest"
	"github.com/strata-oci/strata/testutil"
)

// TestExecID: an exec id is an identifier, as containerd's are: the shim
// names files after it in the bundle (runc's pid file), so one that is a
// path is refused, naming it, before it reaches the shim.
func TestExecID(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("running tasks needs root")
	}
	d := servertest.StartTasks(t)
	ns := fmt.Sprintf("strata-test-execid-%d", os.Getpid())
	t.Cleanup(func() { os.Remove(filepath.Join("/run/containerd/runc", ns)) }) // runc's root of the namespace, once empty
	sctx := namespaces.WithNamespace(context.Background(), ns)
	bg := metadata.AppendToOutgoingContext(context.Background(), namespaces.GRPCHeader, ns)
	ctx, cancel := context.WithTimeout(bg, 3*time.Minute) // a safety net
	defer cancel()
	c := tasksapi.NewTasksClient(d.Conn)
	rootfs := t.TempDir()
	testutil.BusyboxRootfs(t, rootfs)
	if _, err := d.Store.DB.Containers().Create(sctx, containers.Container{ID: "top", Runtime: containers.RuntimeInfo{Name: "io.containerd.runc.v2"},
		Spec: testutil.TaskSpec(t, "sleep", "1000")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create(ctx, &tasksapi.CreateTaskRequest{ContainerID: "top", Stdout: "file:///dev/null", Stderr: "file:///dev/null",
		Rootfs: []*types.Mount{{Type: "bind", Source: rootfs, Options: []string{"rbind", "rw"}}}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Kill(bg, &tasksapi.KillRequest{ContainerID: "top", Signal: 9, All: true})
		c.Wait(bg, &tasksapi.WaitRequest{ContainerID: "top"})
		c.Delete(bg, &tasksapi.DeleteTaskRequest{ContainerID: "top"})
	})
	if _, err := c.Start(ctx, &tasksapi.StartRequest{ContainerID: "top"}); err != nil {
		t.Fatal(err)
	}
	var s specs.Spec
	json.Unmarshal(testutil.TaskSpec(t, "true").Value, &s)
	pb, _ := json.Marshal(s.Process)
	nsDir := filepath.Join(filepath.Dir(d.Address), "runtime", ns)
	for _, id := range []string{"../escape", "a/b", strings.Repeat("x", 300)} {
		_, err := c.Exec(ctx, &tasksapi.ExecProcessRequest{ContainerID: "top", ExecID: id, Stdout: "file:///dev/null", Stderr: "file:///dev/null",
			Spec: &anypb.Any{TypeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Process", Value: pb}})
		if err == nil {
			c.Start(ctx, &tasksapi.StartRequest{ContainerID: "top", ExecID: id})
			c.Wait(ctx, &tasksapi.WaitRequest{ContainerID: "top", ExecID: id})
			c.DeleteProcess(ctx, &tasksapi.DeleteProcessRequest{ContainerID: "top", ExecID: id})
		}
		if !errors.Is(errgrpc.ToNative(err), errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), id) {
			t.Errorf("Exec(exec id %.20q…) = %v, want invalid argument naming it", id, err)
		}
	}
	if ents, _ := os.ReadDir(nsDir); len(ents) != 1 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("the namespace's state directory holds %v, want the bundle alone", names)
	}
}
