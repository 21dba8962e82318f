package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// pty is a pseudo-terminal for a strata process: the slave is its stdin,
// stdout, stderr and controlling terminal, as in a user's shell; the
// test types on the master and reads it all the time (a full master
// would block the process).
type pty struct {
	t             *testing.T
	master, slave *os.File
	mu            sync.Mutex
	out           []byte
	more          chan struct{}
	readDone      chan struct{}
}

// hangGuard bounds every wait on a terminal so that a broken one fails
// the test rather than hangs it; not a timing assertion.
const hangGuard = 2 * time.Minute

// openPTY opens a pseudo-terminal (posix_openpt, unlockpt, ptsname) of
// rows×cols and starts reading its master; both ends close when the
// test ends.
func openPTY(t *testing.T, rows, cols uint16) *pty {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	var n uint32
	control(t, m, func(fd int) error {
		if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
			return fmt.Errorf("unlockpt: %w", err)
		}
		n, err = unix.IoctlGetUint32(fd, unix.TIOCGPTN)
		return err
	})
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	p := &pty{t: t, master: m, slave: s, more: make(chan struct{}, 1), readDone: make(chan struct{})}
	t.Cleanup(func() {
		// Closing the master ends the reader's Read.
		m.Close()
		s.Close()
		<-p.readDone
	})
	p.resize(rows, cols)
	go func() {
		defer close(p.readDone)
		buf := make([]byte, 4096)
		for {
			n, err := m.Read(buf)
			p.mu.Lock()
			p.out = append(p.out, buf[:n]...)
			p.mu.Unlock()
			select {
			case p.more <- struct{}{}:
			default:
			}
			if err != nil {
				return // EIO once no slave is open, or closed
			}
		}
	}()
	return p
}

// control runs fn on f's descriptor without taking f out of the poller
// (f.Fd would, and Close would then not end a pending Read).
func control(t *testing.T, f *os.File, fn func(fd int) error) {
	t.Helper()
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		t.Fatal(err)
	}
	if ferr != nil {
		t.Fatalf("%s: %v", f.Name(), ferr)
	}
}

// resize sets the terminal's size, as a terminal emulator whose window
// changes does: the kernel sends SIGWINCH to its foreground process group.
func (p *pty) resize(rows, cols uint16) {
	p.t.Helper()
	control(p.t, p.master, func(fd int) error {
		return unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols})
	})
}

// start starts cmd on the terminal, in a session of its own with the
// terminal as its controlling one; the process is killed if the test
// ends before it does. Its Wait's error comes on the channel.
func (p *pty) start(cmd *exec.Cmd) <-chan error {
	p.t.Helper()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = p.slave, p.slave, p.slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	done := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		err := cmd.Wait()
		close(exited)
		done <- err
	}()
	p.t.Cleanup(func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			<-exited
		}
	})
	return done
}

// exitCode waits for the process started by start and returns its exit
// status.
func (p *pty) exitCode(done <-chan error) int {
	p.t.Helper()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			p.t.Fatal(err)
		}
		return 0
	case <-time.After(hangGuard):
		p.t.Fatalf("strata did not exit; the terminal shows %q", p.output())
	}
	return -1
}

func (p *pty) write(s string) {
	p.t.Helper()
	if _, err := p.master.WriteString(s); err != nil {
		p.t.Fatal(err)
	}
}

func (p *pty) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return string(p.out)
}

// expect waits until the terminal has shown re and returns all it has
// shown.
func (p *pty) expect(re string) string {
	p.t.Helper()
	rx := regexp.MustCompile(re)
	guard := time.After(hangGuard)
	for {
		out := p.output()
		if rx.MatchString(out) {
			return out
		}
		select {
		case <-p.more:
		case <-p.readDone:
			if out := p.output(); !rx.MatchString(out) {
				p.t.Fatalf("the terminal closed without showing %q: %q", re, out)
			}
		case <-guard:
			p.t.Fatalf("the terminal did not show %q: %q", re, p.output())
		}
	}
}

// checkSane checks that strata gave the terminal back as it found it
// (canonical, echoing), not raw.
func (p *pty) checkSane() {
	p.t.Helper()
	control(p.t, p.slave, func(fd int) error {
		tio, err := unix.IoctlGetTermios(fd, unix.TCGETS)
		if err != nil {
			return err
		}
		if tio.Lflag&(unix.ICANON|unix.ECHO) != unix.ICANON|unix.ECHO || tio.Oflag&unix.OPOST == 0 {
			p.t.Errorf("the terminal after strata: lflag %#x, oflag %#x; want ICANON, ECHO and OPOST back", tio.Lflag, tio.Oflag)
		}
		return nil
	})
}

// interactiveShell drives an interactive sh on a terminal of 37×111:
// the shell's terminal is a pty of its own of that size, it follows our
// terminal's size when it changes (SIGWINCH → ResizePty), and the
// shell's exit status is strata's.
func interactiveShell(t *testing.T, c *cli, args ...string) {
	t.Helper()
	p := openPTY(t, 37, 111)
	done := p.start(c.cmd(nil, args...))
	p.expect(`/ # `) // the prompt: the shell reads its terminal
	// Arithmetic, so that the echo of the line is not taken for its output.
	p.write("tty; stty size; echo $((6*7))\n")
	out := p.expect(`\n42\r?\n`)
	for _, want := range []string{`\n/dev/pts/[0-9]+\r?\n`, `\n37 111\r?\n`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("strata %v: the terminal lacks %q: %q", args, want, out)
		}
	}
	p.resize(50, 160)
	// The shell waits for the new size: SIGWINCH may reach strata after
	// the line does.
	p.write(`while [ "$(stty size)" != "$((25*2)) $((80*2))" ]; do sleep 0.1; done; echo resized$((1+1)); exit 3` + "\n")
	p.expect(`resized2\r?\n`)
	if code := p.exitCode(done); code != 3 {
		t.Errorf("strata %v: exit %d, want the shell's 3; the terminal shows %q", args, code, p.output())
	}
	p.checkSane()
}

// TestExecTerminal: exec -it gives the command a terminal sized as ours
// (and resized with ours), our keys, and its exit status; exec -t without
// -i, output on a terminal; tasks exec -t as ctr's; -it with a stdin that
// is not a terminal is refused, as docker does.
func TestExecTerminal(t *testing.T) {
	c := runCLI(t)
	id := strings.TrimSpace(c.ok("run", "-d", "--name", "box", "--network", "none", busybox, "sleep", "1000"))
	interactiveShell(t, c, "exec", "-it", "box", "sh")

	if r := c.run("exec", "-t", "box", "sh", "-c", "test -t 1 && echo tty; echo err >&2"); r.code != 0 || r.stdout != "tty\r\nerr\r\n" || r.stderr != "" {
		t.Errorf("exec -t (stderr on the terminal too): %+v", r)
	}

	p := openPTY(t, 24, 99)
	done := p.start(c.cmd(nil, "tasks", "exec", "-t", id, "sh", "-c", "tty; stty size; exit 5"))
	if code := p.exitCode(done); code != 5 {
		t.Errorf("tasks exec -t: exit %d, want 5; the terminal shows %q", code, p.output())
	}
	// Our terminal is raw before the command starts: its \r\n is not
	// made \r\r\n.
	out := p.expect(`\n24 99\r\n`)
	if !regexp.MustCompile(`^/dev/pts/[0-9]+\r\n`).MatchString(out) {
		t.Errorf("tasks exec -t: the terminal lacks a /dev/pts tty: %q", out)
	}
	p.checkSane()

	refused := []struct {
		name string
		args []string
	}{
		{"exec -it", []string{"exec", "-it", "box", "sh"}},
		{"exec -i -t", []string{"exec", "-i", "-t", "box", "sh"}},
		{"tasks exec -t", []string{"tasks", "exec", "-t", id, "sh"}},
	}
	for _, tc := range refused {
		r := c.runIn(strings.NewReader("echo typed\n"), tc.args...)
		if r.code != 1 || !strings.Contains(r.stderr, "the input device is not a TTY") || strings.Count(r.stderr, "\n") != 1 || r.stdout != "" {
			t.Errorf("%s with a pipe for stdin: %+v; want exit 1 and one line, the input device is not a TTY", tc.name, r)
		}
	}
	if r := c.run("tasks", "ps", id); strings.Count(r.stdout, "\n") != 2 {
		t.Errorf("processes of the container after the refused execs: %+v, want the header and sleep", r)
	}
	c.ok("rm", "-f", "box")
}

// TestRunTerminal: run --rm -it gives the container's shell a terminal
// sized and resized as ours, and its exit status; -it with a stdin that
// is not a terminal is refused (125, one line) before anything is made;
// -dit and starting again a container made with -t work unattached.
func TestRunTerminal(t *testing.T) {
	c := runCLI(t)
	interactiveShell(t, c, "run", "--rm", "-it", "--network", "none", busybox, "sh")
	if ps := c.ok("ps", "-aq"); ps != "" {
		t.Errorf("containers left by run --rm -it: %q", ps)
	}
	r := c.runIn(strings.NewReader("echo typed\n"), "run", "--rm", "-it", "--network", "none", busybox, "sh")
	if r.code != 125 || !strings.Contains(r.stderr, "the input device is not a TTY") || strings.Count(r.stderr, "\n") != 1 || r.stdout != "" {
		t.Errorf("run -it with a pipe for stdin: %+v; want 125 and one line, the input device is not a TTY", r)
	}
	if ps := c.ok("ps", "-aq"); ps != "" {
		t.Errorf("containers left by a refused run -it: %q", ps)
	}

	// -dit: a terminal with no one attached, copied to the log (runc
	// refused to detach without a console).
	c.ok("run", "-dit", "--name", "dt", "--network", "none", busybox, "sh", "-c", "test -t 1 && echo tty; exec sleep 1000")
	eventually(t, "the -dit container's output in its log", func() error {
		if r := c.run("logs", "dt"); r.code != 0 || !strings.Contains(r.stdout, "tty") {
			return fmt.Errorf("logs dt: %+v", r)
		}
		return nil
	})
	c.ok("rm", "-f", "dt")
	// start again a container made by run -t: it has a terminal, and no log.
	c.ok("run", "-t", "--name", "again", "--network", "none", busybox, "true")
	c.ok("start", "again")
	eventually(t, "the restarted container exited", func() error {
		if ps := c.ok("ps", "-a"); !strings.Contains(ps, "Exited (0)") {
			return fmt.Errorf("ps -a:\n%s", ps)
		}
		return nil
	})
	c.ok("rm", "again")
}

// TestRunTerminalEmbedded: the same without a daemon, through the
// in-process server: run -it and exec -it; and run -t without -i, which
// lets go of the store while the container runs, still sizes the
// container's terminal as ours first.
func TestRunTerminalEmbedded(t *testing.T) {
	embeddedOnly(t, "the embedded in-process server is what is tested")
	c := runCLIOn(t, &cli{t: t, root: t.TempDir()})
	interactiveShell(t, c, "run", "--rm", "-it", "--network", "none", busybox, "sh")
	c.ok("run", "-d", "--name", "box", "--network", "none", busybox, "sleep", "1000")
	interactiveShell(t, c, "exec", "-it", "box", "sh")
	c.ok("rm", "-f", "box")

	p := openPTY(t, 21, 88)
	done := p.start(c.cmd(nil, "run", "--rm", "-t", "--network", "none", busybox, "sh", "-c", "stty size; exit 4"))
	if code := p.exitCode(done); code != 4 {
		t.Errorf("embedded run -t: exit %d, want 4; the terminal shows %q", code, p.output())
	}
	// Without -i our terminal is not raw (as docker's): its \r\n is
	// \r\r\n here, which a terminal shows the same.
	p.expect(`21 88\r+\n`)
	p.checkSane()
}
