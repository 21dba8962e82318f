package tasks_test

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"golang.org/x/sys/unix"
)

// TestHungShim: a shim that never answers (stopped with SIGSTOP) does not
// hold List, which every client of the namespace calls (ctr tasks ls,
// BuildKit, kubelet), for others: the task is listed UNKNOWN and Get
// names it and its shim, as containerd bounds its state calls.
func TestHungShim(t *testing.T) {
	e := newTaskEnv(t, "hung")
	c, ctx := e.c, e.ctx // without the bound, List hangs to ctx's safety net
	e.create(t, "hung", "sleep", "1000")
	e.create(t, "well", "sleep", "1000")
	shim := shimPid(t, e.ns, "hung")
	t.Cleanup(func() { unix.Kill(shim, unix.SIGCONT) })
	if err := unix.Kill(shim, unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitStopped(t, shim)

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

// waitStopped waits until every thread of pid is stopped. kill(SIGSTOP)
// returns before the stop takes hold: one thread dequeues the signal and
// only then stops the others, so on a loaded machine another thread can
// still read and answer a request meanwhile.
func waitStopped(t *testing.T, pid int) {
	t.Helper()
	dir := filepath.Join("/proc", strconv.Itoa(pid), "task")
	deadline := time.Now().Add(30 * time.Second)
	for {
		threads, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		stopped := 0
		for _, th := range threads {
			stat, _ := os.ReadFile(filepath.Join(dir, th.Name(), "stat"))
			// The state follows the parenthesised command name.
			if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && strings.HasPrefix(string(stat[i:]), ") T") {
				stopped++
			}
		}
		if stopped == len(threads) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("shim %d: %d of %d threads stopped after SIGSTOP", pid, stopped, len(threads))
		}
		time.Sleep(10 * time.Millisecond)
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
