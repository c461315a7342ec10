package runc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/specconv"
	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/sysbox-dev/sysbox/internal/ipc"
	"github.com/sysbox-dev/sysbox/internal/viewmount"
)

// createFlags are shared by create and run.
type createFlags struct {
	Bundle        string `short:"b" default:"." help:"Path to the bundle (the dir holding config.json)."`
	ConsoleSocket string `name:"console-socket" help:"Unix socket that receives the pty master when process.terminal is true."`
	PidFile       string `name:"pid-file" help:"File to write the init's host pid to."`
	NoPivot       bool   `name:"no-pivot" help:"Use MS_MOVE instead of pivot_root (for ramdisk roots)."`
	NoNewKeyring  bool   `name:"no-new-keyring" help:"Do not create a new session keyring."`
	PreserveFds   int    `name:"preserve-fds" help:"Pass this many extra fds (from fd 3) to the container."`
	PidfdSocket   string `name:"pidfd-socket" help:"Unix socket that receives a pidfd of the init."`
	ID            string `arg:"" help:"Container id."`
}

type createCmd struct {
	createFlags
}

func (c *createCmd) Run(g *Globals) error {
	_, err := startContainer(g, &c.createFlags, actCreate, false, false)
	return g.report(err)
}

type runCmd struct {
	createFlags
	Detach      bool `short:"d" help:"Detach from the container's process."`
	Keep        bool `help:"Keep the container's state after it exits."`
	NoSubreaper bool `name:"no-subreaper" help:"Do not become a subreaper."`
}

func (c *runCmd) Run(g *Globals) error {
	status, err := startContainer(g, &c.createFlags, actRun, c.Detach, !c.NoSubreaper)
	if err != nil {
		return g.report(err)
	}
	if c.Detach {
		return nil
	}
	if !c.Keep {
		if ct, err := libcontainer.Load(g.Root, c.ID); err == nil {
			destroy(g, ct)
		}
	}
	if status != 0 {
		return exitCode(status)
	}
	return nil
}

type startCmd struct {
	ID string `arg:"" help:"Container id."`
}

func (c *startCmd) Run(g *Globals) error {
	ct, err := g.load(c.ID)
	if err != nil {
		return g.report(err)
	}
	st, err := ct.Status()
	if err != nil {
		return g.report(err)
	}
	switch st {
	case libcontainer.Created:
		relay, err := listenNotify(c.ID)
		if err != nil {
			return g.report(err)
		}
		if err := ct.Exec(); err != nil {
			return g.report(err)
		}
		if relay != nil {
			return g.report(relay.wait(ct))
		}
		return nil
	case libcontainer.Stopped:
		return g.report(errors.New("cannot start a container that has stopped"))
	case libcontainer.Running:
		return g.report(errors.New("cannot start an already running container"))
	default:
		return g.report(fmt.Errorf("cannot start a container in the %s state", st))
	}
}

type action int

const (
	actCreate action = iota
	actRun
)

// loadSpec reads the bundle's config.json.
func loadSpec(bundle string) (*specs.Spec, error) {
	f, err := os.Open(filepath.Join(bundle, "config.json"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no config.json in bundle %s: give the bundle with --bundle, or write one with `sysbox-runc spec`", bundle)
		}
		return nil, err
	}
	defer f.Close()
	var s specs.Spec
	if err := json.NewDecoder(f).Decode(&s); err != nil {
		return nil, fmt.Errorf("parse %s: %w", f.Name(), err)
	}
	if s.Process == nil {
		return nil, errors.New("config.json has no process section")
	}
	if s.Root == nil || s.Root.Path == "" {
		return nil, errors.New("config.json has no root.path")
	}
	return &s, nil
}

// startContainer is create and run: spec, daemons, transform, rootfs,
// libcontainer. Whatever it set up is undone if a later step fails.
func startContainer(g *Globals, f *createFlags, act action, detach, subreaper bool) (status int, retErr error) {
	if err := mustRoot(); err != nil {
		return -1, err
	}
	if f.ID == "" {
		return -1, errors.New("container id cannot be empty")
	}
	bundle, err := filepath.Abs(f.Bundle)
	if err != nil {
		return -1, err
	}
	pidFile := f.PidFile
	if pidFile != "" {
		if pidFile, err = filepath.Abs(pidFile); err != nil {
			return -1, err
		}
	}
	if err := os.Chdir(bundle); err != nil {
		return -1, fmt.Errorf("bundle %s: %w", bundle, err)
	}
	spec, err := loadSpec(bundle)
	if err != nil {
		return -1, err
	}
	if _, err := libcontainer.Load(g.Root, f.ID); err == nil {
		return -1, fmt.Errorf("container with id %s already exists", f.ID)
	}
	opts, err := ParseOptions(spec.Process.Env)
	if err != nil {
		return -1, err
	}
	// Refuse what cannot work before asking the daemons for anything, so a
	// refused spec leaves nothing behind.
	if err := Validate(spec); err != nil {
		return -1, err
	}
	if !filepath.IsAbs(spec.Root.Path) {
		spec.Root.Path = filepath.Join(bundle, spec.Root.Path)
	}

	var undo cleanups
	defer func() {
		if retErr != nil {
			undo.run()
		}
	}()

	ctx := context.Background()
	host, err := probeHost()
	if err != nil {
		return -1, err
	}
	reg, err := registerMgr(ctx, f.ID, bundle, spec, opts)
	if err != nil {
		return -1, err
	}
	undo.add(func() { stoppedMgr(f.ID) })
	host.UIDBase, host.GIDBase, host.Size = reg.UIDBase, reg.GIDBase, reg.Size
	if !opts.NoSpecialDirs {
		host.Extra = append(host.Extra, mgrMounts(reg.Mounts)...)
	}
	var views []ipc.FsMount
	if !opts.NoFS {
		if views, err = registerFs(ctx, f.ID, spec, reg.UIDBase, reg.GIDBase); err != nil {
			return -1, err
		}
		undo.add(func() { unregisterFs(f.ID) })
	}

	warns, err := Transform(spec, opts, host)
	if err != nil {
		return -1, err
	}
	for _, w := range warns {
		slog.Warn(string(w), "id", f.ID)
	}

	hasNotify, err := setupNotify(f.ID, spec)
	if err != nil {
		return -1, err
	}
	var relay *notifyRelay
	if hasNotify {
		undo.add(func() { removeNotify(f.ID) })
		if act == actRun {
			if relay, err = listenNotify(f.ID); err != nil {
				return -1, err
			}
		}
	}

	rootfs, err := mountRootfs(f.ID, spec)
	if err != nil {
		return -1, err
	}
	undo.add(rootfs.remove)
	spec.Root.Path = rootfs.path

	config, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{
		CgroupName:   f.ID,
		NoPivotRoot:  f.NoPivot,
		NoNewKeyring: f.NoNewKeyring,
		Spec:         spec,
	})
	if err != nil {
		return -1, err
	}
	if opts.HonorCaps {
		config.Labels = append(config.Labels, honorCapsLabel)
	}
	rootUID, rootGID := rootIDs(spec)
	ct, err := libcontainer.Create(g.Root, f.ID, config)
	if err != nil {
		return -1, err
	}
	undo.add(func() { _ = ct.Destroy() })

	r := &runner{
		container:     ct,
		act:           act,
		detach:        detach || act == actCreate,
		pidFile:       pidFile,
		consoleSocket: f.ConsoleSocket,
		pidfdSocket:   f.PidfdSocket,
		preserveFds:   f.PreserveFds,
		init:          true,
		subreaper:     subreaper,
		notify:        relay,
		afterStart: func(pid int) error {
			// The container's mount namespace holds the rootfs now; the
			// host's copy only stood in for it.
			rootfs.release()
			if err := delegateCgroups(ct, rootUID, rootGID); err != nil {
				return err
			}
			if opts.NoFS {
				views = nil
			} else if err := startedFs(ctx, f.ID, pid, ct); err != nil {
				// Before the binds: the views show the started
				// container from their first read.
				return err
			}
			return viewmount.Mount(pid, views, rootUID, rootGID, false)
		},
	}
	return r.run(spec.Process)
}

// cleanups undoes, newest first, what a failed create set up.
type cleanups []func()

func (c *cleanups) add(f func()) { *c = append(*c, f) }

func (c cleanups) run() {
	for i := len(c) - 1; i >= 0; i-- {
		c[i]()
	}
}

// rootIDs are the host ids of the container's root.
func rootIDs(s *specs.Spec) (uid, gid uint32) {
	for _, m := range s.Linux.UIDMappings {
		if m.ContainerID == 0 {
			uid = m.HostID
		}
	}
	for _, m := range s.Linux.GIDMappings {
		if m.ContainerID == 0 {
			gid = m.HostID
		}
	}
	return uid, gid
}
