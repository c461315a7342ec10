package trap

import (
	"errors"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The kernel's seccomp user-notification API, spoken with ioctls directly:
// libseccomp-golang wraps the same calls behind cgo and its own errno sign
// convention (positive there, negated for the kernel); the raw API has one
// convention and no cgo call on the hot path.

// seccompData is struct seccomp_data.
type seccompData struct {
	Nr   int32
	Arch uint32
	IP   uint64
	Args [6]uint64
}

// notif is struct seccomp_notif: one trapped call, its caller blocked until
// the answer.
type notif struct {
	ID    uint64
	Pid   uint32 // the calling thread, as a pid of the agent's pid namespace
	Flags uint32
	Data  seccompData
}

// notifResp is struct seccomp_notif_resp. Error is a NEGATIVE errno (the
// syscall's return is Error if non-zero, else Val).
type notifResp struct {
	ID    uint64
	Val   int64
	Error int32
	Flags uint32
}

func init() {
	// The ioctl numbers encode these sizes.
	if unsafe.Sizeof(notif{}) != 80 || unsafe.Sizeof(notifResp{}) != 24 {
		panic("trap: seccomp notification structs have the wrong size")
	}
}

// answer is a handler's verdict on one call.
type answer struct {
	val   int64
	errno unix.Errno // 0: success with val
	cont  bool       // let the kernel run the call as the caller made it
}

var (
	continueCall = answer{cont: true}
	success      = answer{}
)

func fail(err error) answer {
	var e unix.Errno
	if errors.As(err, &e) && e != 0 {
		return answer{errno: e}
	}
	return answer{errno: unix.EIO}
}

func errnoAnswer(e unix.Errno) answer { return answer{errno: e} }

func ioctlPtr(fd int, req uintptr, p unsafe.Pointer) error {
	for {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(p))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return e
		}
		return nil
	}
}

// recvNotif takes the next pending call. ENOENT: the caller went away
// between poll and receive.
func recvNotif(fd int, n *notif) error {
	*n = notif{} // the kernel refuses a non-zeroed buffer
	return ioctlPtr(fd, unix.SECCOMP_IOCTL_NOTIF_RECV, unsafe.Pointer(n))
}

// sendResp answers call id. ENOENT: the caller was interrupted (a signal)
// or died meanwhile; nothing is left to answer.
func sendResp(fd int, id uint64, a answer) error {
	r := notifResp{ID: id}
	switch {
	case a.cont:
		r.Flags = unix.SECCOMP_USER_NOTIF_FLAG_CONTINUE
	case a.errno != 0:
		r.Error = -int32(a.errno)
	default:
		r.Val = a.val
	}
	return ioctlPtr(fd, unix.SECCOMP_IOCTL_NOTIF_SEND, unsafe.Pointer(&r))
}

// idValid reports whether call id is still waiting: its caller is alive and
// blocked in the call, so the pid read from the notification still names it.
func idValid(fd int, id uint64) bool {
	return ioctlPtr(fd, unix.SECCOMP_IOCTL_NOTIF_ID_VALID, unsafe.Pointer(&id)) == nil
}

// setSyncWakeup asks the kernel to wake the agent and the caller on the same
// CPU (Linux 6.6): a trapped call then costs a switch, not a migration.
func setSyncWakeup(fd int) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SECCOMP_IOCTL_NOTIF_SET_FLAGS, unix.SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP)
	if e != 0 {
		return e
	}
	return nil
}
