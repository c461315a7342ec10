package trap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
		"sync/atomic"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// container is what the sessions of one container share (its init's, and
// one per `exec`).
type container struct {
	id      string
	initPid int
	layout  *layout
	refs    int
}

// session serves one notify fd: the filter of a container's init, or of
// one process `exec`ed into it.
type session struct {
	a   *Agent
	ct  *container
	log *slog.Logger

	// fd is closed when the loop and every handler are done with it: a
	// handler answering on a closed (or reused) fd number would answer
	// someone else's call.
	fd   int
	refs atomic.Int32
}

func (s *session) ref() { s.refs.Add(1) }

func (s *session) unref() {
	if s.refs.Add(-1) == 0 {
		unix.Close(s.fd)
	}
}

// serveSession runs until the container's init exits, no process uses the
// filter any more, or the agent stops.
func (a *Agent) serveSession(st specs.ContainerProcessState, fd int) {
	initPid := st.State.Pid
	if initPid <= 0 {
		initPid = st.Pid
	}
	log := a.log.With("id", st.State.ID, "pid", initPid)
	pidfd, err := unix.PidfdOpen(initPid, 0)
	if err != nil {
		// Without init there is no container to serve: closing the fd
		// makes its trapped calls fail with ENOSYS.
		log.Warn("open the container's init", "err", err)
		unix.Close(fd)
		return
	}
	defer unix.Close(pidfd)
	if err := setSyncWakeup(fd); err != nil {
		log.Debug("no synchronous wake-up (Linux < 6.6)", "err", err)
	}
	ct := a.attach(st.State.ID, initPid, log)
	defer a.detach(ct)

	s := &session{a: a, ct: ct, log: log, fd: fd}
	s.ref()
	a.mu.Lock()
	a.sessions[s] = struct{}{}
	a.mu.Unlock()
	log.Debug("session started", "status", st.State.Status, "process", st.Pid)
	err = s.loop(pidfd)
	a.mu.Lock()
	delete(a.sessions, s)
	a.mu.Unlock()
	if err != nil {
		log.Warn("session ended", "err", err)
	} else {
		log.Debug("session ended")
	}
	s.unref()
}

// attach finds or makes the container's shared state. A new init pid under
// a known ID is a restarted container: its mounts are read again.
func (a *Agent) attach(id string, initPid int, log *slog.Logger) *container {
	a.mu.Lock()
	ct := a.containers[id]
	if ct != nil && ct.initPid == initPid {
		ct.refs++
		a.mu.Unlock()
		return ct
	}
	ct = &container{id: id, initPid: initPid, refs: 1}
	a.containers[id] = ct
	a.mu.Unlock()
	// Read before the container runs anything of its own: the runtime
	// hands the notify fd over after it set up the mounts, and the
	// container's init blocks on its first trapped call until this
	// session answers.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", initPid))
	if err == nil {
		var ms []mountEntry
		if ms, err = parseMountinfo(b); err == nil {
			l := buildLayout(ms, a.viewDests(id))
			a.mu.Lock()
			ct.layout = l
			a.mu.Unlock()
			log.Debug("container layout", "proc", len(l.procCovers), "sys", len(l.sysCovers), "protected", len(l.protected))
		}
	}
	if err != nil {
		log.Warn("read the container's mounts: new procfs mounts get no masks, nothing is protected", "err", err)
	}
	return ct
}

func (a *Agent) viewDests(id string) map[string]bool {
	out := map[string]bool{}
	if a.views == nil {
		return out
	}
	ms, _ := a.views.Mounts(id)
	for _, m := range ms {
		out[m.Dest] = true
	}
	return out
}

func (a *Agent) detach(ct *container) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ct.refs--
	if ct.refs == 0 && a.containers[ct.id] == ct {
		delete(a.containers, ct.id)
	}
}

func (s *session) layout() *layout {
	s.a.mu.Lock()
	defer s.a.mu.Unlock()
	return s.ct.layout
}

// loop receives calls and hands each to its own goroutine: a handler that
// waits (a mount, a caller's memory paged out) delays no other call.
func (s *session) loop(pidfd int) error {
	fds := []unix.PollFd{
		{Fd: int32(s.fd), Events: unix.POLLIN},
		{Fd: int32(pidfd), Events: unix.POLLIN},
		{Fd: int32(s.a.stop), Events: unix.POLLIN},
	}
	for {
		for i := range fds {
			fds[i].Revents = 0
		}
		if _, err := unix.Poll(fds, -1); err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return fmt.Errorf("poll: %w", err)
		}
		if fds[1].Revents != 0 || fds[2].Revents != 0 {
			return nil // init exited, or the agent stops
		}
		if fds[0].Revents&unix.POLLIN != 0 {
			var n notif
			if err := recvNotif(s.fd, &n); err != nil {
				if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EINTR) {
					continue // the caller was interrupted meanwhile
				}
				return fmt.Errorf("receive: %w", err)
			}
			s.ref()
			go s.handle(n)
			continue
		}
		if fds[0].Revents&(unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0 {
			return nil // no process uses the filter any more
		}
	}
}

// handle answers one call.
func (s *session) handle(n notif) {
	defer s.unref()
	start := time.Now()
	h := handlerFor(n.Data.Arch, n.Data.Nr)
	a := continueCall
	if h.fn != nil {
		a = h.fn(s, &n)
	}
	if err := sendResp(s.fd, n.ID, a); err != nil && !errors.Is(err, unix.ENOENT) {
		s.log.Warn("answer", "syscall", h.name, "err", err)
	}
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug("trapped", "syscall", h.name, "tid", n.Pid, "continue", a.cont, "errno", int(a.errno), "took", time.Since(start))
	}
}

// call is what a handler works with: the notification, plus helpers that
// read the caller's memory and check the call is still pending.
type call struct {
	s *session
	n *notif
}

func (c call) tid() int         { return int(c.n.Pid) }
func (c call) arg(i int) uint64 { return c.n.Data.Args[i] }

// str reads a string argument.
func (c call) str(i int) (string, error) { return readString(c.tid(), c.arg(i), pathMax) }

// valid must be true after reading the caller's memory and before acting on
// it: then the caller is still blocked in this call, and the pid read from
// the notification was not reused by another process meanwhile.
func (c call) valid() bool { return idValid(c.s.fd, c.n.ID) }

var errGone = errors.New("caller gone")

type handler struct {
	name string
	fn   func(*session, *notif) answer
}

// handlerFor picks the handler; calls of another ABI (32-bit code on a
// 64-bit kernel) continue in the kernel untouched.
func handlerFor(arch uint32, nr int32) handler {
	if arch != nativeArch {
		return handler{name: fmt.Sprintf("%d/%#x", nr, arch)}
	}
	if h, ok := handlers[nr]; ok {
		return h
	}
	return handler{name: fmt.Sprint(nr)}
}

var handlers = map[int32]handler{}

func register(nr int, name string, fn func(*session, *notif) answer) {
	handlers[int32(nr)] = handler{name: name, fn: fn}
}

func wrap(fn func(call) answer) func(*session, *notif) answer {
	return func(s *session, n *notif) answer { return fn(call{s: s, n: n}) }
}
