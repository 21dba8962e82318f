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

	"github.com/strata-oci/strata/namespaces"
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
	// Namespace and ContainerID name the container: IDs are unique in a
	// namespace, not on the host. Namespace is empty in a record written
	// before records named it (see key).
	Namespace   string `json:"namespace,omitempty"`
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
	// Holder is the process that set the endpoint up, then the
	// container's init process once its task exists (Hold); Cleanup
	// leaves the endpoint alone while it runs.
	Holder *Holder `json:"holder,omitempty"`
	// Conf is the CNI config list the container was attached with: the
	// CNI DEL must get the same one.
	Conf json.RawMessage `json:"conf,omitempty"`
}

var (
	idRE       = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)
	hostnameRE = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?$`)
)

// key names a container's endpoint on the host: its record's file, its
// namespace, its files' directory and its CNI container ID (so the IPAM
// lease, the CNI cache entry and the plugins' iptables chains and
// comments): "<namespace>--<id>". The mapping is one to one: a namespace
// name never holds "--" nor ends with '-' (namespaces.Validate) and an ID
// starts with a letter or digit, so the first "--" ends the namespace; and
// it stays within CNI's alphabet for container IDs. Records written before
// endpoints were keyed by namespace have the bare ID as their key (see
// Endpoint.key).
func key(namespace, id string) string { return namespace + "--" + id }

// key is the endpoint's key: the bare container ID for a record of the
// old layout (no namespace), which everything it made is named after.
func (ep *Endpoint) key() string {
	if ep.Namespace == "" {
		return ep.ContainerID
	}
	return key(ep.Namespace, ep.ContainerID)
}

// String names the endpoint's container in messages: namespace/id.
func (ep *Endpoint) String() string {
	if ep.Namespace == "" {
		return ep.ContainerID
	}
	return ep.Namespace + "/" + ep.ContainerID
}

// filesDir is where the hosts, resolv.conf and hostname of an endpoint
// are.
func (m *Manager) filesDir(key string) string { return filepath.Join(m.state, "containers", key) }

func (m *Manager) endpointPath(key string) string {
	return filepath.Join(m.root, "endpoints", key+".json")
}

// containerRef returns the namespace of ctx and checks id; both name a
// container (ErrFailedPrecondition without a namespace, ErrInvalidArgument
// for a bad ID).
func containerRef(ctx context.Context, id string) (string, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return "", fmt.Errorf("network: container %s: %w", id, err)
	}
	if !idRE.MatchString(id) {
		return "", fmt.Errorf("network: container ID %q: want letters, digits, '_', '.', '-' (128 at most): %w", id, errdefs.ErrInvalidArgument)
	}
	return ns, nil
}

// Setup gives a container (id in the namespace of ctx) its network: a
// namespace (except for Host), an interface on the network with an
// address, published ports, and its hosts, resolv.conf and hostname files;
// the containers of the same user-defined network get its name in their
// /etc/hosts. The calling process holds the endpoint (Cleanup keeps it)
// until Hold hands it to the container's task. A container that has an
// endpoint already is ErrAlreadyExists; ctx without a namespace
// ErrFailedPrecondition; an unknown network ErrNotFound; a host port in
// use (by a host process or another container) ErrAlreadyExists naming it.
// On any error nothing is left.
func (m *Manager) Setup(ctx context.Context, id string, req Request) (_ *Endpoint, retErr error) {
	ns, err := containerRef(ctx, id)
	if err != nil {
		return nil, err
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
	k := key(ns, id)
	if _, err := os.Stat(m.endpointPath(k)); err == nil {
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
	holder, err := processHolder(os.Getpid())
	if err != nil {
		return nil, fmt.Errorf("network: container %s: %w", id, err)
	}

	dir := m.filesDir(k)
	ep := &Endpoint{
		Namespace: ns, ContainerID: id, Network: req.Network, Name: req.Name, Hostname: req.Hostname, Ports: ports,
		HostsPath: filepath.Join(dir, "hosts"), ResolvConfPath: filepath.Join(dir, "resolv.conf"),
		HostnamePath: filepath.Join(dir, "hostname"), Holder: holder,
	}
	if req.Network != Host {
		ep.NetNS = filepath.Join(m.state, "netns", k)
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
		res, err := c.Setup(ctx, k, ep.NetNS, gocni.WithCapabilityPortMap(cniPorts(ports)))
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
					return nil, fmt.Errorf("network: port %s: the host port is published by container %s: %w", p, ep, errdefs.ErrAlreadyExists)
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

// Teardown releases what Setup made for a container (id in the namespace
// of ctx): its interface, address and port rules, namespace and files, and
// its name in the hosts files of its network's other containers. The
// network's bridge and the plugins' shared chains stay for the next
// container (making them again costs a second); Cleanup removes them when
// nothing uses them. A container without an endpoint is no error (stop,
// exit and rm may each call it). If a step fails the record stays, for the
// next Teardown or Cleanup to finish.
func (m *Manager) Teardown(ctx context.Context, id string) error {
	return m.teardownUnless(ctx, id, nil)
}

// TeardownExited is Teardown for a container whose task's init process
// pid has exited (stratad's /tasks/exit), unless another process that
// runs holds the endpoint now: the container was started again, with a
// new endpoint, before the exit was handled.
func (m *Manager) TeardownExited(ctx context.Context, id string, pid int) error {
	return m.teardownUnless(ctx, id, func(ep *Endpoint) bool {
		return ep.Holder != nil && ep.Holder.PID != pid && ep.Holder.alive()
	})
}

// teardownUnless finds the container's endpoint under the lock and tears
// it down unless keep (when not nil) says it is still someone's.
func (m *Manager) teardownUnless(ctx context.Context, id string, keep func(*Endpoint) bool) error {
	ns, err := containerRef(ctx, id)
	if err != nil {
		return err
	}
	unlock, err := m.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	ep, err := m.find(ns, id)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if keep != nil && keep(ep) {
		return nil
	}
	return m.teardown(ctx, ep)
}

// teardown runs with the lock held.
func (m *Manager) teardown(ctx context.Context, ep *Endpoint) error {
	k := ep.key()
	if ep.Network != Host {
		path := ""
		if isNetNS(ep.NetNS) {
			path = ep.NetNS
		}
		c, err := m.cni(ep.Conf)
		if err != nil {
			return fmt.Errorf("network: tear down container %s: %w", ep, err)
		}
		// Without a namespace (after a reboot) the plugins still release
		// the address and the port and masquerade rules.
		if err := c.Remove(ctx, k, path, gocni.WithCapabilityPortMap(cniPorts(ep.Ports))); err != nil {
			return fmt.Errorf("network: tear down container %s on %s: %w", ep, ep.Network, err)
		}
		if err := removeNetNS(ep.NetNS); err != nil {
			return fmt.Errorf("network: tear down container %s: %w", ep, err)
		}
	}
	if err := os.RemoveAll(m.filesDir(k)); err != nil {
		return fmt.Errorf("network: tear down container %s: %w", ep, err)
	}
	if err := os.Remove(m.endpointPath(k)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("network: tear down container %s: %w", ep, err)
	}
	if err := m.updatePeers(ctx, ep.Network); err != nil {
		return fmt.Errorf("network: tear down container %s: %w", ep, err)
	}
	return nil
}

// Hold hands a container's endpoint (id in the namespace of ctx) to the
// process pid, the init process of the container's task once the task
// exists: Cleanup keeps the endpoint while that process runs, whatever its
// live callback says, and tears it down once it is gone and the callback
// says the container no longer runs. A container without an endpoint is
// ErrNotFound, as is a pid that names no running process.
func (m *Manager) Hold(ctx context.Context, id string, pid int) error {
	ns, err := containerRef(ctx, id)
	if err != nil {
		return err
	}
	holder, err := processHolder(pid)
	if err != nil {
		return fmt.Errorf("network: container %s: holder: %w", id, err)
	}
	unlock, err := m.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	ep, err := m.find(ns, id)
	if err != nil {
		return err
	}
	ep.Holder = holder
	return m.writeEndpoint(ep)
}

func (m *Manager) writeEndpoint(ep *Endpoint) error {
	data, err := json.MarshalIndent(ep, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(m.endpointPath(ep.key()), data); err != nil {
		return fmt.Errorf("network: container %s: record: %w", ep, err)
	}
	return nil
}

// find returns the endpoint of container id in namespace ns: its record,
// or else one of the old layout by that ID, whose namespace is unknown
// (see key); ErrNotFound when there is neither.
func (m *Manager) find(ns, id string) (*Endpoint, error) {
	ep, err := m.readEndpoint(key(ns, id))
	if err == nil && ep.Namespace == ns && ep.ContainerID == id {
		return ep, nil
	}
	if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return nil, err
	}
	if ep, err := m.readEndpoint(id); err == nil && ep.Namespace == "" {
		return ep, nil
	} else if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return nil, err
	}
	return nil, fmt.Errorf("network: container %s has no endpoint in namespace %s: %w", id, ns, errdefs.ErrNotFound)
}

// readEndpoint reads the record of a key and checks that it is that
// key's.
func (m *Manager) readEndpoint(k string) (*Endpoint, error) {
	data, err := os.ReadFile(m.endpointPath(k))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("network: no endpoint %s: %w", k, errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("network: endpoint %s: %w", k, err)
	}
	var ep Endpoint
	if err := json.Unmarshal(data, &ep); err != nil {
		return nil, fmt.Errorf("network: endpoint %s: record %s: %w: %w", k, m.endpointPath(k), err, errdefs.ErrDataLoss)
	}
	if ep.key() != k {
		return nil, fmt.Errorf("network: endpoint %s: record %s names container %s: %w", k, m.endpointPath(k), &ep, errdefs.ErrDataLoss)
	}
	return &ep, nil
}

// Endpoint returns a container's endpoint (id in the namespace of ctx);
// ErrNotFound when it has none.
func (m *Manager) Endpoint(ctx context.Context, id string) (*Endpoint, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ns, err := containerRef(ctx, id)
	if err != nil {
		return nil, err
	}
	return m.find(ns, id)
}

// endpoints lists every record, of every namespace, those of a setup in
// progress included.
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
		k, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.HasPrefix(k, ".") {
			continue
		}
		ep, err := m.readEndpoint(k)
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
