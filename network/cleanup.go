package network

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/coreos/go-iptables/iptables"
	"github.com/vishvananda/netlink"
)

// Cleanup tears down what no container holds, after a crash of the process
// that ran them or a reboot: the endpoint of every container whose holder
// process (Endpoint.Holder: the process that set it up until the task
// exists, then the task's init) is gone and for which live(namespace, id)
// returns false (its CNI DEL, namespace and files), namespaces and file
// directories without a record, IPAM leases of no recorded container, and
// bridges and shared chains nothing uses. A record of the old layout names
// no namespace: live gets "" for it, meaning the ID in any namespace. It
// returns the containers it tore down, as namespace/id; it goes on past a
// failure and returns all of them joined.
func (m *Manager) Cleanup(ctx context.Context, live func(namespace, id string) bool) ([]string, error) {
	unlock, err := m.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	eps, err := m.endpoints(ctx)
	if err != nil {
		return nil, err
	}
	var errs []error
	var removed []string
	held := map[string]bool{}     // keys: CNI container IDs
	heldPath := map[string]bool{} // netns mounts and file directories
	hold := func(ep *Endpoint) {
		held[ep.key()] = true
		heldPath[ep.NetNS] = true
		heldPath[m.filesDir(ep.key())] = true
	}
	for _, ep := range eps {
		if ep.Holder.alive() || live(ep.Namespace, ep.ContainerID) {
			hold(ep)
			continue
		}
		if err := m.teardown(ctx, ep); err != nil {
			errs = append(errs, err)
			hold(ep)
			continue
		}
		m.opts.logger.Info("network: cleaned up the endpoint of a container that is gone", "namespace", ep.Namespace, "container", ep.ContainerID, "network", ep.Network)
		removed = append(removed, ep.String())
	}
	for _, sub := range []string{"netns", "containers"} {
		entries, err := os.ReadDir(filepath.Join(m.state, sub))
		if err != nil {
			errs = append(errs, fmt.Errorf("network: cleanup: %w", err))
			continue
		}
		for _, e := range entries {
			p := filepath.Join(m.state, sub, e.Name())
			if heldPath[p] {
				continue
			}
			if sub == "netns" {
				err = removeNetNS(p)
			} else {
				err = os.RemoveAll(p)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("network: cleanup: %w", err))
				continue
			}
			m.opts.logger.Info("network: removed debris", "path", p)
		}
	}
	if err := m.cleanIPAM(held); err != nil {
		errs = append(errs, err)
	}
	if err := m.releaseShared(ctx); err != nil {
		errs = append(errs, err)
	}
	return removed, errors.Join(errs...)
}

// cleanIPAM removes host-local leases whose container holds no endpoint,
// and the data of networks that no longer exist. A lease file is named
// after the address and holds the CNI container ID (an endpoint's key), a
// line break and the interface name (plugins v1.1.1 disk backend).
func (m *Manager) cleanIPAM(held map[string]bool) error {
	nets, err := os.ReadDir(m.ipamDir())
	if err != nil {
		return fmt.Errorf("network: cleanup IPAM: %w", err)
	}
	var errs []error
	for _, n := range nets {
		dir := filepath.Join(m.ipamDir(), n.Name())
		if _, err := m.get(n.Name()); err != nil {
			if err := os.RemoveAll(dir); err != nil {
				errs = append(errs, fmt.Errorf("network: cleanup IPAM: %w", err))
			}
			continue
		}
		leases, err := os.ReadDir(dir)
		if err != nil {
			errs = append(errs, fmt.Errorf("network: cleanup IPAM: %w", err))
			continue
		}
		for _, l := range leases {
			if strings.HasPrefix(l.Name(), "last_reserved_ip") || l.Name() == "lock" {
				continue
			}
			data, err := os.ReadFile(filepath.Join(dir, l.Name()))
			if err != nil {
				continue
			}
			id, _, _ := strings.Cut(strings.TrimSpace(string(data)), "\n")
			if held[strings.TrimSpace(id)] {
				continue
			}
			if err := os.Remove(filepath.Join(dir, l.Name())); err != nil {
				errs = append(errs, fmt.Errorf("network: cleanup IPAM: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}

// releaseShared deletes the bridges of networks no container is attached
// to (the bridge plugin makes them but never deletes them), then, when no
// container is attached anywhere, the iptables chains the plugins share
// between containers, if nothing but their own fixed rules is left in them.
func (m *Manager) releaseShared(ctx context.Context) error {
	eps, err := m.endpoints(ctx)
	if err != nil {
		return err
	}
	nets, err := m.list()
	if err != nil {
		return err
	}
	used := map[string]bool{}
	cni := false
	for _, ep := range eps {
		used[ep.Network] = true
		if ep.Network != Host {
			cni = true
		}
	}
	var errs []error
	for _, n := range nets {
		if !used[n.Name] {
			if err := deleteBridge(n.Bridge); err != nil {
				errs = append(errs, fmt.Errorf("network: %s: %w", n.Name, err))
			}
		}
	}
	if !cni {
		if err := removeSharedChains(); err != nil {
			errs = append(errs, fmt.Errorf("network: %w", err))
		}
	}
	return errors.Join(errs...)
}

// deleteBridge deletes a bridge no interface is attached to. One with
// ports stays: another root (a second stratad, a test's store) can run
// containers on a bridge of the same name, and its endpoints are not in
// this manager's records. One that does not exist is no error.
func deleteBridge(name string) error {
	link, err := netlink.LinkByName(name)
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("find link %s: %w", name, err)
	}
	all, err := netlink.LinkList()
	if err != nil {
		return fmt.Errorf("list links: %w", err)
	}
	for _, l := range all {
		if l.Attrs().MasterIndex == link.Attrs().Index {
			return nil
		}
	}
	return deleteLink(name)
}

// deleteLink deletes a network interface; one that does not exist is no
// error.
func deleteLink(name string) error {
	link, err := netlink.LinkByName(name)
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("find link %s: %w", name, err)
	}
	if err := netlink.LinkDel(link); err != nil {
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	return nil
}

// sharedChain is a chain the CNI plugins (v1.1.1) create once for every
// container and never delete, with the rules they put in it once (their
// own jumps aside): a chain with anything else in it belongs to a
// container still (ours or another runtime's on this host) and stays.
type sharedChain struct {
	table, chain string
	fixed        []string
}

// sharedChains are in the order they can go: a chain before those that
// jump to it.
var sharedChains = []sharedChain{
	{"nat", "CNI-HOSTPORT-DNAT", nil},
	{"nat", "CNI-HOSTPORT-SETMARK", []string{`-m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000`}},
	{"nat", "CNI-HOSTPORT-MASQ", []string{`-m mark --mark 0x2000/0x2000 -j MASQUERADE`}},
	{"filter", "CNI-ADMIN", nil},
	{"filter", "CNI-FORWARD", []string{`-m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN`}},
}

func removeSharedChains() error {
	ipt, err := iptables.New()
	if err != nil {
		return fmt.Errorf("iptables: %w", err)
	}
	var errs []error
	for _, c := range sharedChains {
		exists, err := ipt.ChainExists(c.table, c.chain)
		if err != nil {
			errs = append(errs, fmt.Errorf("iptables -t %s %s: %w", c.table, c.chain, err))
			continue
		}
		if !exists {
			continue
		}
		rules, err := ipt.List(c.table, c.chain)
		if err != nil {
			errs = append(errs, fmt.Errorf("iptables -t %s -S %s: %w", c.table, c.chain, err))
			continue
		}
		inUse := false
		for _, r := range rules {
			r = strings.TrimSpace(r)
			if r == "-N "+c.chain {
				continue
			}
			rest, _ := strings.CutPrefix(r, "-A "+c.chain+" ")
			if !slices.Contains(c.fixed, rest) {
				inUse = true
				break
			}
		}
		if inUse {
			continue
		}
		if err := deleteJumpsTo(ipt, c.table, c.chain); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := ipt.ClearAndDeleteChain(c.table, c.chain); err != nil {
			errs = append(errs, fmt.Errorf("iptables -t %s -X %s: %w", c.table, c.chain, err))
		}
	}
	return errors.Join(errs...)
}

// deleteJumpsTo removes every rule of a table that jumps to chain.
func deleteJumpsTo(ipt *iptables.IPTables, table, chain string) error {
	chains, err := ipt.ListChains(table)
	if err != nil {
		return fmt.Errorf("iptables -t %s: %w", table, err)
	}
	for _, from := range chains {
		if from == chain {
			continue
		}
		rules, err := ipt.List(table, from)
		if err != nil {
			return fmt.Errorf("iptables -t %s -S %s: %w", table, from, err)
		}
		for _, r := range rules {
			f := strings.Fields(r)
			if len(f) < 4 || f[0] != "-A" || f[len(f)-2] != "-j" || f[len(f)-1] != chain {
				continue
			}
			if err := ipt.Delete(table, from, unquoteFields(f[2:])...); err != nil {
				return fmt.Errorf("iptables -t %s -D %s %s: %w", table, from, strings.Join(f[2:], " "), err)
			}
		}
	}
	return nil
}

// unquoteFields joins the words of a quoted comment back into one
// argument, as `iptables -S` prints them ("CNI portfwd masquerade mark").
func unquoteFields(f []string) []string {
	var out []string
	for i := 0; i < len(f); i++ {
		if !strings.HasPrefix(f[i], `"`) {
			out = append(out, f[i])
			continue
		}
		j := i
		for j < len(f)-1 && (j == i && f[j] == `"` || !strings.HasSuffix(f[j], `"`)) {
			j++
		}
		out = append(out, strings.Trim(strings.Join(f[i:j+1], " "), `"`))
		i = j
	}
	return out
}
