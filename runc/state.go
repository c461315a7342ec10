package runc

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/utils"
	"github.com/opencontainers/runtime-spec/specs-go"
)

type stateCmd struct {
	ID string `arg:"" help:"Container id."`
}

func (c *stateCmd) Run(g *Globals) error {
	ct, err := g.load(c.ID)
	if err != nil {
		return g.report(err)
	}
	st, err := containerState(ct)
	if err != nil {
		return g.report(err)
	}
	return g.report(printJSON(st, true))
}

// ociState is runc's `state` output: the OCI state plus a few fields
// tools read (rootfs, created, owner).
type ociState struct {
	Version     string            `json:"ociVersion"`
	ID          string            `json:"id"`
	InitPid     int               `json:"pid"`
	Status      string            `json:"status"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	Created     time.Time         `json:"created"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Owner       string            `json:"owner"`
}

func containerState(ct *libcontainer.Container) (*ociState, error) {
	st, err := ct.State()
	if err != nil {
		return nil, err
	}
	status, err := ct.Status()
	if err != nil {
		return nil, err
	}
	pid := st.BaseState.InitProcessPid
	if status == libcontainer.Stopped {
		pid = 0
	}
	bundle, annotations := utils.Annotations(st.Config.Labels)
	return &ociState{
		Version:     specs.Version,
		ID:          st.BaseState.ID,
		InitPid:     pid,
		Status:      status.String(),
		Bundle:      bundle,
		Rootfs:      st.BaseState.Config.Rootfs,
		Created:     st.BaseState.Created,
		Annotations: annotations,
		Owner:       "",
	}, nil
}

func printJSON(v any, indent bool) error {
	enc := json.NewEncoder(os.Stdout)
	if indent {
		enc.SetIndent("", "  ")
	}
	return enc.Encode(v)
}

type listCmd struct {
	Format string `short:"f" enum:"table,json" default:"table" help:"Output format: table or json."`
	Quiet  bool   `short:"q" help:"Print only the ids."`
}

func (c *listCmd) Run(g *Globals) error {
	entries, err := os.ReadDir(g.Root)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return g.report(err)
	}
	states := []ociState{}
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		ct, err := libcontainer.Load(g.Root, e.Name())
		if err != nil {
			continue // being created or deleted right now
		}
		st, err := containerState(ct)
		if err != nil {
			continue
		}
		if fi, err := e.Info(); err == nil {
			if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
				st.Owner = fmt.Sprint(sys.Uid)
				if sys.Uid == 0 {
					st.Owner = "root"
				}
			}
		}
		states = append(states, *st)
	}
	switch {
	case c.Quiet:
		for _, s := range states {
			fmt.Println(s.ID)
		}
	case c.Format == "json":
		return g.report(printJSON(states, false))
	default:
		w := tabwriter.NewWriter(os.Stdout, 12, 1, 3, ' ', 0)
		fmt.Fprint(w, "ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER\n")
		for _, s := range states {
			fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\n", s.ID, s.InitPid, s.Status, s.Bundle, s.Created.Format(time.RFC3339Nano), s.Owner)
		}
		return g.report(w.Flush())
	}
	return nil
}

type psCmd struct {
	Format string   `short:"f" enum:"table,json" default:"table" help:"Output format: table or json."`
	ID     string   `arg:"" help:"Container id."`
	PsArgs []string `arg:"" optional:"" passthrough:"" help:"Arguments for ps (table format)."`
}

func (c *psCmd) Run(g *Globals) error {
	ct, err := g.load(c.ID)
	if err != nil {
		return g.report(err)
	}
	pids, err := ct.Processes()
	if err != nil {
		return g.report(err)
	}
	if c.Format == "json" {
		if pids == nil {
			pids = []int{}
		}
		return g.report(printJSON(pids, false))
	}
	// The table reads /proc directly; no ps(1) is spawned.
	w := tabwriter.NewWriter(os.Stdout, 8, 1, 2, ' ', 0)
	fmt.Fprint(w, "PID\tCMD\n")
	for _, pid := range pids {
		cmd, _ := os.ReadFile(filepath.Join("/proc", fmt.Sprint(pid), "cmdline"))
		fmt.Fprintf(w, "%d\t%s\n", pid, strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " ")))
	}
	return g.report(w.Flush())
}

type pauseCmd struct {
	ID string `arg:"" help:"Container id."`
}

func (c *pauseCmd) Run(g *Globals) error {
	ct, err := g.load(c.ID)
	if err != nil {
		return g.report(err)
	}
	return g.report(ct.Pause())
}

type resumeCmd struct {
	ID string `arg:"" help:"Container id."`
}

func (c *resumeCmd) Run(g *Globals) error {
	ct, err := g.load(c.ID)
	if err != nil {
		return g.report(err)
	}
	return g.report(ct.Resume())
}

type checkpointCmd struct {
	Args []string `arg:"" optional:"" passthrough:""`
}

func (c *checkpointCmd) Run(g *Globals) error {
	return g.report(errors.New("checkpoint is not supported yet by sysbox-runc: stop and start the container instead (its host-backed dirs are kept)"))
}

type restoreCmd struct {
	Args []string `arg:"" optional:"" passthrough:""`
}

func (c *restoreCmd) Run(g *Globals) error {
	return g.report(errors.New("restore is not supported yet by sysbox-runc"))
}
