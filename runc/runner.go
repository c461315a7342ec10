package runc

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/containerd/console"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/sysbox-dev/sysbox/internal/ipc"
)

// runner drives one process through libcontainer: its stdio or pty, its
// pid file, and (when attached) its signals and exit status. This is the
// glue runc keeps outside libcontainer.
type runner struct {
	container     *libcontainer.Container
	act           action
	detach        bool
	init          bool
	pidFile       string
	consoleSocket string
	pidfdSocket   string
	preserveFds   int
	subreaper     bool
	notify        *notifyRelay
	// afterStart runs once the process exists and before the user's
	// program runs (for an init: before the exec fifo is opened by run).
	afterStart func(pid int) error
}

const actExec action = 100

func (r *runner) run(ps *specs.Process) (int, error) {
	if ps.Terminal && r.detach && r.consoleSocket == "" {
		return -1, errors.New("cannot allocate a tty when detached without --console-socket")
	}
	if (!r.detach || !ps.Terminal) && r.consoleSocket != "" {
		return -1, errors.New("--console-socket needs a detached process with terminal: true")
	}
	p, err := newProcess(ps)
	if err != nil {
		return -1, err
	}
	p.Init = r.init
	p.LogLevel = strconv.Itoa(int(logrus.GetLevel()))
	for i := 3; i < 3+r.preserveFds; i++ {
		if _, err := unix.FcntlInt(uintptr(i), unix.F_GETFD, 0); err != nil {
			return -1, fmt.Errorf("--preserve-fds: fd %d is not open", i)
		}
		p.ExtraFiles = append(p.ExtraFiles, os.NewFile(uintptr(i), "preserved-fd-"+strconv.Itoa(i)))
	}

	var sigs chan os.Signal
	if !r.detach {
		if r.subreaper {
			_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
		}
		sigs = make(chan os.Signal, 2048)
		signal.Notify(sigs)
		defer signal.Stop(sigs)
	}
	t, err := setupIO(p, ps.Terminal, r.detach, r.consoleSocket)
	if err != nil {
		return -1, err
	}
	defer t.close()
	if r.pidfdSocket != "" {
		conn, err := net.Dial("unix", r.pidfdSocket)
		if err != nil {
			return -1, fmt.Errorf("--pidfd-socket %s: %w", r.pidfdSocket, err)
		}
		defer conn.Close()
		f, err := conn.(*net.UnixConn).File()
		if err != nil {
			return -1, err
		}
		defer f.Close()
		p.PidfdSocket = f
	}

	if err := r.container.Start(p); err != nil {
		return -1, err
	}
	kill := func() { _ = p.Signal(unix.SIGKILL); _, _ = p.Wait() }
	if err := t.waitConsole(); err != nil {
		kill()
		return -1, err
	}
	t.closePostStart()
	pid, err := p.Pid()
	if err != nil {
		kill()
		return -1, err
	}
	if r.afterStart != nil {
		if err := r.afterStart(pid); err != nil {
			kill()
			return -1, err
		}
	}
	if r.act == actRun {
		if err := r.container.Exec(); err != nil {
			kill()
			return -1, err
		}
		if r.notify != nil {
			if r.detach {
				if err := r.notify.wait(r.container); err != nil {
					return -1, err
				}
			} else {
				go func() { _ = r.notify.wait(r.container) }()
			}
		}
	}
	if r.pidFile != "" {
		if err := writePidFile(r.pidFile, pid); err != nil {
			kill()
			return -1, err
		}
	}
	if r.detach {
		return 0, nil
	}
	return forward(sigs, p, pid, t)
}

// forward passes signals to the process, keeps the pty's size, reaps
// children (we are a subreaper) and returns the process's exit status.
func forward(sigs chan os.Signal, p *libcontainer.Process, pid int, t *tty) (int, error) {
	_ = t.resize()
	for s := range sigs {
		switch s {
		case unix.SIGWINCH:
			_ = t.resize()
		case unix.SIGURG:
			// The Go runtime's preemption signal, not the user's.
		case unix.SIGCHLD:
			for {
				var ws unix.WaitStatus
				wpid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
				if err != nil || wpid <= 0 {
					break
				}
				if wpid == pid {
					_, _ = p.Wait()
					return exitStatus(ws), nil
				}
			}
		default:
			if err := p.Signal(s); err != nil {
				slog.Debug("forward signal", "signal", s, "err", err)
			}
		}
	}
	return -1, nil
}

func exitStatus(ws unix.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// newProcess converts the OCI process to libcontainer's.
func newProcess(ps *specs.Process) (*libcontainer.Process, error) {
	if ps.Cwd == "" || !filepath.IsAbs(ps.Cwd) {
		return nil, fmt.Errorf("process.cwd %q must be an absolute path", ps.Cwd)
	}
	if len(ps.Args) == 0 {
		return nil, errors.New("process.args must not be empty")
	}
	nnp := ps.NoNewPrivileges
	p := &libcontainer.Process{
		Args:            ps.Args,
		Env:             ps.Env,
		UID:             int(ps.User.UID),
		GID:             int(ps.User.GID),
		Cwd:             ps.Cwd,
		Label:           ps.SelinuxLabel,
		NoNewPrivileges: &nnp,
		AppArmorProfile: ps.ApparmorProfile,
		Scheduler:       ps.Scheduler,
		IOPriority:      ps.IOPriority,
	}
	if ps.ConsoleSize != nil {
		p.ConsoleWidth, p.ConsoleHeight = uint16(ps.ConsoleSize.Width), uint16(ps.ConsoleSize.Height)
	}
	if c := ps.Capabilities; c != nil {
		p.Capabilities = &configs.Capabilities{Bounding: c.Bounding, Effective: c.Effective, Inheritable: c.Inheritable, Permitted: c.Permitted, Ambient: c.Ambient}
	}
	for _, g := range ps.User.AdditionalGids {
		p.AdditionalGroups = append(p.AdditionalGroups, int(g))
	}
	for _, rl := range ps.Rlimits {
		t, ok := rlimits[strings.TrimPrefix(rl.Type, "RLIMIT_")]
		if !ok {
			return nil, fmt.Errorf("unknown rlimit %s", rl.Type)
		}
		p.Rlimits = append(p.Rlimits, configs.Rlimit{Type: t, Hard: rl.Hard, Soft: rl.Soft})
	}
	aff, err := configs.ConvertCPUAffinity(ps.ExecCPUAffinity)
	if err != nil {
		return nil, err
	}
	p.CPUAffinity = aff
	return p, nil
}

var rlimits = map[string]int{
	"AS": unix.RLIMIT_AS, "CORE": unix.RLIMIT_CORE, "CPU": unix.RLIMIT_CPU, "DATA": unix.RLIMIT_DATA,
	"FSIZE": unix.RLIMIT_FSIZE, "LOCKS": unix.RLIMIT_LOCKS, "MEMLOCK": unix.RLIMIT_MEMLOCK,
	"MSGQUEUE": unix.RLIMIT_MSGQUEUE, "NICE": unix.RLIMIT_NICE, "NOFILE": unix.RLIMIT_NOFILE,
	"NPROC": unix.RLIMIT_NPROC, "RSS": unix.RLIMIT_RSS, "RTPRIO": unix.RLIMIT_RTPRIO,
	"RTTIME": unix.RLIMIT_RTTIME, "SIGPENDING": unix.RLIMIT_SIGPENDING, "STACK": unix.RLIMIT_STACK,
}

// writePidFile writes atomically: containerd may read it at any time.
func writePidFile(path string, pid int) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path))
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL|os.O_SYNC, 0o666)
	if err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	_, err = f.WriteString(strconv.Itoa(pid))
	f.Close()
	if err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	return os.Rename(tmp, path)
}

// tty is the process's terminal plumbing.
type tty struct {
	postStart []io.Closer // our copies of what the process got
	consoleC  chan error
	host      console.Console
	cons      console.Console
	wg        sync.WaitGroup
}

func setupIO(p *libcontainer.Process, terminal, detach bool, sockpath string) (*tty, error) {
	t := &tty{}
	if !terminal {
		// Detached (containerd passes its fifos as our stdio) or attached
		// without a pty: the process shares our stdio.
		p.Stdin, p.Stdout, p.Stderr = os.Stdin, os.Stdout, os.Stderr
		return t, nil
	}
	if detach {
		conn, err := net.Dial("unix", sockpath)
		if err != nil {
			return nil, fmt.Errorf("--console-socket %s: %w", sockpath, err)
		}
		f, err := conn.(*net.UnixConn).File()
		conn.Close()
		if err != nil {
			return nil, err
		}
		p.ConsoleSocket = f
		t.postStart = append(t.postStart, f)
		return t, nil
	}
	host, err := hostConsole()
	if err != nil {
		return nil, err
	}
	t.host = host
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	parent, child := os.NewFile(uintptr(fds[0]), "console-parent"), os.NewFile(uintptr(fds[1]), "console-child")
	p.ConsoleSocket = child
	t.postStart = append(t.postStart, parent, child)
	t.consoleC = make(chan error, 1)
	go func() { t.consoleC <- t.receive(parent) }()
	return t, nil
}

func hostConsole() (console.Console, error) {
	for _, f := range []*os.File{os.Stdin, os.Stdout, os.Stderr} {
		if c, err := console.ConsoleFromFile(f); err == nil {
			return c, nil
		}
	}
	f, err := os.Open("/dev/tty")
	if err != nil {
		return nil, errors.New("process.terminal is true but there is no terminal: run from a terminal, or detach with a --console-socket")
	}
	return console.ConsoleFromFile(f)
}

// receive takes the pty master the container's init sends and wires it to
// our terminal.
func (t *tty) receive(sock *os.File) error {
	f, err := recvFd(sock)
	if err != nil {
		return err
	}
	c, err := console.ConsoleFromFile(f)
	if err != nil {
		return err
	}
	_ = console.ClearONLCR(c.Fd())
	t.cons = c
	if err := t.host.SetRaw(); err != nil {
		return fmt.Errorf("set terminal raw: %w", err)
	}
	go func() { _, _ = io.Copy(c, os.Stdin) }()
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		_, _ = io.Copy(os.Stdout, c)
	}()
	return nil
}

func recvFd(sock *os.File) (*os.File, error) {
	name := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := unix.Recvmsg(int(sock.Fd()), name, oob, 0)
	if err != nil {
		return nil, fmt.Errorf("receive pty: %w", err)
	}
	fds, err := ipc.Rights(oob[:oobn])
	if err != nil || len(fds) != 1 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("receive pty: want one fd, got %d (%v)", len(fds), err)
	}
	return os.NewFile(uintptr(fds[0]), string(name[:n])), nil
}

func (t *tty) waitConsole() error {
	if t.consoleC == nil {
		return nil
	}
	return <-t.consoleC
}

func (t *tty) closePostStart() {
	for _, c := range t.postStart {
		_ = c.Close()
	}
	t.postStart = nil
}

func (t *tty) resize() error {
	if t.cons == nil || t.host == nil {
		return nil
	}
	return t.cons.ResizeFrom(t.host)
}

func (t *tty) close() {
	t.closePostStart()
	if t.cons != nil {
		// The process is gone: drain what it wrote, then close.
		t.wg.Wait()
		_ = t.cons.Close()
	}
	if t.host != nil {
		_ = t.host.Reset()
	}
}
