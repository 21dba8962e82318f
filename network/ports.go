package network

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// PortMapping publishes a container port on the host (-p).
type PortMapping struct {
	// HostIP is the host address to listen on; unset means all of them.
	HostIP        netip.Addr `json:"hostIP,omitzero"`
	HostPort      uint16     `json:"hostPort"`
	ContainerPort uint16     `json:"containerPort"`
	// Protocol is tcp, udp or sctp.
	Protocol string `json:"protocol"`
}

func (p PortMapping) String() string {
	host := ""
	if p.HostIP.IsValid() {
		host = p.HostIP.String() + ":"
	}
	return fmt.Sprintf("%s%d:%d/%s", host, p.HostPort, p.ContainerPort, p.Protocol)
}

// ParsePort parses -p [[HOST_IP:]HOST_PORT:]CONTAINER_PORT[/PROTOCOL], as
// docker does (IPv4 host addresses only). Without a host port, one is
// picked at Setup. Anything malformed is ErrInvalidArgument naming it.
func ParsePort(s string) (PortMapping, error) {
	bad := func(why string) (PortMapping, error) {
		return PortMapping{}, fmt.Errorf("network: port %q: %s: %w", s, why, errdefs.ErrInvalidArgument)
	}
	spec, proto, hasProto := strings.Cut(s, "/")
	p := PortMapping{Protocol: "tcp"}
	if hasProto {
		switch proto {
		case "tcp", "udp", "sctp":
			p.Protocol = proto
		default:
			return bad("protocol is not tcp, udp or sctp")
		}
	}
	parts := strings.Split(spec, ":")
	port := func(v string) (uint16, bool) {
		n, err := strconv.ParseUint(v, 10, 16)
		return uint16(n), err == nil && n > 0
	}
	var ok bool
	switch len(parts) {
	case 1:
		if p.ContainerPort, ok = port(parts[0]); !ok {
			return bad("container port is not 1 to 65535")
		}
	case 2, 3:
		if len(parts) == 3 {
			ip, err := netip.ParseAddr(parts[0])
			if err != nil || !ip.Is4() {
				return bad("host address is not IPv4")
			}
			if !ip.IsUnspecified() {
				p.HostIP = ip
			}
			parts = parts[1:]
		}
		if parts[0] != "" {
			if p.HostPort, ok = port(parts[0]); !ok {
				return bad("host port is not 1 to 65535")
			}
		}
		if p.ContainerPort, ok = port(parts[1]); !ok {
			return bad("container port is not 1 to 65535")
		}
	default:
		return bad("want [[HOST_IP:]HOST_PORT:]CONTAINER_PORT[/PROTOCOL]")
	}
	return p, nil
}

// conflicts reports whether two mappings want the same host port.
func (p PortMapping) conflicts(q PortMapping) bool {
	return p.HostPort == q.HostPort && p.Protocol == q.Protocol &&
		(!p.HostIP.IsValid() || !q.HostIP.IsValid() || p.HostIP == q.HostIP)
}

// probePort fails when a host process listens on the port: DNAT would
// silently take its traffic (tcp and udp; sctp is not checked).
func probePort(p PortMapping) error {
	host := ""
	if p.HostIP.IsValid() {
		host = p.HostIP.String()
	}
	addr := net.JoinHostPort(host, strconv.Itoa(int(p.HostPort)))
	switch p.Protocol {
	case "tcp":
		l, err := net.Listen("tcp4", addr)
		if err != nil {
			return portInUse(p, err)
		}
		return l.Close()
	case "udp":
		c, err := net.ListenPacket("udp4", addr)
		if err != nil {
			return portInUse(p, err)
		}
		return c.Close()
	}
	return nil
}

func portInUse(p PortMapping, err error) error {
	switch {
	case errors.Is(err, unix.EADDRINUSE):
		return fmt.Errorf("network: port %s: the host port is in use: %w", p, errdefs.ErrAlreadyExists)
	case errors.Is(err, unix.EADDRNOTAVAIL):
		return fmt.Errorf("network: port %s: %s is not an address of this host: %w", p, p.HostIP, errdefs.ErrInvalidArgument)
	}
	return fmt.Errorf("network: port %s: %w", p, err)
}

// freePort asks the kernel for an unused port.
func freePort(protocol string) (uint16, error) {
	switch protocol {
	case "udp":
		c, err := net.ListenPacket("udp4", ":0")
		if err != nil {
			return 0, err
		}
		defer c.Close()
		return uint16(c.LocalAddr().(*net.UDPAddr).Port), nil
	default:
		l, err := net.Listen("tcp4", ":0")
		if err != nil {
			return 0, err
		}
		defer l.Close()
		return uint16(l.Addr().(*net.TCPAddr).Port), nil
	}
}
