package v2

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/containerd/api/types"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"golang.org/x/sys/unix"

	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/testutil"
)

// runcStatus is what runc says of a container of e's runc root.
func (e *env) runcStatus(ns, id string) string {
	out, _ := exec.Command("runc", "--root", filepath.Join(e.runc, ns), "state", id).Output()
	if i := strings.Index(string(out), `"status": "`); i >= 0 {
		s := string(out[i+len(`"status": "`):])
		return s[:strings.Index(s, `"`)]
	}
	return "gone"
}

// TestRestart closes a manager while tasks run (as a daemon that dies),
// lets one task exit and kills another's shim meanwhile, and opens a new
// manager on the same state: the running task is found RUNNING, the one
// that exited reports its real status with one exit event, the one whose
// shim died is cleaned up, and nothing is left.
func TestRestart(t *testing.T) {
	e := newEnv(t)
	ctx := namespaces.WithNamespace(context.Background(), "strata-test")
	rootfs := t.TempDir()
	testutil.BusyboxRootfs(t, rootfs)
	mounts := []*types.Mount{{Type: "bind", Source: rootfs, Options: []string{"rbind", "rw"}}}
	start := func(id string, args ...string) (*Task, int) {
		t.Helper()
		task, err := e.m.Create(ctx, CreateOpts{ID: id, Runtime: "io.containerd.runc.v2", Spec: testutil.TaskSpec(t, args...), Rootfs: mounts,
			Stdout: "file:///dev/null", Stderr: "file:///dev/null"})
		if err != nil {
			t.Fatal(err)
		}
		pid := shimPid(t, task)
		if _, err := task.API().Start(ctx, &taskapi.StartRequest{ID: id}); err != nil {
			t.Fatal(err)
		}
		return task, pid
	}
	_, runsPid := start("runs", "sleep", "1000")
	start("exits", "sh", "-c", "while [ ! -e /tmp/go ]; do sleep 0.1; done; exit 5")
	_, diesPid := start("dies", "sleep", "1000")

	e.m.Close()
	// While no daemon listens: one task exits, one shim dies.
	if err := os.WriteFile(filepath.Join(rootfs, "tmp", "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Kill(diesPid, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitGone(t, diesPid)
	for i := 0; e.runcStatus("strata-test", "exits") != "stopped"; i++ {
		if i > 600 {
			t.Fatalf("task exits: runc says %s", e.runcStatus("strata-test", "exits"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	for len(e.events) > 0 {
		<-e.events
	}

	e.m = e.open(t)
	if err := e.m.Load(ctx); err != nil {
		t.Fatal(err)
	}
	runs, err := e.m.Get(ctx, "runs")
	if err != nil {
		t.Fatal(err)
	}
	if st, err := runs.API().State(ctx, &taskapi.StateRequest{ID: "runs"}); err != nil || st.Status != tasktypes.Status_RUNNING {
		t.Errorf("task runs after the restart: %v, %v; want RUNNING", st, err)
	}
	exits, err := e.m.Get(ctx, "exits")
	if err != nil {
		t.Fatal(err)
	}
	if st, err := exits.API().State(ctx, &taskapi.StateRequest{ID: "exits"}); err != nil || st.Status != tasktypes.Status_STOPPED || st.ExitStatus != 5 {
		t.Errorf("task exits after the restart: %v, %v; want STOPPED with status 5", st, err)
	}
	if _, err := e.m.Get(ctx, "dies"); err == nil {
		t.Error("the task whose shim died is still listed")
	}
	if e.runcStatus("strata-test", "dies") != "gone" {
		t.Errorf("the container whose shim died is %s in runc", e.runcStatus("strata-test", "dies"))
	}
	if _, err := os.Stat(filepath.Join(e.state, "strata-test", "dies")); !os.IsNotExist(err) {
		t.Errorf("bundle of the dead shim: %v", err)
	}

	if _, err := runs.API().Kill(ctx, &taskapi.KillRequest{ID: "runs", Signal: 9}); err != nil {
		t.Fatal(err)
	}
	if w, err := runs.API().Wait(ctx, &taskapi.WaitRequest{ID: "runs"}); err != nil || w.ExitStatus != 137 {
		t.Errorf("Wait after kill: %v, %v", w, err)
	}
	for _, id := range []string{"runs", "exits"} {
		if _, err := e.m.Delete(ctx, id); err != nil {
			t.Error(err)
		}
	}
	waitGone(t, runsPid)
	e.checkClean(t)

	exitsSeen := map[string][]uint32{}
	deleted := map[string]bool{}
	for len(e.events) > 0 {
		env := <-e.events
		switch env.Topic {
		case TopicTaskExit:
			var ev apievents.TaskExit
			env.Event.UnmarshalTo(&ev)
			exitsSeen[ev.ContainerID] = append(exitsSeen[ev.ContainerID], ev.ExitStatus)
		case TopicTaskDelete:
			var ev apievents.TaskDelete
			env.Event.UnmarshalTo(&ev)
			deleted[ev.ContainerID] = true
		}
	}
	if got := exitsSeen["exits"]; len(got) != 1 || got[0] != 5 {
		t.Errorf("exit events of the task that exited while down: %v, want one, status 5", got)
	}
	if got := exitsSeen["dies"]; len(got) != 1 {
		t.Errorf("exit events of the task whose shim died: %v, want one", got)
	}
	if !deleted["dies"] {
		t.Error("no delete event for the task whose shim died")
	}
}

// TestLoadHalfWritten: bundles a daemon left while it created them (it
// died before it wrote shim.json, or before its shim answered) are
// removed on the next start, their rootfs mount with them, and leave
// their ids free, with no event for tasks that never ran.
func TestLoadHalfWritten(t *testing.T) {
	e := newEnv(t)
	ctx := namespaces.WithNamespace(context.Background(), "strata-test")
	binary, err := resolveBinary("io.containerd.runc.v2", "")
	if err != nil {
		t.Fatal(err)
	}
	rootfs := t.TempDir()
	testutil.BusyboxRootfs(t, rootfs)
	for _, id := range []string{"norecord", "unstarted"} {
		dir := e.m.bundleDir("strata-test", id)
		if err := newBundle(dir, testutil.TaskSpec(t, "true")); err != nil {
			t.Fatal(err)
		}
		// The shim mounts the rootfs at create; a daemon that died
		// meanwhile may leave it mounted.
		if err := unix.Mount(rootfs, filepath.Join(dir, "rootfs"), "", unix.MS_BIND, ""); err != nil {
			t.Fatal(err)
		}
		if id == "unstarted" {
			if err := writeRecord(dir, record{Runtime: "io.containerd.runc.v2", Binary: binary}); err != nil {
				t.Fatal(err)
			}
		}
	}
	e.m.Close()
	e.m = e.open(t)
	if err := e.m.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if tasks, _ := e.m.List(ctx); len(tasks) != 0 {
		t.Errorf("tasks after loading half-written bundles: %d, want none", len(tasks))
	}
	e.checkClean(t)
	if len(e.events) != 0 {
		t.Errorf("%d events for tasks that never ran", len(e.events))
	}
	for _, id := range []string{"norecord", "unstarted"} {
		task, err := e.m.Create(ctx, CreateOpts{ID: id, Runtime: "io.containerd.runc.v2", Spec: testutil.TaskSpec(t, "true"),
			Rootfs: []*types.Mount{{Type: "bind", Source: rootfs, Options: []string{"rbind", "rw"}}}, Stdout: "file:///dev/null", Stderr: "file:///dev/null"})
		if err != nil {
			t.Fatalf("Create %s after the cleanup: %v", id, err)
		}
		shimPid(t, task)
		if _, err := e.m.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	e.checkClean(t)
}
