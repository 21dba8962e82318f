package v2

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/strata-oci/strata/mount"
)

// record is shim.json: how to reach a bundle's shim after a restart.
type record struct {
	Runtime string `json:"runtime"`
	Binary  string `json:"binary"`
	// Bootstrap is empty until the shim answered its start command.
	Bootstrap Bootstrap `json:"bootstrap"`
}

const (
	recordFile        = "shim.json"
	exitPublishedFile = "exit-published"
	logFile           = "log"
)

// validID refuses ids that are not one path component.
func validID(what, id string) error {
	if id == "" || id == "." || id == ".." || filepath.Base(id) != id || len(id) > 255 {
		return fmt.Errorf("%s %q: must be one non-empty path component: %w", what, id, errdefs.ErrInvalidArgument)
	}
	return nil
}

// newBundle makes the bundle directory of a task with its spec as
// config.json and an empty rootfs. It fails with errdefs.ErrAlreadyExists
// when the directory exists and errdefs.ErrInvalidArgument when the spec
// is not a JSON object.
func newBundle(dir string, spec *anypb.Any) error {
	if spec == nil || len(spec.GetValue()) == 0 {
		return fmt.Errorf("bundle %s: the container has no spec: %w", dir, errdefs.ErrInvalidArgument)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(spec.GetValue(), &obj); err != nil {
		return fmt.Errorf("bundle %s: spec (%s) is not a JSON OCI spec: %w: %w", dir, spec.GetTypeUrl(), err, errdefs.ErrInvalidArgument)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o711); err != nil {
		return fmt.Errorf("bundle %s: %w", dir, err)
	}
	// Root's alone, as containerd's since CVE-2021-41103: the rootfs
	// below is the container's, where its root may leave a setuid-root
	// program for any user of the host who can reach it.
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("bundle %s: %w", dir, errdefs.ErrAlreadyExists)
		}
		return fmt.Errorf("bundle %s: %w", dir, err)
	}
	if err := os.Mkdir(filepath.Join(dir, "rootfs"), 0o711); err != nil {
		os.RemoveAll(dir)
		return fmt.Errorf("bundle %s: %w", dir, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), spec.GetValue(), 0o600); err != nil {
		os.RemoveAll(dir)
		return fmt.Errorf("bundle %s: %w", dir, err)
	}
	if err := unix.Mkfifo(filepath.Join(dir, logFile), 0o600); err != nil {
		os.RemoveAll(dir)
		return fmt.Errorf("bundle %s: log fifo: %w", dir, err)
	}
	return nil
}

// removeBundle unmounts a bundle's rootfs and removes the bundle. The
// rootfs is removed with rmdir, never recursively: if it were still
// mounted, a recursive removal would delete the container's files in its
// snapshot.
func removeBundle(dir string) error {
	rootfs := filepath.Join(dir, "rootfs")
	if err := mount.UnmountAll(rootfs, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("remove bundle %s: %w", dir, err)
	}
	if err := os.Remove(rootfs); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove bundle %s: %w", dir, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove bundle %s: %w", dir, err)
	}
	// The namespace directory goes with its last bundle.
	os.Remove(filepath.Dir(dir))
	return nil
}

func writeRecord(dir string, r record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, recordFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("bundle %s: %w", dir, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, recordFile)); err != nil {
		return fmt.Errorf("bundle %s: %w", dir, err)
	}
	return nil
}

func readRecord(dir string) (record, error) {
	var r record
	b, err := os.ReadFile(filepath.Join(dir, recordFile))
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("bundle %s: %s: %w", dir, recordFile, err)
	}
	return r, nil
}
