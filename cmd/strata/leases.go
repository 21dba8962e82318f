package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-oci/strata/labels"
	"github.com/strata-oci/strata/leases"
)

func leasesCreate(a *app) *cobra.Command {
	var (
		id      string
		expires time.Duration
		labels  []string
	)
	cmd := &cobra.Command{
		Use:   "create [--id ID] [--expires DURATION] [--label KEY=VALUE...]",
		Short: "Create a lease and print its ID",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			lbls, err := parseLabels(labels)
			if err != nil {
				return err
			}
			if expires < 0 {
				return usagef("--expires %s: must not be negative", expires)
			}
			opts := []leases.Opt{leases.WithLabels(lbls)}
			if id != "" {
				opts = append(opts, leases.WithID(id))
			}
			if expires > 0 {
				opts = append(opts, leases.WithExpiration(expires))
			}
			return a.withBackend(cmd, func(ctx context.Context, s backend) error {
				l, err := s.Leases().Create(ctx, opts...)
				if err != nil {
					return err
				}
				if a.output == "json" {
					return printJSON(cmd.OutOrStdout(), leaseRow(l))
				}
				fmt.Fprintln(cmd.OutOrStdout(), l.ID)
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&id, "id", "", "lease ID (generated when empty)")
	f.DurationVar(&expires, "expires", 0, "expire the lease after this long (e.g. 24h); never when 0")
	f.StringArrayVar(&labels, "label", nil, "label KEY=VALUE (repeatable)")
	return cmd
}

type leaseJSON struct {
	ID        string            `json:"id"`
	CreatedAt time.Time         `json:"created_at"`
	Labels    map[string]string `json:"labels,omitempty"`
}

func leaseRow(l leases.Lease) leaseJSON { return leaseJSON{l.ID, l.CreatedAt, l.Labels} }

func leasesList(a *app) *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:     "ls [FILTER...]",
		Aliases: []string{"list"},
		Short:   "List leases (filters: id, labels.KEY)",
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withBackend(cmd, func(ctx context.Context, s backend) error {
				ls, err := s.Leases().List(ctx, args...)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if a.output == "json" {
					rows := []leaseJSON{}
					for _, l := range ls {
						rows = append(rows, leaseRow(l))
					}
					return printJSON(out, rows)
				}
				if quiet {
					for _, l := range ls {
						fmt.Fprintln(out, l.ID)
					}
					return nil
				}
				t := newTable(out, "ID", "CREATED", "EXPIRES", "LABELS")
				for _, l := range ls {
					exp := "never"
					if v, ok := l.Labels[labels.GCExpire]; ok {
						exp = v
					}
					t.row(l.ID, age(l.CreatedAt), exp, labelString(l.Labels))
				}
				return t.flush()
			})
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only IDs")
	return cmd
}

func leasesRemove(a *app) *cobra.Command {
	var sync bool
	cmd := &cobra.Command{
		Use:     "rm ID...",
		Aliases: []string{"remove", "delete"},
		Short:   "Remove leases; what only they protected is garbage collected",
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withBackend(cmd, func(ctx context.Context, s backend) error {
				var opts []leases.DeleteOpt
				if sync {
					opts = append(opts, leases.SynchronousDelete)
				}
				return eachArg(cmd, args, "leases not removed", func(id string) error {
					return s.Leases().Delete(ctx, leases.Lease{ID: id}, opts...)
				})
			})
		},
	}
	cmd.Flags().BoolVar(&sync, "sync", false, "wait for garbage collection before returning")
	return cmd
}
