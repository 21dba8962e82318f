package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/testutil"
)

// volumeImage is busybox with VOLUME ["/etc", "/var/cache"]: /etc has the
// image's passwd and group, /var/cache nothing.
const volumeImage = "docker.io/library/busybox:strata-test-volumes"

// TestRunAnonymousVolumes, through the daemon and embedded: each VOLUME of
// the image that no mount covers, and each -v /dst, gets an anonymous
// volume filled from the image; --rm (foreground and -d) removes them
// with the container, rm keeps them for volume prune, rm -v removes them;
// named volumes stay in every case.
func TestRunAnonymousVolumes(t *testing.T) {
	t.Run("daemon", func(t *testing.T) { checkAnonymousVolumes(t, runCLI(t)) })
	t.Run("embedded", func(t *testing.T) {
		embeddedOnly(t, "the daemon case runs in both modes; this one opens the store here")
		checkAnonymousVolumes(t, runCLIOn(t, &cli{t: t, root: t.TempDir()}))
	})
}

func checkAnonymousVolumes(t *testing.T, c *cli) {
	t.Cleanup(func() {
		c.run("rm", "-f", "keep", "k2", "bg")
		c.run("volume", "prune", "--all")
		if ents, _ := os.ReadDir(filepath.Join(c.root, "volumes")); len(ents) > 1 { // the lock file stays
			t.Errorf("volumes left: %v", ents)
		}
	})
	c.ok("images", "import", testutil.BusyboxLayoutWith(t, volumeImage, func(cfg *ocispec.ImageConfig) {
		cfg.Volumes = map[string]struct{}{"/etc": {}, "/var/cache": {}}
	}))
	vols := func() []string {
		t.Helper()
		return strings.Fields(c.ok("volume", "ls", "-q"))
	}
	data := func(name string) string { return filepath.Join(c.root, "volumes", name, "_data") }
	// files returns the names in the data of each volume, sorted.
	files := func(names []string) []string {
		t.Helper()
		var out []string
		for _, n := range names {
			ents, err := os.ReadDir(data(n))
			if err != nil {
				t.Fatal(err)
			}
			var fs []string
			for _, e := range ents {
				fs = append(fs, e.Name())
			}
			out = append(out, strings.Join(fs, ","))
		}
		slices.Sort(out)
		return out
	}

	// Foreground, no --rm: the image's two VOLUMEs get volumes; the
	// container writes through them into the volumes.
	if r := c.run("run", "--name", "keep", "--network", "none", volumeImage,
		"sh", "-c", "grep ^root: /etc/passwd | cut -d: -f1; echo hi > /var/cache/x"); r.code != 0 || r.stdout != "root\n" {
		t.Fatalf("run an image with VOLUMEs: %+v", r)
	}
	anon := vols()
	if got, want := files(anon), []string{"group,passwd", "x"}; len(anon) != 2 || !slices.Equal(got, want) {
		t.Fatalf("volumes of the image's VOLUMEs: %v holding %v, want two holding %v", anon, got, want)
	}
	// rm keeps them, unused now: volume prune removes them.
	c.ok("rm", "keep")
	if got := vols(); !slices.Equal(got, anon) {
		t.Errorf("volumes after rm without -v: %v, want %v kept", got, anon)
	}
	pruned := strings.Fields(c.ok("volume", "prune"))
	slices.Sort(pruned)
	if !slices.Equal(pruned, anon) || len(vols()) != 0 {
		t.Errorf("volume prune removed %v, want %v; left %v", pruned, anon, vols())
	}

	// -v /data and -v named:/var/cache: the named one covers the image's
	// /var/cache, so k2 has two anonymous volumes (/etc, /data) and the
	// named one; rm -v removes the anonymous ones only.
	c.ok("run", "--name", "k2", "--network", "none", "-v", "/data", "-v", "named:/var/cache", volumeImage,
		"sh", "-c", "echo d > /data/d; echo n > /var/cache/n")
	all := vols()
	if len(all) != 3 || !slices.Contains(all, "named") {
		t.Fatalf("volumes of k2: %v, want named and two anonymous", all)
	}
	all = slices.DeleteFunc(all, func(n string) bool { return n == "named" })
	if got, want := files(all), []string{"d", "group,passwd"}; !slices.Equal(got, want) {
		t.Errorf("k2's anonymous volumes hold %v, want %v", got, want)
	}
	c.ok("rm", "-v", "k2")
	if got := vols(); !slices.Equal(got, []string{"named"}) {
		t.Errorf("volumes after rm -v k2: %v, want named alone", got)
	}

	// --rm in the foreground and in the background: no volume left.
	if r := c.run("run", "--rm", "--network", "none", "-v", "/data", volumeImage, "cat", "/etc/group"); r.code != 0 || !strings.HasPrefix(r.stdout, "root:") {
		t.Errorf("run --rm with VOLUMEs: %+v", r)
	}
	if got := vols(); !slices.Equal(got, []string{"named"}) {
		t.Errorf("volumes after run --rm: %v, want named alone", got)
	}
	c.ok("run", "-d", "--rm", "--name", "bg", "--network", "none", volumeImage, "true")
	eventually(t, "the -d --rm container reaped with its volumes", func() error {
		// Every container command reaps the exited --rm containers first.
		if ps := c.ok("ps", "-aq"); ps != "" {
			return fmt.Errorf("ps -aq = %q", ps)
		}
		if got := vols(); !slices.Equal(got, []string{"named"}) {
			return fmt.Errorf("volumes: %v, want named alone", got)
		}
		return nil
	})
	c.ok("volume", "rm", "named")
}

// TestRunMountVolume: --mount type=volume goes the way of -v NAME:/dst:
// the volume is made on first use and kept, readonly mounts it read-only,
// no source makes an anonymous one (--rm removes it), and a bad --mount
// is one line with status 125.
func TestRunMountVolume(t *testing.T) {
	c := runCLI(t)
	t.Cleanup(func() { c.run("volume", "rm", "mv") })
	c.ok("run", "--rm", "--network", "none", "--mount", "type=volume,source=mv,target=/data", busybox, "sh", "-c", "echo kept > /data/f")
	if r := c.run("run", "--rm", "--network", "none", "--mount", "type=volume,src=mv,dst=/data,readonly", busybox,
		"sh", "-c", "cat /data/f; touch /data/g 2>/dev/null || echo ro"); r.code != 0 || r.stdout != "kept\nro\n" {
		t.Errorf("--mount type=volume,src=mv,dst=/data,readonly: %+v", r)
	}
	if r := c.run("run", "--rm", "--network", "none", "--mount", "type=volume,target=/anon", busybox, "sh", "-c", "echo x > /anon/x"); r.code != 0 {
		t.Errorf("--mount type=volume,target=/anon: %+v", r)
	}
	if got := strings.Fields(c.ok("volume", "ls", "-q")); !slices.Equal(got, []string{"mv"}) {
		t.Errorf("volumes: %v, want mv alone (the anonymous one went with --rm)", got)
	}
	for _, bad := range []string{"type=volume,source=mv", "type=volume,source=/host,target=/d", "type=volume,source=bad/name,target=/d", "type=nfs,target=/d"} {
		r := c.run("run", "--rm", "--network", "none", "--mount", bad, busybox, "true")
		if lines := strings.Split(strings.TrimSpace(r.stderr), "\n"); r.code != 125 || len(lines) != 1 {
			t.Errorf("--mount %s: %+v, want one line and 125", bad, r)
		}
	}
	if ps := c.ok("ps", "-aq"); ps != "" {
		t.Errorf("containers left by bad --mount: %q", ps)
	}
}

// TestParseMount: --mount in the -v and --tmpfs forms.
func TestParseMount(t *testing.T) {
	for _, tc := range []struct {
		name, in, bind, tmpfs string
		bad                   bool
	}{
		{name: "bind", in: "type=bind,source=/h,target=/c", bind: "/h:/c"},
		{name: "bind readonly", in: "type=bind,src=/h,dst=/c,readonly", bind: "/h:/c:ro"},
		{name: "bind readonly=false", in: "type=bind,src=/h,dst=/c,readonly=false", bind: "/h:/c"},
		{name: "volume", in: "type=volume,source=v1,target=/c", bind: "v1:/c"},
		{name: "volume ro nocopy", in: "type=volume,source=v1,target=/c,ro,volume-nocopy", bind: "v1:/c:ro,nocopy"},
		{name: "anonymous volume", in: "type=volume,target=/c", bind: "/c"},
		{name: "anonymous volume readonly", in: "type=volume,destination=/c,readonly=true", bind: "/c:ro"},
		{name: "tmpfs", in: "type=tmpfs,target=/t", tmpfs: "/t"},
		{name: "volume without target", in: "type=volume,source=v1", bad: true},
		{name: "volume relative target", in: "type=volume,source=v1,target=c", bad: true},
		{name: "volume of a host path", in: "type=volume,source=/h,target=/c", bad: true},
		{name: "unknown type", in: "type=nfs,target=/c", bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bind, tmpfs, err := parseMount(tc.in)
			if tc.bad {
				if err == nil {
					t.Fatalf("parseMount(%q) = %q, %q; want an error", tc.in, bind, tmpfs)
				}
				return
			}
			if err != nil || bind != tc.bind || tmpfs != tc.tmpfs {
				t.Fatalf("parseMount(%q) = %q, %q, %v; want %q, %q", tc.in, bind, tmpfs, err, tc.bind, tc.tmpfs)
			}
		})
	}
}
