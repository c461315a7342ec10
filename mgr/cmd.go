// Package mgr is the manager daemon, sysbox-mgr. It gives every container an
// exclusive slice of host ids carved from the sysbox entry of /etc/subuid and
// /etc/subgid, backs the dirs where inner engines keep overlayfs layers
// (/var/lib/docker, …) with host dirs under the data root, keeps both in a
// bbolt database behind a journal (a change survives kill -9 before it is
// answered; bbolt commits follow in batches), and collects what a removed
// container leaves behind. The runtime talks to it over the ipc socket
// (api.go there).
//
// Files: cmd.go (flags, status command), daemon.go (lifecycle), manager.go
// (the calls), alloc.go (id ranges), store.go (bbolt and the committer),
// journal.go (the journal's format and why it is safe), dirs.go and copy.go
// (special dirs), gc.go and watch.go (removal), mounts.go (mountinfo),
// fdstore.go (copies of the trap agent's seccomp notify fds, which outlive
// a restart of sysbox-fs).
package mgr

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/sysbox-dev/sysbox/internal/ipc"
	"github.com/sysbox-dev/sysbox/internal/logging"
	"github.com/sysbox-dev/sysbox/internal/subid"
)

// Cmd is `sysbox mgr` / `sysbox-mgr`: the daemon by default, or `status`.
type Cmd struct {
	Serve  ServeCmd  `cmd:"" default:"withargs" help:"Run the manager daemon (the default)."`
	Status StatusCmd `cmd:"" help:"List containers, their id ranges, special dirs and disk use."`
}

// ServeCmd runs the daemon.
type ServeCmd struct {
	DataRoot  string        `name:"data-root" default:"/var/lib/sysbox" help:"Where the database and the containers' special dirs live (not on tmpfs or overlay)."`
	Socket    string        `default:"/run/sysbox/mgr.sock" help:"Socket of the manager's API; the pid file goes next to it."`
	Log       string        `help:"Log file (default: stderr)."`
	LogFormat string        `name:"log-format" help:"Log format: text or json (default: text on a terminal, json otherwise)."`
	Debug     bool          `help:"Log debug messages."`
	RangeSize uint32        `name:"range-size" default:"65536" help:"Ids per container unless it asks for more (a multiple of 65536)."`
	FdStore   string        `name:"fd-store" help:"Socket where the trap agent (sysbox-fs) leaves a copy of each container's seccomp notify fd, so its trapped calls wait for a restarted agent instead of failing (default: fdstore.sock beside --socket; \"none\": no store)."`
	FdGrace   time.Duration `name:"fd-grace" default:"15s" help:"How long trapped calls wait for a trap agent that went away before its fds are closed (then they fail with ENOSYS)."`

	SubUID    string        `name:"subuid-file" default:"/etc/subuid" hidden:""`
	SubGID    string        `name:"subgid-file" default:"/etc/subgid" hidden:""`
	LoginDefs string        `name:"login-defs" default:"/etc/login.defs" hidden:""`
	SubIDSize uint64        `name:"subid-size" default:"268435456" hidden:"" help:"Ids in the sysbox subuid entry when it has to be created (4096 containers)."`
	Sweep     time.Duration `name:"sweep-interval" default:"2s" hidden:""`
}

// Run runs the daemon until SIGTERM or SIGINT.
func (c *ServeCmd) Run() error {
	if c.LogFormat != "" && c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("--log-format %q: want text or json", c.LogFormat)
	}
	_, closer, err := logging.Setup(logging.Options{File: c.Log, Format: c.LogFormat, Debug: c.Debug})
	if err != nil {
		return err
	}
	defer closer.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return c.serve(ctx, nil)
}

func (c *ServeCmd) files() subid.Files {
	return subid.Files{SubUID: c.SubUID, SubGID: c.SubGID, LoginDefs: c.LoginDefs}
}

// StatusCmd asks the daemon what it holds.
type StatusCmd struct {
	Socket string `default:"/run/sysbox/mgr.sock" help:"Socket of the manager's API."`
	JSON   bool   `help:"Print JSON."`
}

// Run prints the manager's containers.
func (c *StatusCmd) Run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := ipc.Call[ipc.Empty, ipc.MgrStatus](ctx, c.Socket, ipc.MgrStatusMethod, ipc.Empty{})
	if errors.Is(err, ipc.ErrNotRunning) {
		return fmt.Errorf("sysbox-mgr is not running (%w): start it with `systemctl start sysbox-mgr`, or `sysbox-mgr &`", err)
	}
	if err != nil {
		return fmt.Errorf("ask sysbox-mgr: %w", err)
	}
	if c.JSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	printStatus(os.Stdout, st)
	return nil
}

func printStatus(f *os.File, st ipc.MgrStatus) {
	mode := "id-mapped"
	if !st.Idmap {
		mode = "chowned (no id-mapped mounts on this filesystem)"
	}
	var disk int64
	for _, c := range st.Containers {
		disk += c.DiskBytes
	}
	fmt.Fprintf(f, "data root:  %s (special dirs %s)\n", st.DataRoot, mode)
	fmt.Fprintf(f, "id range:   %d-%d, %d of %d ids in use\n", st.IDStart, st.IDStart+st.IDCount-1, st.IDsUsed, st.IDCount)
	fmt.Fprintf(f, "containers: %d, %s on disk\n\n", len(st.Containers), human(disk))
	if len(st.Orphans) > 0 {
		fmt.Fprintf(f, "special dirs of no known container (kept for their container to claim; delete them if it is gone):\n")
		for _, o := range st.Orphans {
			fmt.Fprintf(f, "  %s\n", o)
		}
		fmt.Fprintln(f)
	}
	if len(st.Containers) == 0 {
		return
	}
	w := tabwriter.NewWriter(f, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tSTATE\tIDS\tDISK\tDIRS")
	for _, c := range st.Containers {
		state := "stopped"
		switch {
		case c.Removing:
			state = "removing"
		case c.Running:
			state = "running"
		}
		var kinds []string
		for _, d := range c.Dirs {
			kinds = append(kinds, filepath.Base(filepath.Dir(d)))
		}
		id := c.ID
		if len(id) > 12 {
			id = id[:12]
		}
		fmt.Fprintf(w, "%s\t%s\t%d-%d\t%s\t%s\n", id, state, c.UIDBase, uint64(c.UIDBase)+uint64(c.Size)-1, human(c.DiskBytes), strings.Join(kinds, ","))
	}
	w.Flush()
	fmt.Fprintf(f, "\nspecial dirs are %s/<kind>/<id>\n", st.DataRoot)
}

func human(b int64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%d B", b)
	}
	div, exp := int64(unit), 0
	for n := b / unit; n >= unit; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(b)/float64(div), "KMGTPE"[exp])
}
