package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"time"

	versionapi "github.com/containerd/containerd/api/services/version/v1"
	"github.com/containerd/errdefs/pkg/errgrpc"

	"github.com/spf13/cobra"
	"github.com/strata-oci/strata/client"
	versionsvc "github.com/strata-oci/strata/services/version"
	"google.golang.org/protobuf/types/known/emptypb"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = ""

func buildVersion() (ver, revision string) {
	ver = version
	if info, ok := debug.ReadBuildInfo(); ok {
		if ver == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			ver = info.Main.Version
		}
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				revision = s.Value[:12]
			}
		}
	}
	if ver == "" {
		ver = "dev"
	}
	return ver, revision
}

func newVersionCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print strata's version",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ver, rev := buildVersion()
			// And the daemon's, when this command would go through one.
			type daemonVersion struct {
				Address  string `json:"address"`
				Version  string `json:"version,omitempty"`
				Revision string `json:"revision,omitempty"`
				Error    string `json:"error,omitempty"`
			}
			var daemon *daemonVersion
			address, required, err := a.daemonAddress()
			if err != nil {
				return err
			}
			if address != "" {
				daemon = &daemonVersion{Address: address}
				v, err := daemonVersionOf(cmd.Context(), address)
				switch {
				case err == nil:
					daemon.Version, daemon.Revision = versionsvc.StrataVersion(v.Version), v.Revision
				case required:
					daemon.Error = err.Error()
				default:
					daemon = nil // not answering: commands run embedded
				}
			}
			out := cmd.OutOrStdout()
			if a.output == "json" {
				return printJSON(out, struct {
					Version  string         `json:"version"`
					Revision string         `json:"revision"`
					Go       string         `json:"go"`
					Daemon   *daemonVersion `json:"daemon,omitempty"`
				}{ver, rev, runtime.Version(), daemon})
			}
			detail := fmt.Sprintf("%s %s/%s", runtime.Version(), runtime.GOOS, runtime.GOARCH)
			if rev != "" {
				detail = "revision " + rev + ", " + detail
			}
			fmt.Fprintf(out, "strata %s (%s)\n", ver, detail)
			switch {
			case daemon == nil:
			case daemon.Error != "":
				fmt.Fprintf(out, "stratad at %s: %s\n", daemon.Address, daemon.Error)
				exitCode = 1
			case daemon.Revision != "":
				fmt.Fprintf(out, "stratad %s (revision %s) at %s\n", daemon.Version, daemon.Revision, daemon.Address)
			default:
				fmt.Fprintf(out, "stratad %s at %s\n", daemon.Version, daemon.Address)
			}
			return nil
		},
	}
}

// daemonVersionOf asks the daemon at address for its version.
func daemonVersionOf(ctx context.Context, address string) (*versionapi.VersionResponse, error) {
	conn, err := client.Dial(address)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, err := versionapi.NewVersionClient(conn).Version(ctx, &emptypb.Empty{})
	if err != nil {
		return nil, errgrpc.ToNative(err)
	}
	return v, nil
}
