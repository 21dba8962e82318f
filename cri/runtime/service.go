// Package runtime serves the part of the Kubernetes CRI runtime service
// (k8s.io/cri-api runtime.v1.RuntimeService) that strata has before it
// runs pods: Version and Status, which crictl and critest call before
// anything else. Every other call answers Unimplemented until the runtime
// half (pods, containers) exists.
package runtime

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// APIVersion is the CRI version served.
const APIVersion = "v1"

// kubeletAPIVersion is what Version's "version" field says, as every CRI
// runtime answers it (kubelet reads runtime_api_version).
const kubeletAPIVersion = "0.1.0"

// Config names the runtime.
type Config struct {
	// Name defaults to "strata"; Version to "dev".
	Name, Version string
}

// Service is the CRI runtime service.
type Service struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	cfg Config
}

var _ runtimeapi.RuntimeServiceServer = (*Service)(nil)

// New returns the service.
func New(cfg Config) *Service {
	if cfg.Name == "" {
		cfg.Name = "strata"
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	return &Service{cfg: cfg}
}

// Version names the runtime and the CRI version it speaks.
func (s *Service) Version(context.Context, *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{Version: kubeletAPIVersion, RuntimeName: s.cfg.Name,
		RuntimeVersion: s.cfg.Version, RuntimeApiVersion: APIVersion}, nil
}

// Status reports the runtime's conditions. The image service works; pods
// and containers do not exist yet, so RuntimeReady and NetworkReady are
// false with a reason kubelet shows.
func (s *Service) Status(_ context.Context, req *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	resp := &runtimeapi.StatusResponse{Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
		{Type: runtimeapi.RuntimeReady, Status: false, Reason: "RuntimeNotImplemented",
			Message: "strata serves the CRI image service; pods and containers are not implemented yet"},
		{Type: runtimeapi.NetworkReady, Status: false, Reason: "NetworkNotImplemented",
			Message: "strata has no pod networking yet"},
	}}}
	if req.GetVerbose() {
		resp.Info = map[string]string{"runtime": s.cfg.Name, "version": s.cfg.Version}
	}
	return resp, nil
}
