package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Our side of a container process's terminal (run -t, exec -t): its size
// follows ours and our keys reach it as typed.

// isTerminal tells whether r is a terminal (an *os.File on one).
func isTerminal(r any) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// checkTTY refuses -i with -t when our stdin is not a terminal, as docker
// does: a terminal's input would be a file's or a pipe's bytes, line
// discipline and all, and nothing could be typed.
func checkTTY(interactive, tty bool, stdin io.Reader) error {
	if interactive && tty && !isTerminal(stdin) {
		return fmt.Errorf("the input device is not a TTY (-t with -i needs a terminal on stdin; drop -t to pipe input): %w", errdefs.ErrInvalidArgument)
	}
	return nil
}

// terminalSize is the size of our terminal: stdout's, or stdin's when
// stdout is not one (docker uses stdout's).
func terminalSize(in io.Reader, out io.Writer) (width, height uint32, ok bool) {
	for _, s := range []any{out, in} {
		f, isFile := s.(*os.File)
		if !isFile {
			continue
		}
		ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
		if err == nil && ws.Col > 0 && ws.Row > 0 {
			return uint32(ws.Col), uint32(ws.Row), true
		}
	}
	return 0, 0, false
}

// rawInput puts stdin in raw mode when it is a terminal, so that keys,
// Ctrl-C included, go to the process's terminal as typed, and our
// terminal adds no \r to its output. Call it before the process starts,
// as docker does, or what it writes first is translated twice. The
// returned function restores stdin.
func rawInput(in io.Reader, log *slog.Logger) (restore func()) {
	if in == nil || !isTerminal(in) {
		return func() {}
	}
	restore, err := rawTerminal(int(in.(*os.File).Fd()))
	if err != nil {
		log.Debug("put the terminal in raw mode", "error", err)
		return func() {}
	}
	return restore
}

// followTerminal gives a started process's terminal our terminal's size
// through resize, now and on every SIGWINCH until the returned function
// is called, which waits for a resize under way. Call it before anything
// is copied to the process's stdin, so that what it reads first already
// sees its size.
func followTerminal(ctx context.Context, in io.Reader, out io.Writer, log *slog.Logger, resize func(ctx context.Context, width, height uint32) error) (stop func()) {
	// Registered before the first size is read: a change in between is
	// not lost.
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, unix.SIGWINCH)
	apply := func() {
		if w, h, ok := terminalSize(in, out); ok {
			if err := resize(ctx, w, h); err != nil {
				log.Debug("resize the process's terminal", "width", w, "height", h, "error", err)
			}
		}
	}
	apply()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-winch:
				apply()
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(winch)
		close(done)
		wg.Wait()
	}
}

// execTerminal sets up the spec of an exec process for a terminal, or
// for none (the container's own process may have one): with one, sized
// as ours from the start, before the first resize can reach it.
func execTerminal(p *specs.Process, tty bool, in io.Reader, out io.Writer) {
	p.Terminal, p.ConsoleSize = tty, nil
	if w, h, ok := terminalSize(in, out); ok && tty {
		p.ConsoleSize = &specs.Box{Width: uint(w), Height: uint(h)}
	}
}

// rawTerminal puts the terminal fd in raw mode (cfmakeraw(3)): keys go
// to the container's terminal as typed, Ctrl-C included. It returns the
// function that restores the terminal; not a terminal is an error.
func rawTerminal(fd int) (func(), error) {
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, err
	}
	raw := *old
	raw.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	raw.Oflag &^= unix.OPOST
	raw.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	raw.Cflag &^= unix.CSIZE | unix.PARENB
	raw.Cflag |= unix.CS8
	raw.Cc[unix.VMIN], raw.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &raw); err != nil {
		return nil, err
	}
	return func() { unix.IoctlSetTermios(fd, unix.TCSETS, old) }, nil
}
