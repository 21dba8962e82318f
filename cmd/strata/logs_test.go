package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/types/known/anypb"

	"github.com/strata-oci/strata/containers"
	"github.com/strata-oci/strata/logs"
	"github.com/strata-oci/strata/wiring"
)

// TestLogsCommand: strata logs reads a container's json-file log (written
// here by logs.Serve over pipes; cmd/stratad's TestContainerLogs has the
// shim start the logger), prints nothing for a container never started,
// and names a missing container. The hidden logger refuses to run without
// the shim's descriptors.
func TestLogsCommand(t *testing.T) {
	c := newCLI(t)
	withStore(t, c, func(ctx context.Context, s *wiring.Store) {
		for _, id := range []string{"web", "new"} {
			if _, err := s.DB.Containers().Create(ctx, containers.Container{ID: id, Runtime: containers.RuntimeInfo{Name: "io.containerd.runc.v2"},
				Spec: &anypb.Any{TypeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Spec", Value: []byte(`{"ociVersion":"1.2.0"}`)}}); err != nil {
				t.Fatal(err)
			}
		}
	})
	dir, err := logs.Dir(c.root, "default", "web")
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, _ := os.Pipe()
	errR, errW, _ := os.Pipe()
	readyR, readyW, _ := os.Pipe()
	defer readyR.Close()
	outW.WriteString("one\ntwo\n")
	errW.WriteString("bad\n")
	outW.Close()
	errW.Close()
	if err := logs.Serve(context.Background(), logs.Config{Dir: dir, MaxFiles: 1}, outR, errR, readyW); err != nil {
		t.Fatal(err)
	}
	r := c.run("logs", "web")
	if r.code != 0 || r.stdout != "one\ntwo\n" || r.stderr != "bad\n" {
		t.Errorf("logs web: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if got := c.ok("logs", "-f", "--tail", "1", "web"); got != "two\n" && got != "" {
		t.Errorf("logs -f --tail 1 web = %q", got)
	}
	if got := c.ok("logs", "new"); got != "" {
		t.Errorf("logs of a container never started = %q", got)
	}
	c.fails(1, "no such container: nope", "logs", "nope")
	c.fails(2, `--tail "x"`, "logs", "--tail", "x", "web")
	c.fails(2, "is not a pipe", "logger", `{"dir":"`+filepath.Join(t.TempDir(), "x")+`","max_files":1}`)
}
