package ipc

import "golang.org/x/sys/unix"

// Rights returns every fd that the control messages oob (from recvmsg)
// carry in SCM_RIGHTS; other control messages are skipped. The caller owns
// (and closes) them.
func Rights(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, m := range msgs {
		got, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		fds = append(fds, got...)
	}
	return fds, nil
}

// PeerCred is the uid and pid of the process at the other end of the unix
// socket fd (SO_PEERCRED: who connected, whatever it did since).
func PeerCred(fd int) (uid uint32, pid int32, err error) {
	cred, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return 0, 0, err
	}
	return cred.Uid, cred.Pid, nil
}
