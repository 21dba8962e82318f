// Package version serves containerd.services.version.v1, and says how
// strata's version rides on the containerd release it reports.
package version

import (
	"context"
	"strings"

	versionapi "github.com/containerd/containerd/api/services/version/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
)

// ContainerdVersion is the containerd release whose client-facing API
// stratad serves (transfer, streaming and health included), and what the
// version service reports: clients gate their paths on it (nerdctl parses
// it as semver and uses the transfer service for pull, push, save, load
// and tag only from 2.0 on; a version that does not parse stops it
// altogether). strata's own version rides along as semver build metadata,
// which comparisons ignore: "2.4.2+strata.v0.3.0". The containerd clients
// tests run (ctr 2.4.2) are of this release.
const ContainerdVersion = "2.4.2"

// strataMark separates the reported version from strata's own.
const strataMark = "+strata."

// ReportedVersion is what the version service answers for strata version v.
func ReportedVersion(v string) string {
	// Build metadata is dot-separated [0-9A-Za-z-] identifiers.
	clean := strings.Map(func(r rune) rune {
		switch {
		case r >= '0' && r <= '9', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '-', r == '.':
			return r
		}
		return '-'
	}, v)
	ids := strings.FieldsFunc(clean, func(r rune) bool { return r == '.' }) // no empty identifier
	if len(ids) == 0 {
		return ContainerdVersion
	}
	return ContainerdVersion + strataMark + strings.Join(ids, ".")
}

// StrataVersion returns strata's own version from a reported one (the
// whole of it when it carries none: another daemon).
func StrataVersion(reported string) string {
	if _, v, ok := strings.Cut(reported, strataMark); ok {
		return v
	}
	return reported
}

// Service serves containerd.services.version.v1: the containerd release
// served, with strata's version as build metadata (ReportedVersion).
type Service struct {
	versionapi.UnimplementedVersionServer
	version, revision string
}

// New returns the service of strata version and revision.
func New(version, revision string) *Service { return &Service{version: version, revision: revision} }

// Register serves the service on g.
func (v *Service) Register(g *grpc.Server) { versionapi.RegisterVersionServer(g, v) }

// Version answers with ReportedVersion of strata's version.
func (v *Service) Version(context.Context, *emptypb.Empty) (*versionapi.VersionResponse, error) {
	return &versionapi.VersionResponse{Version: ReportedVersion(v.version), Revision: v.revision}, nil
}
