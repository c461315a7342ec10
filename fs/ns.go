package fs

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// nsKind is a namespace a /proc/sys file can live in. Only the ones a
// thread of a multi-threaded process may join with setns are here: the user
// and mount namespaces are not (setns(user) needs a single-threaded caller;
// mount would need unshare(CLONE_FS) and nothing here reads through it).
type nsKind int

const (
	nsHost nsKind = iota // not namespaced: the host's value
	nsNet
	nsIPC
	nsUTS
	nsKinds
)

var nsNames = [nsKinds]string{nsHost: "", nsNet: "net", nsIPC: "ipc", nsUTS: "uts"}

var nsFlags = [nsKinds]int{nsNet: unix.CLONE_NEWNET, nsIPC: unix.CLONE_NEWIPC, nsUTS: unix.CLONE_NEWUTS}

// errNotStarted: the container's namespaces do not exist yet.
var errNotStarted = errors.New("container not started")

// nsSet holds open namespace files: a container's, or the daemon's own to
// come back to. Holding the fd keeps the namespace alive until unregister,
// so a file read after the container died fails cleanly instead of landing
// in a recycled one.
type nsSet [nsKinds]*os.File

// openNS opens pid's namespaces (pid 0: the daemon's own).
func openNS(pid int) (nsSet, error) {
	var s nsSet
	base := "/proc/self/ns/"
	if pid != 0 {
		base = fmt.Sprintf("/proc/%d/ns/", pid)
	}
	for k := nsNet; k < nsKinds; k++ {
		f, err := os.Open(base + nsNames[k])
		if err != nil {
			s.close()
			return nsSet{}, fmt.Errorf("open %s namespace: %w", nsNames[k], err)
		}
		s[k] = f
	}
	return s, nil
}

func (s *nsSet) close() {
	for i, f := range s {
		if f != nil {
			f.Close()
			s[i] = nil
		}
	}
}

// stuckThreads counts threads left in a container's namespace (never, short
// of a kernel refusing setns into the daemon's own namespace). After one,
// namespace ops leave the FUSE reader (serve.go), which is long-lived.
var stuckThreads atomic.Int32

// inNS runs fn on the calling goroutine's OS thread, moved into target's
// namespace of kind k, then puts the thread back in home's. Two setns
// calls: microseconds, where re-executing a helper would cost milliseconds
// and handing fn to a thread of its own, as this once did, a wakeup of
// that thread and of the caller (about 50 µs each in a VM).
//
// fn must only make syscalls (open/read/write the daemon's own /proc, which
// resolves /proc/sys/net, ipc and uts files in the opener's namespaces). If
// the thread cannot go back, it stays locked to the calling goroutine:
// callers are FUSE op goroutines, which end, or the FUSE reader, which then
// stops taking namespace ops (stuckThreads).
func inNS(k nsKind, target, home *os.File, fn func() error) error {
	if k == nsHost {
		return fn()
	}
	if target == nil {
		return errNotStarted
	}
	runtime.LockOSThread()
	if err := unix.Setns(int(target.Fd()), nsFlags[k]); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("setns %s: %w", nsNames[k], err)
	}
	err := fn()
	if rerr := unix.Setns(int(home.Fd()), nsFlags[k]); rerr != nil {
		stuckThreads.Add(1)
		// The thread stays locked to its goroutine: the runtime ends it
		// with the goroutine, and no other goroutine runs in there.
		return errors.Join(err, fmt.Errorf("thread stuck in a container's namespace: setns back to own %s: %w", nsNames[k], rerr))
	}
	runtime.UnlockOSThread()
	return err
}
