package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/containerd/errdefs"
	gocni "github.com/containerd/go-cni"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Request is what a container asks of the network at start.
type Request struct {
	// Network is Default (when empty), Host, None or a user-defined one.
	Network string
	// Name is the container's name: what the containers of its
	// user-defined network call it in their /etc/hosts.
	Name string
	// Hostname goes into /etc/hostname and /etc/hosts; empty is the ID's
	// first 12 characters.
	Hostname string
	// Ports to publish; a zero HostPort gets a free one.
	Ports []PortMapping
	// DNS and DNSSearch replace the host's nameservers and search domains
	// in the container's resolv.conf (--dns, --dns-search).
	DNS       []netip.Addr
	DNSSearch []string
}

// Endpoint is what a container holds on the host: its record, kept under
// the root until Teardown.
type Endpoint struct {
	ContainerID string `json:"containerID"`
	Network     string `json:"network"`
	Name        string `json:"name,omitempty"`
	Hostname    string `json:"hostname"`
	// NetNS is the namespace to put in the runtime spec; empty for Host.
	NetNS   string        `json:"netns,omitempty"`
	IP      netip.Addr    `json:"ip,omitzero"`
	Gateway netip.Addr    `json:"gateway,omitzero"`
	MAC     string        `json:"mac,omitempty"`
	Ports   []PortMapping `json:"ports,omitempty"`
	// Files to bind-mount on /etc/hosts, /etc/resolv.conf, /etc/hostname.
	HostsPath      string `json:"hostsPath"`
	ResolvConfPath string `json:"resolvConfPath"`
	HostnamePath   string `json:"hostnamePath"`
	// Ready is false from the first step of Setup until its last.
	Ready bool `json:"ready"`
	// Conf is the CNI config list the container was attached with: the
	// CNI DEL must get the same one.
	Conf json.RawMessage `json:"conf,omitempty"`
}

var (
	idRE       = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)
	hostnameRE = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?$`)
)

func (m *Manager) endpointPath(id string) string {
	return filepath.Join(m.root, "endpoints", id+".json")
}

// Setup gives a container its network: a namespace (except for Host), an
// interface on the network with an address, published ports, and its
// hosts, resolv.conf and hostname files; the containers of the same
// user-defined network get its name in their /etc/hosts. A container that
// has an endpoint already is ErrAlreadyExists; an unknown network
// ErrNotFound; a host port in use (by a host process or another
// container) ErrAlreadyExists naming it. On any error nothing is left.
func (m *Manager) Setup(ctx context.Context, id string, req Request) (_ *Endpoint, retErr error) {
	if !idRE.MatchString(id) {
		return nil, fmt.Errorf("network: container ID %q: want letters, digits, '_', '.', '-' (128 at most): %w", id, errdefs.ErrInvalidArgument)
	}
	if req.Network == "" {
		req.Network = Default
	}
	if req.Hostname == "" {
		req.Hostname = id[:min(12, len(id))]
	}
	if req.Network == Host && len(req.Ports) > 0 {
		return nil, fmt.Errorf("network: container %s: ports cannot be published on the host network (they are the host's already): %w", id, errdefs.ErrInvalidArgument)
	}
	if req.Name != "" && !nameRE.MatchString(req.Name) {
		return nil, fmt.Errorf("network: container %s: name %q: want letters, digits, '_', '.', '-': %w", id, req.Name, errdefs.ErrInvalidArgument)
	}
	if !hostnameRE.MatchString(req.Hostname) || len(req.Hostname) > 64 {
		return nil, fmt.Errorf("network: container %s: hostname %q: want letters, digits, '-' and '.' (64 at most): %w", id, req.Hostname, errdefs.ErrInvalidArgument)
	}
	for _, d := range req.DNSSearch {
		if d == "" || strings.ContainsAny(d, " \t\n") {
			return nil, fmt.Errorf("network: container %s: DNS search domain %q: %w", id, d, errdefs.ErrInvalidArgument)
		}
	}
	unlock, err := m.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()

	var nw *Network
	if req.Network != Host && req.Network != None {
		n, err := m.get(req.Network)
		if err != nil {
			return nil, fmt.Errorf("network: container %s: %w", id, err)
		}
		nw = &n
	}
	if _, err := os.Stat(m.endpointPath(id)); err == nil {
		return nil, fmt.Errorf("network: container %s has a network endpoint already: %w", id, errdefs.ErrAlreadyExists)
	}
	others, err := m.endpoints(ctx)
	if err != nil {
		return nil, err
	}
	ports, err := choosePorts(id, req.Ports, others)
	if err != nil {
		return nil, err
	}

	dir := filepath.Join(m.state, "containers", id)
	ep := &Endpoint{
		ContainerID: id, Network: req.Network, Name: req.Name, Hostname: req.Hostname, Ports: ports,
		HostsPath: filepath.Join(dir, "hosts"), ResolvConfPath: filepath.Join(dir, "resolv.conf"),
		HostnamePath: filepath.Join(dir, "hostname"),
	}
	if req.Network != Host {
		ep.NetNS = filepath.Join(m.state, "netns", id)
	}
	if nw != nil {
		if ep.Conf, err = nw.marshal(m.ipamDir()); err != nil {
			return nil, fmt.Errorf("network: container %s: %w", id, err)
		}
	}
	// The record comes first: whatever happens next, Cleanup finds it.
	if err := m.writeEndpoint(ep); err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			// Undo even when ctx was cancelled (Ctrl-C during the CNI ADD).
			if err := m.teardown(context.WithoutCancel(ctx), ep); err != nil {
				m.opts.logger.Warn("network: undo a failed setup", "container", id, "error", err)
			}
		}
	}()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("network: container %s: %w", id, err)
	}
	if ep.NetNS != "" {
		if err := newNetNS(ep.NetNS); err != nil {
			return nil, fmt.Errorf("network: container %s: %w", id, err)
		}
		c, err := m.cni(ep.Conf)
		if err != nil {
			return nil, fmt.Errorf("network: container %s: %w", id, err)
		}
		res, err := c.Setup(ctx, id, ep.NetNS, gocni.WithCapabilityPortMap(cniPorts(ports)))
		if err != nil {
			return nil, fmt.Errorf("network: container %s: attach to %s: %w", id, req.Network, err)
		}
		if iface, ok := res.Interfaces["eth0"]; ok && nw != nil {
			ep.MAC = iface.Mac
			for _, c := range iface.IPConfigs {
				if a, ok := netip.AddrFromSlice(c.IP); ok && a.Unmap().Is4() {
					ep.IP = a.Unmap()
					if g, ok := netip.AddrFromSlice(c.Gateway); ok {
						ep.Gateway = g.Unmap()
					}
					break
				}
			}
		}
		if nw != nil && !ep.IP.IsValid() {
			return nil, fmt.Errorf("network: container %s: CNI gave eth0 no IPv4 address on %s: %w", id, req.Network, errdefs.ErrUnknown)
		}
	}
	if err := m.writeFiles(ep, req, others); err != nil {
		return nil, fmt.Errorf("network: container %s: %w", id, err)
	}
	ep.Ready = true
	if err := m.writeEndpoint(ep); err != nil {
		return nil, err
	}
	if err := m.updatePeers(ctx, ep.Network); err != nil {
		return nil, fmt.Errorf("network: container %s: %w", id, err)
	}
	return ep, nil
}

// choosePorts picks free host ports where none was given and refuses one
// that another container publishes or a host process listens on.
func choosePorts(id string, want []PortMapping, others []*Endpoint) ([]PortMapping, error) {
	var out []PortMapping
	for _, p := range want {
		if p.ContainerPort == 0 || p.Protocol == "" {
			return nil, fmt.Errorf("network: container %s: port %s: no container port or protocol: %w", id, p, errdefs.ErrInvalidArgument)
		}
		if p.HostPort == 0 {
			port, err := freePort(p.Protocol)
			if err != nil {
				return nil, fmt.Errorf("network: container %s: pick a host port for %s: %w", id, p, err)
			}
			p.HostPort = port
		}
		for _, q := range out {
			if p.conflicts(q) {
				return nil, fmt.Errorf("network: container %s: port %s is published twice: %w", id, p, errdefs.ErrInvalidArgument)
			}
		}
		for _, ep := range others {
			for _, q := range ep.Ports {
				if p.conflicts(q) {
					return nil, fmt.Errorf("network: port %s: the host port is published by container %s: %w", p, ep.ContainerID, errdefs.ErrAlreadyExists)
				}
			}
		}
		if err := probePort(p); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func cniPorts(ports []PortMapping) []gocni.PortMapping {
	var out []gocni.PortMapping
	for _, p := range ports {
		pm := gocni.PortMapping{HostPort: int32(p.HostPort), ContainerPort: int32(p.ContainerPort), Protocol: p.Protocol}
		if p.HostIP.IsValid() {
			pm.HostIP = p.HostIP.String()
		}
		out = append(out, pm)
	}
	return out
}

// cni returns a CNI instance for a config list (nil: loopback only). The
// network comes first so that its interface is eth0.
func (m *Manager) cni(conf []byte) (gocni.CNI, error) {
	count := 1
	var load []gocni.Opt
	if conf != nil {
		load = append(load, gocni.WithConfListBytes(conf))
		count = 2
	}
	load = append(load, gocni.WithLoNetwork)
	c, err := gocni.New(gocni.WithPluginDir(m.opts.pluginDirs), gocni.WithMinNetworkCount(count), gocni.WithInterfacePrefix("eth"))
	if err != nil {
		return nil, fmt.Errorf("CNI: %w", err)
	}
	if err := c.Load(load...); err != nil {
		return nil, fmt.Errorf("CNI: load config: %w", err)
	}
	return c, nil
}

// Teardown releases what Setup made for a container: its interface,
// address and port rules, namespace and files, and its name in the hosts
// files of its network's other containers. The network's bridge and the
// plugins' shared chains stay for the next container (making them again
// costs a second); Cleanup removes them when nothing uses them. A container without an endpoint
// is no error (stop, exit and rm may each call it). If a step fails the
// record stays, for the next Teardown or Cleanup to finish.
func (m *Manager) Teardown(ctx context.Context, id string) error {
	if !idRE.MatchString(id) {
		return fmt.Errorf("network: container ID %q: %w", id, errdefs.ErrInvalidArgument)
	}
	unlock, err := m.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	ep, err := m.readEndpoint(id)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return m.teardown(ctx, ep)
}

// teardown runs with the lock held.
func (m *Manager) teardown(ctx context.Context, ep *Endpoint) error {
	id := ep.ContainerID
	if ep.Network != Host {
		path := ""
		if isNetNS(ep.NetNS) {
			path = ep.NetNS
		}
		c, err := m.cni(ep.Conf)
		if err != nil {
			return fmt.Errorf("network: tear down container %s: %w", id, err)
		}
		// Without a namespace (after a reboot) the plugins still release
		// the address and the port and masquerade rules.
		if err := c.Remove(ctx, id, path, gocni.WithCapabilityPortMap(cniPorts(ep.Ports))); err != nil {
			return fmt.Errorf("network: tear down container %s on %s: %w", id, ep.Network, err)
		}
		if err := removeNetNS(ep.NetNS); err != nil {
			return fmt.Errorf("network: tear down container %s: %w", id, err)
		}
	}
	if err := os.RemoveAll(filepath.Join(m.state, "containers", id)); err != nil {
		return fmt.Errorf("network: tear down container %s: %w", id, err)
	}
	if err := os.Remove(m.endpointPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("network: tear down container %s: %w", id, err)
	}
	if err := m.updatePeers(ctx, ep.Network); err != nil {
		return fmt.Errorf("network: tear down container %s: %w", id, err)
	}
	return nil
}

func (m *Manager) writeEndpoint(ep *Endpoint) error {
	data, err := json.MarshalIndent(ep, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(m.endpointPath(ep.ContainerID), data); err != nil {
		return fmt.Errorf("network: container %s: record: %w", ep.ContainerID, err)
	}
	return nil
}

func (m *Manager) readEndpoint(id string) (*Endpoint, error) {
	data, err := os.ReadFile(m.endpointPath(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("network: container %s has no endpoint: %w", id, errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("network: container %s: %w", id, err)
	}
	var ep Endpoint
	if err := json.Unmarshal(data, &ep); err != nil {
		return nil, fmt.Errorf("network: container %s: record %s: %w: %w", id, m.endpointPath(id), err, errdefs.ErrDataLoss)
	}
	if ep.ContainerID != id {
		return nil, fmt.Errorf("network: container %s: record %s names %q: %w", id, m.endpointPath(id), ep.ContainerID, errdefs.ErrDataLoss)
	}
	return &ep, nil
}

// Endpoint returns a container's endpoint; ErrNotFound when it has none.
func (m *Manager) Endpoint(ctx context.Context, id string) (*Endpoint, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !idRE.MatchString(id) {
		return nil, fmt.Errorf("network: container ID %q: %w", id, errdefs.ErrInvalidArgument)
	}
	return m.readEndpoint(id)
}

// endpoints lists every record, those of a setup in progress included.
func (m *Manager) endpoints(ctx context.Context) ([]*Endpoint, error) {
	entries, err := os.ReadDir(filepath.Join(m.root, "endpoints"))
	if err != nil {
		return nil, fmt.Errorf("network: endpoints: %w", err)
	}
	var out []*Endpoint
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !idRE.MatchString(id) {
			continue
		}
		ep, err := m.readEndpoint(id)
		if errors.Is(err, errdefs.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, ep)
	}
	return out, nil
}

// Mounts are the bind mounts of the endpoint's hosts, resolv.conf and
// hostname files on /etc in the container, for the runtime spec (read-only
// with a read-only root, as docker).
func (ep *Endpoint) Mounts(readOnly bool) []specs.Mount {
	opts := []string{"rbind", "rprivate"}
	if readOnly {
		opts = append(opts, "ro")
	}
	return []specs.Mount{
		{Destination: "/etc/hosts", Type: "bind", Source: ep.HostsPath, Options: opts},
		{Destination: "/etc/resolv.conf", Type: "bind", Source: ep.ResolvConfPath, Options: opts},
		{Destination: "/etc/hostname", Type: "bind", Source: ep.HostnamePath, Options: opts},
	}
}
