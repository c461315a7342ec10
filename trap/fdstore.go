package trap

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/sysbox-dev/sysbox/internal/ipc"
)

// The agent's side of sysbox-mgr's fd store (internal/ipc/fdstore.go):
// every notify fd the agent serves is also left there, and an agent that
// starts takes back what its predecessor on the same socket left. While no
// agent runs, the store's copies keep the listeners alive: the containers'
// trapped calls wait (up to the store's grace period) instead of failing
// with ENOSYS for good.

// KeepFdsIn makes the agent leave its notify fds in the store at path and
// take back, when it starts, those a previous agent on its socket left.
// Call it before Serve.
func (a *Agent) KeepFdsIn(path string) {
	a.store = &storeClient{path: path, conn: -1, log: a.log}
}

// storeClient is the agent's connection to the store: one, kept open for
// the agent's life (the store counts it as the agent being there), made
// again when the manager restarts.
type storeClient struct {
	path string
	log  *slog.Logger

	mu   sync.Mutex
	conn int // -1 while not connected
}

// storeKey names a held fd: one per container process.
func storeKey(st specs.ContainerProcessState) string {
	return fmt.Sprintf("%s/%d", st.State.ID, st.Pid)
}

// hold leaves a copy of a session's fd in the store (best effort: without
// the store the agent works as before).
func (c *storeClient) hold(st specs.ContainerProcessState, fd int) {
	if c == nil {
		return
	}
	raw, err := json.Marshal(st)
	if err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn < 0 {
		return // a connection, once made, holds every listed session
	}
	if err := ipc.SendFdMsg(c.conn, ipc.FdMsg{Op: ipc.FdHold, Key: storeKey(st), State: raw}, fd); err != nil {
		c.log.Debug("leave a notify fd in the fd store", "err", err)
	}
}

// run keeps the agent connected to the store until ctx ends. The first
// connection made takes back what a previous agent left (once: later ones
// would get back what this agent serves already); every connection then
// holds the sessions running (the manager may have restarted, losing its
// copies).
func (c *storeClient) run(ctx context.Context, a *Agent) {
	first, taken := true, false
	for ctx.Err() == nil {
		conn, err := c.dial(a.socket)
		if err != nil {
			if first {
				c.log.Info("no fd store yet: until sysbox-mgr serves it, trapped calls of running containers fail while this agent is down", "store", c.path, "err", err)
			}
		} else {
			if !taken {
				c.takeBack(ctx, conn, a)
				taken = true
			}
			c.mu.Lock()
			c.conn = conn
			c.mu.Unlock()
			for _, s := range a.liveSessions() {
				c.hold(s.st, s.fd)
				unix.Close(s.fd)
			}
			// The store never speaks first: a read returns when it goes.
			stop := context.AfterFunc(ctx, func() { _ = unix.Shutdown(conn, unix.SHUT_RDWR) })
			for {
				_, fd, err := ipc.RecvFdMsg(conn)
				if fd >= 0 {
					unix.Close(fd)
				}
				if err != nil {
					break
				}
			}
			stop()
			c.mu.Lock()
			c.conn = -1
			c.mu.Unlock()
			unix.Close(conn)
		}
		first = false
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// dial connects and says who the agent is (its socket).
func (c *storeClient) dial(name string) (int, error) {
	conn, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := unix.Connect(conn, &unix.SockaddrUnix{Name: c.path}); err != nil {
		unix.Close(conn)
		return -1, err
	}
	if err := ipc.SendFdMsg(conn, ipc.FdMsg{Op: ipc.FdHello, Agent: name}, -1); err != nil {
		unix.Close(conn)
		return -1, err
	}
	return conn, nil
}

// takeBack serves again the fds a previous agent left.
func (c *storeClient) takeBack(ctx context.Context, conn int, a *Agent) {
	if err := ipc.SendFdMsg(conn, ipc.FdMsg{Op: ipc.FdTake}, -1); err != nil {
		c.log.Warn("take back the notify fds", "err", err)
		return
	}
	n := 0
	for {
		m, fd, err := ipc.RecvFdMsg(conn)
		if err != nil {
			c.log.Warn("take back the notify fds", "err", err)
			return
		}
		if m.Op == ipc.FdEnd {
			break
		}
		var st specs.ContainerProcessState
		if fd < 0 || m.Op != ipc.FdHeld || json.Unmarshal(m.State, &st) != nil || st.State.ID == "" || ctx.Err() != nil {
			if fd >= 0 {
				unix.Close(fd)
			}
			continue
		}
		n++
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			a.serveSession(st, fd)
		}()
	}
	if n > 0 {
		c.log.Info("took back the notify fds a previous agent left", "fds", n)
	}
}

// liveSession is what a reconnect holds again.
type liveSession struct {
	st specs.ContainerProcessState
	fd int
}

// liveSessions lists the running sessions with a copy of each fd, so that
// one ending meanwhile cannot close it under the caller.
func (a *Agent) liveSessions() []liveSession {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]liveSession, 0, len(a.sessions))
	for s := range a.sessions {
		fd, err := unix.FcntlInt(uintptr(s.fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			continue
		}
		out = append(out, liveSession{st: s.st, fd: fd})
	}
	return out
}
