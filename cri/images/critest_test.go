package images_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-oci/strata/jobs"
	"github.com/strata-oci/strata/server"
	"github.com/strata-oci/strata/testutil"
)

// critestFocus are the image specs of critest v1.37.0 that run offline
// against the image service (and Version); critestSkip those that cannot:
//
//   - "public image with digest": it pulls test-image-digest at a fixed
//     digest of bytes built upstream, which a local registry cannot serve;
//   - "Image Identifier Consistency" (both specs): after checking the
//     image ids (which pass: same id from PullImage and ImageStatus, and
//     for registry.k8s.io/pause and k8s.gcr.io/pause) they run a pod and
//     a container, which strata does not yet;
//   - "runtime conditions" (not focused): it wants RuntimeReady and
//     NetworkReady true, which Status honestly denies until pods exist.
const (
	critestFocus = `Image Manager|Image Consistency|Idempotence RemoveImage|runtime should return version info`
	critestSkip  = `public image with digest`
)

// TestCritest runs critest's image specs against the daemon. The images
// they pull (gcr.io/k8s-staging-cri-tools/test-image-*,
// registry.k8s.io/pause, k8s.gcr.io/pause) are built here and served by a
// local registry that hosts.toml mirrors stand in for.
func TestCritest(t *testing.T) {
	if testing.Short() {
		t.Skip("critest takes a minute; -short leaves it out (make test's unit run has it)")
	}
	critest := testutil.Tool(t, "critest", "v1.37.0")
	reg := testutil.StartRegistry(t, testutil.RegistryConfig{})
	const staging = "k8s-staging-cri-tools/"
	for _, img := range []struct{ repo, tag, user string }{
		{"test-image-tag", "test", ""},
		{"test-image-tag", "all", ""},
		{"test-image-latest", "latest", ""},
		{"test-image-1", "latest", ""},
		{"test-image-2", "latest", ""},
		{"test-image-3", "latest", ""},
		{"test-image-tags", "1", ""},
		{"test-image-tags", "2", ""},
		{"test-image-tags", "3", ""},
		{"test-image-user-uid", "latest", "1002"},
		{"test-image-user-username", "latest", "www-data"},
		{"test-image-user-uid-group", "latest", "1003:1003"},
		{"test-image-user-username-group", "latest", "www-data:www-data"},
	} {
		userImage(t, reg.Host, staging+img.repo, img.tag, img.user)
	}
	userImage(t, reg.Host, "pause", "3.9", "65535:65535")

	hosts := t.TempDir()
	for _, h := range []string{"gcr.io", "registry.k8s.io", "k8s.gcr.io"} {
		dir := filepath.Join(hosts, h)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		conf := fmt.Sprintf("server = \"https://%s\"\n\n[host.\"http://%s\"]\n  capabilities = [\"pull\", \"resolve\"]\n", h, reg.Host)
		if err := os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d := startDaemon(t, server.Config{Jobs: jobs.Defaults{HostsDir: hosts}})

	ep := "unix://" + d.sock
	cmd := exec.Command(critest, "-runtime-endpoint", ep, "-image-endpoint", ep,
		"-ginkgo.focus", critestFocus, "-ginkgo.skip", critestSkip, "-ginkgo.no-color", "-ginkgo.v")
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("critest: %v\n%s", err, out)
	}
	// Guard against a focus that matches nothing: ginkgo passes then too.
	if !strings.Contains(string(out), "Passed") || strings.Contains(string(out), " 0 Passed") {
		t.Fatalf("critest ran no spec:\n%s", out)
	}
	t.Logf("critest:\n%s", lastLines(string(out), 8))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
