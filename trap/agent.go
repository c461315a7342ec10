// Package trap is the seccomp user-notification agent: it runs inside the fs
// daemon and handles, on a system container's behalf, the syscalls the
// runtime routes to it (linux.seccomp.listenerPath in the OCI spec), so the
// container gets a VM's semantics where a user namespace alone falls short:
//
//   - mount: a new procfs or sysfs anywhere in the container gets the
//     container's FUSE views and its masked and read-only paths; a bind of
//     a /proc or /sys subtree keeps its views; an initially read-only
//     mount (or a bind of one) cannot be remounted read-write; /proc, /sys
//     and the views cannot be moved.
//   - umount2: the container's /proc, /sys and views cannot be unmounted.
//   - mount_setattr, move_mount: the same two rules for the new mount API.
//   - mknod, mknodat: a short list of safe character devices is created.
//   - sysinfo: uptime, memory and load are the container's.
//   - fsopen: proc and sysfs answer ENOSYS, so mount(8) falls back to
//     mount(2), which is handled.
//
// Everything else continues in the kernel, unchanged.
//
// Layout: agent.go the socket and the OCI seccomp-agent message; session.go
// one container's notify fd; fdstore.go the copies left with sysbox-mgr so
// a restarted agent takes the fds back; notif.go the kernel's ioctls;
// layout.go what a container's own /proc and /sys look like; thread.go
// entering a caller's namespaces on the receiver's own OS thread; one file
// per syscall handler.
//
// No handler spawns a process: namespaces are entered with setns on the
// receiver's locked OS thread, which is put back afterwards or, if it
// cannot be (or took a caller's credentials), discarded, so a changed root,
// cwd, namespace or credential never reaches another goroutine.
package trap

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/sysbox-dev/sysbox/internal/ipc"
)

// Views tells the agent what the fs daemon shows a container: the emulated
// files and dirs (host source, container path) that the runtime bound over
// its /proc and /sys. The fs daemon implements it with what its `register`
// answers. registered: the daemon knows the container.
type Views interface {
	Mounts(id string) (ms []ipc.FsMount, registered bool)
}

// ViewReader is what Views may also offer when the agent runs in the fs
// daemon's own process: a view's content without a read through the FUSE
// mount (which that process serves itself).
type ViewReader interface {
	ReadView(id, dest string) ([]byte, error)
}

// Agent serves the OCI seccomp-agent socket: each connection hands it one
// notify fd, served by a session until the container's init exits.
type Agent struct {
	socket string
	views  Views
	log    *slog.Logger

	// store keeps copies of the notify fds for the next agent (fdstore.go);
	// nil: none.
	store *storeClient

	mu         sync.Mutex
	containers map[string]*container
	sessions   map[*session]struct{}
	wg         sync.WaitGroup
	// stop is an eventfd every session polls: written once, at shutdown.
	stop int
}

// NewAgent returns an agent that will listen on socket (ipc.TrapSocket in
// production). log may be nil.
func NewAgent(socket string, views Views, log *slog.Logger) *Agent {
	if log == nil {
		log = slog.Default()
	}
	return &Agent{
		socket:     socket,
		views:      views,
		log:        log.With("component", "trap"),
		containers: map[string]*container{},
		sessions:   map[*session]struct{}{},
		stop:       -1,
	}
}

// Serve listens until ctx ends, then closes every session: calls trapped
// after that fail with ENOSYS (the kernel's answer when no agent holds the
// notify fd) rather than hang, unless the fd store (KeepFdsIn) keeps the
// fds for the next agent: then they wait for it, up to the store's grace.
// It removes the socket on the way out, so containers created meanwhile
// run without the trap instead of failing.
func (a *Agent) Serve(ctx context.Context) error {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return fmt.Errorf("eventfd: %w", err)
	}
	a.stop = efd
	defer unix.Close(efd)

	if err := os.MkdirAll(filepath.Dir(a.socket), 0o711); err != nil {
		return err
	}
	// A socket left by a killed agent: nobody answers on it.
	if err := os.Remove(a.socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale %s: %w", a.socket, err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: a.socket, Net: "unix"})
	if err != nil {
		return fmt.Errorf("listen %s: %w", a.socket, err)
	}
	ln.SetUnlinkOnClose(true)
	// Only root (the runtime) may hand over notify fds.
	if err := os.Chmod(a.socket, 0o600); err != nil {
		ln.Close()
		return err
	}
	if a.store != nil {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			a.store.run(ctx, a)
		}()
	}
	a.log.Info("seccomp agent ready", "socket", a.socket)

	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	for {
		conn, err := ln.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if errors.Is(err, net.ErrClosed) {
				break
			}
			a.log.Warn("accept", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			a.accept(conn)
		}()
	}
	a.shutdown()
	return nil
}

// shutdown wakes every session and waits for them to close their fds.
func (a *Agent) shutdown() {
	one := []byte{1, 0, 0, 0, 0, 0, 0, 0}
	_, _ = unix.Write(a.stop, one)
	a.wg.Wait()
}

// maxStateSize bounds the container state message (annotations included).
const maxStateSize = 1 << 20

// accept reads one OCI seccomp-agent message and starts its session.
func (a *Agent) accept(conn *net.UnixConn) {
	defer conn.Close()
	if err := checkPeer(conn); err != nil {
		a.log.Warn("refused a seccomp agent connection", "err", err)
		return
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	st, fds, err := readState(conn)
	if err != nil {
		a.log.Warn("read container state", "err", err)
		closeAll(fds)
		return
	}
	idx := -1
	for i, name := range st.Fds {
		if name == specs.SeccompFdName && i < len(fds) {
			idx = i
		}
	}
	if idx < 0 {
		a.log.Warn("container state carries no seccomp fd", "id", st.State.ID, "fds", st.Fds)
		closeAll(fds)
		return
	}
	notifyFd := fds[idx]
	fds[idx] = -1
	closeAll(fds)
	// The trapping thread is blocked until answered: take the session
	// out of this goroutine at once.
	a.serveSession(st, notifyFd)
}

// checkPeer admits only root: the message claims a container's identity.
func checkPeer(conn *net.UnixConn) error {
	raw, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var uid uint32
	var pid int32
	var cerr error
	if err := raw.Control(func(fd uintptr) { uid, pid, cerr = ipc.PeerCred(int(fd)) }); err != nil {
		return err
	}
	if cerr != nil {
		return cerr
	}
	if uid != 0 {
		return fmt.Errorf("peer pid %d is uid %d, not root", pid, uid)
	}
	return nil
}

// readState reads libcontainer's message: the JSON of a
// specs.ContainerProcessState, with its fds (named by .Fds) in SCM_RIGHTS,
// sent with one sendmsg before the runtime closes the connection.
func readState(conn *net.UnixConn) (specs.ContainerProcessState, []int, error) {
	var st specs.ContainerProcessState
	var fds []int
	var msg []byte
	buf := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(4*8))
	raw, err := conn.SyscallConn()
	if err != nil {
		return st, nil, err
	}
	for {
		var n, oobn int
		var rerr error
		// MSG_CMSG_CLOEXEC: a notify fd leaked into a child process would
		// keep the listener open after the agent closes its copy, and
		// trapped calls would then hang instead of failing.
		err := raw.Read(func(fd uintptr) bool {
			n, oobn, _, _, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_CMSG_CLOEXEC)
			return !errors.Is(rerr, unix.EAGAIN)
		})
		if err == nil {
			err = rerr
		}
		if oobn > 0 {
			got, perr := ipc.Rights(oob[:oobn])
			fds = append(fds, got...)
			if perr != nil {
				return st, fds, perr
			}
		}
		if n > 0 {
			msg = append(msg, buf[:n]...)
		}
		if len(msg) > maxStateSize {
			return st, fds, fmt.Errorf("state message over %d bytes", maxStateSize)
		}
		if err != nil || n == 0 {
			break
		}
		// A complete JSON object needs no wait for EOF.
		if json.Valid(msg) {
			break
		}
	}
	if err := json.Unmarshal(msg, &st); err != nil {
		return st, fds, fmt.Errorf("parse state: %w", err)
	}
	if st.State.ID == "" {
		return st, fds, errors.New("state has no container id")
	}
	return st, fds, nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}
