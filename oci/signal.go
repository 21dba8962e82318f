package oci

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

// sigrtmin and sigrtmax are the real-time signals as glibc numbers them
// (the kernel's 32 and 33 are glibc's own), the numbering docker uses.
const (
	sigrtmin = 34
	sigrtmax = 64
)

// StopSignal returns the signal that stops a container of this image: its
// STOPSIGNAL, or SIGTERM. A signal that does not parse is ErrInvalidArgument.
func StopSignal(img ocispec.ImageConfig) (unix.Signal, error) {
	if img.StopSignal == "" {
		return unix.SIGTERM, nil
	}
	s, err := ParseSignal(img.StopSignal)
	if err != nil {
		return 0, fmt.Errorf("oci: the image's stop signal: %w", err)
	}
	return s, nil
}

// ParseSignal parses a signal as docker does: a number (1 to 64), a name
// with or without SIG in any case (TERM, sigkill), or RTMIN+n / RTMAX-n.
// Anything else is ErrInvalidArgument naming it.
func ParseSignal(s string) (unix.Signal, error) {
	bad := fmt.Errorf("unknown signal %q: %w", s, errdefs.ErrInvalidArgument)
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > sigrtmax {
			return 0, bad
		}
		return unix.Signal(n), nil
	}
	name := strings.TrimPrefix(strings.ToUpper(s), "SIG")
	rt := func(base int, rest string, sign int) (unix.Signal, error) {
		n := 0
		if rest != "" {
			if rest[0] != '+' && rest[0] != '-' || (rest[0] == '+') != (sign > 0) {
				return 0, bad
			}
			v, err := strconv.Atoi(rest[1:])
			if err != nil || v < 0 || v > sigrtmax-sigrtmin {
				return 0, bad
			}
			n = v
		}
		return unix.Signal(base + sign*n), nil
	}
	switch {
	case strings.HasPrefix(name, "RTMIN"):
		return rt(sigrtmin, name[len("RTMIN"):], 1)
	case strings.HasPrefix(name, "RTMAX"):
		return rt(sigrtmax, name[len("RTMAX"):], -1)
	}
	if sig := unix.SignalNum("SIG" + name); sig != 0 {
		return sig, nil
	}
	return 0, bad
}
