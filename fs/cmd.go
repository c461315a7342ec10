// Package fs is the fs daemon (`sysbox fs`, `sysbox-fs`): one FUSE mount
// holding a directory per registered container, whose files the runtime
// binds over the container's /proc and /sys paths. It serves what the kernel
// does not namespace (uptime, the global sysctls, the machine's UUID) per
// container, and resource views (meminfo, cpuinfo, stat, loadavg,
// diskstats, the cpu sysfs dir) that agree with the container's cgroup.
//
// Layout: cmd.go the command and its lifecycle; daemon.go the registry and
// the API; tree.go resolves view paths to nodes; fuse.go the FUSE ops;
// views.go and sysctl.go the pure logic behind the files; store.go how
// /proc's resource views reach readers through the page cache in one round
// trip; splice.go why sendfile from the other files gets EINVAL;
// recover.go how a restarted daemon takes running containers back; cgroup
// reading is internal/cgview. No read or write path spawns a process:
// namespaced sysctls are reached with setns on a locked thread (ns.go).
package fs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jacobsa/fuse"
	"github.com/jacobsa/fuse/fuseops"
	"golang.org/x/sys/unix"

	"github.com/sysbox-dev/sysbox/internal/ipc"
	"github.com/sysbox-dev/sysbox/internal/logging"
	"github.com/sysbox-dev/sysbox/internal/mountinfo"
	"github.com/sysbox-dev/sysbox/trap"
)

// Cmd is `sysbox fs` / `sysbox-fs`.
type Cmd struct {
	Mountpoint string `default:"/var/lib/sysboxfs" help:"Where the FUSE view is mounted (a directory per container)."`
	Socket     string `default:"/run/sysbox/fs.sock" help:"API socket the runtime registers containers on."`
	StateDir   string `name:"state-dir" help:"Where the daemon keeps a record of each running container, to take them back after a restart (default: fs-state beside --socket)."`
	TrapSocket string `name:"trap-socket" default:"/run/sysbox/seccomp.sock" help:"Socket of the seccomp agent that handles mount, umount2, mknod and sysinfo for containers (OCI seccomp-agent protocol); empty to run without it."`
	FdStore    string `name:"fd-store" help:"sysbox-mgr's fd store: the trap agent leaves a copy of each notify fd there and takes back, when it starts, those a previous agent left, so running containers' trapped calls survive a restart of this daemon (default: /run/sysbox/fdstore.sock; \"none\": no store)."`
	Log        string `help:"Log file (default: stderr)."`
	LogFormat  string `name:"log-format" enum:"text,json" default:"text" help:"Log format: text or json."`
	Debug      bool   `help:"Log at debug level."`
}

// service is one server the daemon runs until its context ends.
type service func(ctx context.Context) error

func (c *Cmd) Run() error {
	_, closer, err := logging.Setup(logging.Options{File: c.Log, Format: c.LogFormat, Debug: c.Debug})
	if err != nil {
		return err
	}
	defer closer.Close()
	ctx, stop := signal.NotifyContext(context.Background(), unix.SIGTERM, unix.SIGINT)
	defer stop()

	srv, err := startServer(newHost("/proc", "/sys"), c.Mountpoint)
	if err != nil {
		return err
	}
	defer srv.close()
	srv.d.stateDir = c.StateDir
	if srv.d.stateDir == "" {
		srv.d.stateDir = filepath.Join(filepath.Dir(c.Socket), filepath.Base(ipc.FsStateDir))
	}
	// Before the API answers: a runtime's register must not race the
	// record of the same container.
	srv.d.recoverContainers()
	ln, err := ipc.Listen(c.Socket)
	if err != nil {
		return err
	}
	defer os.Remove(c.Socket)

	services := []service{
		func(ctx context.Context) error { return srv.api().Serve(ctx, ln) },
		srv.wait,
	}
	if c.TrapSocket != "" {
		// The seccomp agent shares this daemon's lifetime and reads the
		// views in-process.
		ag := trap.NewAgent(c.TrapSocket, srv.d, slog.Default())
		switch c.FdStore {
		case "none":
		case "":
			ag.KeepFdsIn(ipc.FdStoreSocket)
		default:
			ag.KeepFdsIn(c.FdStore)
		}
		services = append(services, ag.Serve)
	}
	slog.Info("sysbox-fs ready", "mountpoint", c.Mountpoint, "socket", c.Socket)
	err = runAll(ctx, services)
	slog.Info("sysbox-fs stopping")
	return err
}

// runAll runs the services until ctx ends or one of them fails, then stops
// the rest and waits for them.
func runAll(ctx context.Context, services []service) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, len(services))
	var wg sync.WaitGroup
	for _, s := range services {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s(ctx)
			if err != nil {
				errc <- err
			}
			cancel()
		}()
	}
	wg.Wait()
	close(errc)
	return <-errc
}

// server is a mounted view and its daemon.
type server struct {
	d          *daemon
	fs         *fsys
	mfs        *fuse.MountedFileSystem
	mountpoint string
	once       sync.Once
}

// startServer mounts the view at mountpoint, first clearing a FUSE mount a
// crashed daemon left there (its files answer ENOTCONN forever).
func startServer(h *host, mountpoint string) (*server, error) {
	if abs, err := filepath.Abs(mountpoint); err == nil {
		mountpoint = abs
	}
	// Clear first: a dead FUSE mount makes even stat fail (ENOTCONN).
	if err := clearStale(mountpoint); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(mountpoint, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", mountpoint, err)
	}
	d, err := newDaemon(h, mountpoint)
	if err != nil {
		return nil, err
	}
	f := newFsys(d)
	mfs, err := mountFS(mountpoint, f)
	if err != nil {
		d.close()
		return nil, fmt.Errorf("mount FUSE at %s: %w", mountpoint, err)
	}
	s := &server{d: d, fs: f, mfs: mfs, mountpoint: mountpoint}
	if err := primePoll(filepath.Join(mountpoint, pollFile)); err != nil {
		s.close()
		return nil, err
	}
	if err := setMaxBackground(fuseConn(mountpoint), maxBackground); err != nil {
		slog.Warn("raise the FUSE connection's max_background", "err", err)
	}
	return s, nil
}

// maxBackground is how many background requests the kernel lets the view
// have queued at once. Every close(2) sends one (RELEASE); jacobsa/fuse
// asks for the kernel's default of 12, and with many readers closing files
// the releases then wait their turn behind the reads, piling up in the
// kernel and in the daemon's handle table for as long as the load lasts
// (20 containers with 4 readers each: thousands after seconds).
const maxBackground = 1024

// setMaxBackground sets conn's max_background through fusectl (root may
// set any value; jacobsa/fuse has no option for it).
func setMaxBackground(conn string, n int) error {
	if conn == "" {
		return errors.New("connection unknown")
	}
	if err := mountFusectl(conn); err != nil {
		return err
	}
	return os.WriteFile(fusectl+"/"+conn+"/max_background", []byte(strconv.Itoa(n)), 0)
}

// pollFile is a file at the root of the view whose only job is primePoll.
const pollFile = ".sysboxfs"

// primePoll polls a file of the view once, so the kernel learns that the
// view does not implement FUSE_POLL and stops asking (fc->no_poll).
//
// Why: os.Open registers every file with Go's netpoller, and epoll_ctl on a
// FUSE file sends FUSE_POLL and waits for the answer while the goroutine
// keeps its P. A reader in this same process (the trap agent reading a
// view) then blocks a P until the FUSE server answers; two of them on a
// 2-CPU machine leave no P to run the server: the whole daemon deadlocks,
// timers included. poll(2) here is an ordinary blocking syscall that gives
// up its P, so the server answers (ENOSYS) and later opens never ask.
func primePoll(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer unix.Close(fd)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, 0)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// api is the runtime's side of the daemon.
func (s *server) api() *ipc.Server {
	api := ipc.NewServer()
	ipc.Handle(api, ipc.FsRegisterMethod, s.d.register)
	ipc.Handle(api, ipc.FsStartedMethod, s.d.started)
	ipc.Handle(api, ipc.FsUnregisterMethod, s.unregister)
	return api
}

// wait returns when ctx ends, or with an error if the mount goes away
// under the daemon (someone unmounted it).
func (s *server) wait(ctx context.Context) error {
	if err := s.mfs.Join(ctx); err != nil && ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("FUSE mount at %s ended", s.mountpoint)
}

// close unmounts the view and waits for the FUSE server to drain. Any copy
// of the mount keeps the connection alive after the unmount: a container's
// binds, or a mount namespace created meanwhile (every container starts as
// a copy of the host's mounts). After a second close aborts the connection
// through fusectl, as the daemon's exit would. It returns how long the
// unmount and the drain took.
func (s *server) close() (unmounting, draining time.Duration) {
	s.once.Do(func() {
		start := time.Now()
		conn := fuseConn(s.mountpoint)
		if err := unmount(s.mountpoint); err != nil {
			slog.Warn("unmount", "path", s.mountpoint, "err", err)
		}
		unmounted := time.Now()
		if slowCloseHook != nil {
			t := time.AfterFunc(3*time.Second, slowCloseHook)
			defer t.Stop()
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := s.mfs.Join(ctx); err != nil {
			slog.Info("FUSE connection still in use after unmount: aborting it", "conn", conn)
			if err := abortConn(conn); err != nil {
				slog.Warn("abort FUSE connection", "conn", conn, "err", err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
			defer cancel()
			if err := s.mfs.Join(ctx); err != nil {
				slog.Warn("FUSE server still busy; it ends with the process", "err", err)
			}
		}
		unmounting, draining = unmounted.Sub(start), time.Since(unmounted)
		slog.Debug("unmounted", "path", s.mountpoint, "unmount", unmounting, "drain", draining)
		s.fs.store.close()
		s.d.close()
	})
	return unmounting, draining
}

// unregister drops a container, and its directory from the kernel's
// cache of the view's names: its files are gone at once, not when the
// cached entries expire (stored files' attributes are kept long).
func (s *server) unregister(ctx context.Context, r ipc.MgrID) (ipc.Empty, error) {
	out, err := s.d.unregister(ctx, r)
	if err == nil {
		if err := s.fs.store.notifyInvalEntry(fuseops.RootInodeID, r.ID); err != nil && !errors.Is(err, unix.ENOENT) {
			slog.Debug("drop a container's names from the kernel's cache", "id", r.ID, "err", err)
		}
	}
	return out, err
}

// fuseConn names the FUSE connection mounted at dir: fusectl's directory
// for it is the minor of the mount's device number.
func fuseConn(dir string) string {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return ""
	}
	return strconv.FormatUint(uint64(unix.Minor(st.Dev)), 10)
}

// fusectl is where the kernel's FUSE connections can be tuned and aborted.
const fusectl = "/sys/fs/fuse/connections"

// mountFusectl makes conn's fusectl dir reachable: fusectl is mounted on
// systemd hosts; mount it if it is not.
func mountFusectl(conn string) error {
	if _, err := os.Stat(fusectl + "/" + conn); err == nil {
		return nil
	}
	if err := unix.Mount("fusectl", fusectl, "fusectl", 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("mount fusectl: %w", err)
	}
	return nil
}

// abortConn ends a FUSE connection everywhere it is mounted.
func abortConn(conn string) error {
	if conn == "" {
		return errors.New("connection unknown")
	}
	if err := mountFusectl(conn); err != nil {
		return err
	}
	return os.WriteFile(fusectl+"/"+conn+"/abort", []byte("1"), 0)
}

// slowCloseHook, when set (by tests), runs if draining takes over a second.
var slowCloseHook func()

// unmount detaches the view; lazily if something still has it open.
func unmount(dir string) error {
	err := unix.Unmount(dir, 0)
	if errors.Is(err, unix.EBUSY) {
		err = unix.Unmount(dir, unix.MNT_DETACH)
	}
	if errors.Is(err, unix.EINVAL) {
		return nil // not mounted
	}
	return err
}

// clearStale lazily unmounts FUSE mounts stacked at dir.
func clearStale(dir string) error {
	for range 16 {
		fstype, err := mountedFS(dir)
		if err != nil {
			return err
		}
		if fstype == "" {
			return nil
		}
		if !strings.HasPrefix(fstype, "fuse") {
			return fmt.Errorf("%s already has a %s mount on it: pick another --mountpoint", dir, fstype)
		}
		slog.Warn("removing a stale FUSE mount", "path", dir)
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("unmount stale %s: %w", dir, err)
		}
	}
	return fmt.Errorf("%s: too many stacked mounts", dir)
}

// mountedFS returns the type of the topmost mount at dir, "" if none.
func mountedFS(dir string) (string, error) {
	es, err := mountinfo.Self()
	if err != nil {
		return "", err
	}
	top, _ := mountinfo.Top(es, dir)
	return top.FSType, nil
}
