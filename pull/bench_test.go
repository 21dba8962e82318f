package pull_test

import (
	"bytes"
	"context"
	"io"
	"math/rand"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-oci/strata/archive"
	"github.com/strata-oci/strata/archive/tartest"
	"github.com/strata-oci/strata/namespaces"
	"github.com/strata-oci/strata/pull"
	"github.com/strata-oci/strata/reference"
	"github.com/strata-oci/strata/remotes/docker"
	"github.com/strata-oci/strata/testutil"
	"github.com/strata-oci/strata/testutil/storetest"
)

// benchTar is a 64 MiB layer of half-compressible files (1 MiB each, like
// binaries and libraries), the same bytes every run.
func benchTar() []byte {
	rng := rand.New(rand.NewSource(1))
	var entries []tartest.Entry
	for i := range 64 {
		body := make([]byte, 1<<20)
		rng.Read(body[:len(body)/2])
		entries = append(entries, tartest.File("usr/lib/f"+string(rune('a'+i/26))+string(rune('a'+i%26)), string(body)))
	}
	return tartest.Tar(entries...)
}

// BenchmarkPipelineStages measures the stages of a pull in MB/s of their
// input: fetching a blob over loopback HTTP from a real registry,
// decompressing gzip (igzip when on PATH, and Go) and zstd, and a whole
// pull (fetch + verify + decompress + apply + commit) of a 3-layer image.
// Layer apply alone is archive's BenchmarkApplyCorpus.
func BenchmarkPipelineStages(b *testing.B) {
	raw := benchTar()
	gz, zst := tartest.Gzip(raw), tartest.Zstd(raw)
	reg := testutil.StartRegistry(b, testutil.RegistryConfig{})
	blob := testutil.PushBlob(b, reg.Host, "bench/blob", gz, ocispec.MediaTypeImageLayerGzip)
	ctx := namespaces.WithNamespace(context.Background(), "default")

	b.Run("fetch", func(b *testing.B) {
		ref, _ := reference.Parse(reg.Host + "/bench/blob:x")
		repo, err := docker.NewResolver(docker.Options{}).Repository(ref)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(blob.Size)
		for b.Loop() {
			rc, err := repo.OpenBlob(ctx, blob, 0)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, rc); err != nil {
				b.Fatal(err)
			}
			rc.Close()
		}
	})
	decompress := func(name string, data []byte, igzip string) {
		b.Run(name, func(b *testing.B) {
			b.Setenv("STRATA_IGZIP", igzip)
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				rc, _, err := archive.DecompressStream(bytes.NewReader(data))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, rc); err != nil {
					b.Fatal(err)
				}
				rc.Close()
			}
		})
	}
	decompress("gunzip-igzip", gz, "1")
	decompress("gunzip-go", gz, "0")
	decompress("unzstd", zst, "1")

	b.Run("pull", func(b *testing.B) {
		fx := testutil.PushRandomImage(b, reg.Host, "bench/image", "v1", 3, 32<<20)
		var total int64
		for _, d := range fx.Blobs {
			total += int64(len(d))
		}
		b.SetBytes(total)
		ref := mustRef(b, fx.Ref)
		for b.Loop() {
			b.StopTimer()
			e := newBenchStore(b)
			b.StartTimer()
			if _, err := e.Pull(ctx, ref, pull.Options{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func newBenchStore(b *testing.B) *pull.Puller {
	st, _ := storetest.Open(b)
	return pull.New(st, docker.NewResolver(docker.Options{}))
}
