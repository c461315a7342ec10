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
	buf := make([]byte, 4096)
	for {
		_ = n.conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		k, err := n.conn.Read(buf)
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
		for _, line := range bytes.Split(buf[:k], []byte("\n")) {
			if bytes.Equal(bytes.TrimSpace(line), []byte("READY=1")) {
				return n.ready(ct)
			}
		}
	}
}

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
	_, err = c.Write([]byte("READY=1\nMAINPID=" + strconv.Itoa(st.InitProcessPid) + "\n"))
	return err
}
