package network

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
)

// fallbackDNS are docker's nameservers for a container whose host has only
// loopback ones (a local stub resolver the container cannot reach).
var fallbackDNS = []string{"8.8.8.8", "8.8.4.4"}

const hostsHeader = `127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
fe00::0	ip6-localnet
ff00::0	ip6-mcastprefix
ff02::1	ip6-allnodes
ff02::2	ip6-allrouters
`

// writeFiles writes a container's hosts, resolv.conf and hostname.
func (m *Manager) writeFiles(ep *Endpoint, req Request, others []*Endpoint) error {
	if err := writeInPlace(ep.HostnamePath, []byte(ep.Hostname+"\n")); err != nil {
		return err
	}
	resolv, err := m.resolvConf(ep.Network == Host, req)
	if err != nil {
		return err
	}
	if err := writeInPlace(ep.ResolvConfPath, resolv); err != nil {
		return err
	}
	var hosts []byte
	if ep.Network == Host {
		// The host's own names, as docker does with --network host.
		hosts, err = os.ReadFile("/etc/hosts")
		if err != nil {
			return fmt.Errorf("read the host's /etc/hosts: %w", err)
		}
	} else {
		hosts = hostsFile(ep, others)
	}
	return writeInPlace(ep.HostsPath, hosts)
}

// hostsFile is a container's /etc/hosts: localhost, itself, and on a
// user-defined network every other container of it by name.
func hostsFile(ep *Endpoint, all []*Endpoint) []byte {
	var b bytes.Buffer
	b.WriteString(hostsHeader)
	if ep.IP.IsValid() {
		names := []string{ep.Hostname}
		if ep.Name != "" && ep.Name != ep.Hostname {
			names = append(names, ep.Name)
		}
		fmt.Fprintf(&b, "%s\t%s\n", ep.IP, strings.Join(names, " "))
	} else {
		fmt.Fprintf(&b, "127.0.1.1\t%s\n", ep.Hostname)
	}
	if ep.Network == Default || ep.Network == None || ep.Network == Host {
		return b.Bytes()
	}
	peers := slices.Clone(all)
	slices.SortFunc(peers, func(a, b *Endpoint) int { return strings.Compare(a.key(), b.key()) })
	for _, p := range peers {
		if p.key() == ep.key() || p.Network != ep.Network || !p.IP.IsValid() || !p.Ready {
			continue
		}
		names := []string{}
		if p.Name != "" {
			names = append(names, p.Name)
		}
		if p.Hostname != p.Name {
			names = append(names, p.Hostname)
		}
		fmt.Fprintf(&b, "%s\t%s\n", p.IP, strings.Join(names, " "))
	}
	return b.Bytes()
}

// updatePeers rewrites the hosts file of every container on a
// user-defined network.
func (m *Manager) updatePeers(ctx context.Context, network string) error {
	if network == Default || network == None || network == Host {
		return nil
	}
	all, err := m.endpoints(ctx)
	if err != nil {
		return err
	}
	for _, ep := range all {
		if ep.Network != network || !ep.Ready {
			continue
		}
		if err := writeInPlace(ep.HostsPath, hostsFile(ep, all)); err != nil {
			return fmt.Errorf("update container %s's hosts: %w", ep, err)
		}
	}
	return nil
}

// resolvConf is the host's resolver configuration without loopback
// nameservers (unreachable from another namespace), with --dns and
// --dns-search applied.
func (m *Manager) resolvConf(hostNetwork bool, req Request) ([]byte, error) {
	data, err := os.ReadFile(m.opts.resolvConf)
	if err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("read %s: %w", m.opts.resolvConf, err)
	}
	var servers, search, other []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") || strings.HasPrefix(f[0], ";") {
			continue
		}
		switch f[0] {
		case "nameserver":
			if len(f) < 2 {
				continue
			}
			if a, err := netip.ParseAddr(f[1]); err == nil && a.IsLoopback() && !hostNetwork {
				continue
			}
			servers = append(servers, f[1])
		case "search", "domain":
			search = f[1:]
		default:
			other = append(other, strings.Join(f, " "))
		}
	}
	if len(req.DNS) > 0 {
		servers = servers[:0]
		for _, a := range req.DNS {
			servers = append(servers, a.String())
		}
	}
	if len(req.DNSSearch) > 0 {
		search = req.DNSSearch
	}
	if len(servers) == 0 {
		servers = fallbackDNS
	}
	var b bytes.Buffer
	for _, s := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	for _, o := range other {
		fmt.Fprintln(&b, o)
	}
	return b.Bytes(), nil
}

// writeInPlace rewrites a file keeping its inode: a container sees it
// through a bind mount, which a rename would leave on the old file.
func writeInPlace(name string, data []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
