package server

import (
	"fmt"
	"path/filepath"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	criimages "github.com/strata-oci/strata/cri/images"
	criruntime "github.com/strata-oci/strata/cri/runtime"
)

// CRIConfig configures the Kubernetes CRI services stratad serves on its
// socket next to containerd's API.
type CRIConfig struct {
	// Disabled leaves the CRI out.
	Disabled bool
	// SandboxImage and PinnedImages are pinned: kubelet never collects them.
	SandboxImage string
	PinnedImages []string
	// PullProgressTimeout and PullMinRate (bytes/s) cancel a pull that
	// moves fewer bytes than the rate for the timeout (zero: 5m, 1 KiB/s).
	PullProgressTimeout time.Duration
	PullMinRate         int64
}

// registerCRI serves runtime.v1's image service and the Version and Status
// of its runtime service on s. Pulls run on the server's job runner, the
// jobs service's: a kubelet pull and a strata pull of one image share its
// downloads.
func (s *Server) registerCRI() error {
	cfg := s.cfg.CRI
	if cfg.Disabled {
		return nil
	}
	st := s.Store
	is, err := criimages.New(st.DB.Images(), st.DB.ContentStore(), s.runner, s.events, criimages.Config{
		SandboxImage: cfg.SandboxImage, PinnedImages: cfg.PinnedImages,
		PullProgressTimeout: cfg.PullProgressTimeout, PullMinRate: cfg.PullMinRate,
		SnapshotterRoot: filepath.Join(st.Root, "snapshots", st.DefaultSnapshotter),
		ContentRoot:     filepath.Join(st.Root, "content"),
		Logger:          s.Log.With("component", "cri"),
		StartJob:        s.startLongJob,
	})
	if err != nil {
		return fmt.Errorf("cri: %w", err)
	}
	runtimeapi.RegisterImageServiceServer(s.GRPC(), is)
	runtimeapi.RegisterRuntimeServiceServer(s.GRPC(), criruntime.New(criruntime.Config{Version: s.cfg.Version}))
	s.extraMetrics = append(s.extraMetrics, is.WriteMetrics)
	s.AddPlugin(Plugin{Type: "io.containerd.grpc.v1", ID: "cri", Requires: []string{"io.containerd.metadata.v1"}})
	return nil
}
