package runc

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/sysbox-dev/sysbox/internal/ipc"
)

// The sd_notify relay: when the engine gives NOTIFY_SOCKET (Podman's
// --sdnotify=container, systemd units), the container gets a socket of its
// own at /run/notify/notify.sock and its READY=1 is passed to the host's
// socket with the container's MAINPID.

var notifyDir = ipc.RunDir + "/notify"

const notifyInside = "/run/notify"

func notifyPath(id string) string { return filepath.Join(notifyDir, id) }

// setupNotify adds the relay's mount and variable to the spec.
func setupNotify(id string, s *specs.Spec) (bool, error) {
	if os.Getenv("NOTIFY_SOCKET") == "" {
		return false, nil
	}
	dir := notifyPath(id)
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return false, err
	}
	for d := notifyDir; d != "/"; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o001 == 0 {
			_ = os.Chmod(d, fi.Mode().Perm()|0o011)
		}
	}
	s.Mounts = append(s.Mounts, specs.Mount{Destination: notifyInside, Source: dir, Type: "bind", Options: []string{"bind", "nosuid", "noexec", "nodev"}})
	env := s.Process.Env[:0:0]
	for _, e := range s.Process.Env {
		if !bytes.HasPrefix([]byte(e), []byte("NOTIFY_SOCKET=")) {
			env = append(env, e)
		}
	}
	s.Process.Env = append(env, "NOTIFY_SOCKET="+notifyInside+"/notify.sock")
	return true, nil
}

func removeNotify(id string) { _ = os.RemoveAll(notifyPath(id)) }

// notifyRelay is the container's end of the relay.
type notifyRelay struct {
	conn *net.UnixConn
	host string
}

// listenNotify binds the container's socket; nil when there is no relay.
func listenNotify(id string) (*notifyRelay, error) {
	host := os.Getenv("NOTIFY_SOCKET")
	dir := notifyPath(id)
	if host == "" {
		return nil, nil
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, nil
	}
	path := filepath.Join(dir, "notify.sock")
	_ = os.Remove(path)
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("notify socket: %w", err)
	}
	// The container's root (an unprivileged host uid) sends to it.
	if err := os.Chmod(path, 0o777); err != nil {
		conn.Close()
		return nil, err
	}
	return &notifyRelay{conn: conn, host: host}, nil
}

// wait relays until the container says READY=1 or stops running.
func (n *notifyRelay) wait(ct *libcontainer.Container) error {
	defer n.conn.Close()
	for {
		_ = n.conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		msg, err := n.read()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if st, err := ct.Status(); err != nil || st == libcontainer.Stopped {
					return nil
				}
				continue
			}
			return err
		}
		if !hasLine(msg, "READY=1") {
			continue
		}
		err = n.ready(ct)
		// sd_notify_barrier (systemd-notify --ready sends one right after
		// READY=1): the sender waits until its fd is closed, which read
		// does; a barrier that comes later finds the socket gone, and its
		// sender an error.
		_ = n.conn.SetReadDeadline(time.Now().Add(barrierWait))
		for {
			if _, rerr := n.read(); rerr != nil {
				break
			}
		}
		return err
	}
}

// barrierWait is how long the relay stays after READY=1 for the
// sender's barrier.
const barrierWait = 50 * time.Millisecond

// read returns one datagram from the container, closing any fds it
// carried: a BARRIER=1's fd closed is the barrier's answer.
func (n *notifyRelay) read() ([]byte, error) {
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(16*4))
	k, oobn, _, _, err := n.conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, err
	}
	if oobn > 0 {
		fds, _ := ipc.Rights(oob[:oobn])
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
	return buf[:k], nil
}

func hasLine(msg []byte, want string) bool {
	for _, line := range bytes.Split(msg, []byte("\n")) {
		if string(bytes.TrimSpace(line)) == want {
			return true
		}
	}
	return false
}

// ready passes READY=1 on with the container's MAINPID, then waits on a
// barrier so that the receiver (systemd) has read it while this process,
// in the unit's cgroup, still exists.
func (n *notifyRelay) ready(ct *libcontainer.Container) error {
	st, err := ct.State()
	if err != nil {
		return err
	}
	host := n.host
	if host[0] == '@' {
		host = "\x00" + host[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: host, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("host notify socket %s: %w", n.host, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("READY=1\nMAINPID=" + strconv.Itoa(st.InitProcessPid) + "\n")); err != nil {
		return err
	}
	notifyBarrier(c, hostBarrierWait)
	return nil
}

// hostBarrierWait bounds the wait for the host's receiver to take the
// barrier: a receiver that never reads must not hold the runtime.
const hostBarrierWait = 2 * time.Second

// notifyBarrier sends BARRIER=1 with the write end of a pipe and waits,
// at most timeout, until the receiver closes it. Best effort: a receiver
// that does not know barriers got READY=1 already.
func notifyBarrier(c *net.UnixConn, timeout time.Duration) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return
	}
	defer unix.Close(p[0])
	_, _, err := c.WriteMsgUnix([]byte("BARRIER=1\n"), unix.UnixRights(p[1]), nil)
	unix.Close(p[1])
	if err != nil {
		return
	}
	fds := []unix.PollFd{{Fd: int32(p[0]), Events: unix.POLLHUP}}
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return
		}
		if _, err := unix.Poll(fds, int(left.Milliseconds())+1); err != unix.EINTR {
			return
		}
	}
}
