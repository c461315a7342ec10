package ipc

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// The fd store: sysbox-mgr keeps a copy of every seccomp notify fd the trap
// agent (in sysbox-fs) serves, so that an agent that restarts (an upgrade,
// a crash) takes them back and the containers' trapped calls wait for it
// instead of failing for good. Its socket is SOCK_SEQPACKET: a message is
// one FdMsg as JSON, with at most one fd in SCM_RIGHTS.
//
// An agent connects, says hello (naming itself by its own socket, so two
// agents' fds never mix), and may then take the fds it left (each comes as
// a held message, then end), and hold new ones. While none of its
// connections is open the store keeps its fds for a grace period, then
// closes them: the trapped calls then fail with ENOSYS, as with no store.

// FdStoreSocket is the store's socket, served by sysbox-mgr.
const FdStoreSocket = RunDir + "/fdstore.sock"

// FdMsg ops.
const (
	FdHello = "hello" // agent -> store: Agent names the agent
	FdHold  = "hold"  // agent -> store: keep the fd sent with it, under Key
	FdTake  = "take"  // agent -> store: send me what you keep for me
	FdHeld  = "held"  // store -> agent: one kept fd, with its Key and State
	FdEnd   = "end"   // store -> agent: nothing more to take
)

// FdMsg is one message on the store's socket.
type FdMsg struct {
	Op    string `json:"op"`
	Agent string `json:"agent,omitempty"`
	// Key names a held fd: one per container process (id and pid); a
	// new hold under a key replaces the old one.
	Key string `json:"key,omitempty"`
	// State is what the agent needs to serve the fd again: the OCI
	// container process state the runtime sent with it.
	State json.RawMessage `json:"state,omitempty"`
}

// maxFdMsg bounds a message (the state carries the annotations).
const maxFdMsg = 256 << 10

// SendFdMsg sends m on the SOCK_SEQPACKET socket sock, with fd (-1: none).
func SendFdMsg(sock int, m FdMsg, fd int) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if len(b) > maxFdMsg {
		return fmt.Errorf("fd store message of %d bytes", len(b))
	}
	var oob []byte
	if fd >= 0 {
		oob = unix.UnixRights(fd)
	}
	for {
		err = unix.Sendmsg(sock, b, oob, nil, unix.MSG_NOSIGNAL)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// recvBufs are RecvFdMsg's buffers: a SOCK_SEQPACKET read needs room for
// the largest message, and the decoded message keeps none of it.
var recvBufs = sync.Pool{New: func() any { return new([maxFdMsg]byte) }}

// RecvFdMsg reads one message from sock: the message and its fd (-1 when
// none came; close-on-exec when one did). io.EOF-like end: ErrFdStoreEOF.
func RecvFdMsg(sock int) (FdMsg, int, error) {
	var m FdMsg
	pooled := recvBufs.Get().(*[maxFdMsg]byte)
	defer recvBufs.Put(pooled)
	buf := pooled[:]
	oob := make([]byte, unix.CmsgSpace(4*4))
	var n, oobn, flags int
	var err error
	for {
		n, oobn, flags, _, err = unix.Recvmsg(sock, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return m, -1, err
	}
	fd := -1
	if oobn > 0 {
		fds, _ := Rights(oob[:oobn])
		for _, f := range fds {
			if fd < 0 {
				fd = f
			} else {
				unix.Close(f) // one fd per message
			}
		}
	}
	if n == 0 && oobn == 0 {
		return m, -1, ErrFdStoreEOF
	}
	if flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
		if fd >= 0 {
			unix.Close(fd)
		}
		return m, -1, errors.New("fd store message truncated")
	}
	if err := json.Unmarshal(buf[:n], &m); err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return m, -1, fmt.Errorf("fd store message: %w", err)
	}
	return m, fd, nil
}

// ErrFdStoreEOF: the peer closed the connection.
var ErrFdStoreEOF = errors.New("fd store connection closed")
