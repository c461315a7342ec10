package mgr

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sysbox-dev/sysbox/internal/ipc"
	"github.com/sysbox-dev/sysbox/internal/subid"
)

// serve runs the daemon until ctx ends. ready, if set, is called once the
// socket answers (tests use it; systemd gets READY=1 either way).
func (c *ServeCmd) serve(ctx context.Context, ready func()) (err error) {
	defer func() {
		if err != nil {
			// The log file too, as JSON when asked: systemd and containerd
			// read it there, not on stderr.
			slog.Error("sysbox-mgr stopped", "err", err)
		}
	}()
	if c.RangeSize == 0 || c.RangeSize%BlockSize != 0 {
		return fmt.Errorf("--range-size %d: want a multiple of %d", c.RangeSize, BlockSize)
	}
	if c.Sweep <= 0 {
		return fmt.Errorf("--sweep-interval %v: want a positive duration", c.Sweep)
	}
	fdStorePath := c.FdStore
	switch fdStorePath {
	case "":
		fdStorePath = filepath.Join(filepath.Dir(c.Socket), filepath.Base(ipc.FdStoreSocket))
	case "none":
		fdStorePath = ""
	}
	if fdStorePath != "" && c.FdGrace <= 0 {
		return fmt.Errorf("--fd-grace %v: want a positive duration", c.FdGrace)
	}
	root, err := filepath.Abs(c.DataRoot)
	if err != nil {
		return fmt.Errorf("--data-root %s: %w", c.DataRoot, err)
	}
	// Check the filesystem before creating anything: a refused data root
	// leaves nothing behind.
	if err := checkDataRoot(root); err != nil {
		return err
	}
	if err := os.MkdirAll(root, 0o711); err != nil {
		return fmt.Errorf("create data root: %w", err)
	}
	unlock, err := lockDataRoot(root, c.pidFile())
	if err != nil {
		return err
	}
	defer unlock()

	pool, err := subid.Ensure(c.files(), "sysbox", c.SubIDSize)
	if err != nil {
		return fmt.Errorf("sysbox id range: %w", err)
	}
	if pool.Count < uint64(c.RangeSize) {
		return fmt.Errorf("the sysbox entry of %s has %d ids, fewer than one container's %d (--range-size)", c.SubUID, pool.Count, c.RangeSize)
	}
	// Ranges start at a block boundary of the pool.
	poolSize := pool.Count / BlockSize * BlockSize

	st, recs, newDB, err := openStore(filepath.Join(root, "mgr.db"))
	if err != nil {
		return err
	}
	stClosed := false
	defer func() {
		if !stClosed {
			st.close()
		}
	}()

	cfg := config{
		DataRoot:  root,
		RangeSize: uint64(c.RangeSize),
		PoolStart: pool.Start,
		PoolSize:  poolSize,
		Idmap:     true,
		Kernel:    kernelMounts(),
		Sweep:     c.Sweep,
	}
	if newDB {
		slog.Info("new database", "path", st.path)
	}
	if err := probeIdmap(root); err != nil {
		cfg.Idmap = false
		slog.Warn("id-mapped mounts do not work on the data root: special dirs will be chowned to each container's range instead", "path", root, "err", err)
	}
	m, err := newManager(cfg, st, recs)
	if err != nil {
		return err
	}
	// Whatever went away while the manager was down goes now.
	m.sweep()
	m.findOrphans()

	ln, err := ipc.Listen(c.Socket)
	if err != nil {
		return err
	}
	defer os.Remove(c.Socket)

	gcCtx, gcStop := context.WithCancel(context.Background())
	m.stop = gcStop
	m.gcDone = make(chan struct{})
	if w, err := newWatcher(m.kick); err != nil {
		slog.Warn("no inotify: removals are noticed by the periodic sweep only", "err", err)
	} else {
		m.watch = w
		for _, r := range m.snapshot() {
			paths := make([]string, 0, len(r.Anchors))
			for _, a := range r.Anchors {
				paths = append(paths, a.Path)
			}
			w.watch(r.ID, paths)
		}
	}
	go m.gcLoop(gcCtx)

	fdsDone := make(chan struct{})
	fdsCtx, fdsStop := context.WithCancel(context.Background())
	if fdStorePath != "" {
		fds := newFdStore(c.FdGrace)
		go func() {
			defer close(fdsDone)
			if err := fds.serve(fdsCtx, fdStorePath); err != nil {
				slog.Warn("fd store not served: a restarted sysbox-fs cannot take back its containers' trapped calls", "err", err)
			}
		}()
	} else {
		close(fdsDone)
	}
	defer func() {
		fdsStop()
		<-fdsDone
	}()

	srv := ipc.NewServer()
	// Copying a preloaded /var/lib/docker, or summing disk use for status,
	// can take longer than the default.
	srv.Timeout = 5 * time.Minute
	ipc.Handle(srv, ipc.MgrRegisterMethod, m.register)
	ipc.Handle(srv, ipc.MgrStoppedMethod, m.stopped)
	ipc.Handle(srv, ipc.MgrRemoveMethod, m.remove)
	ipc.Handle(srv, ipc.MgrStatusMethod, m.status)

	slog.Info("sysbox-mgr ready", "socket", c.Socket, "data_root", root, "ids", fmt.Sprintf("%d+%d", cfg.PoolStart, cfg.PoolSize),
		"containers", len(recs), "idmap", cfg.Idmap, "pid", os.Getpid())
	if err := sdNotify("READY=1\nMAINPID=" + strconv.Itoa(os.Getpid())); err != nil {
		slog.Warn("notify systemd", "err", err)
	}
	if ready != nil {
		ready()
	}
	serveErr := srv.Serve(ctx, ln)

	_ = sdNotify("STOPPING=1")
	slog.Info("sysbox-mgr stopping")
	m.shutdown()
	stClosed = true
	if err := st.close(); err != nil && serveErr == nil {
		serveErr = fmt.Errorf("close database: %w", err)
	}
	return serveErr
}

func (c *ServeCmd) pidFile() string { return filepath.Join(filepath.Dir(c.Socket), "mgr.pid") }

func (m *manager) snapshot() []record {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]record, 0, len(m.recs))
	for _, r := range m.recs {
		out = append(out, *r)
	}
	return out
}

// shutdown waits for calls in flight and stops the GC loop and watcher.
func (m *manager) shutdown() {
	m.life.Lock()
	m.closed = true
	m.life.Unlock()
	if m.stop != nil {
		m.stop()
		<-m.gcDone
	}
	if m.watch != nil {
		m.watch.close()
	}
}

// lockDataRoot makes this the only manager of root: an flock on
// root/mgr.lock, held until the returned func runs (or the process dies, so
// a kill -9 leaves nothing to clean), and a pid file.
func lockDataRoot(root, pidFile string) (func(), error) {
	path := filepath.Join(root, "mgr.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			who := ""
			if b, err := os.ReadFile(path); err == nil && len(bytes.TrimSpace(b)) > 0 {
				who = " (pid " + string(bytes.TrimSpace(b)) + ")"
			}
			return nil, fmt.Errorf("another sysbox-mgr%s is using data root %s (it holds %s)", who, root, path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	// The holder's pid, for the message above (the pid file may be elsewhere).
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	if err := writePidFile(pidFile); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		os.Remove(pidFile)
		f.Close()
	}, nil
}

func writePidFile(path string) error {
	// 0711 as ipc.Listen makes it: container roots walk through RunDir.
	if err := os.MkdirAll(filepath.Dir(path), 0o711); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return fmt.Errorf("write pid file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write pid file: %w", err)
	}
	return nil
}

// sdNotify sends state to systemd's notify socket when there is one.
func sdNotify(state string) error {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return nil
	}
	if addr[0] == '@' {
		addr = "\x00" + addr[1:] // abstract socket
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("connect %s: %w", os.Getenv("NOTIFY_SOCKET"), err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("send to %s: %w", os.Getenv("NOTIFY_SOCKET"), err)
	}
	return nil
}
