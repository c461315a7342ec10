// Package runc is the runtime role: a runc-compatible command line over
// libcontainer that turns every OCI spec into a system-container spec.
package runc

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

	"github.com/alecthomas/kong"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/seccomp"

	"github.com/sysbox-dev/sysbox/internal/logging"
	"github.com/sysbox-dev/sysbox/internal/version"
)

// Globals are runc's global flags, given before the command.
type Globals struct {
	Root          string      `default:"/run/sysbox-runc" help:"Directory for the containers' state (tmpfs recommended)."`
	Log           string      `help:"Log file (default: stderr). containerd reads errors from it."`
	LogFormat     string      `name:"log-format" enum:"text,json" default:"text" help:"Log format: text or json."`
	Debug         bool        `help:"Log at debug level."`
	SystemdCgroup bool        `name:"systemd-cgroup" help:"Accepted for runc compatibility; cgroups are managed through cgroupfs."`
	Rootless      string      `default:"auto" help:"Accepted for runc compatibility; sysbox-runc runs as root."`
	Criu          string      `default:"criu" help:"Accepted for runc compatibility (checkpoint is not supported yet)."`
	Version       versionFlag `short:"v" help:"Print the version and exit."`
}

// Cmd is `sysbox runc` / `sysbox-runc`.
type Cmd struct {
	Globals

	Create     createCmd     `cmd:"" help:"Create a container; its user process waits for start."`
	Start      startCmd      `cmd:"" help:"Start the user process of a created container."`
	RunCmd     runCmd        `cmd:"" name:"run" help:"Create and start a container."`
	Exec       execCmd       `cmd:"" help:"Run a new process inside a running container."`
	Kill       killCmd       `cmd:"" help:"Send a signal to the container's init (or every process with --all)."`
	Delete     deleteCmd     `cmd:"" help:"Delete a stopped container (or any with --force)."`
	State      stateCmd      `cmd:"" help:"Print the container's OCI state as JSON."`
	List       listCmd       `cmd:"" help:"List the containers under --root."`
	Ps         psCmd         `cmd:"" help:"List the processes running in a container."`
	Pause      pauseCmd      `cmd:"" help:"Freeze every process of a container."`
	Resume     resumeCmd     `cmd:"" help:"Thaw a paused container."`
	Update     updateCmd     `cmd:"" help:"Change a container's resource limits."`
	Events     eventsCmd     `cmd:"" help:"Print a container's events and stats as JSON lines."`
	Features   featuresCmd   `cmd:"" help:"Print what this runtime supports as JSON."`
	Spec       specCmd       `cmd:"" help:"Write a system-container config.json template into a bundle."`
	Checkpoint checkpointCmd `cmd:"" help:"Not supported yet."`
	Restore    restoreCmd    `cmd:"" help:"Not supported yet."`
}

// AfterApply sets up logging once the global flags are known and hands the
// globals to the command that runs.
func (c *Cmd) AfterApply(ctx *kong.Context) error {
	if _, _, err := logging.Setup(logging.Options{File: c.Log, Format: c.LogFormat, Debug: c.Debug}); err != nil {
		return err
	}
	// create changes into the bundle before it opens the state dir: a
	// relative --root means the caller's directory, as with runc.
	if c.Root != "" {
		root, err := filepath.Abs(c.Root)
		if err != nil {
			return fmt.Errorf("--root %s: %w", c.Root, err)
		}
		c.Root = root
	}
	ctx.Bind(&c.Globals)
	return nil
}

type versionFlag bool

func (versionFlag) BeforeApply(app *kong.Kong) error {
	version.Print(app.Stdout, "sysbox-runc", seccomp.Version)
	app.Exit(0)
	return nil
}

// exitCode ends the runtime with a status and no message: `run` returns the
// container's exit status this way.
type exitCode int

func (e exitCode) Error() string { return "exit status " + strconv.Itoa(int(e)) }
func (e exitCode) ExitCode() int { return int(e) }

// report logs a command's error where containerd looks for it (the last
// "level":"error" line of --log) and hands it on to main.
func (g *Globals) report(err error) error {
	if err == nil {
		return nil
	}
	var ec exitCode
	if errors.As(err, &ec) {
		return err
	}
	slog.Error(err.Error())
	if g.Log == "" {
		// slog already wrote it to stderr.
		return exitCode(1)
	}
	return err
}

// load opens a container by id with runc's error for an unknown one.
func (g *Globals) load(id string) (*libcontainer.Container, error) {
	if id == "" {
		return nil, errors.New("container id cannot be empty")
	}
	c, err := libcontainer.Load(g.Root, id)
	if err != nil {
		if errors.Is(err, libcontainer.ErrNotExist) {
			return nil, fmt.Errorf("container %s does not exist", id)
		}
		return nil, err
	}
	return c, nil
}

func mustRoot() error {
	if os.Geteuid() != 0 {
		return errors.New("sysbox-runc must run as root: it creates user namespaces and id-mapped mounts for the container")
	}
	return nil
}
