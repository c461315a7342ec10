package probe

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// libseccompNotifyLevel is the libseccomp API level libseccomp-golang
// requires for its notification calls (NotifReceive and friends).
const libseccompNotifyLevel = 6

// seccompFacts is what the seccomp probes found.
type seccompFacts struct {
	notifyErr   error  // SECCOMP_GET_ACTION_AVAIL for SECCOMP_RET_USER_NOTIF
	libVersion  string // libseccomp linked into this binary
	libAPI      uint
	libErr      error
	listenerErr error // installing a filter with a listener on a throwaway thread
	addfdErr    error // SECCOMP_IOCTL_NOTIF_ADDFD with no such notification
	syncWakeErr error // SECCOMP_IOCTL_NOTIF_SET_FLAGS(SYNC_WAKE_UP)
}

func seccompResults(f seccompFacts) []Result {
	n := Result{Name: "seccomp-notify"}
	lib := fmt.Sprintf("libseccomp %s API level %d", f.libVersion, f.libAPI)
	switch {
	case f.notifyErr != nil:
		n.Status, n.Detail = Fail, fmt.Sprintf("the kernel has no seccomp user notification: %v", f.notifyErr)
		n.Remedy = "use Linux 5.19 or later built with CONFIG_SECCOMP_FILTER"
	case f.libErr != nil:
		n.Status, n.Detail = Fail, fmt.Sprintf("kernel supports user notification, but libseccomp: %v", f.libErr)
		n.Remedy = "use a sysbox binary built (tag seccomp) against libseccomp 2.5 or later"
	case f.libAPI < libseccompNotifyLevel:
		n.Status, n.Detail = Fail, fmt.Sprintf("kernel supports user notification, but %s is below %d", lib, libseccompNotifyLevel)
		n.Remedy = "use a sysbox binary built against libseccomp 2.5 or later, on Linux 5.19 or later"
	default:
		n.Status, n.Detail = OK, "kernel supports SECCOMP_RET_USER_NOTIF; "+lib
	}

	a := Result{Name: "seccomp-addfd"}
	switch {
	case f.listenerErr != nil:
		a.Status, a.Detail = Warn, fmt.Sprintf("not probed: could not get a notification fd: %v", f.listenerErr)
		a.Remedy = "run `sysbox check` outside any container or seccomp sandbox that already has a listener"
	case errors.Is(f.addfdErr, unix.ENOENT):
		// The kernel looked the (made-up) notification up: the ioctl exists.
		a.Status, a.Detail = OK, "SECCOMP_IOCTL_NOTIF_ADDFD supported (the trap agent can install fds in a container)"
	case errors.Is(f.addfdErr, unix.EINVAL) || errors.Is(f.addfdErr, unix.ENOTTY):
		a.Status, a.Detail = Fail, "SECCOMP_IOCTL_NOTIF_ADDFD not supported (needs Linux 5.9)"
		a.Remedy = "use Linux 5.19 or later"
	default:
		a.Status, a.Detail = Warn, fmt.Sprintf("SECCOMP_IOCTL_NOTIF_ADDFD gave an unexpected answer: %v", f.addfdErr)
		a.Remedy = "report this kernel (uname -r) with the sysbox check output"
	}

	w := Result{Name: "seccomp-wakeup"}
	switch {
	case f.listenerErr != nil:
		w.Status, w.Detail = Warn, fmt.Sprintf("not probed: could not get a notification fd: %v", f.listenerErr)
		w.Remedy = a.Remedy
	case f.syncWakeErr == nil:
		w.Status, w.Detail = OK, "SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP supported (the trap agent and a trapped process hand over on one CPU: lower trap latency)"
	case errors.Is(f.syncWakeErr, unix.EINVAL) || errors.Is(f.syncWakeErr, unix.ENOTTY):
		w.Status, w.Detail = Warn, "SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP not supported (Linux 6.6+): trapped syscalls work, with a slower hand-over"
		w.Remedy = "upgrade to Linux 6.6 or later for faster trapped syscalls"
	default:
		w.Status, w.Detail = Warn, fmt.Sprintf("SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP gave an unexpected answer: %v", f.syncWakeErr)
		w.Remedy = "report this kernel (uname -r) with the sysbox check output"
	}
	return []Result{n, a, w}
}

func probeSeccomp(host) []Result {
	var f seccompFacts
	action := uint32(unix.SECCOMP_RET_USER_NOTIF)
	if _, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_GET_ACTION_AVAIL, 0, uintptr(unsafe.Pointer(&action))); e != 0 {
		f.notifyErr = e
	}
	f.libVersion, f.libAPI, f.libErr = libseccompInfo()
	if f.notifyErr == nil {
		f.listenerErr, f.addfdErr, f.syncWakeErr = probeListener()
	} else {
		f.listenerErr = f.notifyErr
	}
	return seccompResults(f)
}

// probeSyscall is a syscall number no architecture uses: the probe filter
// traps only it, so nothing running on the thread is ever held up.
const probeSyscall = 0x3ff

// seccompNotifAddfd is struct seccomp_notif_addfd.
type seccompNotifAddfd struct {
	id         uint64
	flags      uint32
	srcfd      uint32
	newfd      uint32
	newfdFlags uint32
}

// probeListener installs a filter with a notification listener on a
// throwaway thread (a filter can't be removed) and asks the listener fd what
// it supports.
func probeListener() (listenerErr, addfdErr, syncWakeErr error) {
	type answer struct{ listener, addfd, sync error }
	var a answer
	onThrowawayThread(func() {
		// no_new_privs is per thread; it lets the probe run without root.
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			a.listener = fmt.Errorf("set no_new_privs: %w", err)
			return
		}
		prog := []unix.SockFilter{
			{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0}, // seccomp_data.nr
			{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: probeSyscall, Jt: 0, Jf: 1},
			{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_USER_NOTIF},
			{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
		}
		fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
		r, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
			unix.SECCOMP_FILTER_FLAG_NEW_LISTENER, uintptr(unsafe.Pointer(&fprog)))
		runtime.KeepAlive(prog)
		if e != 0 {
			a.listener = fmt.Errorf("seccomp(SECCOMP_SET_MODE_FILTER, NEW_LISTENER): %w", e)
			return
		}
		fd := int(r)
		defer unix.Close(fd)
		addfd := seccompNotifAddfd{id: 1, srcfd: uint32(fd)}
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SECCOMP_IOCTL_NOTIF_ADDFD, uintptr(unsafe.Pointer(&addfd))); e != 0 {
			a.addfd = e
		}
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SECCOMP_IOCTL_NOTIF_SET_FLAGS, unix.SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP); e != 0 {
			a.sync = e
		}
	})
	return a.listener, a.addfd, a.sync
}
