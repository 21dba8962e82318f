package main

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	toml "github.com/pelletier/go-toml/v2"

	"github.com/strata-oci/strata/client"
	"github.com/strata-oci/strata/jobs"
	"github.com/strata-oci/strata/logs"
)

func TestMain(m *testing.M) {
	if os.Getenv("STRATAD_TEST_MAIN") == "1" {
		os.Exit(run(os.Args[1:]))
	}
	os.Exit(m.Run())
}

func stratad(t *testing.T, args ...string) *exec.Cmd {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), "STRATAD_TEST_MAIN=1")
	return cmd
}

func TestConfigDefault(t *testing.T) {
	out, err := stratad(t, "config", "default").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"root = '/var/lib/strata'", "[grpc]", "address = ''", "state = '/run/strata'", "snapshotter = ''", "max_concurrent_downloads = 3", "[gc]", "config_path", "[runtime]", "allow_group = false", "[container_logs]", "max_size = '10m'", "max_file = 3"} {
		if !strings.Contains(string(out), key) {
			t.Fatalf("config default lacks %q:\n%s", key, out)
		}
	}
	// What it prints is a valid configuration.
	p := filepath.Join(t.TempDir(), "config.toml")
	os.WriteFile(p, out, 0o644)
	c, err := loadConfig(p, true)
	if len(c.CRI.PinnedImages) == 0 {
		c.CRI.PinnedImages = nil // "pinned_images = []" reads as an empty list
	}
	if err != nil || !reflect.DeepEqual(c, defaultConfig()) {
		t.Fatalf("loading the printed defaults = %+v, %v", c, err)
	}
	os.WriteFile(p, append(out, []byte("\nbogus_setting = 1\n")...), 0o644)
	if _, err := loadConfig(p, true); err == nil || !strings.Contains(err.Error(), "bogus_setting") {
		t.Fatalf("unknown setting: %v", err)
	}
	if _, err := loadConfig(filepath.Join(t.TempDir(), "none.toml"), true); err == nil {
		t.Fatal("a missing --config file was accepted")
	}
}

// TestDaemonLifecycle: ready notification, refusal of a second daemon on
// the socket or the root, drain on SIGTERM.
func TestDaemonLifecycle(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("stratad mounts snapshots and needs root")
	}
	dir := t.TempDir()
	cfg := defaultConfig()
	cfg.Root = filepath.Join(dir, "root")
	cfg.State = filepath.Join(dir, "state")
	cfg.GRPC.Address = filepath.Join(dir, "state", "strata.sock")
	ml, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Metrics.Address = ml.Addr().String()
	ml.Close()
	b, _ := toml.Marshal(cfg)
	conf := filepath.Join(dir, "config.toml")
	os.WriteFile(conf, b, 0o644)

	notify := filepath.Join(dir, "notify")
	nl, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notify, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()

	d := stratad(t, "--config", conf)
	d.Env = append(d.Env, "NOTIFY_SOCKET="+notify)
	var logb bytes.Buffer
	d.Stderr = &logb
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Process.Kill(); d.Wait() })
	nl.SetReadDeadline(time.Now().Add(20 * time.Second))
	buf := make([]byte, 64)
	n, err := nl.Read(buf)
	if err != nil || string(buf[:n]) != "READY=1" {
		t.Fatalf("sd_notify: %q, %v; log:\n%s", buf[:n], err, logb.String())
	}
	st, err := os.Stat(cfg.GRPC.Address)
	if err != nil || st.Mode().Perm() != 0o660 || st.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket: %v, %v; want a 0660 socket", st.Mode(), err)
	}
	if out, err := exec.Command("ctr", "-a", cfg.GRPC.Address, "version").CombinedOutput(); err != nil || !strings.Contains(string(out), "Server:") {
		t.Fatalf("ctr version against stratad: %v\n%s", err, out)
	}

	resp, err := http.Get("http://" + cfg.Metrics.Address + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(mb), `strata_grpc_requests_total{method="/containerd.services.version.v1.Version/Version",code="OK"} 1`) {
		t.Fatalf("metrics after ctr version:\n%s", mb)
	}

	// A second daemon on the same socket, or on the same root.
	out, err := stratad(t, "--config", conf, "--root", filepath.Join(dir, "other")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "another daemon is serving it") {
		t.Fatalf("second daemon on the socket: %v\n%s", err, out)
	}
	out, err = stratad(t, "--config", conf, "--address", filepath.Join(dir, "second.sock")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "locked") {
		t.Fatalf("second daemon on the root: %v\n%s", err, out)
	}

	if err := d.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("stratad after SIGTERM: %v; log:\n%s", err, logb.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("stratad did not stop within 20s of SIGTERM")
	}
	if _, err := os.Stat(cfg.GRPC.Address); !os.IsNotExist(err) {
		t.Fatalf("socket left after a clean stop: %v", err)
	}
	if !strings.Contains(logb.String(), "stopping: draining calls") {
		t.Fatalf("log:\n%s", logb.String())
	}
}

// TestStateAndSnapshotterSettings: the socket goes in the state directory
// when grpc.address is empty, the snapshotter setting is the daemon's
// default (once parsed and never used), and [container_logs] reaches the
// CLI through the info job.
func TestStateAndSnapshotterSettings(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("stratad mounts snapshots and needs root")
	}
	dir := t.TempDir()
	cfg := defaultConfig()
	cfg.Root = filepath.Join(dir, "root")
	cfg.State = filepath.Join(dir, "state")
	cfg.Snapshotter = "native"
	cfg.ContainerLogs = logs.Section{MaxSize: "2k", MaxFile: 2}
	b, _ := toml.Marshal(cfg)
	conf := filepath.Join(dir, "config.toml")
	os.WriteFile(conf, b, 0o644)

	d := stratad(t, "--config", conf)
	var logb bytes.Buffer
	d.Stderr = &logb
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Process.Kill(); d.Wait() })
	sock := filepath.Join(cfg.State, "strata.sock")
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no socket at %s; log:\n%s", sock, logb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	conn, err := client.Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	res, err := client.RunJob(t.Context(), conn, jobs.Request{Info: &jobs.InfoRequest{}}, jobs.Env{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Info.DefaultSnapshotter != "native" {
		t.Fatalf("default snapshotter = %q, want the configured native", res.Info.DefaultSnapshotter)
	}
	if want := (logs.Limits{MaxSize: 2 << 10, MaxFiles: 2}); res.Info.Logs == nil || *res.Info.Logs != want {
		t.Fatalf("info's log limits = %+v, want the configured %+v", res.Info.Logs, want)
	}

	// A snapshotter that does not exist is refused at start, by name.
	cfg.Snapshotter = "btrfs"
	cfg.Root = filepath.Join(dir, "root2")
	cfg.State = filepath.Join(dir, "state2")
	b, _ = toml.Marshal(cfg)
	os.WriteFile(conf, b, 0o644)
	out, err := stratad(t, "--config", conf).CombinedOutput()
	if err == nil || !strings.Contains(string(out), `default snapshotter "btrfs": want overlayfs or native`) {
		t.Fatalf("stratad with snapshotter btrfs: %v\n%s", err, out)
	}
}

// TestConfigMinFree: gc.min_free is read and checked when the daemon
// starts (issue 11, item 7).
func TestConfigMinFree(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "config.toml")
	write := func(v string) {
		cfg := defaultConfig()
		cfg.Root = filepath.Join(dir, "root")
		cfg.State = filepath.Join(dir, "state")
		cfg.GRPC.Address = filepath.Join(dir, "state", "strata.sock")
		cfg.GC.MinFree = v
		b, err := toml.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(conf, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("10%")
	if c, err := loadConfig(conf, true); err != nil || c.GC.MinFree != "10%" {
		t.Fatalf("loadConfig with gc.min_free = 10%%: %+v, %v", c.GC, err)
	}
	write("lots")
	out, err := stratad(t, "--config", conf).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "gc.min_free") || !strings.Contains(string(out), "percentage") {
		t.Fatalf("stratad with gc.min_free = lots: %v\n%s", err, out)
	}
}

// TestConfigContentSettings (issue 12): content_sharing_policy (shared by
// default, as containerd's) and discard_unpacked_layers are settings; a
// policy other than shared or isolated stops stratad, naming it. The
// policies' behaviour is containerd's content suite's, run against stratad
// in test/containerd.
func TestConfigContentSettings(t *testing.T) {
	out, err := stratad(t, "config", "default").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"content_sharing_policy = 'shared'", "discard_unpacked_layers = false"} {
		if !strings.Contains(string(out), key) {
			t.Fatalf("config default lacks %q:\n%s", key, out)
		}
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "config.toml")
	cfg := defaultConfig()
	cfg.Root, cfg.State = filepath.Join(dir, "root"), filepath.Join(dir, "state")
	cfg.ContentSharingPolicy, cfg.DiscardUnpackedLayers = "private", true
	b, err := toml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err := loadConfig(conf, true); err != nil || !c.DiscardUnpackedLayers {
		t.Fatalf("loadConfig with discard_unpacked_layers = true: %+v, %v", c, err)
	}
	out, err = stratad(t, "--config", conf).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "content_sharing_policy") || !strings.Contains(string(out), "isolated") {
		t.Fatalf("stratad with content_sharing_policy = private: %v\n%s", err, out)
	}
}

// TestConfigContainerLogs: a bad [container_logs] value stops stratad
// with one line naming the key and what it wants.
func TestConfigContainerLogs(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "config.toml")
	for _, tc := range []struct {
		name string
		s    logs.Section
		want string
	}{
		{"size", logs.Section{MaxSize: "lots", MaxFile: 3}, `container_logs.max_size: size "lots": want bytes, or a number with k, m or g`},
		{"files", logs.Section{MaxSize: "10m", MaxFile: 0}, "container_logs.max_file 0: want a count ≥ 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := defaultConfig()
			cfg.Root, cfg.State = filepath.Join(dir, "root"), filepath.Join(dir, "state")
			cfg.ContainerLogs = tc.s
			b, err := toml.Marshal(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(conf, b, 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := stratad(t, "--config", conf).CombinedOutput()
			if err == nil || !strings.Contains(string(out), tc.want) || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 {
				t.Fatalf("stratad with %+v: %v\n%s", tc.s, err, out)
			}
			if _, err := os.Stat(cfg.Root); !os.IsNotExist(err) {
				t.Errorf("stratad refused its config but made its root: %v", err)
			}
		})
	}
}
