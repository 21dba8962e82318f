package main

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-oci/strata/network"
)

// openNetworks opens the network manager of the backend's root (see
// hostFilesRoot for why the CLI opens it itself): network/ under it, its
// runtime state in network.run/ beside it, as strata run and stratad
// open them.
func openNetworks(s backend) (*network.Manager, error) {
	root, err := hostFilesRoot(s, "networks")
	if err != nil {
		return nil, err
	}
	return network.New(filepath.Join(root, "network"), filepath.Join(root, "network.run"))
}

func (a *app) withNetworks(cmd *cobra.Command, fn func(ctx context.Context, m *network.Manager) error) error {
	return a.withWholeStore(cmd, func(ctx context.Context, s backend) error {
		m, err := openNetworks(s)
		if err != nil {
			return err
		}
		return fn(ctx, m)
	})
}

type networkJSON struct {
	Name       string            `json:"Name"`
	ID         string            `json:"Id"`
	Created    time.Time         `json:"Created"`
	Driver     string            `json:"Driver"`
	Bridge     string            `json:"Bridge,omitempty"`
	Subnet     string            `json:"Subnet,omitempty"`
	Gateway    string            `json:"Gateway,omitempty"`
	Labels     map[string]string `json:"Labels"`
	Containers []string          `json:"Containers,omitempty"`
}

func networkRow(n network.Network) networkJSON {
	labels := n.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	return networkJSON{Name: n.Name, ID: n.ID, Created: n.Created, Driver: "bridge", Bridge: n.Bridge,
		Subnet: n.Subnet.String(), Gateway: n.Gateway.String(), Labels: labels}
}

// builtinModes are the networks that are modes, not CNI networks: listed
// as docker lists them.
var builtinModes = []networkJSON{
	{Name: network.Host, ID: "host", Driver: "host", Labels: map[string]string{}},
	{Name: network.None, ID: "none", Driver: "null", Labels: map[string]string{}},
}

func networkCreate(a *app) *cobra.Command {
	var (
		subnet, gateway, driver string
		labels                  []string
	)
	cmd := &cobra.Command{
		Use:   "create [--subnet CIDR] [--gateway IP] [--label KEY=VALUE...] NAME",
		Short: "Create a bridge network (containers on it reach each other by name) and print its ID",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			lbls, err := parseLabels(labels)
			if err != nil {
				return err
			}
			if driver != "bridge" {
				return usagef("--driver %q: only the bridge driver exists", driver)
			}
			req := network.CreateRequest{Name: args[0], Labels: lbls}
			if subnet != "" {
				if req.Subnet, err = netip.ParsePrefix(subnet); err != nil {
					return usagef("--subnet %q: want an IPv4 CIDR such as 10.90.0.0/24", subnet)
				}
			}
			if gateway != "" {
				if req.Gateway, err = netip.ParseAddr(gateway); err != nil {
					return usagef("--gateway %q: want an IPv4 address", gateway)
				}
				if subnet == "" {
					return usagef("--gateway %s needs --subnet", gateway)
				}
			}
			return a.withNetworks(cmd, func(ctx context.Context, m *network.Manager) error {
				n, err := m.Create(ctx, req)
				if err != nil {
					return err
				}
				if a.output == "json" {
					return printJSON(cmd.OutOrStdout(), networkRow(n))
				}
				fmt.Fprintln(cmd.OutOrStdout(), n.ID)
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&subnet, "subnet", "", "the network's subnet (default: the first free /24 of 10.86.0.0/16)")
	f.StringVar(&gateway, "gateway", "", "the bridge's address (default: the subnet's first)")
	f.StringVarP(&driver, "driver", "d", "bridge", "network driver (only bridge)")
	f.StringArrayVar(&labels, "label", nil, "label KEY=VALUE (repeatable)")
	return cmd
}

func networkList(a *app) *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List networks",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withNetworks(cmd, func(ctx context.Context, m *network.Manager) error {
				list, err := m.List(ctx)
				if err != nil {
					return err
				}
				rows := make([]networkJSON, 0, len(list)+len(builtinModes))
				for _, n := range list {
					rows = append(rows, networkRow(n))
				}
				rows = append(rows, builtinModes...)
				out := cmd.OutOrStdout()
				if a.output == "json" {
					return printJSON(out, rows)
				}
				if quiet {
					for _, r := range rows {
						fmt.Fprintln(out, r.Name)
					}
					return nil
				}
				t := newTable(out, "NETWORK ID", "NAME", "DRIVER", "SUBNET")
				for _, r := range rows {
					id, subnet := r.ID, r.Subnet
					if len(id) > 12 {
						id = id[:12]
					}
					if subnet == "" {
						subnet = "-"
					}
					t.row(id, r.Name, r.Driver, subnet)
				}
				return t.flush()
			})
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print names only")
	return cmd
}

func networkInspect(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect NAME...",
		Short: "Show networks as JSON, with the containers attached",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withNetworks(cmd, func(ctx context.Context, m *network.Manager) error {
				rows := make([]networkJSON, 0, len(args))
				for _, name := range args {
					if name == network.Host || name == network.None {
						for _, b := range builtinModes {
							if b.Name == name {
								rows = append(rows, b)
							}
						}
						continue
					}
					n, err := m.Get(ctx, name)
					if err != nil {
						return err
					}
					row := networkRow(n)
					if row.Containers, err = m.Containers(ctx, name); err != nil {
						return err
					}
					rows = append(rows, row)
				}
				return printJSON(cmd.OutOrStdout(), rows)
			})
		},
	}
}

func networkRemove(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "rm NAME...",
		Aliases: []string{"remove"},
		Short:   "Remove networks (not while a container is attached)",
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withNetworks(cmd, func(ctx context.Context, m *network.Manager) error {
				return eachArg(cmd, args, "networks not removed", func(name string) error {
					return m.Remove(ctx, name)
				})
			})
		},
	}
}
