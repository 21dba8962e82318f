package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/strata-oci/strata/jobs"
	"github.com/strata-oci/strata/progress"
)

func newPushCommand(a *app) *cobra.Command {
	var (
		rf              registryFlags
		platforms       []string
		nonDistributble bool
		maxUploads      int
		quiet           bool
		progressMode    = progress.Auto
	)
	cmd := &cobra.Command{
		Use:   "push REF [LOCAL]",
		Short: "Push an image to a registry",
		Long: `Push the image named REF (or the local image LOCAL under the name REF) to its
registry: blobs the registry has are skipped, blobs from another repository of
the same registry are mounted, manifests go after their blobs and the tag last.`,
		Example: `  strata push 127.0.0.1:5000/app:1
  strata push registry.example.com/team/app:1 app:1`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return usagef("%q takes REF [LOCAL]; see %q", cmd.CommandPath(), cmd.CommandPath()+" --help")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := parseReference(args[0])
			if err != nil {
				return err
			}
			local := ref
			if len(args) == 2 {
				if local, err = parseReference(args[1]); err != nil {
					return err
				}
			}
			ps, err := parsePlatforms(platforms)
			if err != nil {
				return err
			}
			return a.withBackend(cmd, func(ctx context.Context, s backend) error {
				reg, creds, err := a.registry(&rf, ref, s)
				if err != nil {
					return err
				}
				if quiet {
					progressMode = progress.Quiet
				}
				pr := progress.New(cmd.ErrOrStderr(), progressMode)
				res, err := s.Run(ctx, jobs.Request{Push: &jobs.PushRequest{Ref: ref.String(), Local: local.String(), Registry: reg,
					Platforms: ps, AllowNonDistributable: nonDistributble, MaxConcurrentUploads: maxUploads}},
					jobs.Env{Progress: pr, Credentials: creds, Logger: a.logger, UserAgent: userAgent()})
				pr.Close(err)
				if err != nil {
					return err
				}
				desc := res.Images[0]
				if quiet {
					fmt.Fprintln(cmd.OutOrStdout(), desc.Digest)
				} else {
					fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", ref, desc.Digest)
				}
				return nil
			})
		},
	}
	rf.add(cmd)
	f := cmd.Flags()
	f.StringArrayVar(&platforms, "platform", nil, "push only this platform's manifest (repeatable)")
	f.BoolVar(&nonDistributble, "allow-nondistributable-artifacts", false, "push non-distributable (foreign) layers too")
	f.IntVar(&maxUploads, "max-concurrent-uploads", 3, "blobs uploaded at once")
	f.BoolVarP(&quiet, "quiet", "q", false, "print only the pushed digest")
	f.Var(&progressMode, "progress", "progress display: auto, tty, plain or quiet")
	return cmd
}
