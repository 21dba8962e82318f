// Package network gives containers their network through CNI
// (github.com/containerd/go-cni and the containernetworking plugins, Debian's
// containernetworking-plugins in /usr/lib/cni): a default bridge network,
// user-defined networks stored as CNI config lists, network namespaces made
// and removed here, published ports, and the /etc/hosts, /etc/resolv.conf and
// /etc/hostname each container mounts.
//
// Every network is a CNI config list of three plugins: bridge (its own Linux
// bridge, the gateway address, masquerade of outgoing traffic, host-local
// IPAM under the root), portmap (HOST:CONTAINER/proto publishing through
// DNAT, from outside and from the host itself, 127.0.0.1 included) and
// firewall (accepts the container's forwarded traffic, and only replies
// towards it, whatever the host's FORWARD policy; the host's own ports are
// not opened).
//
// The lifecycle of a container's network:
//
//	m, _ := network.New("/var/lib/strata/network", "/run/strata/network")
//	ctx = namespaces.WithNamespace(ctx, "default") // a container is (namespace, id)
//	ep, err := m.Setup(ctx, id, network.Request{Network: "web", Name: "db", Ports: ports})
//	// ep.NetNS goes into the spec's network namespace (oci.Options.NetNSPath),
//	// ep.HostsPath, ep.ResolvConfPath and ep.HostnamePath are bind-mounted on
//	// /etc/hosts, /etc/resolv.conf and /etc/hostname. This process holds the
//	// endpoint until the task exists:
//	err = m.Hold(ctx, id, taskPid) // the task's init holds it from now on
//	…
//	err = m.Teardown(ctx, id) // on stop, exit and rm; a second call does nothing
//	…
//	// At start: tears down what no running holder and no live container holds.
//	removed, err := m.Cleanup(ctx, func(namespace, id string) bool { … })
//
// On disk:
//
//	<root>/                          persistent (under the store root)
//	  lock                           flock held by every change (then the host's,
//	                                 /run/lock/strata-network.lock: the plugins'
//	                                 iptables chains are shared by every root)
//	  networks/<name>.conflist       user-defined networks (CNI config lists)
//	  endpoints/<key>.json           what a container holds: network, netns, address,
//	                                 ports, holder process
//	  ipam/<network>/                host-local IPAM: one file per address in use,
//	                                 holding the container's key
//	<state>/                         runtime state, lost on reboot
//	  netns/<key>                    the network namespace (an nsfs bind mount)
//	  containers/<key>/              hosts, resolv.conf, hostname
//
// A container's key is "<namespace>--<container-id>" (IDs are unique in a
// namespace, not on the host; no namespace name holds "--"): it names its
// record, namespace and files, and is its CNI container ID, so the CNI
// cache entry, the IPAM lease and the plugins' chains and rule comments
// are the container's alone. Records written before keys named the
// namespace are keyed by the bare ID and have no namespace: they are still
// read and torn down (by any namespace's container of that ID, as then).
//
// A record names its holder, the process that set the endpoint up until
// the container's task exists, then the task's init (Hold), by PID, start
// time and boot ID (so a reused PID or a reboot is no holder). Cleanup
// keeps an endpoint whose holder runs, whatever its live callback says: a
// daemon that starts between a CLI's Setup and its task create must not
// cut the network of a container about to run.
//
// An endpoint record is written before anything is set up and removed after
// everything is torn down, so a crash at any point leaves a record that
// Cleanup finds: it runs the CNI DEL (which releases the address, the
// masquerade and port rules; after a reboot the veth is gone with its
// namespace), unmounts and removes the namespace, and drops files left by
// no record. Cleanup also deletes the bridges of networks without
// containers and the CNI plugins' shared iptables chains once they are
// empty (the plugins never delete either), so nothing is left on the host
// when no container runs; Teardown leaves them for the next container, as
// docker keeps docker0.
//
// Published ports on 127.0.0.1: portmap v1.1.1 DNATs locally generated
// traffic in the nat OUTPUT chain, sets route_localnet on the bridge (not
// on all interfaces) and masquerades 127.0.0.0/8 sources, so connecting
// to 127.0.0.1:HOSTPORT from the host works with no sysctl of ours. The
// bridge plugin sets net.ipv4.ip_forward=1 (isGateway) and leaves it.
//
// The containers on one user-defined network find each other by name
// through /etc/hosts, rewritten in place (the bind mounts keep the inode)
// whenever one joins or leaves; the default network has no names, as
// docker's.
package network
