package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"

	"github.com/strata-oci/strata/logs"
	"github.com/strata-oci/strata/testutil"
)

// buildStrata builds the strata CLI, which the shim runs as the logger.
func buildStrata(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "strata")
	build := exec.Command("go", "build", "-o", bin, "github.com/strata-oci/strata/cmd/strata")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build strata: %v\n%s", err, out)
	}
	return bin
}

// TestContainerLogs: containers run by the real runc shim through stratad
// with logs.URI write stdout and stderr through `strata logger` into
// json-file logs, read back by logs.Read and `strata logs`; max-size and
// max-file bound the files.
func TestContainerLogs(t *testing.T) {
	strata := buildStrata(t)
	bin := ctrClients[0].Bin(t)
	d := startTaskDaemon(t)
	// runc's state is per namespace on the host: one of this process's.
	ns := fmt.Sprintf("logs-%d", os.Getpid())
	ok := func(args ...string) string {
		t.Helper()
		out, err := runCtr(t, bin, d.sock, ns, args...)
		if err != nil {
			t.Fatalf("ctr %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	ids := []string{"streams", "rotated"}
	t.Cleanup(func() { // before the daemon stops, when the test failed midway
		for _, id := range ids {
			runCtr(t, bin, d.sock, ns, "tasks", "delete", "-f", id)
			runCtr(t, bin, d.sock, ns, "containers", "rm", id)
		}
	})
	img := testutil.BusyboxImageName
	ok("images", "import", testutil.BusyboxLayout(t))
	root := filepath.Join(d.dir, "root")
	// A safety bound for a broken logger, not a timing assertion.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	run := func(id string, cfg logs.Config, script string) []logs.Entry {
		t.Helper()
		dir, err := logs.Dir(root, ns, id)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Dir = dir
		uri, err := logs.URI(strata, cfg)
		if err != nil {
			t.Fatal(err)
		}
		ok("run", "-d", "--log-uri", uri, img, id, "sh", "-c", script)
		w, err := d.tasks.Wait(d.ctx(ns), &tasksapi.WaitRequest{ContainerID: id})
		if err != nil || w.ExitStatus != 0 {
			t.Fatalf("Wait(%s) = %v, %v", id, w, err)
		}
		// The shim closes the logger's pipes when the task is deleted
		// (as dockerd deletes it on exit); the logger then marks the
		// log done, and a follower returns once it has read it all.
		ok("tasks", "delete", id)
		var got []logs.Entry
		if err := logs.Read(ctx, dir, logs.ReadOptions{Tail: -1, Follow: true}, func(e logs.Entry) error { got = append(got, e); return nil }); err != nil {
			t.Fatal(err)
		}
		return got
	}

	got := run("streams", logs.Config{}, "echo to-out; echo to-err >&2; printf partial")
	var out, errs []string
	for _, e := range got {
		if e.Stream == "stderr" {
			errs = append(errs, e.Log)
		} else {
			out = append(out, e.Log)
		}
	}
	if strings.Join(out, "|") != "to-out\n|partial" || strings.Join(errs, "|") != "to-err\n" {
		t.Errorf("stdout %q, stderr %q; want [to-out\\n partial], [to-err\\n]", out, errs)
	}
	// `strata logs` through the daemon: stdout and stderr apart, tail.
	cli := func(args ...string) (string, string) {
		t.Helper()
		cmd := exec.Command(strata, append([]string{"--address", d.sock, "-n", ns, "logs"}, args...)...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		stdout, err := cmd.Output()
		if err != nil {
			t.Fatalf("strata logs %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return string(stdout), stderr.String()
	}
	if o, e := cli("streams"); o != "to-out\npartial" || e != "to-err\n" {
		t.Errorf("strata logs streams: stdout %q, stderr %q", o, e)
	}
	if o, _ := cli("-f", "--tail", "1", "streams"); o != "partial" && o != "" {
		t.Errorf("strata logs -f --tail 1: %q", o)
	}

	// Rotation: 300 lines of ~50 bytes of JSON into 3 files of 2000.
	cfg, err := logs.ParseOpts(logs.Config{}, []string{"max-size=2000", "max-file=3"})
	if err != nil {
		t.Fatal(err)
	}
	got = run("rotated", cfg, `i=0; while [ $i -lt 300 ]; do echo line $i; i=$((i+1)); done`)
	if len(got) == 0 || len(got) >= 300 || got[len(got)-1].Log != "line 299\n" {
		t.Fatalf("rotated: %d entries, last %+v; want the last ones up to line 299", len(got), got[len(got)-1])
	}
	dir, _ := logs.Dir(root, ns, "rotated")
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
		if fi, err := e.Info(); err == nil && fi.Size() > 2000 {
			t.Errorf("%s: %d bytes, over max-size", e.Name(), fi.Size())
		}
	}
	if strings.Join(names, ",") != "done,json.log,json.log.1,json.log.2" {
		t.Errorf("rotated: files %v, want done, json.log, json.log.1, json.log.2", names)
	}
	if o, _ := cli("--tail", "2", "rotated"); o != "line 298\nline 299\n" {
		t.Errorf("strata logs --tail 2 rotated = %q", o)
	}

	for _, id := range ids {
		ok("containers", "rm", id)
		dir, _ := logs.Dir(root, ns, id)
		if err := logs.Remove(dir); err != nil {
			t.Error(err)
		}
	}
	d.checkNothingLeft()
}
