package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
)

func namespacesCreate(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "create NAME [KEY=VALUE...]",
		Short: "Create a namespace with optional labels",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			labels, err := parseLabels(args[1:])
			if err != nil {
				return err
			}
			return a.withWholeStore(cmd, func(ctx context.Context, s backend) error {
				return s.Namespaces().Create(ctx, args[0], labels)
			})
		},
	}
}

func namespacesRemove(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "rm NAME...",
		Aliases: []string{"remove", "delete"},
		Short:   "Remove empty namespaces",
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withWholeStore(cmd, func(ctx context.Context, s backend) error {
				return eachArg(cmd, args, "namespaces not removed", func(name string) error {
					return s.Namespaces().Delete(ctx, name)
				})
			})
		},
	}
}

func namespacesLabel(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "label NAME KEY=VALUE...",
		Short: "Set labels on a namespace (KEY= removes one)",
		Args:  minArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			labels, err := parseLabels(args[1:])
			if err != nil {
				return err
			}
			return a.withWholeStore(cmd, func(ctx context.Context, s backend) error {
				for k, v := range labels {
					if err := s.Namespaces().SetLabel(ctx, args[0], k, v); err != nil {
						return err
					}
				}
				return nil
			})
		},
	}
}

func namespacesList(a *app) *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List namespaces",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withWholeStore(cmd, func(ctx context.Context, s backend) error {
				names, err := s.Namespaces().List(ctx)
				if err != nil {
					return err
				}
				type row struct {
					Name   string            `json:"name"`
					Labels map[string]string `json:"labels,omitempty"`
				}
				rows := []row{}
				for _, n := range names {
					labels, err := s.Namespaces().Labels(ctx, n)
					if err != nil {
						return err
					}
					rows = append(rows, row{n, labels})
				}
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
				t := newTable(out, "NAME", "LABELS")
				for _, r := range rows {
					t.row(r.Name, labelString(r.Labels))
				}
				return t.flush()
			})
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only names")
	return cmd
}
