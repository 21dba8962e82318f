package network

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
)

// Holder names the process that holds an endpoint: the one that set it up
// until the container's task exists (Setup), then the task's init process
// (Hold). Cleanup leaves alone an endpoint whose holder is alive, whatever
// its live callback says: a daemon that starts between a CLI's Setup and
// its task create must not cut the network of a container about to run,
// nor one whose task it has not loaded. A PID alone could be reused by
// another process; the start time (clock ticks after boot, field 22 of
// /proc/<pid>/stat) and the boot ID tell them apart.
type Holder struct {
	PID       int    `json:"pid"`
	StartTime uint64 `json:"startTime"`
	BootID    string `json:"bootID"`
}

// processHolder names the running process pid; ErrNotFound when there is
// none.
func processHolder(pid int) (*Holder, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("process %d: %w", pid, errdefs.ErrInvalidArgument)
	}
	start, zombie, err := procStart(pid)
	if err != nil {
		return nil, err
	}
	if zombie {
		return nil, fmt.Errorf("process %d has exited: %w", pid, errdefs.ErrNotFound)
	}
	boot, err := bootID()
	if err != nil {
		return nil, err
	}
	return &Holder{PID: pid, StartTime: start, BootID: boot}, nil
}

// alive reports whether the holder still runs: the same boot, a process
// with its PID and start time, not a zombie (an init the shim has not
// reaped yet is dead).
func (h *Holder) alive() bool {
	if h == nil || h.PID <= 0 {
		return false
	}
	if boot, err := bootID(); err != nil || boot != h.BootID {
		return false
	}
	start, zombie, err := procStart(h.PID)
	return err == nil && !zombie && start == h.StartTime
}

// procStart returns a process's start time and whether it is a zombie.
func procStart(pid int) (start uint64, zombie bool, err error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, fmt.Errorf("process %d: %w", pid, errdefs.ErrNotFound)
	}
	if err != nil {
		return 0, false, fmt.Errorf("process %d: %w", pid, err)
	}
	// The command name (field 2) is in parentheses and may hold spaces and
	// parentheses itself: the fields after it start after the last ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, false, fmt.Errorf("process %d: /proc/%d/stat: no command name: %w", pid, pid, errdefs.ErrUnknown)
	}
	f := strings.Fields(string(data[i+1:]))
	// f[0] is field 3 (state), so field 22 (starttime) is f[19].
	if len(f) < 20 {
		return 0, false, fmt.Errorf("process %d: /proc/%d/stat: %d fields: %w", pid, pid, len(f)+2, errdefs.ErrUnknown)
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("process %d: /proc/%d/stat: start time: %w", pid, pid, err)
	}
	return start, f[0] == "Z" || f[0] == "X", nil
}

func bootID() (string, error) {
	data, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return "", fmt.Errorf("boot ID: %w", err)
	}
	return strings.TrimSpace(string(data)), nil
}
