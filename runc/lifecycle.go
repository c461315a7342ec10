package runc

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

type killCmd struct {
	All    bool   `short:"a" help:"Send the signal to every process of the container."`
	ID     string `arg:"" help:"Container id."`
	Signal string `arg:"" optional:"" default:"SIGTERM" help:"Signal name or number (default SIGTERM)."`
}

func (c *killCmd) Run(g *Globals) error {
	ct, err := g.load(c.ID)
	if err != nil {
		return g.report(err)
	}
	sig, err := parseSignal(c.Signal)
	if err != nil {
		return g.report(err)
	}
	if c.All && sig != unix.SIGKILL {
		pids, err := ct.Processes()
		if err != nil {
			return g.report(err)
		}
		for _, pid := range pids {
			_ = unix.Kill(pid, sig)
		}
		return nil
	}
	err = ct.Signal(sig)
	if errors.Is(err, libcontainer.ErrNotRunning) && c.All {
		err = nil
	}
	return g.report(err)
}

func parseSignal(s string) (unix.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("signal %d out of range", n)
		}
		return unix.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	sig := unix.SignalNum(name)
	if sig == 0 {
		return 0, fmt.Errorf("unknown signal %q", s)
	}
	return sig, nil
}

type deleteCmd struct {
	Force bool   `short:"f" help:"Kill the container first if it is running."`
	ID    string `arg:"" help:"Container id."`
}

func (c *deleteCmd) Run(g *Globals) error {
	ct, err := libcontainer.Load(g.Root, c.ID)
	if err != nil {
		if errors.Is(err, libcontainer.ErrNotExist) {
			// runc removes a leftover state dir and, with --force, is quiet.
			_ = os.RemoveAll(filepath.Join(g.Root, c.ID))
			removeRootfsDir(c.ID)
			if c.Force {
				return nil
			}
			return g.report(fmt.Errorf("container %s does not exist", c.ID))
		}
		return g.report(err)
	}
	st, err := ct.Status()
	if err != nil {
		return g.report(err)
	}
	switch st {
	case libcontainer.Stopped:
	case libcontainer.Created:
		// Never started: kill its waiting init.
		_ = ct.Signal(unix.SIGKILL)
	default:
		if !c.Force {
			return g.report(fmt.Errorf("cannot delete container %s that is not stopped: %s (use --force)", c.ID, st))
		}
		if err := ct.Signal(unix.SIGKILL); err != nil && !errors.Is(err, libcontainer.ErrNotRunning) {
			return g.report(err)
		}
		waitStopped(ct, 10*time.Second)
	}
	return g.report(destroy(g, ct))
}

func waitStopped(ct *libcontainer.Container, d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if st, err := ct.Status(); err != nil || st == libcontainer.Stopped {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// destroy removes the container's state and tells the daemons. The
// manager keeps the container's dirs until its bundle is gone.
func destroy(g *Globals, ct *libcontainer.Container) error {
	id := ct.ID()
	err := ct.Destroy()
	removeRootfsDir(id)
	removeNotify(id)
	unregisterFs(id)
	stoppedMgr(id)
	if err == nil {
		slog.Debug("container deleted", "id", id)
	}
	return err
}

type execCmd struct {
	Process       string   `short:"p" help:"JSON file with the process to run (an OCI process)."`
	Detach        bool     `short:"d" help:"Detach from the process."`
	Tty           bool     `short:"t" help:"Allocate a pseudo-TTY."`
	ConsoleSocket string   `name:"console-socket" help:"Unix socket that receives the pty master."`
	PidFile       string   `name:"pid-file" help:"File to write the process's host pid to."`
	PidfdSocket   string   `name:"pidfd-socket" help:"Unix socket that receives a pidfd of the process."`
	Cwd           string   `help:"Working directory inside the container."`
	Env           []string `short:"e" help:"Extra environment (KEY=VALUE), repeatable."`
	User          string   `short:"u" help:"UID[:GID] to run as."`
	AdditionalGid []uint32 `name:"additional-gids" short:"g" help:"Additional gids."`
	Cap           []string `short:"c" help:"Extra capability, repeatable."`
	NoNewPrivs    bool     `name:"no-new-privs" help:"Set no_new_privs."`
	PreserveFds   int      `name:"preserve-fds" help:"Pass this many extra fds (from fd 3)."`
	Ignore        bool     `name:"ignore-paused" help:"Accepted for runc compatibility."`
	Cgroup        []string `help:"Accepted for runc compatibility."`
	ID            string   `arg:"" help:"Container id."`
	Command       []string `arg:"" optional:"" passthrough:"" help:"Command and arguments (when --process is not given)."`
}

func (c *execCmd) Run(g *Globals) error {
	status, err := c.run(g)
	if err != nil {
		return g.report(err)
	}
	if status != 0 {
		return exitCode(status)
	}
	return nil
}

func (c *execCmd) run(g *Globals) (int, error) {
	ct, err := g.load(c.ID)
	if err != nil {
		return -1, err
	}
	st, err := ct.Status()
	if err != nil {
		return -1, err
	}
	if st == libcontainer.Stopped {
		return -1, errors.New("cannot exec in a stopped container")
	}
	if st == libcontainer.Paused && !c.Ignore {
		return -1, errors.New("cannot exec in a paused container (use --ignore-paused to override)")
	}
	p, err := c.processSpec(ct)
	if err != nil {
		return -1, err
	}
	// Exec'd processes follow the same capability rule as the init: root
	// holds every capability inside, other users none.
	if cfg := ct.Config(); !honorCaps(cfg.Labels) {
		h, err := probeHost()
		if err != nil {
			return -1, err
		}
		setCapabilities(p, Options{}, h.Caps)
	}
	for _, cp := range c.Cap {
		capName := strings.ToUpper(cp)
		if !strings.HasPrefix(capName, "CAP_") {
			capName = "CAP_" + capName
		}
		p.Capabilities.Bounding = appendNew(p.Capabilities.Bounding, capName)
		p.Capabilities.Effective = appendNew(p.Capabilities.Effective, capName)
		p.Capabilities.Permitted = appendNew(p.Capabilities.Permitted, capName)
	}
	pidFile := c.PidFile
	if pidFile != "" {
		if pidFile, err = filepath.Abs(pidFile); err != nil {
			return -1, err
		}
	}
	r := &runner{
		container:     ct,
		act:           actExec,
		detach:        c.Detach,
		pidFile:       pidFile,
		consoleSocket: c.ConsoleSocket,
		pidfdSocket:   c.PidfdSocket,
		preserveFds:   c.PreserveFds,
		subreaper:     false,
	}
	return r.run(p)
}

func appendNew(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// honorCaps: the container was created with SYSBOX_HONOR_CAPS=true.
func honorCaps(labels []string) bool {
	for _, l := range labels {
		if l == honorCapsLabel {
			return true
		}
	}
	return false
}

const honorCapsLabel = "sysbox.honor-caps=true"

// processSpec reads --process or builds the process from the flags and
// the container's own process, as runc does.
func (c *execCmd) processSpec(ct *libcontainer.Container) (*specs.Process, error) {
	if c.Process != "" {
		b, err := os.ReadFile(c.Process)
		if err != nil {
			return nil, err
		}
		var p specs.Process
		if err := json.Unmarshal(b, &p); err != nil {
			return nil, fmt.Errorf("parse --process %s: %w", c.Process, err)
		}
		if c.Tty {
			p.Terminal = true
		}
		return &p, nil
	}
	if len(c.Command) == 0 {
		return nil, errors.New("exec needs a command after the container id, or --process FILE")
	}
	st, err := ct.State()
	if err != nil {
		return nil, err
	}
	bundle, _ := bundleOf(st.Config.Labels)
	spec, err := loadSpec(bundle)
	if err != nil {
		return nil, fmt.Errorf("read the container's spec: %w", err)
	}
	p := spec.Process
	p.Args = c.Command
	p.Terminal = c.Tty
	p.Env = append(p.Env, c.Env...)
	if c.Cwd != "" {
		p.Cwd = c.Cwd
	}
	if c.NoNewPrivs {
		p.NoNewPrivileges = true
	}
	if c.User != "" {
		u, gstr, hasG := strings.Cut(c.User, ":")
		uid, err := strconv.ParseUint(u, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("--user %q: give a numeric UID[:GID]", c.User)
		}
		p.User.UID = uint32(uid)
		if hasG {
			gid, err := strconv.ParseUint(gstr, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("--user %q: give a numeric UID[:GID]", c.User)
			}
			p.User.GID = uint32(gid)
		}
	}
	p.User.AdditionalGids = append(p.User.AdditionalGids, c.AdditionalGid...)
	return p, nil
}

func bundleOf(labels []string) (string, bool) {
	for _, l := range labels {
		if b, ok := strings.CutPrefix(l, "bundle="); ok {
			return b, true
		}
	}
	return "", false
}
