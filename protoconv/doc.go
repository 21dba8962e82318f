// Package protoconv converts between strata's domain types and the
// messages of containerd's gRPC API (github.com/containerd/containerd/api),
// for the daemon's services and for the client alike, so that neither has
// to import the other.
//
// Each conversion is a pair, XToProto and XFromProto. FromProto functions
// accept nil messages and return the zero value; they do not validate
// (a digest stays as sent) unless their doc says so. Errors are not
// converted here: they cross the socket through
// github.com/containerd/errdefs/pkg/errgrpc.
package protoconv
