package progress

import (
	"os"

	"golang.org/x/sys/unix"
)

// isTerminal reports whether f is a terminal. It goes through SyscallConn
// rather than Fd, which would put f in blocking mode.
func isTerminal(f *os.File) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	var terr error
	if err := rc.Control(func(fd uintptr) {
		_, terr = unix.IoctlGetTermios(int(fd), unix.TCGETS)
	}); err != nil {
		return false
	}
	return terr == nil
}

// terminalSize returns f's columns and rows, or 80 columns and unknown
// (0) rows when f is not a terminal or reports no size.
func terminalSize(f *os.File) (cols, rows int) {
	cols = defaultCols
	rc, err := f.SyscallConn()
	if err != nil {
		return cols, 0
	}
	_ = rc.Control(func(fd uintptr) {
		ws, err := unix.IoctlGetWinsize(int(fd), unix.TIOCGWINSZ)
		if err != nil {
			return
		}
		if ws.Col > 0 {
			cols = int(ws.Col)
		}
		rows = int(ws.Row)
	})
	return cols, rows
}
