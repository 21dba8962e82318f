package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
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
			if a.output == "json" {
				return printJSON(cmd.OutOrStdout(), map[string]string{"version": ver, "revision": rev, "go": runtime.Version()})
			}
			detail := fmt.Sprintf("%s %s/%s", runtime.Version(), runtime.GOOS, runtime.GOARCH)
			if rev != "" {
				detail = "revision " + rev + ", " + detail
			}
			fmt.Fprintf(cmd.OutOrStdout(), "strata %s (%s)\n", ver, detail)
			return nil
		},
	}
}
