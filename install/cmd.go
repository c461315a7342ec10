// Package install is `sysbox install` and `sysbox uninstall`: it sets up a
// host for system containers (binary and role links, the sysbox user and its
// subordinate ids, sysctls, systemd units or directly started daemons, and
// the sysbox-runc runtime in Docker, containerd and Podman) and takes all of
// it away again.
//
// Every change is recorded in a state file (/etc/sysbox/install.json):
// uninstall undoes exactly that and keeps whatever the admin changed since,
// and a second install starts from "the host without sysbox", which makes it
// idempotent. Config files are edited by pure merge functions (dockerjson.go,
// toml.go, containerd.go) that the tests drive as tables; host.go is the one
// place that writes, and --dry-run turns its writes into diffs.
package install

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sysbox-dev/sysbox/internal/ipc"
	"github.com/sysbox-dev/sysbox/internal/mountinfo"
)

// InstallCmd is `sysbox install`.
type InstallCmd struct {
	Docker            bool          `help:"Add the sysbox-runc runtime to Docker (with no engine flag: every engine found here)."`
	Containerd        bool          `help:"Add the sysbox-runc runtime to containerd's CRI plugin (Kubernetes)."`
	Podman            bool          `help:"Add the sysbox-runc runtime to Podman."`
	Prefix            string        `default:"/usr/local" help:"Install the binary and its links in PREFIX/bin."`
	DataRoot          string        `default:"/var/lib/sysbox" help:"The manager's data root."`
	DefaultRuntime    bool          `help:"Also make sysbox-runc Docker's default runtime."`
	RestartContainerd bool          `help:"Restart containerd (through systemd) so it loads the runtime; running containers are not affected."`
	NoStart           bool          `help:"Write everything but start no daemon (for images that boot later)."`
	DryRun            bool          `help:"Print every change as a diff and change nothing."`
	DockerPidFile     string        `placeholder:"FILE" help:"dockerd's pid file, when dockerd runs with another --pidfile than /var/run/docker.pid."`
	Timeout           time.Duration `default:"20s" help:"How long to wait for a daemon or an engine to answer."`
	StateFile         string        `default:"/etc/sysbox/install.json" hidden:"" help:"Where install records what it changed."`
}

// UninstallCmd is `sysbox uninstall`.
type UninstallCmd struct {
	Force     bool          `help:"Uninstall even while sysbox containers run (they lose their /proc and /sys views)."`
	Purge     bool          `help:"Also remove the data root (the containers' stored inner images and state)."`
	DryRun    bool          `help:"Print every change as a diff and change nothing."`
	Timeout   time.Duration `default:"20s" help:"How long to wait for a daemon to stop or an engine to answer."`
	StateFile string        `default:"/etc/sysbox/install.json" hidden:"" help:"Where install recorded what it changed."`
}

// installer is one run of install or uninstall.
type installer struct {
	h         *host
	st        *state
	stateFile string
	hadState  bool

	prefix, dataRoot  string
	defaultRuntime    bool
	restartContainerd bool
	dockerPidFile     string
	timeout           time.Duration
	// skipEngines edits the engines' files but neither reloads nor asks
	// them anything (tests).
	skipEngines bool
	cdVersion   int64
	// fakeDockerd and fakeReload stand in for dockerd and its SIGHUP
	// (tests).
	fakeDockerd *dockerd
	fakeReload  func() error
}

func (in *installer) containerdVersion() int64 {
	if in.cdVersion == 0 {
		in.cdVersion = containerdConfigVersion()
	}
	return in.cdVersion
}

// engines are the container engines to configure.
type engines struct{ docker, containerd, podman bool }

func (e engines) String() string {
	var names []string
	for _, n := range []struct {
		on   bool
		name string
	}{{e.docker, "Docker"}, {e.containerd, "containerd"}, {e.podman, "Podman"}} {
		if n.on {
			names = append(names, n.name)
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// detectEngines finds the engines installed here. containerd counts when
// its CRI plugin can use a runtime: a containerd that only serves Docker
// (its config disables CRI, as Docker's packages ship it) does not.
func detectEngines(h *host) engines {
	var e engines
	if _, err := exec.LookPath("dockerd"); err == nil || h.exists(dockerSocket) {
		e.docker = true
	}
	if _, err := exec.LookPath("podman"); err == nil {
		e.podman = true
	}
	if _, err := exec.LookPath("containerd"); err == nil {
		e.containerd = true
		if b, ok, _ := h.readFile(containerdConfig); ok {
			if doc, err := parseTOMLDoc(b, containerdConfig); err == nil {
				if dis, ok := doc["disabled_plugins"].([]any); ok {
					for _, p := range dis {
						if p == "cri" || p == "io.containerd.grpc.v1.cri" {
							e.containerd = false
						}
					}
				}
			}
		}
	}
	return e
}

// checkPath refuses paths that cannot go into a systemd unit line as they
// are.
func checkPath(flag, p string) error {
	if !filepath.IsAbs(p) {
		return fmt.Errorf("%s %q: must be an absolute path", flag, p)
	}
	if strings.ContainsAny(p, " \t\n\"'\\%$;") {
		return fmt.Errorf("%s %q: spaces, quotes, %%, $, ; and \\ are not supported", flag, p)
	}
	return nil
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func (c *InstallCmd) Run() error {
	for _, f := range []struct{ flag, p string }{{"--prefix", c.Prefix}, {"--data-root", c.DataRoot}} {
		if err := checkPath(f.flag, f.p); err != nil {
			return err
		}
	}
	if os.Geteuid() != 0 && !c.DryRun {
		return errors.New("install must run as root (--dry-run shows what it would do)")
	}
	ctx, cancel := signalContext()
	defer cancel()
	in := &installer{
		h:                 &host{dry: c.DryRun, out: os.Stdout},
		stateFile:         c.StateFile,
		prefix:            filepath.Clean(c.Prefix),
		dataRoot:          filepath.Clean(c.DataRoot),
		defaultRuntime:    c.DefaultRuntime,
		restartContainerd: c.RestartContainerd,
		dockerPidFile:     c.DockerPidFile,
		timeout:           c.Timeout,
	}
	eng := engines{docker: c.Docker, containerd: c.Containerd, podman: c.Podman}
	if eng == (engines{}) {
		eng = detectEngines(in.h)
	}
	return in.install(ctx, eng, !c.NoStart)
}

func (in *installer) install(ctx context.Context, eng engines, start bool) error {
	if err := in.loadState(); err != nil {
		return err
	}
	if in.h.dry {
		fmt.Fprintln(in.h.out, "# dry run: nothing is changed; this is what install would do")
	}
	fmt.Fprintf(in.h.out, "installing sysbox in %s/bin (data root %s; engines: %s)\n", in.prefix, in.dataRoot, eng)
	if in.hadState && in.st.Prefix != "" && in.st.Prefix != in.prefix {
		// Moving to another prefix: the old binary and links go.
		if err := in.removeBinary(); err != nil {
			return err
		}
	}
	in.st.Prefix, in.st.DataRoot = in.prefix, in.dataRoot
	steps := []func() error{
		in.installBinary,
		in.ensureUser,
		in.ensureSubIDs,
		in.makeDataRoot,
		in.setupSysctls,
		in.writeUnits,
	}
	if start {
		steps = append(steps, func() error { return in.startDaemons(ctx) })
	}
	if eng.docker {
		steps = append(steps, func() error { return in.configureDocker(ctx) })
	}
	if eng.containerd {
		steps = append(steps, in.configureContainerd)
	}
	if eng.podman {
		steps = append(steps, in.configurePodman)
	}
	for _, step := range steps {
		if err := step(); err != nil {
			if in.h.dry {
				return err
			}
			// What was done so far is recorded: uninstall can take it out.
			_ = in.saveState(false)
			return fmt.Errorf("%w\n(install stopped here; run it again once this is fixed, or sysbox uninstall to take out what it did so far)", err)
		}
	}
	if err := in.saveState(true); err != nil {
		return err
	}
	if !start {
		in.h.note("--no-start: the daemons were not started")
	}
	if !in.h.dry {
		fmt.Fprintf(in.h.out, "sysbox is installed: docker run --runtime=%s -d IMAGE /sbin/init\n", runtimeName)
	}
	return nil
}

func (in *installer) makeDataRoot() error {
	created, err := in.h.mkdir(in.dataRoot, 0o700)
	if err != nil {
		return err
	}
	if created {
		in.st.DataRootCreated = true
	}
	return in.saveState(false)
}

func (c *UninstallCmd) Run() error {
	if os.Geteuid() != 0 && !c.DryRun {
		return errors.New("uninstall must run as root (--dry-run shows what it would do)")
	}
	ctx, cancel := signalContext()
	defer cancel()
	in := &installer{
		h:         &host{dry: c.DryRun, out: os.Stdout},
		stateFile: c.StateFile,
		timeout:   c.Timeout,
	}
	return in.uninstall(ctx, c.Force, c.Purge)
}

func (in *installer) uninstall(ctx context.Context, force, purge bool) error {
	if err := in.loadState(); err != nil {
		return err
	}
	if !in.hadState {
		fmt.Fprintf(in.h.out, "nothing to uninstall: %s records no install\n", in.stateFile)
		return nil
	}
	in.prefix, in.dataRoot = in.st.Prefix, in.st.DataRoot
	if in.h.dry {
		fmt.Fprintln(in.h.out, "# dry run: nothing is changed; this is what uninstall would do")
	}
	if !force && !in.skipEngines {
		running := in.runningContainers(ctx)
		if len(running) > 0 {
			return fmt.Errorf("sysbox containers are running (%s): stop them first, or --force (they lose their /proc and /sys views)",
				strings.Join(running, ", "))
		}
	}
	steps := []func() error{
		// The engines first, so no new container starts on sysbox.
		func() error { return in.unconfigureDocker(ctx) },
		in.unconfigureContainerd,
		in.unconfigurePodman,
		in.stopDaemons,
		in.removeUnits,
		in.removeBinary,
		in.restoreSysctls,
		func() error { return in.restoreFile("/etc/subuid") },
		func() error { return in.restoreFile("/etc/subgid") },
		in.removeUser,
		in.restoreRest,
		in.removeRuntimeDirs,
		func() error { return in.removeDataRoot(purge) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			_ = in.saveState(false)
			return err
		}
	}
	if in.h.dry {
		in.h.say("remove %s", in.stateFile)
	} else if err := in.h.removeFile(in.stateFile); err != nil {
		return err
	}
	in.h.removeEmptyDir(filepath.Dir(in.stateFile))
	if !in.h.dry {
		fmt.Fprintln(in.h.out, "sysbox is uninstalled")
	}
	return nil
}

// restoreRest puts back any other file install recorded.
func (in *installer) restoreRest() error {
	for p := range in.st.Files {
		if err := in.restoreFile(p); err != nil {
			return err
		}
	}
	return nil
}

// removeRuntimeDirs removes the logs and pid files of directly started
// daemons, and their directories when nothing else is in them.
func (in *installer) removeRuntimeDirs() error {
	for _, d := range in.daemonSpecs() {
		for _, p := range []string{d.log, d.pidFile} {
			if err := in.h.removeFile(p); err != nil {
				return err
			}
		}
	}
	in.h.removeEmptyDir(logDir)
	// sysbox-fs keeps a record of each running container there, to take
	// them back after a restart; with the daemon gone they mean nothing.
	if ents, err := os.ReadDir(in.h.path(ipc.FsStateDir)); err == nil {
		for _, e := range ents {
			if err := in.h.removeFile(filepath.Join(ipc.FsStateDir, e.Name())); err != nil {
				return err
			}
		}
	}
	in.h.removeEmptyDir(ipc.FsStateDir)
	// The runtime keeps one private bind of /run/sysbox/rootfs (its
	// rootfs mounts must not propagate); with no container left it goes.
	if !in.h.dry {
		for _, d := range []string{"/run/sysbox/rootfs", "/run/sysbox/notify"} {
			if in.h.root == "" {
				_ = unix.Unmount(d, unix.MNT_DETACH)
			}
			in.h.removeEmptyDir(d)
		}
	}
	in.h.removeEmptyDir("/run/sysbox")
	return nil
}

func (in *installer) removeDataRoot(purge bool) error {
	dr := in.st.DataRoot
	if dr == "" || !in.h.exists(dr) {
		return nil
	}
	if !purge {
		in.h.note("kept the data root %s (uninstall --purge removes it)", dr)
		return nil
	}
	switch filepath.Clean(dr) {
	case "/", "/var", "/var/lib", "/etc", "/usr", "/home", "/root", "/tmp", "/run":
		return fmt.Errorf("refusing to remove data root %s", dr)
	}
	if m := mountsUnder(in.h.path(dr)); len(m) > 0 {
		return fmt.Errorf("data root %s has mounts under it (%s): stop the containers using them first", dr, strings.Join(m, ", "))
	}
	in.h.say("remove %s and everything in it", dr)
	if in.h.dry {
		return nil
	}
	if err := os.RemoveAll(in.h.path(dr)); err != nil {
		return fmt.Errorf("remove data root: %w", err)
	}
	in.st.DataRoot = ""
	return in.saveState(false)
}

// mountsUnder lists mount points inside dir (RemoveAll would descend into
// them and delete what they hold).
func mountsUnder(dir string) []string {
	es, err := mountinfo.Self()
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range es {
		if strings.HasPrefix(e.Point, dir+"/") || e.Point == dir {
			out = append(out, e.Point)
		}
	}
	return out
}
