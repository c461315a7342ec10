// Package runc is the runtime role: a runc-compatible command line over
// libcontainer that turns every OCI spec into a system-container spec.
package runc

import (
	"github.com/alecthomas/kong"
	"github.com/opencontainers/runc/libcontainer/seccomp"

	"github.com/sysbox-dev/sysbox/internal/version"
)

// Globals are runc's global flags, given before the command.
type Globals struct {
	Root          string      `default:"/run/sysbox-runc" help:"Directory for the containers' state (tmpfs recommended)."`
	Log           string      `help:"Log file (default: stderr). containerd reads errors from it."`
	LogFormat     string      `name:"log-format" enum:"text,json" default:"text" help:"Log format: text or json."`
	Debug         bool        `help:"Log at debug level."`
	SystemdCgroup bool        `name:"systemd-cgroup" help:"Use systemd for cgroups (accepted; cgroupfs is used)."`
	Rootless      string      `default:"auto" help:"Accepted for runc compatibility; sysbox-runc must run as root."`
	Criu          string      `default:"criu" help:"Accepted for runc compatibility (checkpoint is not supported yet)."`
	Version       versionFlag `short:"v" help:"Print the version and exit."`
}

// Cmd is `sysbox runc` / `sysbox-runc`.
type Cmd struct {
	Globals
}

type versionFlag bool

func (versionFlag) BeforeApply(app *kong.Kong) error {
	version.Print(app.Stdout, "sysbox-runc", seccomp.Version)
	app.Exit(0)
	return nil
}
