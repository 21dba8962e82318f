package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"github.com/strata-oci/strata/content"
)

type contentRow struct {
	Digest    digest.Digest     `json:"digest"`
	Size      int64             `json:"size"`
	CreatedAt time.Time         `json:"created_at"`
	UpdatedAt time.Time         `json:"updated_at"`
	Labels    map[string]string `json:"labels,omitempty"`
}

func contentList(a *app) *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:     "ls [FILTER...]",
		Aliases: []string{"list"},
		Short:   "List blobs, optionally filtered (digest, size, labels.KEY; containerd filter syntax)",
		Example: `  strata content ls
  strata content ls 'labels."containerd.io/gc.root"'
  strata content ls size==1024 digest==sha256:...`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withBackend(cmd, func(ctx context.Context, s backend) error {
				rows := []contentRow{}
				err := s.Content().Walk(ctx, func(info content.Info) error {
					rows = append(rows, contentRow{info.Digest, info.Size, info.CreatedAt, info.UpdatedAt, info.Labels})
					return nil
				}, args...)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				switch {
				case a.output == "json":
					return printJSON(out, rows)
				case quiet:
					for _, r := range rows {
						fmt.Fprintln(out, r.Digest)
					}
					return nil
				}
				t := newTable(out, "DIGEST", "SIZE", "AGE", "LABELS")
				for _, r := range rows {
					t.row(r.Digest.String(), humanSize(r.Size), age(r.CreatedAt), labelString(r.Labels))
				}
				return t.flush()
			})
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only digests")
	return cmd
}

func parseDigest(s string) (digest.Digest, error) {
	d, err := digest.Parse(s)
	if err != nil {
		return "", usagef("digest %q: %v (want sha256:<64 hex digits>)", s, err)
	}
	return d, nil
}

func contentGet(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "get DIGEST",
		Short: "Write a blob to standard output",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dgst, err := parseDigest(args[0])
			if err != nil {
				return err
			}
			return a.withBackend(cmd, func(ctx context.Context, s backend) error {
				ra, err := s.Content().ReaderAt(ctx, ocispec.Descriptor{Digest: dgst})
				if err != nil {
					return err
				}
				defer ra.Close()
				_, err = io.Copy(cmd.OutOrStdout(), content.NewReader(ra))
				return err
			})
		},
	}
}

func contentIngest(a *app) *cobra.Command {
	var (
		expected string
		size     int64
		labels   []string
		leaseID  string
	)
	cmd := &cobra.Command{
		Use:   "ingest REF --expected-digest DIGEST [--expected-size N] [--label KEY=VALUE...] [--lease ID] < DATA",
		Short: "Write a blob from standard input; running it again with the same REF resumes",
		Long: `Writes standard input into the ingest REF and commits it once all the data is
there and matches the expected digest (and size). If an earlier run was
interrupted, the same command resumes: the bytes already stored are skipped
from the input. strata content abort REF drops an ingest.

As with ctr, the blob is protected from garbage collection by a lease that
expires after 24 hours (--lease names one of yours instead): label it
containerd.io/gc.root, or refer to it from an image, to keep it for good.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if expected == "" {
				return usagef("--expected-digest is required")
			}
			if size < 0 {
				return usagef("--expected-size %d: must not be negative", size)
			}
			dgst, err := parseDigest(expected)
			if err != nil {
				return err
			}
			lbls, err := parseLabels(labels)
			if err != nil {
				return err
			}
			return a.withBackend(cmd, func(ctx context.Context, s backend) error {
				ctx, err := withLease(ctx, s, leaseID, "content-ingest")
				if err != nil {
					return err
				}
				cs := s.Content()
				ref := args[0]
				desc := ocispec.Descriptor{Digest: dgst, Size: size}
				out := cmd.OutOrStdout()
				w, err := cs.Writer(ctx, content.WithRef(ref), content.WithDescriptor(desc))
				if errors.Is(err, errdefs.ErrAlreadyExists) {
					if len(lbls) > 0 {
						if err := setLabels(a, cmd, dgst, lbls); err != nil {
							return err
						}
					}
					fmt.Fprintf(out, "%s already present\n", dgst)
					return nil
				}
				if err != nil {
					return err
				}
				// Another namespace has it (the shared policy): the writer is
				// complete, and committing it adds the blob here, no bytes read.
				if done, err := content.CommitIfComplete(ctx, w, desc, content.WithLabels(lbls)); err != nil || done {
					w.Close()
					if err == nil {
						fmt.Fprintf(out, "%s already present\n", dgst)
					}
					return err
				}
				st, err := w.Status()
				if err != nil {
					w.Close()
					return err
				}
				in := cmd.InOrStdin()
				if st.Offset > 0 {
					if err := skipInput(in, st.Offset); err != nil {
						w.Close()
						return fmt.Errorf("resume ingest %q at offset %d: skip input: %w", ref, st.Offset, err)
					}
					fmt.Fprintf(cmd.ErrOrStderr(), "resuming ingest %q at offset %d\n", ref, st.Offset)
				}
				// The copy may sit in a read of stdin that no signal ends; on
				// Ctrl-C stop waiting for it. What was written stays, resumable.
				copied := make(chan error, 1)
				go func() {
					_, err := io.Copy(w, in)
					copied <- err
				}()
				select {
				case err = <-copied:
				case <-ctx.Done():
					st, _ := w.Status()
					return fmt.Errorf("ingest %q interrupted at offset about %d: %w (run the same command again to resume)", ref, st.Offset, ctx.Err())
				}
				defer w.Close()
				if err != nil {
					return fmt.Errorf("ingest %q: %w (run the same command again to resume)", ref, err)
				}
				st, err = w.Status()
				if err != nil {
					return err
				}
				if err := w.Commit(ctx, size, dgst, content.WithLabels(lbls)); err != nil {
					if errors.Is(err, errdefs.ErrAlreadyExists) {
						fmt.Fprintf(out, "%s already present\n", dgst)
						return nil
					}
					if errors.Is(err, errdefs.ErrFailedPrecondition) {
						if _, serr := cs.Status(ctx, ref); errors.Is(serr, errdefs.ErrNotFound) {
							// The store dropped complete data with the wrong
							// digest: resuming could not fix it.
							return fmt.Errorf("%w; ingest aborted", err)
						}
						switch {
						case size > 0 && st.Offset < size:
							return fmt.Errorf("%w; the input ended early: run the same command again to resume at offset %d", err, st.Offset)
						case size > 0:
							// All the bytes are there and they are wrong:
							// resuming cannot fix that.
							w.Close()
							if aerr := cs.Abort(ctx, ref); aerr != nil && !errors.Is(aerr, errdefs.ErrNotFound) {
								return fmt.Errorf("%w (and abort: %w)", err, aerr)
							}
							return fmt.Errorf("%w; ingest aborted", err)
						}
						return fmt.Errorf("%w; if the input was cut short, run the same command again to resume at offset %d; otherwise drop it with: strata content abort %s", err, st.Offset, ref)
					}
					return err
				}
				fmt.Fprintf(out, "%s\n", dgst)
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&expected, "expected-digest", "", "digest the data must have (required)")
	f.Int64Var(&size, "expected-size", 0, "size the data must have")
	f.StringArrayVar(&labels, "label", nil, "label KEY=VALUE for the blob (repeatable)")
	f.StringVar(&leaseID, "lease", "", "add the blob to this lease instead of a new one that expires in 24h")
	return cmd
}

func contentAbort(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "abort REF...",
		Short: "Drop ingests in progress and their data",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withBackend(cmd, func(ctx context.Context, s backend) error {
				return eachArg(cmd, args, "ingests not aborted", func(ref string) error {
					return s.Content().Abort(ctx, ref)
				})
			})
		},
	}
}

func skipInput(r io.Reader, n int64) error {
	if f, ok := r.(*os.File); ok {
		if _, err := f.Seek(n, io.SeekStart); err == nil {
			return nil
		}
	}
	got, err := io.CopyN(io.Discard, r, n)
	if err == nil && got != n {
		err = io.ErrUnexpectedEOF
	}
	if errors.Is(err, io.EOF) {
		err = fmt.Errorf("input has only %d bytes: %w", got, io.ErrUnexpectedEOF)
	}
	return err
}

func contentRemove(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "rm DIGEST...",
		Aliases: []string{"remove", "delete"},
		Short:   "Remove blobs from the namespace; their space is freed by garbage collection",
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, arg := range args {
				if _, err := parseDigest(arg); err != nil {
					return err
				}
			}
			return a.withBackend(cmd, func(ctx context.Context, s backend) error {
				return eachArg(cmd, args, "blobs not removed", func(arg string) error {
					return s.Content().Delete(ctx, digest.Digest(arg))
				})
			})
		},
	}
}

func setLabels(a *app, cmd *cobra.Command, dgst digest.Digest, labels map[string]string) error {
	return a.withBackend(cmd, func(ctx context.Context, s backend) error {
		info := content.Info{Digest: dgst, Labels: map[string]string{}}
		var paths []string
		for k, v := range labels {
			info.Labels[k] = v
			paths = append(paths, "labels."+k)
		}
		_, err := s.Content().Update(ctx, info, paths...)
		return err
	})
}

func contentLabel(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "label DIGEST KEY=VALUE...",
		Short: "Set labels on a blob (KEY= removes one)",
		Args:  minArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			dgst, err := parseDigest(args[0])
			if err != nil {
				return err
			}
			labels, err := parseLabels(args[1:])
			if err != nil {
				return err
			}
			return setLabels(a, cmd, dgst, labels)
		},
	}
}

func contentActive(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "active [FILTER...]",
		Aliases: []string{"ingests"},
		Short:   "List ingests in progress (resumable writes)",
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withBackend(cmd, func(ctx context.Context, s backend) error {
				sts, err := s.Content().ListStatuses(ctx, args...)
				if err != nil {
					return err
				}
				type row struct {
					Ref       string        `json:"ref"`
					Offset    int64         `json:"offset"`
					Total     int64         `json:"total"`
					Expected  digest.Digest `json:"expected,omitempty"`
					StartedAt time.Time     `json:"started_at"`
					UpdatedAt time.Time     `json:"updated_at"`
				}
				rows := []row{}
				for _, st := range sts {
					rows = append(rows, row{st.Ref, st.Offset, st.Total, st.Expected, st.StartedAt, st.UpdatedAt})
				}
				out := cmd.OutOrStdout()
				if a.output == "json" {
					return printJSON(out, rows)
				}
				t := newTable(out, "REF", "OFFSET", "TOTAL", "STARTED", "UPDATED")
				for _, r := range rows {
					total := "-"
					if r.Total > 0 {
						total = humanSize(r.Total)
					}
					t.row(r.Ref, humanSize(r.Offset), total, age(r.StartedAt), age(r.UpdatedAt))
				}
				return t.flush()
			})
		},
	}
}
