package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-oci/strata/jobs"
	"github.com/strata-oci/strata/metadata"
)

func newGCCommand(a *app) *cobra.Command {
	var dryRun, verbose, ingests bool
	var minFree string
	cmd := &cobra.Command{
		Use:   "gc [--dry-run] [--ingests | --min-free SIZE]",
		Short: "Collect garbage: remove what no image, lease or gc.root label reaches",
		Long: `Collect garbage: remove what no image, lease or gc.root label reaches.

Partial downloads (ingests) are kept for resuming while they are young (24 h
since their last write) or leased. After a pull failed for lack of space,
--ingests drops every one no writer is using, whatever its age or lease;
--min-free drops them, least recently written first, only until the store's
filesystem has that much free space (bytes like 2GiB, or a percentage like
10%). stratad applies its gc.min_free setting to every collection.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withWholeStore(cmd, func(ctx context.Context, s backend) error {
				if ingests && minFree != "" {
					return usagef("--ingests drops every partial download and --min-free only enough of them: give one")
				}
				if _, err := metadata.ParseMinFree(minFree); err != nil {
					return usageError{fmt.Errorf("--min-free: %w", err)}
				}
				res, err := s.Run(ctx, jobs.Request{GC: &jobs.GCRequest{DryRun: dryRun, List: verbose || dryRun, Ingests: ingests, MinFree: minFree}}, jobs.Env{Logger: a.logger})
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
				if st.IngestsKept > 0 {
					fmt.Fprintf(out, "%d partial downloads kept, holding %s (in use, leased or recent); `strata gc --ingests` drops those not in use\n",
						st.IngestsKept, humanSize(st.IngestBytesKept))
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "report what would be removed; remove nothing")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "list every object removed")
	cmd.Flags().BoolVar(&ingests, "ingests", false, "also drop every partial download not in use, whatever its age or lease")
	cmd.Flags().StringVar(&minFree, "min-free", "", "drop partial downloads, oldest first, until the store's filesystem has this much free (2GiB, 10%)")
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
			return a.withWholeStore(cmd, func(ctx context.Context, s backend) error {
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
			})
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
