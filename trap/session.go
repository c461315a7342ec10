package trap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/sysbox-dev/sysbox/internal/ipc"
)

// container is what the sessions of one container share (its init's, and
// one per `exec`).
type container struct {
	id      string
	initPid int
	layout  *layout
	sources *mountSources
	refs    int
	// views: what the fs daemon shows this container (Views.Mounts: the
	// same for the container's whole life); registered: the daemon knows
	// the container.
	views      []ipc.FsMount
	registered bool
}

// session serves one notify fd: the filter of a container's init, or of
// one process `exec`ed into it.
//
// Calls are taken by receivers: goroutines, each locked to its own thread
// (see thread), that wait in poll(2) on the notify fd and then handle the
// call they took themselves, namespaces entered included, so a call costs
// no hand-off to another thread (with the kernel's synchronous wake-up, the
// caller, the receiver and the caller again run on one CPU). A call that
// takes longer than spareAfter (a mount, a caller whose memory is slow to
// read) starts another receiver, so it delays the container's other calls
// by that much at most; receivers left idle beyond one go away.
type session struct {
	a     *Agent
	ct    *container
	log   *slog.Logger
	st    specs.ContainerProcessState // what the runtime sent (for the fd store)
	fd    int
	pidfd int

	// recvMu: one receiver at a time polls the fd and takes a call.
	recvMu sync.Mutex
	idle   atomic.Int32

	mu     sync.Mutex
	active int  // receivers running
	ended  bool // no more receivers
	gone   chan struct{}
	err    error
}

const (
	spareAfter   = time.Millisecond
	maxReceivers = 16
	// maxSpares bounds the receivers beyond the first of each session, all
	// sessions together: each is a thread, and Go aborts a process past
	// 10000 threads.
	maxSpares = 128
)

// spares counts the receivers beyond the first of each session.
var spares atomic.Int32

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
	if err := setSyncWakeup(fd); err != nil {
		log.Debug("no synchronous wake-up (Linux < 6.6)", "err", err)
	}
	ct := a.attach(st.State.ID, initPid, log)
	s := &session{a: a, ct: ct, log: log, st: st, fd: fd, pidfd: pidfd, gone: make(chan struct{})}
	a.mu.Lock()
	a.sessions[s] = struct{}{}
	a.mu.Unlock()
	// After the session is listed: a store connection made meanwhile
	// holds what is listed, and this holds on one made before.
	a.store.hold(st, fd)
	log.Debug("session started", "status", st.State.Status, "process", st.Pid)
	s.spawn()
	<-s.gone
	a.mu.Lock()
	delete(a.sessions, s)
	a.mu.Unlock()
	a.detach(ct)
	// Only now, when no receiver is left: a handler answering on a
	// closed, reused fd number would answer someone else's call.
	unix.Close(fd)
	unix.Close(pidfd)
	if s.err != nil {
		log.Warn("session ended", "err", s.err)
	} else {
		log.Debug("session ended")
	}
}

// spawn starts a receiver, unless the session is over or has enough.
func (s *session) spawn() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended || s.active >= maxReceivers {
		return
	}
	if s.active > 0 {
		if spares.Add(1) > maxSpares {
			spares.Add(-1)
			return
		}
	}
	s.active++
	go s.receive()
}

// leave ends a receiver; the last one ends the session.
func (s *session) leave(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil && s.err == nil {
		s.err = err
	}
	s.active--
	if s.active > 0 {
		spares.Add(-1)
	}
	if s.active == 0 && !s.ended {
		s.ended = true
		close(s.gone)
	}
}

// replace starts a receiver in place of one whose thread is dirty, which
// then ends (and its thread with it) without leaving.
func (s *session) replace() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return
	}
	go s.receive()
}

func (s *session) receive() {
	th, err := newThread()
	if err != nil {
		s.leave(err)
		return
	}
	for {
		s.idle.Add(1)
		n, got, err := s.next()
		s.idle.Add(-1)
		if err != nil || !got && s.over() {
			s.leave(err)
			return
		}
		if !got {
			continue
		}
		spare := time.AfterFunc(spareAfter, s.spawn)
		s.handle(n, th)
		spare.Stop()
		if th.dirty {
			s.replace()
			return
		}
		if s.idle.Load() > 0 {
			s.leave(nil) // another receiver waits already
			return
		}
	}
}

// over: the session has ended (init exited, no process uses the filter, or
// the agent stops): checked without blocking.
func (s *session) over() bool {
	fds := []unix.PollFd{{Fd: int32(s.fd)}, {Fd: int32(s.pidfd), Events: unix.POLLIN}, {Fd: int32(s.a.stop), Events: unix.POLLIN}}
	if _, err := unix.Poll(fds, 0); err != nil {
		return false
	}
	return fds[0].Revents&(unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0 || fds[1].Revents != 0 || fds[2].Revents != 0
}

// next waits for a call and takes it. got false, err nil: woken for
// nothing (a signal, or the session is over: see over).
//
// One receiver polls at a time, holding recvMu, so the call poll reports
// is still there for RECV (only its caller's death takes it away, and then
// RECV says ENOENT): no second poll to check, one syscall less per call.
// Other idle receivers wait for the lock.
func (s *session) next() (notif, bool, error) {
	s.recvMu.Lock()
	defer s.recvMu.Unlock()
	fds := []unix.PollFd{
		{Fd: int32(s.fd), Events: unix.POLLIN},
		{Fd: int32(s.pidfd), Events: unix.POLLIN},
		{Fd: int32(s.a.stop), Events: unix.POLLIN},
	}
	var n notif
	if _, err := unix.Poll(fds, -1); err != nil {
		if errors.Is(err, unix.EINTR) {
			return n, false, nil
		}
		return n, false, fmt.Errorf("poll: %w", err)
	}
	if fds[1].Revents != 0 || fds[2].Revents != 0 || fds[0].Revents&unix.POLLIN == 0 {
		return n, false, nil
	}
	if err := recvNotif(s.fd, &n); err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EINTR) {
			return n, false, nil // the caller was interrupted meanwhile
		}
		return n, false, fmt.Errorf("receive: %w", err)
	}
	return n, true, nil
}

// attach finds or makes the container's shared state. A new init pid under
// a known ID is a restarted container: its mounts are read again.
func (a *Agent) attach(id string, initPid int, log *slog.Logger) *container {
	views, registered := a.mounts(id)
	a.mu.Lock()
	ct := a.containers[id]
	if ct != nil && ct.initPid == initPid {
		ct.refs++
		a.mu.Unlock()
		return ct
	}
	ct = &container{id: id, initPid: initPid, refs: 1, sources: newMountSources(), views: views, registered: registered}
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
			l := buildLayout(ms, viewDests(views))
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

func viewDests(views []ipc.FsMount) map[string]bool {
	out := map[string]bool{}
	for _, m := range views {
		out[m.Dest] = true
	}
	return out
}

func (a *Agent) detach(ct *container) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ct.refs--
	if ct.refs > 0 {
		return
	}
	if a.containers[ct.id] == ct {
		delete(a.containers, ct.id)
	}
	ct.sources.close()
}

// mounts asks the fs daemon what it shows container id.
func (a *Agent) mounts(id string) (views []ipc.FsMount, registered bool) {
	if a.views == nil {
		return nil, false
	}
	return a.views.Mounts(id)
}

// views are the container's views (ipc.FsMount: host source, container
// path); read-only, set once.
func (s *session) views() []ipc.FsMount { return s.ct.views }

func (s *session) layout() *layout {
	s.a.mu.Lock()
	defer s.a.mu.Unlock()
	return s.ct.layout
}

// handle answers one call, on the receiver's thread th.
func (s *session) handle(n notif, th *thread) {
	c := call{s: s, n: &n, th: th, start: time.Now()}
	h := handlerFor(n.Data.Arch, n.Data.Nr)
	c.name = h.name
	a := continueCall
	if h.fn != nil {
		a = h.fn(c)
	}
	c.answer(a)
}

// answer sends the verdict on c.
func (c call) answer(a answer) {
	if err := sendResp(c.s.fd, c.n.ID, a); err != nil && !errors.Is(err, unix.ENOENT) {
		c.s.log.Warn("answer", "syscall", c.name, "err", err)
	}
	if c.s.log.Enabled(context.Background(), slog.LevelDebug) {
		c.s.log.Debug("trapped", "syscall", c.name, "tid", c.n.Pid, "continue", a.cont, "errno", int(a.errno), "took", time.Since(c.start))
	}
}

// call is what a handler works with: the notification, plus helpers that
// read the caller's memory and check the call is still pending.
type call struct {
	s     *session
	n     *notif
	th    *thread // the receiver's
	name  string
	start time.Time
}

func (c call) tid() int         { return int(c.n.Pid) }
func (c call) arg(i int) uint64 { return c.n.Data.Args[i] }

// str reads a string argument.
func (c call) str(i int) (string, error) { return readString(c.tid(), c.arg(i), pathMax) }

// valid must be true after reading the caller's memory and before acting on
// it: then the caller is still blocked in this call, and the pid read from
// the notification was not reused by another process meanwhile.
func (c call) valid() bool { return idValid(c.s.fd, c.n.ID) }

type handler struct {
	name string
	fn   func(call) answer
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

func register(nr int, name string, fn func(call) answer) {
	handlers[int32(nr)] = handler{name: name, fn: fn}
}
