package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-oci/strata/jobs"
	"github.com/strata-oci/strata/metadata"
)

func newGCCommand(a *app) *cobra.Command {
	var dryRun, verbose bool
	cmd := &cobra.Command{
		Use:   "gc [--dry-run]",
		Short: "Collect garbage: remove what no image, lease or gc.root label reaches",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			s, err := a.open(ctx)
			if err != nil {
				return err
			}
			res, err := s.Run(ctx, jobs.Request{GC: &jobs.GCRequest{DryRun: dryRun, List: verbose || dryRun}}, jobs.Env{Logger: a.logger})
			if err != nil {
				return err
			}
			st := *res.GC
			out := cmd.OutOrStdout()
			if a.output == "json" {
				return printJSON(out, st)
			}
			for _, r := range st.Removed {
				if dryRun {
					fmt.Fprintln(out, "would remove", r)
				} else {
					fmt.Fprintln(out, "removed", r)
				}
			}
			verb := "removed"
			if dryRun {
				verb = "would remove"
			}
			fmt.Fprintf(out, "%s %d objects (%d records, %d blobs, %d ingests, %d leases), freeing %s in %s\n",
				verb, st.Objects(), st.ContentRemoved, st.BlobsRemoved, st.IngestsRemoved, st.LeasesRemoved,
				humanSize(st.BytesFreed), st.Duration.Round(time.Millisecond))
			return nil
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "report what would be removed; remove nothing")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "list every object removed")
	return cmd
}

func newFsckCommand(a *app) *cobra.Command {
	var repair bool
	cmd := &cobra.Command{
		Use:   "fsck [--repair]",
		Short: "Verify every blob and record; exit 1 when the store is damaged",
		Long: `Rehashes every blob, checks that every record points at a blob of the right
size, reads every image's index and manifests, reports blobs and ingests
nobody refers to and lists partial downloads (ingests) with their size and
age. Writes go on while it runs. With --repair it removes corrupt blobs, the
records of lost blobs, broken ingest directories and images whose index or
manifest cannot be parsed; images that lost blobs must then be pulled again.
Through a daemon, --repair is for root only. Exits 1 when damage remains.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			s, err := a.open(ctx)
			if err != nil {
				return err
			}
			res, err := s.Run(ctx, jobs.Request{Fsck: &jobs.FsckRequest{Repair: repair}}, jobs.Env{Logger: a.logger})
			if err != nil {
				return err
			}
			rep := *res.Fsck
			if rep.Damaged() {
				exitCode = 1
			}
			out := cmd.OutOrStdout()
			if a.output == "json" {
				type result struct {
					metadata.FsckReport
					Damaged bool `json:"damaged"`
				}
				return printJSON(out, result{rep, rep.Damaged()})
			}
			for _, p := range rep.Problems {
				state := "note"
				switch {
				case p.Repaired:
					state = "repaired"
				case p.Damage:
					state = "DAMAGE"
				}
				fmt.Fprintf(out, "%-8s %-17s %s: %s\n", state, p.Kind, p.Object, p.Detail)
			}
			for _, in := range rep.Ingests {
				fmt.Fprintf(out, "%-8s %-17s %s\n", "note", "partial-download", ingestLine(in))
			}
			status := "ok"
			if rep.Damaged() {
				status = "DAMAGED (run strata fsck --repair)"
			}
			fmt.Fprintf(out, "checked %d blobs (%s), %d records: %s\n", rep.BlobsChecked, humanSize(rep.BytesChecked), rep.Records, status)
			return nil
		},
	}
	cmd.Flags().BoolVar(&repair, "repair", false, "fix what can be fixed safely")
	return cmd
}

// ingestLine describes a partial download for fsck's text output.
func ingestLine(in metadata.Ingest) string {
	size := humanSize(in.Size)
	if in.Total > 0 {
		size += " of " + humanSize(in.Total)
	}
	started := in.StartedAt
	if started.IsZero() {
		started = in.UpdatedAt
	}
	line := fmt.Sprintf("%s, started %s, last written %s", size, age(started), age(in.UpdatedAt))
	switch {
	case in.Active:
		line += ", being written now"
	case in.Namespace != "":
		line += fmt.Sprintf("; `strata -n %s content abort %s` drops it", in.Namespace, in.Ref)
	}
	if in.Namespace == "" {
		return in.Ref + ": " + line
	}
	return in.Namespace + "/" + in.Ref + ": " + line
}
