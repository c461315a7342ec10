package mgr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sysbox-dev/sysbox/internal/ipc"
)

// fdStore keeps the trap agents' seccomp notify fds (the protocol is in
// internal/ipc/fdstore.go). The manager never reads them: holding a copy
// is all it takes for the kernel to keep a container's listener alive
// while its agent restarts.
type fdStore struct {
	grace time.Duration
	// allow admits a peer by uid: root only (tests widen it).
	allow func(uid uint32) bool

	mu     sync.Mutex
	agents map[string]*agentFds
	closed bool
}

// agentFds is what one agent left.
type agentFds struct {
	held  map[string]heldFd // by key
	conns int               // its open connections
	timer *time.Timer       // closes held when conns stayed 0 for grace
}

type heldFd struct {
	msg ipc.FdMsg
	fd  int
}

func newFdStore(grace time.Duration) *fdStore {
	return &fdStore{grace: grace, allow: func(uid uint32) bool { return uid == 0 }, agents: map[string]*agentFds{}}
}

// serve accepts agents on path until ctx ends, then closes every fd.
func (s *fdStore) serve(ctx context.Context, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o711); err != nil {
		return err
	}
	// A socket someone answers on is another manager's: not ours to take.
	if probe, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0); err == nil {
		err = unix.Connect(probe, &unix.SockaddrUnix{Name: path})
		unix.Close(probe)
		if err == nil {
			return fmt.Errorf("another sysbox-mgr serves the fd store at %s", path)
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	ln, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	if err := unix.Bind(ln, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(ln)
		return fmt.Errorf("bind %s: %w", path, err)
	}
	var mine unix.Stat_t
	_ = unix.Stat(path, &mine)
	defer func() {
		// Only our own: a successor may have bound the path since.
		var now unix.Stat_t
		if unix.Stat(path, &now) == nil && now.Ino == mine.Ino && now.Dev == mine.Dev {
			_ = os.Remove(path)
		}
	}()
	// Only root: a notify fd answers for a container's syscalls.
	if err := os.Chmod(path, 0o600); err != nil {
		unix.Close(ln)
		return err
	}
	if err := unix.Listen(ln, 64); err != nil {
		unix.Close(ln)
		return err
	}
	go func() {
		<-ctx.Done()
		// Wakes the accept below: shutdown(2) on a listening socket.
		_ = unix.Shutdown(ln, unix.SHUT_RDWR)
	}()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		// Ended containers' fds go even while their agent is away.
		defer wg.Done()
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				s.prune()
			}
		}
	}()
	for {
		conn, _, err := unix.Accept4(ln, unix.SOCK_CLOEXEC)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if errors.Is(err, unix.EINTR) || errors.Is(err, unix.ECONNABORTED) {
				continue
			}
			slog.Warn("fd store: accept", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.conn(ctx, conn)
		}()
	}
	unix.Close(ln)
	wg.Wait()
	s.close()
	return nil
}

// conn serves one agent connection until it closes (or ctx ends).
func (s *fdStore) conn(ctx context.Context, conn int) {
	defer unix.Close(conn)
	stop := context.AfterFunc(ctx, func() { _ = unix.Shutdown(conn, unix.SHUT_RDWR) })
	defer stop()
	if err := s.checkPeer(conn); err != nil {
		slog.Warn("fd store: refused a connection", "err", err)
		return
	}
	m, fd, err := ipc.RecvFdMsg(conn)
	if fd >= 0 {
		unix.Close(fd)
	}
	if err != nil || m.Op != ipc.FdHello || m.Agent == "" {
		slog.Warn("fd store: a connection did not say hello", "op", m.Op, "err", err)
		return
	}
	a := s.join(m.Agent)
	if a == nil {
		return
	}
	defer s.leave(m.Agent, a)
	for {
		m, fd, err := ipc.RecvFdMsg(conn)
		if err != nil {
			if !errors.Is(err, ipc.ErrFdStoreEOF) && ctx.Err() == nil {
				slog.Debug("fd store: connection", "agent", a, "err", err)
			}
			return
		}
		switch m.Op {
		case ipc.FdHold:
			if fd < 0 || m.Key == "" {
				slog.Warn("fd store: hold without an fd or a key", "key", m.Key)
				break
			}
			s.hold(a, heldFd{msg: ipc.FdMsg{Op: ipc.FdHeld, Key: m.Key, State: m.State}, fd: fd})
			fd = -1
		case ipc.FdTake:
			if err := s.give(conn, a); err != nil {
				slog.Warn("fd store: give the fds back", "err", err)
				return
			}
		default:
			slog.Warn("fd store: unknown op", "op", m.Op)
		}
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}

// checkPeer admits only root (s.allow).
func (s *fdStore) checkPeer(conn int) error {
	uid, pid, err := ipc.PeerCred(conn)
	if err != nil {
		return err
	}
	if !s.allow(uid) {
		return fmt.Errorf("peer pid %d is uid %d, not root", pid, uid)
	}
	return nil
}

// join counts a connection of agent name: its fds are kept for good while
// it has one.
func (s *fdStore) join(name string) *agentFds {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	a := s.agents[name]
	if a == nil {
		a = &agentFds{held: map[string]heldFd{}}
		s.agents[name] = a
	}
	a.conns++
	if a.timer != nil {
		a.timer.Stop()
		a.timer = nil
	}
	return a
}

// leave uncounts a connection; the agent's last one starts the grace
// period, after which its fds are closed.
func (s *fdStore) leave(name string, a *agentFds) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a.conns--
	if a.conns > 0 || s.closed {
		return
	}
	if len(a.held) > 0 {
		slog.Info("fd store: agent gone; its containers' trapped calls wait for it", "agent", name, "fds", len(a.held), "grace", s.grace.String())
	}
	a.timer = time.AfterFunc(s.grace, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if a.conns > 0 || s.agents[name] != a {
			return
		}
		if len(a.held) > 0 {
			slog.Warn("fd store: agent not back: its containers' trapped calls fail from now on", "agent", name, "fds", len(a.held))
		}
		for k, h := range a.held {
			unix.Close(h.fd)
			delete(a.held, k)
		}
		delete(s.agents, name)
	})
}

func (s *fdStore) hold(a *agentFds, h heldFd) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := a.held[h.msg.Key]; ok {
		unix.Close(old.fd)
	}
	a.held[h.msg.Key] = h
}

// give sends the agent its fds (the store keeps them too), then end.
func (s *fdStore) give(conn int, a *agentFds) error {
	s.mu.Lock()
	s.pruneLocked(a)
	held := make([]heldFd, 0, len(a.held))
	for _, h := range a.held {
		// A copy: SCM_RIGHTS is sent after the lock is gone, while
		// pruning may close the store's own.
		fd, err := unix.FcntlInt(uintptr(h.fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			continue
		}
		held = append(held, heldFd{msg: h.msg, fd: fd})
	}
	s.mu.Unlock()
	defer func() {
		for _, h := range held {
			unix.Close(h.fd)
		}
	}()
	for _, h := range held {
		if err := ipc.SendFdMsg(conn, h.msg, h.fd); err != nil {
			return err
		}
	}
	return ipc.SendFdMsg(conn, ipc.FdMsg{Op: ipc.FdEnd}, -1)
}

// pruneLocked closes the fds whose filter no task uses any more (the
// kernel reports POLLHUP on the listener then).
func (s *fdStore) pruneLocked(a *agentFds) {
	if len(a.held) == 0 {
		return
	}
	keys := make([]string, 0, len(a.held))
	pfds := make([]unix.PollFd, 0, len(a.held))
	for k, h := range a.held {
		keys = append(keys, k)
		pfds = append(pfds, unix.PollFd{Fd: int32(h.fd), Events: unix.POLLIN})
	}
	if _, err := unix.Poll(pfds, 0); err != nil {
		return
	}
	for i, p := range pfds {
		if p.Revents&(unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0 {
			unix.Close(a.held[keys[i]].fd)
			delete(a.held, keys[i])
		}
	}
}

// prune drops the fds of ended containers, for every agent.
func (s *fdStore) prune() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.agents {
		s.pruneLocked(a)
	}
}

// count is how many fds are held (for the tests).
func (s *fdStore) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, a := range s.agents {
		n += len(a.held)
	}
	return n
}

func (s *fdStore) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for name, a := range s.agents {
		if a.timer != nil {
			a.timer.Stop()
		}
		for _, h := range a.held {
			unix.Close(h.fd)
		}
		delete(s.agents, name)
	}
}
