package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	containersapi "github.com/containerd/containerd/api/services/containers/v1"
	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	toml "github.com/pelletier/go-toml/v2"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/strata-oci/strata/mount"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/testutil"
)

// taskDaemons numbers the daemons this process starts.
var taskDaemons atomic.Int32

// ctrClients are the real ctr binaries the task tests drive.
var ctrClients = testutil.CtrClients()

// taskDaemon is a real stratad (this test binary re-executed) on a
// temporary root, state and socket, which a test may SIGKILL and start
// again.
type taskDaemon struct {
	t          *testing.T
	cfg        Config
	dir, conf  string
	sock       string
	state      string
	cmd        *exec.Cmd
	log        *bytes.Buffer
	done       chan error
	tasks      tasksapi.TasksClient
	conn       *grpc.ClientConn
	startCount int
}

func startTaskDaemon(t *testing.T) *taskDaemon {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("stratad runs tasks and mounts snapshots: it needs root")
	}
	// Short paths: unix socket names are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "stratad-t")
	if err != nil {
		t.Fatal(err)
	}
	cfg := defaultConfig()
	cfg.Root = filepath.Join(dir, "root")
	cfg.State = filepath.Join(dir, "state")
	cfg.GRPC.Address = filepath.Join(dir, "s.sock")
	cfg.CRI.Disabled = true
	cfg.Log.Level = "debug"
	// A default bridge of its own: the daemon's network cleanup at
	// start deletes an unused default bridge, and tests share the host.
	n := taskDaemons.Add(1)
	cfg.Network.DefaultBridge = fmt.Sprintf("sd%d-%d", os.Getpid()%100000, n)
	cfg.Network.DefaultSubnet = fmt.Sprintf("10.247.%d.0/24", (os.Getpid()+int(n))%250)
	b, _ := toml.Marshal(cfg)
	conf := filepath.Join(dir, "config.toml")
	os.WriteFile(conf, b, 0o644)
	d := &taskDaemon{t: t, dir: dir, conf: conf, sock: cfg.GRPC.Address, state: cfg.State, cfg: cfg}
	t.Cleanup(func() {
		d.stop()
		// The daemon's store may have left mounts if a test failed midway.
		mount.UnmountUnder(dir)
		os.RemoveAll(dir)
	})
	d.start()
	conn, err := grpc.NewClient("unix://"+d.sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	d.conn, d.tasks = conn, tasksapi.NewTasksClient(conn)
	return d
}

func (d *taskDaemon) start() {
	t := d.t
	t.Helper()
	d.startCount++
	d.cmd = stratad(t, "--config", d.conf)
	d.log = &bytes.Buffer{}
	d.cmd.Stderr = &lockedWriter{w: d.log}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d.done = make(chan error, 1)
	go func(c *exec.Cmd, done chan error) { done <- c.Wait() }(d.cmd, d.done)
	for i := 0; ; i++ {
		if c, err := net.Dial("unix", d.sock); err == nil {
			c.Close()
			return
		}
		select {
		case err := <-d.done:
			t.Fatalf("stratad exited: %v\n%s", err, d.log)
		default:
		}
		if i > 600 {
			t.Fatalf("stratad does not serve on %s:\n%s", d.sock, d.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill SIGKILLs the daemon, as a crash would.
func (d *taskDaemon) kill() {
	d.cmd.Process.Kill()
	<-d.done
	d.cmd = nil
}

func (d *taskDaemon) stop() {
	if d.cmd == nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	<-d.done
	d.cmd = nil
	if d.t.Failed() {
		d.t.Logf("stratad log:\n%s", d.log)
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// ctx is a call context in namespace ns.
func (d *taskDaemon) ctx(ns string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), namespaces.GRPCHeader, ns)
}

// shims lists the shim processes serving this daemon.
func (d *taskDaemon) shims() []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		args := strings.Split(string(b), "\x00")
		if len(args) > 0 && strings.HasSuffix(args[0], "containerd-shim-runc-v2") && strings.Contains(string(b), "\x00"+d.sock+"\x00") {
			pids = append(pids, pid)
		}
	}
	return pids
}

// checkNothingLeft fails when a shim, a task bundle or a mount of a task
// is left once every task is gone.
func (d *taskDaemon) checkNothingLeft() {
	t := d.t
	t.Helper()
	for i := 0; len(d.shims()) > 0; i++ {
		if i > 300 { // shims exit after Shutdown; give them their time
			t.Errorf("shims left: %v", d.shims())
			for _, pid := range d.shims() {
				unix.Kill(pid, unix.SIGKILL) // started by this test's daemon
			}
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	rt := filepath.Join(d.state, "runtime")
	ents, _ := os.ReadDir(rt)
	for _, e := range ents {
		t.Errorf("left in %s: %s", rt, e.Name())
	}
	// runc's state of this daemon's tasks: a namespace directory may stay,
	// no container in it.
	rr := filepath.Join(d.state, "runc")
	nss, _ := os.ReadDir(rr)
	for _, ns := range nss {
		ids, _ := os.ReadDir(filepath.Join(rr, ns.Name()))
		for _, id := range ids {
			t.Errorf("runc state left: %s", filepath.Join(rr, ns.Name(), id.Name()))
		}
	}
	if left, _ := mount.Under(rt); len(left) > 0 {
		t.Errorf("mounts left: %v", left)
	}
}

// runCtr runs ctr against the daemon in namespace ns.
func runCtr(t *testing.T, bin, sock, ns string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"-a", sock, "-n", ns}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// taskStatus returns the status ctr tasks ls shows for id ("" if none).
func taskStatus(t *testing.T, ls, id string) string {
	for _, l := range strings.Split(ls, "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == id {
			return f[2]
		}
	}
	return ""
}

// TestCtrRun: the real ctr 1.6 and 2.4 run busybox tasks through stratad:
// run --rm prints, an exit status comes back as ctr's, a detached task is
// listed, ps'd, exec'd into, paused, resumed, measured, killed and waited
// for; a terminal, the host network and a bind mount work; nothing is left.
func TestCtrRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs containers through a real stratad (long): not in -short")
	}
	layout := testutil.BusyboxLayout(t)
	for _, cc := range ctrClients {
		t.Run(cc.Name, func(t *testing.T) {
			bin := cc.Bin(t)
			d := startTaskDaemon(t)
			ns := "run" + strings.ReplaceAll(cc.Name, ".", "")
			ctr := func(args ...string) (string, error) { t.Helper(); return runCtr(t, bin, d.sock, ns, args...) }
			ok := func(args ...string) string {
				t.Helper()
				out, err := ctr(args...)
				if err != nil {
					t.Fatalf("ctr %s: %v\n%s", strings.Join(args, " "), err, out)
				}
				return out
			}
			img := testutil.BusyboxImageName
			ok("images", "import", layout)
			plugins := ok("plugins", "ls")
			for _, want := range []string{"io.containerd.runtime.v2 task", "io.containerd.grpc.v1 tasks"} {
				found := false
				for _, l := range strings.Split(plugins, "\n") {
					f := strings.Fields(l)
					found = found || len(f) == 4 && f[0]+" "+f[1] == want && f[3] == "ok"
				}
				if !found {
					t.Errorf("plugins ls lacks %s (ok):\n%s", want, plugins)
				}
			}

			if out := ok("run", "--rm", img, "hi", "echo", "hi"); out != "hi\n" {
				t.Errorf("run --rm echo hi printed %q", out)
			}
			// containerd 2.4's shim (task API v3), named by its path.
			shim3 := testutil.Tool(t, "containerd-shim-runc-v2", "v2.4.2")
			if out := ok("run", "--rm", "--runtime", shim3, img, "v3", "echo", "v3"); out != "v3\n" {
				t.Errorf("run under containerd 2.4's shim printed %q", out)
			}
			// Runtime options (runc's, from ctr) reach the shim.
			if out := ok("run", "--rm", "--runc-binary", "/usr/sbin/runc", img, "opts", "echo", "opts"); out != "opts\n" {
				t.Errorf("run --runc-binary printed %q", out)
			}
			out, err := ctr("run", "--rm", img, "exit3", "sh", "-c", "exit 3")
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 3 {
				t.Errorf("run sh -c 'exit 3': %v, want ctr's exit status 3\n%s", err, out)
			}

			// A detached task and the tasks verbs.
			ok("run", "-d", img, "bg", "sleep", "1000")
			if s := taskStatus(t, ok("tasks", "ls"), "bg"); s != "RUNNING" {
				t.Errorf("tasks ls: bg is %q, want RUNNING", s)
			}
			if ps := ok("tasks", "ps", "bg"); len(strings.Split(strings.TrimSpace(ps), "\n")) < 2 {
				t.Errorf("tasks ps bg: %q, want a header and the sleep", ps)
			}
			if out := ok("tasks", "exec", "--exec-id", "x", "bg", "sh", "-c", "echo in-exec"); out != "in-exec\n" {
				t.Errorf("tasks exec printed %q", out)
			}
			// ctr refuses that itself; the daemon must too.
			if _, err := containersapi.NewContainersClient(d.conn).Delete(d.ctx(ns), &containersapi.DeleteContainerRequest{ID: "bg"}); !errors.Is(errgrpc.ToNative(err), errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "task") {
				t.Errorf("deleting a container with a running task: %v, want failed precondition naming the task", err)
			}
			ok("tasks", "pause", "bg")
			if s := taskStatus(t, ok("tasks", "ls"), "bg"); s != "PAUSED" {
				t.Errorf("after pause: %q, want PAUSED", s)
			}
			ok("tasks", "resume", "bg")
			if s := taskStatus(t, ok("tasks", "ls"), "bg"); s != "RUNNING" {
				t.Errorf("after resume: %q, want RUNNING", s)
			}
			if m := ok("tasks", "metrics", "bg"); !strings.Contains(m, "bg") {
				t.Errorf("tasks metrics bg:\n%s", m)
			}
			wait := make(chan *tasksapi.WaitResponse, 1)
			go func() {
				w, err := d.tasks.Wait(d.ctx(ns), &tasksapi.WaitRequest{ContainerID: "bg"})
				if err != nil {
					t.Errorf("Wait: %v", err)
				}
				wait <- w
			}()
			ok("tasks", "kill", "-s", "SIGKILL", "bg")
			if w := <-wait; w == nil || w.ExitStatus != 137 {
				t.Errorf("Wait after tasks kill: %v, want exit status 137", w)
			}
			if s := taskStatus(t, ok("tasks", "ls"), "bg"); s != "STOPPED" {
				t.Errorf("after kill: %q, want STOPPED", s)
			}
			ok("tasks", "delete", "bg")
			ok("containers", "rm", "bg")

			// A terminal: ctr under a pty gives the task one.
			if out := runUnderPty(t, bin, "-a", d.sock, "-n", ns, "run", "-t", "--rm", img, "tty", "sh", "-c", "tty; stty size"); !strings.Contains(out, "/dev/pts/") {
				t.Errorf("run -t: the task has no terminal:\n%s", out)
			}
			// The host's network namespace.
			host, _ := os.Readlink("/proc/self/ns/net")
			if out := ok("run", "--rm", "--net-host", img, "nethost", "readlink", "/proc/self/ns/net"); strings.TrimSpace(out) != host {
				t.Errorf("run --net-host: network namespace %q, want the host's %q", strings.TrimSpace(out), host)
			}
			if out := ok("run", "--rm", img, "netns", "readlink", "/proc/self/ns/net"); strings.TrimSpace(out) == host {
				t.Errorf("run without --net-host is in the host's network namespace")
			}
			// A bind mount.
			src := t.TempDir()
			os.WriteFile(filepath.Join(src, "f"), []byte("from the host\n"), 0o644)
			if out := ok("run", "--rm", "--mount", "type=bind,src="+src+",dst=/mnt,options=rbind:ro", img, "mnt", "cat", "/mnt/f"); out != "from the host\n" {
				t.Errorf("run --mount: %q", out)
			}
			// A client that goes away while attached: the task runs on
			// (as under containerd) and is stopped and removed as any.
			att := exec.Command(bin, "-a", d.sock, "-n", ns, "run", img, "att", "sleep", "1000")
			if err := att.Start(); err != nil {
				t.Fatal(err)
			}
			for i := 0; taskStatus(t, ok("tasks", "ls"), "att") != "RUNNING"; i++ {
				if i > 300 {
					att.Process.Kill()
					t.Fatalf("attached task never ran:\n%s", ok("tasks", "ls"))
				}
				time.Sleep(100 * time.Millisecond)
			}
			att.Process.Kill()
			att.Wait()
			if s := taskStatus(t, ok("tasks", "ls"), "att"); s != "RUNNING" {
				t.Errorf("after its client died the task is %q, want RUNNING", s)
			}
			go func() {
				w, err := d.tasks.Wait(d.ctx(ns), &tasksapi.WaitRequest{ContainerID: "att"})
				if err != nil {
					t.Errorf("Wait: %v", err)
				}
				wait <- w
			}()
			ok("tasks", "kill", "-s", "SIGKILL", "att")
			if w := <-wait; w == nil || w.ExitStatus != 137 {
				t.Errorf("Wait after tasks kill: %v, want exit status 137", w)
			}
			ok("tasks", "delete", "att")
			ok("containers", "rm", "att")
			if out := ok("containers", "ls", "-q"); out != "" {
				t.Errorf("containers left: %q", out)
			}
			d.checkNothingLeft()
		})
	}
}

// runUnderPty runs a command whose stdin, stdout and stderr are a new
// pseudo-terminal, and returns what it wrote.
func runUnderPty(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.IoctlSetWinsize(int(tty.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: 80})
	cmd := exec.Command(bin, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	var out bytes.Buffer
	copied := make(chan struct{})
	go func() { io.Copy(&out, ptmx); close(copied) }() // EIO once the last writer is gone
	err = cmd.Wait()
	<-copied
	if err != nil {
		t.Errorf("%s %s: %v\n%s", bin, strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// TestCtrRestart: SIGKILL stratad while tasks run; started again, it
// reports a running task RUNNING, whose kill delivers its exit status,
// and a task that exited while it was down with its real exit status; a
// task whose shim died meanwhile is gone; nothing is leaked.
func TestCtrRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("runs containers through a real stratad (long): not in -short")
	}
	layout := testutil.BusyboxLayout(t)
	bin := ctrClients[0].Bin(t)
	d := startTaskDaemon(t)
	const ns = "restart"
	ctr := func(args ...string) string {
		t.Helper()
		out, err := runCtr(t, bin, d.sock, ns, args...)
		if err != nil {
			t.Fatalf("ctr %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	img := testutil.BusyboxImageName
	ctr("images", "import", layout)
	ctl := t.TempDir()
	ctr("run", "-d", img, "runs", "sleep", "1000")
	ctr("run", "-d", "--mount", "type=bind,src="+ctl+",dst=/ctl,options=rbind:ro", img, "exits",
		"sh", "-c", "while [ ! -e /ctl/go ]; do sleep 0.1; done; exit 4")
	if s := taskStatus(t, ctr("tasks", "ls"), "exits"); s != "RUNNING" {
		t.Fatalf("exits is %q before the restart", s)
	}

	d.kill()
	if got := len(d.shims()); got != 2 {
		t.Fatalf("%d shims after SIGKILL of stratad, want the 2 tasks' still running", got)
	}
	os.WriteFile(filepath.Join(ctl, "go"), nil, 0o644)
	for i := 0; runcState(d.state, ns, "exits") != "stopped"; i++ {
		if i > 600 {
			t.Fatalf("task exits did not end: runc says %q", runcState(d.state, ns, "exits"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	d.start()

	ls := ctr("tasks", "ls")
	if s := taskStatus(t, ls, "runs"); s != "RUNNING" {
		t.Errorf("after the restart runs is %q, want RUNNING\n%s", s, ls)
	}
	if s := taskStatus(t, ls, "exits"); s != "STOPPED" {
		t.Errorf("after the restart exits is %q, want STOPPED\n%s", s, ls)
	}
	g, err := d.tasks.Get(d.ctx(ns), &tasksapi.GetRequest{ContainerID: "exits"})
	if err != nil || g.Process.Status != tasktypes.Status_STOPPED || g.Process.ExitStatus != 4 {
		t.Errorf("exits after the restart: %v, %v; want STOPPED with status 4", g, err)
	}
	wait := make(chan *tasksapi.WaitResponse, 1)
	// A clean stop leaves the shims running too.
	d.stop()
	if got := len(d.shims()); got != 2 {
		t.Errorf("%d shims after stratad stopped, want 2", got)
	}
	d.start()
	if s := taskStatus(t, ctr("tasks", "ls"), "runs"); s != "RUNNING" {
		t.Errorf("after a stop and start runs is %q, want RUNNING", s)
	}
	go func() {
		w, err := d.tasks.Wait(d.ctx(ns), &tasksapi.WaitRequest{ContainerID: "runs"})
		if err != nil {
			t.Errorf("Wait: %v", err)
		}
		wait <- w
	}()
	ctr("tasks", "kill", "-s", "SIGKILL", "runs")
	if w := <-wait; w == nil || w.ExitStatus != 137 {
		t.Errorf("Wait after tasks kill: %v, want exit status 137", w)
	}
	for _, id := range []string{"runs", "exits"} {
		ctr("tasks", "delete", id)
		ctr("containers", "rm", id)
	}
	d.checkNothingLeft()
	if !strings.Contains(d.log.String(), "reconnected to a task") {
		t.Errorf("the daemon's log does not say it reconnected:\n%s", d.log)
	}
}

// runcState is what runc says of a container of the daemon whose state
// directory is state (stratad gives runc shims <state>/runc as runc's root).
func runcState(state, ns, id string) string {
	out, _ := exec.Command("runc", "--root", filepath.Join(state, "runc", ns), "state", id).Output()
	const key = `"status": "`
	if i := strings.Index(string(out), key); i >= 0 {
		s := string(out[i+len(key):])
		return s[:strings.Index(s, `"`)]
	}
	return "gone"
}
