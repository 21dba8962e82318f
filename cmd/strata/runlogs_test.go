package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/strata-oci/strata/jobs"
	"github.com/strata-oci/strata/logs"
	"github.com/strata-oci/strata/server"
	"github.com/strata-oci/strata/server/servertest"
)

// TestRunLogsConfig: the [container_logs] limits are the default of
// detached containers, through the daemon (the limits it reports) and
// embedded (the section of stratad's configuration file, here
// $STRATA_CONFIG): a container writing past max_size has its log rotated
// to max_file files; --log-opt overrides either limit; a bad value in the
// file is refused with one line naming the key, and nothing is created.
func TestRunLogsConfig(t *testing.T) {
	limits := logs.Limits{MaxSize: 2000, MaxFiles: 2}
	t.Run("daemon", func(t *testing.T) {
		d := servertest.StartWith(t, server.Config{Runtime: server.RuntimeConfig{State: "runtime"}, Jobs: jobs.Defaults{Logs: limits}})
		checkLogLimits(t, runCLIOn(t, &cli{t: t, root: d.Store.Root, daemon: d}), limits)
	})
	t.Run("embedded", func(t *testing.T) {
		embeddedOnly(t, "embedded mode reads stratad's configuration file itself")
		c := runCLIOn(t, &cli{t: t, root: t.TempDir()})
		conf := filepath.Join(t.TempDir(), "config.toml")
		write := func(s string) {
			t.Helper()
			if err := os.WriteFile(conf, []byte(s), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		// The daemon's other settings are the daemon's: not read here.
		write("root = '/elsewhere'\n[log]\nlevel = 'debug'\n[container_logs]\nmax_size = '2000'\nmax_file = 2\n")
		c.env = append(c.env, configEnv+"="+conf)
		checkLogLimits(t, c, limits)

		write("[container_logs]\nmax_size = 'lots'\n")
		r := c.run("run", "-d", "--network", "none", busybox, "true")
		if lines := strings.Split(strings.TrimSpace(r.stderr), "\n"); r.code != 125 || len(lines) != 1 ||
			!strings.Contains(r.stderr, conf) || !strings.Contains(r.stderr, `container_logs.max_size: size "lots"`) {
			t.Errorf("run -d with container_logs.max_size = 'lots': %+v", r)
		}
		if ps := c.ok("ps", "-aq"); ps != "" {
			t.Errorf("containers left by a refused config: %q", ps)
		}
		// A file named but missing is an error too, not the defaults.
		os.Remove(conf)
		if r := c.run("run", "-d", "--network", "none", busybox, "true"); r.code != 125 || !strings.Contains(r.stderr, conf) {
			t.Errorf("run -d with $%s missing: %+v", configEnv, r)
		}
	})
}

// checkLogLimits runs detached containers writing 300 lines (about 15 kB
// of json.log) under the store's limits, then with --log-opt over them,
// and checks the files each log was rotated into.
func checkLogLimits(t *testing.T, c *cli, limits logs.Limits) {
	t.Helper()
	const script = `i=0; while [ $i -lt 300 ]; do echo line $i; i=$((i+1)); done`
	for _, tc := range []struct {
		name    string
		opts    []string
		maxSize int64
		files   []string
	}{
		{"the store's limits", nil, limits.MaxSize, []string{"json.log", "json.log.1"}},
		{"--log-opt max-file", []string{"--log-opt", "max-file=3"}, limits.MaxSize, []string{"json.log", "json.log.1", "json.log.2"}},
		{"--log-opt max-size", []string{"--log-opt", "max-size=1m"}, 1 << 20, []string{"json.log"}},
	} {
		args := append(append([]string{"run", "-d", "--network", "none"}, tc.opts...), busybox, "sh", "-c", script)
		id := strings.TrimSpace(c.ok(args...))
		// logs -f ends once the container has exited and its log is still.
		if out := c.ok("logs", "-f", "--tail", "1", id); out != "line 299\n" {
			t.Errorf("%s: logs -f --tail 1 = %q, want the last line", tc.name, out)
		}
		dir := filepath.Join(c.root, "logs", "strata-run", id)
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range ents {
			if e.Name() == "done" {
				continue
			}
			names = append(names, e.Name())
			fi, err := e.Info()
			if err != nil {
				t.Fatal(err)
			}
			if fi.Size() > tc.maxSize {
				t.Errorf("%s: %s: %d bytes, over max-size %d", tc.name, e.Name(), fi.Size(), tc.maxSize)
			}
		}
		if !slices.Equal(names, tc.files) {
			t.Errorf("%s: log files %v, want %v", tc.name, names, tc.files)
		}
		c.ok("rm", id)
	}
}
