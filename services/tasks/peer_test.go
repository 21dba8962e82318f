package tasks_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"google.golang.org/grpc/metadata"

	"github.com/strata-oci/strata/client"
	"github.com/strata-oci/strata/containers"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/server/servertest"
	"github.com/strata-oci/strata/testutil"
)

// TestMain doubles as the non-root peer of TestNonRootPeer: run with
// STRATA_TEST_PEER=<socket> <verb> <id>, it makes one tasks call and
// prints the error, if any (exit 3 for permission denied).
func TestMain(m *testing.M) {
	if sock := os.Getenv("STRATA_TEST_PEER"); sock != "" {
		os.Exit(peerMain(sock, os.Args[1], os.Args[2]))
	}
	os.Exit(m.Run())
}

func peerMain(sock, verb, id string) int {
	conn, err := client.Dial(sock)
	if err != nil {
		fmt.Println(err)
		return 2
	}
	defer conn.Close()
	c := tasksapi.NewTasksClient(conn)
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), namespaces.GRPCHeader, "default"), time.Minute)
	defer cancel()
	switch verb {
	case "list":
		_, err = c.List(ctx, &tasksapi.ListTasksRequest{})
	case "create":
		_, err = c.Create(ctx, &tasksapi.CreateTaskRequest{ContainerID: id})
	case "exec":
		_, err = c.Exec(ctx, &tasksapi.ExecProcessRequest{ContainerID: id, ExecID: "x"})
	case "kill":
		_, err = c.Kill(ctx, &tasksapi.KillRequest{ContainerID: id, Signal: 9})
	case "start":
		_, err = c.Start(ctx, &tasksapi.StartRequest{ContainerID: id})
	case "delete":
		_, err = c.Delete(ctx, &tasksapi.DeleteTaskRequest{ContainerID: id})
	case "deleteprocess":
		_, err = c.DeleteProcess(ctx, &tasksapi.DeleteProcessRequest{ContainerID: id, ExecID: "x"})
	case "resize":
		_, err = c.ResizePty(ctx, &tasksapi.ResizePtyRequest{ContainerID: id, Width: 80, Height: 24})
	case "closeio":
		_, err = c.CloseIO(ctx, &tasksapi.CloseIORequest{ContainerID: id, Stdin: true})
	case "pause":
		_, err = c.Pause(ctx, &tasksapi.PauseTaskRequest{ContainerID: id})
	case "resume":
		_, err = c.Resume(ctx, &tasksapi.ResumeTaskRequest{ContainerID: id})
	case "update":
		_, err = c.Update(ctx, &tasksapi.UpdateTaskRequest{ContainerID: id})
	case "checkpoint":
		_, err = c.Checkpoint(ctx, &tasksapi.CheckpointTaskRequest{ContainerID: id})
	default:
		err = fmt.Errorf("unknown verb %q", verb)
	}
	if err != nil {
		err = errgrpc.ToNative(err)
		fmt.Println(err)
		if errors.Is(err, errdefs.ErrPermissionDenied) {
			return 3
		}
		return 1
	}
	return 0
}

// TestNonRootPeer: a process running as nobody on the daemon's socket
// lists tasks but may not create, start, exec in, signal, change, pause,
// checkpoint or delete one, nor touch its processes' terminals and stdin
// (the default access policy), and is told why.
func TestNonRootPeer(t *testing.T) {
	nobody := testutil.AsNobody(t, "peer")
	d := servertest.StartTasks(t)
	testutil.OpenToAll(t, d.Address)
	if _, err := d.Store.DB.Containers().Create(namespaces.WithNamespace(context.Background(), "default"), containers.Container{ID: "c1",
		Runtime: containers.RuntimeInfo{Name: "io.containerd.runc.v2"}, Spec: testutil.TaskSpec(t, "true")}); err != nil {
		t.Fatal(err)
	}
	peer := func(verb, id string) (int, string) {
		t.Helper()
		cmd := nobody([]string{"STRATA_TEST_PEER=" + d.Address}, verb, id)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("run the peer: %v", err)
		}
		return cmd.ProcessState.ExitCode(), string(out)
	}
	if code, out := peer("list", ""); code != 0 {
		t.Errorf("list as nobody = exit %d: %s; want it allowed", code, out)
	}
	for _, verb := range []string{"create", "exec", "kill", "start", "delete", "deleteprocess", "resize", "closeio", "pause", "resume", "update", "checkpoint"} {
		if code, out := peer(verb, "c1"); code != 3 || !strings.Contains(out, "uid 65534") || !strings.Contains(out, "c1") {
			t.Errorf("%s as nobody = exit %d: %s; want permission denied naming the task and the peer", verb, code, out)
		}
	}
	if left, _ := os.ReadDir(filepath.Join(filepath.Dir(d.Address), "runtime")); len(left) > 0 {
		t.Errorf("a refused create left %v", left)
	}
}
