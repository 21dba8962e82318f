package network

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"time"

	"github.com/containerd/errdefs"
)

// Names of the networks every host has; they cannot be created or removed.
const (
	// Default is the bridge network containers join when no network is named.
	Default = "bridge"
	// Host shares the host's network namespace.
	Host = "host"
	// None gives a container a namespace with only a loopback interface.
	None = "none"
)

// Network is a user-defined network, or the default one.
type Network struct {
	Name string `json:"name"`
	// ID is random, made at creation; the bridge is named after it.
	ID      string            `json:"id"`
	Bridge  string            `json:"bridge"`
	Subnet  netip.Prefix      `json:"subnet"`
	Gateway netip.Addr        `json:"gateway"`
	Created time.Time         `json:"created"`
	Labels  map[string]string `json:"labels,omitempty"`
	// Default is true for the built-in bridge network.
	Default bool `json:"default,omitempty"`
}

// CreateRequest is `strata network create`.
type CreateRequest struct {
	Name string
	// Subnet is optional: the first free /24 of the pool otherwise.
	Subnet netip.Prefix
	// Gateway is optional: the subnet's first address otherwise.
	Gateway netip.Addr
	Labels  map[string]string
}

// nameRE is docker's rule for network names.
var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

func validName(name string) error {
	if len(name) > 128 || !nameRE.MatchString(name) {
		return fmt.Errorf("network name %q: want letters, digits, '_', '.', '-' (128 at most), not starting with a symbol: %w", name, errdefs.ErrInvalidArgument)
	}
	return nil
}

func newID() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b)
}

// conflist is a network's CNI config list. strata's own fields live under
// the "strata" key, which libcni ignores.
type conflist struct {
	CNIVersion string            `json:"cniVersion"`
	Name       string            `json:"name"`
	Plugins    []json.RawMessage `json:"plugins"`
	Strata     struct {
		ID      string            `json:"id"`
		Created time.Time         `json:"created"`
		Labels  map[string]string `json:"labels,omitempty"`
	} `json:"strata"`
}

type bridgePlugin struct {
	Type        string `json:"type"`
	Bridge      string `json:"bridge"`
	IsGateway   bool   `json:"isGateway"`
	IPMasq      bool   `json:"ipMasq"`
	HairpinMode bool   `json:"hairpinMode"`
	IPAM        struct {
		Type   string `json:"type"`
		Ranges [][]struct {
			Subnet  netip.Prefix `json:"subnet"`
			Gateway netip.Addr   `json:"gateway"`
		} `json:"ranges"`
		Routes  []map[string]string `json:"routes"`
		DataDir string              `json:"dataDir"`
	} `json:"ipam"`
}

// marshal writes the network's CNI config list, with host-local IPAM data
// under ipamDir.
func (n Network) marshal(ipamDir string) ([]byte, error) {
	var b bridgePlugin
	b.Type, b.Bridge, b.IsGateway, b.IPMasq, b.HairpinMode = "bridge", n.Bridge, true, true, true
	b.IPAM.Type = "host-local"
	b.IPAM.Ranges = [][]struct {
		Subnet  netip.Prefix `json:"subnet"`
		Gateway netip.Addr   `json:"gateway"`
	}{{{Subnet: n.Subnet, Gateway: n.Gateway}}}
	b.IPAM.Routes = []map[string]string{{"dst": "0.0.0.0/0"}}
	b.IPAM.DataDir = ipamDir
	bridge, err := json.Marshal(b)
	if err != nil {
		return nil, err
	}
	c := conflist{CNIVersion: "1.0.0", Name: n.Name, Plugins: []json.RawMessage{
		bridge,
		json.RawMessage(`{"type":"portmap","capabilities":{"portMappings":true}}`),
		json.RawMessage(`{"type":"firewall","backend":"iptables"}`),
	}}
	c.Strata.ID, c.Strata.Created, c.Strata.Labels = n.ID, n.Created, n.Labels
	return json.MarshalIndent(c, "", "  ")
}

// unmarshalNetwork reads a config list written by marshal.
func unmarshalNetwork(data []byte) (Network, error) {
	var c conflist
	if err := json.Unmarshal(data, &c); err != nil {
		return Network{}, fmt.Errorf("%w: %w", err, errdefs.ErrDataLoss)
	}
	if len(c.Plugins) == 0 {
		return Network{}, fmt.Errorf("no plugins: %w", errdefs.ErrDataLoss)
	}
	var b bridgePlugin
	if err := json.Unmarshal(c.Plugins[0], &b); err != nil {
		return Network{}, fmt.Errorf("bridge plugin: %w: %w", err, errdefs.ErrDataLoss)
	}
	if b.Type != "bridge" || len(b.IPAM.Ranges) != 1 || len(b.IPAM.Ranges[0]) != 1 {
		return Network{}, fmt.Errorf("not a strata bridge network (first plugin %q): %w", b.Type, errdefs.ErrDataLoss)
	}
	r := b.IPAM.Ranges[0][0]
	return Network{
		Name: c.Name, ID: c.Strata.ID, Bridge: b.Bridge, Subnet: r.Subnet, Gateway: r.Gateway,
		Created: c.Strata.Created, Labels: c.Strata.Labels,
	}, nil
}

// overlaps reports whether two prefixes share an address.
func overlaps(a, b netip.Prefix) bool {
	return a.Overlaps(b)
}
