package tasks_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/strata-oci/strata/testutil"
)

// TestExecID: an exec id is an identifier, as containerd's are: the shim
// names files after it in the bundle (runc's pid file), so one that is a
// path is refused, naming it, before it reaches the shim.
func TestExecID(t *testing.T) {
	e := newTaskEnv(t, "execid")
	c, ctx := e.c, e.ctx
	e.create(t, "top", "sleep", "1000")
	if _, err := c.Start(ctx, &tasksapi.StartRequest{ContainerID: "top"}); err != nil {
		t.Fatal(err)
	}
	var s specs.Spec
	json.Unmarshal(testutil.TaskSpec(t, "true").Value, &s)
	pb, _ := json.Marshal(s.Process)
	nsDir := filepath.Join(filepath.Dir(e.d.Address), "runtime", e.ns)
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
		for _, ent := range ents {
			names = append(names, ent.Name())
		}
		t.Errorf("the namespace's state directory holds %v, want the bundle alone", names)
	}
}
