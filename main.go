// Command sysbox is one static binary with several roles: the OCI runtime
// (sysbox-runc), the fs daemon (sysbox-fs), the manager (sysbox-mgr), the
// installer and the host doctor. The role comes from argv[0] or the first
// argument; see DESIGN.md.
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/alecthomas/kong"

	"github.com/sysbox-dev/sysbox/check"
	"github.com/sysbox-dev/sysbox/fs"
	"github.com/sysbox-dev/sysbox/install"
	"github.com/sysbox-dev/sysbox/internal/version"
	"github.com/sysbox-dev/sysbox/mgr"
	"github.com/sysbox-dev/sysbox/runc"
)

type cli struct {
	Runc      runc.Cmd             `cmd:"" help:"OCI runtime, runc-compatible (also started as sysbox-runc)."`
	Fs        fs.Cmd               `cmd:"" name:"fs" help:"FUSE views of /proc and /sys and the seccomp trap agent (also sysbox-fs)."`
	Mgr       mgr.Cmd              `cmd:"" help:"Manager daemon: id ranges, host-backed dirs, registry (also sysbox-mgr)."`
	Install   install.InstallCmd   `cmd:"" help:"Set up this host: binary, symlinks, subuid range, daemons, engine config."`
	Uninstall install.UninstallCmd `cmd:"" help:"Undo what install did, keeping your own edits."`
	Check     check.Cmd            `cmd:"" help:"Report whether this host is ready for system containers."`
	Version   versionCmd           `cmd:"" help:"Print version, commit, OCI spec and libseccomp versions."`
}

// roles maps the names sysbox is linked under to their subcommand.
var roles = map[string]string{"sysbox-runc": "runc", "sysbox-fs": "fs", "sysbox-mgr": "mgr"}

// dispatch turns argv into the subcommand form kong parses:
// "sysbox-runc create x" becomes ["runc", "create", "x"].
func dispatch(argv []string) []string {
	if len(argv) == 0 {
		return nil
	}
	if role, ok := roles[strings.TrimSuffix(filepath.Base(argv[0]), ".test")]; ok {
		return append([]string{role}, argv[1:]...)
	}
	return argv[1:]
}

func main() {
	var c cli
	parser := kong.Must(&c,
		kong.Name("sysbox"),
		kong.Description("System containers: systemd, Docker and Kubernetes in unprivileged containers."),
		kong.UsageOnError(),
		kong.Vars{"version": version.Version},
	)
	ctx, err := parser.Parse(dispatch(os.Args))
	if err != nil {
		parser.FatalIfErrorf(err)
	}
	if err := ctx.Run(); err != nil {
		var ec interface{ ExitCode() int }
		if errors.As(err, &ec) {
			os.Exit(ec.ExitCode())
		}
		fmt.Fprintf(os.Stderr, "%s: %v\n", filepath.Base(os.Args[0]), err)
		os.Exit(1)
	}
}
