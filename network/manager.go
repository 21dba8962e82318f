package network

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/strata-oci/strata/namespaces"
)

// Defaults of a Manager.
var (
	// DefaultBridge is the default network's Linux bridge.
	DefaultBridge = "strata0"
	// DefaultSubnet is the default network's subnet (podman takes
	// 10.88.0.0/16, nerdctl 10.4.0.0/24, docker 172.17.0.0/16).
	DefaultSubnet = netip.MustParsePrefix("10.87.0.0/16")
	// DefaultPool is where user-defined networks get a /24 when they name
	// no subnet.
	DefaultPool = netip.MustParsePrefix("10.86.0.0/16")
	// DefaultPluginDirs are where Debian's containernetworking-plugins
	// install the plugins, then the CNI convention.
	DefaultPluginDirs = []string{"/usr/lib/cni", "/opt/cni/bin"}
)

// Manager owns the networks and the containers' endpoints under a root and
// a state directory. Several processes may share them (the CLI in embedded
// mode, the daemon): every change holds a file lock.
type Manager struct {
	root, state string
	opts        options
	defaultNet  Network
}

type options struct {
	pluginDirs    []string
	defaultBridge string
	defaultSubnet netip.Prefix
	pool          netip.Prefix
	resolvConf    string
	logger        *slog.Logger
}

// Opt configures a Manager.
type Opt func(*options) error

// WithPluginDirs sets where the CNI plugins are looked for.
func WithPluginDirs(dirs ...string) Opt {
	return func(o *options) error { o.pluginDirs = dirs; return nil }
}

// WithDefaultNetwork sets the default network's bridge and subnet.
func WithDefaultNetwork(bridge string, subnet netip.Prefix) Opt {
	return func(o *options) error {
		if bridge == "" || len(bridge) > 15 {
			return fmt.Errorf("bridge name %q: want 1 to 15 characters: %w", bridge, errdefs.ErrInvalidArgument)
		}
		o.defaultBridge, o.defaultSubnet = bridge, subnet
		return nil
	}
}

// WithPool sets the range user-defined networks without a subnet get a
// /24 from.
func WithPool(pool netip.Prefix) Opt {
	return func(o *options) error { o.pool = pool; return nil }
}

// WithResolvConf sets the host's resolver configuration containers start
// from (default /etc/resolv.conf).
func WithResolvConf(path string) Opt {
	return func(o *options) error { o.resolvConf = path; return nil }
}

// WithLogger sets where cleanup reports what it removed.
func WithLogger(l *slog.Logger) Opt {
	return func(o *options) error { o.logger = l; return nil }
}

// New opens (making them when missing) a network root and state directory.
func New(root, state string, opts ...Opt) (*Manager, error) {
	o := options{
		pluginDirs:    DefaultPluginDirs,
		defaultBridge: DefaultBridge,
		defaultSubnet: DefaultSubnet,
		pool:          DefaultPool,
		resolvConf:    "/etc/resolv.conf",
		logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("network: %w", err)
		}
	}
	for name, p := range map[string]netip.Prefix{"default subnet": o.defaultSubnet, "pool": o.pool} {
		if !p.IsValid() || !p.Addr().Is4() || p.Bits() > 30 {
			return nil, fmt.Errorf("network: %s %s: want an IPv4 prefix of /30 or larger: %w", name, p, errdefs.ErrInvalidArgument)
		}
	}
	if !filepath.IsAbs(root) || !filepath.IsAbs(state) {
		return nil, fmt.Errorf("network: root %q and state %q must be absolute paths: %w", root, state, errdefs.ErrInvalidArgument)
	}
	for _, d := range []string{
		filepath.Join(root, "networks"), filepath.Join(root, "endpoints"), filepath.Join(root, "ipam"),
		filepath.Join(state, "netns"), filepath.Join(state, "containers"),
	} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("network: %w", err)
		}
	}
	subnet := o.defaultSubnet.Masked()
	m := &Manager{root: root, state: state, opts: o, defaultNet: Network{
		Name: Default, ID: strings.Repeat("0", 64), Bridge: o.defaultBridge, Subnet: subnet,
		Gateway: subnet.Addr().Next(), Default: true,
	}}
	return m, nil
}

// hostLock is the lock every manager on the host takes, after its own,
// for each change: the plugins' shared iptables chains and bridges of the
// same name are the host's, not one root's, and a Cleanup that removes
// chains it finds empty must not run between another root's container
// creating them and adding its rules. A variable for tests.
var hostLock = "/run/lock/strata-network.lock"

// lock takes the manager's file lock, then the host's; the returned
// function releases both.
func (m *Manager) lock(ctx context.Context) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	own, err := flockFile(filepath.Join(m.root, "lock"))
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(hostLock), 0o755); err != nil {
		own.Close()
		return nil, fmt.Errorf("network: lock: %w", err)
	}
	host, err := flockFile(hostLock)
	if err != nil {
		own.Close()
		return nil, err
	}
	return func() { host.Close(); own.Close() }, nil
}

// flockFile opens path (creating it) and holds an exclusive flock on it
// until the file is closed.
func flockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("network: lock: %w", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("network: lock %s: %w", path, err)
	}
	return f, nil
}

func (m *Manager) networkPath(name string) string {
	return filepath.Join(m.root, "networks", name+".conflist")
}

// Create makes a user-defined network. A name taken (the built-in ones
// included) is ErrAlreadyExists; a bad name, a subnet that is not IPv4, too
// small, or that overlaps another network's or a host interface's address
// is ErrInvalidArgument naming the other; a full pool is ErrUnavailable.
func (m *Manager) Create(ctx context.Context, req CreateRequest) (Network, error) {
	if err := validName(req.Name); err != nil {
		return Network{}, fmt.Errorf("network: create: %w", err)
	}
	if req.Name == Default || req.Name == Host || req.Name == None {
		return Network{}, fmt.Errorf("network: create %s: the name is built in: %w", req.Name, errdefs.ErrAlreadyExists)
	}
	unlock, err := m.lock(ctx)
	if err != nil {
		return Network{}, err
	}
	defer unlock()
	if _, err := os.Stat(m.networkPath(req.Name)); err == nil {
		return Network{}, fmt.Errorf("network: create %s: the name is taken: %w", req.Name, errdefs.ErrAlreadyExists)
	}
	existing, err := m.list()
	if err != nil {
		return Network{}, err
	}
	hostNets, err := hostPrefixes()
	if err != nil {
		return Network{}, fmt.Errorf("network: create %s: %w", req.Name, err)
	}
	n := Network{Name: req.Name, ID: newID(), Created: time.Now().UTC(), Labels: req.Labels}
	n.Bridge = "st-" + n.ID[:12]
	if req.Subnet.IsValid() {
		if err := checkSubnet(req.Subnet, existing, hostNets); err != nil {
			return Network{}, fmt.Errorf("network: create %s: %w", req.Name, err)
		}
		n.Subnet = req.Subnet.Masked()
	} else {
		n.Subnet, err = m.freeSubnet(existing, hostNets)
		if err != nil {
			return Network{}, fmt.Errorf("network: create %s: %w", req.Name, err)
		}
	}
	n.Gateway = n.Subnet.Addr().Next()
	if req.Gateway.IsValid() {
		if !n.Subnet.Contains(req.Gateway) || req.Gateway == n.Subnet.Addr() || isBroadcast(n.Subnet, req.Gateway) {
			return Network{}, fmt.Errorf("network: create %s: gateway %s is not a host address of %s: %w", req.Name, req.Gateway, n.Subnet, errdefs.ErrInvalidArgument)
		}
		n.Gateway = req.Gateway
	}
	data, err := n.marshal(m.ipamDir())
	if err != nil {
		return Network{}, fmt.Errorf("network: create %s: %w", req.Name, err)
	}
	if err := writeFileAtomic(m.networkPath(n.Name), data); err != nil {
		return Network{}, fmt.Errorf("network: create %s: %w", req.Name, err)
	}
	return n, nil
}

func isBroadcast(p netip.Prefix, a netip.Addr) bool {
	b := a.As4()
	mask := uint32(1)<<(32-p.Bits()) - 1
	return binary.BigEndian.Uint32(b[:])&mask == mask
}

func checkSubnet(s netip.Prefix, existing []Network, hostNets []netip.Prefix) error {
	if !s.Addr().Is4() || s.Bits() > 30 {
		return fmt.Errorf("subnet %s: want an IPv4 prefix of /30 or larger: %w", s, errdefs.ErrInvalidArgument)
	}
	for _, n := range existing {
		if overlaps(s, n.Subnet) {
			return fmt.Errorf("subnet %s overlaps network %s's %s: %w", s, n.Name, n.Subnet, errdefs.ErrInvalidArgument)
		}
	}
	for _, h := range hostNets {
		if overlaps(s, h) {
			return fmt.Errorf("subnet %s overlaps the host's %s: %w", s, h, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

func (m *Manager) freeSubnet(existing []Network, hostNets []netip.Prefix) (netip.Prefix, error) {
	pool := m.opts.pool.Masked()
	bits := 24
	if pool.Bits() > 24 {
		bits = pool.Bits()
	}
	for p := netip.PrefixFrom(pool.Addr(), bits); pool.Contains(p.Addr()); {
		if checkSubnet(p, existing, hostNets) == nil {
			return p, nil
		}
		next := p.Addr()
		for range 1 << (32 - bits) {
			next = next.Next()
		}
		if !next.IsValid() {
			break
		}
		p = netip.PrefixFrom(next, bits)
	}
	return netip.Prefix{}, fmt.Errorf("no free /%d left in the pool %s: %w", bits, pool, errdefs.ErrUnavailable)
}

// hostPrefixes are the host's IPv4 interface addresses with their prefixes
// (strata's own bridges among them: their networks overlap anyway).
func hostPrefixes() ([]netip.Prefix, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list host interfaces: %w", err)
	}
	var out []netip.Prefix
	for _, iface := range ifaces {
		addrs, err := iface.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipnet, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			if p, err := netip.ParsePrefix(ipnet.String()); err == nil && p.Addr().Is4() {
				out = append(out, p.Masked())
			}
		}
	}
	return out, nil
}

// List returns the default network and the user-defined ones, by name.
func (m *Manager) List(ctx context.Context) ([]Network, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return m.list()
}

func (m *Manager) list() ([]Network, error) {
	entries, err := os.ReadDir(filepath.Join(m.root, "networks"))
	if err != nil {
		return nil, fmt.Errorf("network: list: %w", err)
	}
	out := []Network{m.defaultNet}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".conflist")
		if !ok {
			continue
		}
		n, err := m.get(name)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Get returns a network by name; ErrNotFound when there is none
// ("host" and "none" are modes, not networks).
func (m *Manager) Get(ctx context.Context, name string) (Network, error) {
	if err := ctx.Err(); err != nil {
		return Network{}, err
	}
	return m.get(name)
}

func (m *Manager) get(name string) (Network, error) {
	if name == Default {
		return m.defaultNet, nil
	}
	if err := validName(name); err != nil {
		return Network{}, fmt.Errorf("network: %w", err)
	}
	data, err := os.ReadFile(m.networkPath(name))
	if errors.Is(err, os.ErrNotExist) {
		return Network{}, fmt.Errorf("network %s: %w", name, errdefs.ErrNotFound)
	}
	if err != nil {
		return Network{}, fmt.Errorf("network %s: %w", name, err)
	}
	n, err := unmarshalNetwork(data)
	if err != nil {
		return Network{}, fmt.Errorf("network %s: %s: %w", name, m.networkPath(name), err)
	}
	return n, nil
}

// Containers returns the IDs of the containers of ctx's namespace (of
// every namespace when ctx has none) attached to a network; those of
// records written before records named their namespace are among them.
func (m *Manager) Containers(ctx context.Context, name string) ([]string, error) {
	ns, _ := namespaces.Namespace(ctx)
	eps, err := m.endpoints(ctx)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, ep := range eps {
		if ep.Network == name && (ns == "" || ep.Namespace == "" || ep.Namespace == ns) {
			ids = append(ids, ep.ContainerID)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// Remove deletes a user-defined network and its bridge. A network that a
// container is attached to is ErrFailedPrecondition naming the container;
// the built-in ones cannot be removed (ErrInvalidArgument); an unknown one
// is ErrNotFound.
func (m *Manager) Remove(ctx context.Context, name string) error {
	if name == Default || name == Host || name == None {
		return fmt.Errorf("network: remove %s: a built-in network cannot be removed: %w", name, errdefs.ErrInvalidArgument)
	}
	unlock, err := m.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	n, err := m.get(name)
	if err != nil {
		return fmt.Errorf("network: remove: %w", err)
	}
	eps, err := m.endpoints(ctx)
	if err != nil {
		return err
	}
	for _, ep := range eps {
		if ep.Network == name {
			return fmt.Errorf("network: remove %s: container %s is attached to it (%s): %w", name, ep.ContainerID, ep, errdefs.ErrFailedPrecondition)
		}
	}
	if err := deleteLink(n.Bridge); err != nil {
		return fmt.Errorf("network: remove %s: %w", name, err)
	}
	if err := os.RemoveAll(filepath.Join(m.ipamDir(), name)); err != nil {
		return fmt.Errorf("network: remove %s: %w", name, err)
	}
	if err := os.Remove(m.networkPath(name)); err != nil {
		return fmt.Errorf("network: remove %s: %w", name, err)
	}
	return nil
}

func (m *Manager) ipamDir() string { return filepath.Join(m.root, "ipam") }

// writeFileAtomic writes through a temporary file, fsync and rename, so a
// crash leaves the old file or the new one.
func writeFileAtomic(name string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(name), ".tmp-"+filepath.Base(name)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), name)
}
