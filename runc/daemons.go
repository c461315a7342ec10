package runc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/moby/sys/capability"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/sysbox-dev/sysbox/internal/ipc"
)

// Sockets of the daemons; variables so tests can point elsewhere.
var (
	mgrSocket  = envOr("SYSBOX_MGR_SOCKET", ipc.MgrSocket)
	fsSocket   = envOr("SYSBOX_FS_SOCKET", ipc.FsSocket)
	trapSocket = envOr("SYSBOX_TRAP_SOCKET", ipc.TrapSocket)
)

// trappedSyscalls go to the fs daemon's seccomp agent.
var trappedSyscalls = []string{"mount", "umount2", "mknod", "mknodat", "sysinfo", "fsopen", "mount_setattr", "move_mount"}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// daemonErr turns "nothing listens" into what to do about it.
func daemonErr(name string, err error) error {
	if errors.Is(err, ipc.ErrNotRunning) {
		return fmt.Errorf("%s is not running (%v): start it with `sysbox install` (or `%s &` by hand), then retry", name, err, name)
	}
	return fmt.Errorf("%s: %w", name, err)
}

func registerMgr(ctx context.Context, id, bundle string, s *specs.Spec, o Options) (ipc.MgrRegistration, error) {
	var mounted []string
	for _, m := range s.Mounts {
		mounted = append(mounted, filepath.Clean(m.Destination))
	}
	// The first registration copies what the image has under the special
	// dirs (preloaded inner images): give it time.
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	reg, err := ipc.Call[ipc.MgrRegister, ipc.MgrRegistration](ctx, mgrSocket, ipc.MgrRegisterMethod, ipc.MgrRegister{
		ID: id, Bundle: bundle, Rootfs: s.Root.Path, IDSize: o.IDSize, Mounted: mounted, NoSpecialDirs: o.NoSpecialDirs,
	})
	if err != nil {
		return reg, daemonErr("sysbox-mgr", err)
	}
	return reg, nil
}

func stoppedMgr(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := ipc.Call[ipc.MgrID, ipc.Empty](ctx, mgrSocket, ipc.MgrStoppedMethod, ipc.MgrID{ID: id}); err != nil {
		slog.Warn("tell sysbox-mgr the container stopped", "id", id, "err", err)
	}
}

// mgrMounts turns the manager's dirs into spec mounts.
func mgrMounts(ms []ipc.MgrMount) []specs.Mount {
	var out []specs.Mount
	for _, m := range ms {
		opts := []string{"rbind", "nosuid", "nodev"}
		if m.ReadOnly {
			opts = append(opts, "ro")
		}
		if m.Idmap {
			opts = append(opts, "idmap")
		}
		out = append(out, specs.Mount{Destination: m.Dest, Source: m.Source, Type: "bind", Options: opts})
	}
	return out
}

func registerFs(ctx context.Context, id string, s *specs.Spec, uid, gid uint32) ([]ipc.FsMount, error) {
	reg, err := ipc.Call[ipc.FsRegister, ipc.FsRegistration](ctx, fsSocket, ipc.FsRegisterMethod, ipc.FsRegister{
		ID: id, UIDBase: uid, GIDBase: gid, Hostname: s.Hostname,
	})
	if err != nil {
		return nil, daemonErr("sysbox-fs", err)
	}
	return reg.Mounts, nil
}

func startedFs(ctx context.Context, id string, pid int, ct *libcontainer.Container) error {
	st, err := ct.State()
	if err != nil {
		return err
	}
	if _, err := ipc.Call[ipc.FsStarted, ipc.Empty](ctx, fsSocket, ipc.FsStartedMethod, ipc.FsStarted{ID: id, Pid: pid, Cgroups: st.CgroupPaths}); err != nil {
		return daemonErr("sysbox-fs", err)
	}
	return nil
}

func unregisterFs(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := ipc.Call[ipc.MgrID, ipc.Empty](ctx, fsSocket, ipc.FsUnregisterMethod, ipc.MgrID{ID: id}); err != nil && !errors.Is(err, ipc.ErrNotRunning) {
		slog.Warn("unregister from sysbox-fs", "id", id, "err", err)
	}
}

// probeHost reads what the transform needs to know about this machine.
func probeHost() (Host, error) {
	var h Host
	caps, err := ownCaps()
	if err != nil {
		return h, err
	}
	// Root inside gets every capability the kernel knows, whatever the
	// runtime holds: a new user namespace starts with a full bounding set,
	// and its capabilities only count for what that namespace owns. (A
	// host where nothing holds CAP_SYS_RESOURCE still gets an inner
	// `docker run --privileged`, which asks for all of them.)
	h.Caps = kernelCaps()
	_, err = os.Stat("/proc/self/ns/time")
	h.TimeNS = err == nil
	if b, err := os.ReadFile("/proc/self/oom_score_adj"); err == nil {
		h.OOMScoreAdj, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	h.SysResource = hasCap("CAP_SYS_RESOURCE", caps)
	// The agent runs in the fs daemon; without it, containers still run,
	// only without the emulated mounts and device nodes.
	if fi, err := os.Stat(trapSocket); err == nil && fi.Mode()&os.ModeSocket != 0 {
		h.ListenerPath, h.Trapped = trapSocket, trappedSyscalls
	}
	h.RlimitHard = map[string]uint64{}
	for name, r := range rlimits {
		var lim unix.Rlimit
		if err := unix.Getrlimit(r, &lim); err == nil {
			h.RlimitHard["RLIMIT_"+name] = lim.Max
		}
	}
	return h, nil
}

func hasCap(c string, caps []string) bool {
	for _, x := range caps {
		if x == c {
			return true
		}
	}
	return false
}

// kernelCaps lists every capability this kernel knows by name.
func kernelCaps() []string {
	return capNames(^uint64(0))
}

// ownCaps lists the runtime's effective capabilities by name.
func ownCaps() ([]string, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil, err
	}
	var eff uint64
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			eff, err = strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return nil, fmt.Errorf("parse CapEff: %w", err)
			}
		}
	}
	return capNames(eff), nil
}

func capNames(mask uint64) []string {
	known, _ := capability.ListSupported()
	var out []string
	for _, c := range known {
		if mask&(1<<uint(c)) != 0 {
			out = append(out, "CAP_"+strings.ToUpper(c.String()))
		}
	}
	return out
}
