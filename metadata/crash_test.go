package metadata_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/content"
	"github.com/strata-oci/strata/images"
	"github.com/strata-oci/strata/leases"
	"github.com/strata-oci/strata/metadata"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/wiring"
)

const crashChildEnv = "STRATA_CRASH_CHILD_ROOT"

func TestMain(m *testing.M) {
	if root := os.Getenv(crashChildEnv); root != "" {
		crashChild(root)
		return
	}
	os.Exit(m.Run())
}

// crashBlob derives a blob from its ref, so whoever finds an ingest after a
// crash knows what its bytes must be.
func crashBlob(ref string) ([]byte, ocispec.Descriptor) {
	sum := sha256.Sum256([]byte(ref))
	seed := int64(binary.BigEndian.Uint64(sum[:8]))
	r := rand.New(rand.NewSource(seed))
	size := 1 + r.Intn(256<<10)
	if r.Intn(8) == 0 {
		size = 2<<20 + r.Intn(3<<20) // crosses the writer's internal blocks
	}
	b := make([]byte, size)
	r.Read(b)
	return b, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(b), Size: int64(size)}
}

// crashChild writes, commits, tags, deletes and collects until it is killed.
func crashChild(root string) {
	ctx := namespaces.WithNamespace(context.Background(), "crash")
	s, err := wiring.Open(ctx, wiring.Config{Root: root, GCDelay: time.Millisecond})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(3)
	}
	if _, err := s.DB.Leases().Create(ctx, leases.WithID("crash")); err != nil && !errors.Is(err, errdefs.ErrAlreadyExists) {
		fmt.Fprintln(os.Stderr, "child lease:", err)
		os.Exit(3)
	}
	lctx := leases.WithLease(ctx, "crash")
	run := os.Getenv("STRATA_CRASH_RUN")
	fmt.Println("ready")
	cs := s.DB.ContentStore()
	for i := 0; ; i++ {
		ref := fmt.Sprintf("crash-%s-%d", run, i)
		data, desc := crashBlob(ref)
		w, err := cs.Writer(lctx, content.WithRef(ref), content.WithDescriptor(desc))
		if err != nil {
			fmt.Fprintln(os.Stderr, "child writer:", err)
			os.Exit(3)
		}
		for off := 0; off < len(data); off += 64 << 10 {
			w.Write(data[off:min(off+64<<10, len(data))])
		}
		if err := w.Commit(lctx, desc.Size, desc.Digest); err != nil {
			fmt.Fprintln(os.Stderr, "child commit:", err)
			os.Exit(3)
		}
		w.Close()
		switch {
		case i%3 == 0:
			s.DB.Images().Create(ctx, images.Image{Name: "img-" + ref, Target: desc})
		case i%5 == 0:
			s.DB.Images().Delete(ctx, fmt.Sprintf("img-crash-%s-%d", run, i-5))
			cs.Delete(ctx, desc.Digest)
		case i%7 == 0:
			s.DB.GarbageCollect(ctx, metadata.GCOptions{})
		}
	}
}

// TestCrashSafety kills a writing child with SIGKILL at random moments and
// checks after each kill that the store opens, passes fsck, shows no partial
// blob and resumes every ingest from its offset.
func TestCrashSafety(t *testing.T) {
	kills := 200
	if testing.Short() {
		kills = 30
	}
	if v := os.Getenv("STRATA_CRASH_KILLS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("STRATA_CRASH_KILLS=%q: %v", v, err)
		}
		kills = n
	}
	root := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	resumed := 0
	for k := 0; k < kills; k++ {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+root, fmt.Sprintf("STRATA_CRASH_RUN=%d", k))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr limitedBuffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil || line != "ready\n" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("kill %d: child did not start: %q %v; stderr: %s", k, line, err, stderr.String())
		}
		go io.Copy(io.Discard, stdout)
		time.Sleep(time.Duration(rng.Int63n(int64(60 * time.Millisecond))))
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		err = cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("kill %d: child ended by itself (%v) before the kill; stderr: %s", k, err, stderr.String())
		}
		resumed += checkAfterCrash(t, root, k)
	}
	t.Logf("%d kills, %d interrupted ingests resumed", kills, resumed)
	if kills >= 50 && resumed == 0 {
		t.Fatalf("no kill interrupted an ingest in %d tries: the test is not exercising resume", kills)
	}
}

func checkAfterCrash(t *testing.T, root string, k int) (resumed int) {
	t.Helper()
	ctx := namespaces.WithNamespace(context.Background(), "crash")
	s, err := wiring.Open(ctx, wiring.Config{Root: root, GCDelay: -1})
	if err != nil {
		t.Fatalf("kill %d: store does not open: %v", k, err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Fatalf("kill %d: close: %v", k, err)
		}
	}()
	rep, err := s.DB.Fsck(ctx, false)
	if err != nil {
		t.Fatalf("kill %d: fsck: %v", k, err)
	}
	if rep.Damaged() {
		t.Fatalf("kill %d: fsck finds damage: %+v", k, rep.Problems)
	}
	for _, p := range rep.Problems {
		if p.Kind == "broken-ingest" {
			t.Fatalf("kill %d: fsck finds a broken ingest after reopening: %+v", k, p)
		}
	}
	cs := s.DB.ContentStore()
	sts, err := cs.ListStatuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lctx := leases.WithLease(ctx, "crash")
	for _, st := range sts {
		data, desc := crashBlob(st.Ref)
		w, err := cs.Writer(lctx, content.WithRef(st.Ref), content.WithDescriptor(desc))
		if errors.Is(err, errdefs.ErrAlreadyExists) {
			continue // the child died after the rename, before removing the ingest
		}
		if err != nil {
			t.Fatalf("kill %d: reopen ingest %q: %v", k, st.Ref, err)
		}
		ws, _ := w.Status()
		if ws.Offset != st.Offset || ws.Offset > desc.Size {
			t.Fatalf("kill %d: ingest %q resumes at %d; status said %d, size %d", k, st.Ref, ws.Offset, st.Offset, desc.Size)
		}
		if _, err := w.Write(data[ws.Offset:]); err != nil {
			t.Fatal(err)
		}
		// Commit verifies the digest of the whole: the bytes kept from
		// before the crash were right.
		if err := w.Commit(lctx, desc.Size, desc.Digest); err != nil {
			t.Fatalf("kill %d: commit resumed ingest %q from offset %d: %v", k, st.Ref, ws.Offset, err)
		}
		w.Close()
		resumed++
	}
	// Every visible blob is whole (fsck rehashed them all); keep the store
	// small for the next round.
	if err := s.DB.Leases().Delete(ctx, leases.Lease{ID: "crash"}); err != nil {
		t.Fatal(err)
	}
	imgs, _ := s.DB.Images().List(ctx)
	for _, img := range imgs {
		s.DB.Images().Delete(ctx, img.Name)
	}
	if _, err := s.DB.GarbageCollect(ctx, metadata.GCOptions{}); err != nil {
		t.Fatal(err)
	}
	return resumed
}

type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if len(l.b) < 64<<10 {
		l.b = append(l.b, p...)
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return string(l.b) }
