package trap

import (
	"fmt"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// callerFiles are a calling thread's root, cwd and mount namespace (and the
// call's dirfd), opened through the host's /proc before entering: once a
// thread has joined the caller's mount namespace, the host's /proc is out of
// its sight.
type callerFiles struct {
	tid            int
	root, cwd, mnt int
	dir            int // the call's dirfd, reopened; -1 for AT_FDCWD
}

func openCaller(tid int, dirfd int32) (*callerFiles, error) {
	c := &callerFiles{tid: tid, root: -1, cwd: -1, mnt: -1, dir: -1}
	var err error
	open := func(name string, flags int) int {
		if err != nil {
			return -1
		}
		var fd int
		fd, err = unix.Open(fmt.Sprintf("/proc/%d/%s", tid, name), flags|unix.O_CLOEXEC, 0)
		if err != nil {
			err = fmt.Errorf("open /proc/%d/%s: %w", tid, name, err)
			return -1
		}
		return fd
	}
	c.root = open("root", unix.O_PATH|unix.O_DIRECTORY)
	c.cwd = open("cwd", unix.O_PATH|unix.O_DIRECTORY)
	c.mnt = open("ns/mnt", unix.O_RDONLY)
	if dirfd != unix.AT_FDCWD {
		if dirfd < 0 {
			err = unix.EBADF
		}
		c.dir = open(fmt.Sprintf("fd/%d", dirfd), unix.O_PATH)
	}
	if err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

func (c *callerFiles) close() {
	for _, fd := range []int{c.root, c.cwd, c.mnt, c.dir} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}

// dirfd is the fd a *at call resolves against on the entered thread.
func (c *callerFiles) dirfd() int {
	if c.dir >= 0 {
		return c.dir
	}
	return unix.AT_FDCWD
}

// thread is a receiver's OS thread. A receiver goroutine is locked to its
// thread for its whole life, and the thread has its own fs_struct (Go's
// threads share one, and setns(mnt) refuses a thread that shares it). A
// handler that must see the filesystem as its caller does enters the
// caller's namespaces right there, on the receiver's thread, then puts the
// thread back as the agent's (restore). Handing the work to another thread
// instead would cost a wake-up through the Go scheduler, whose goroutine is
// locked to a sleeping thread: tens to hundreds of microseconds, more than
// the rest of a procfs mount.
//
// A thread that could not be put back, or whose credentials a handler
// changed (mknod), is dirty: its receiver ends after the call, and with it
// the thread (a goroutine that exits locked takes its thread along), so
// nothing it changed ever reaches another goroutine.
type thread struct {
	dirty bool
}

// home is what restore puts a thread back to: the agent's mount and
// network namespaces, root, cwd and umask.
type home struct {
	mnt, net, root, cwd int
	umask               int
}

// agentHome is opened once, by the first receiver before it changes
// anything but its fs_struct (a copy of the process's): every thread that
// is not locked is in the agent's namespaces.
var agentHome = sync.OnceValues(func() (*home, error) {
	h := &home{}
	var err error
	open := func(path string, flags int) int {
		if err != nil {
			return -1
		}
		var fd int
		if fd, err = unix.Open(path, flags|unix.O_CLOEXEC, 0); err != nil {
			err = fmt.Errorf("open %s: %w", path, err)
		}
		return fd
	}
	h.mnt = open("/proc/thread-self/ns/mnt", unix.O_RDONLY)
	h.net = open("/proc/thread-self/ns/net", unix.O_RDONLY)
	h.root = open("/", unix.O_PATH|unix.O_DIRECTORY)
	h.cwd = open(".", unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		for _, fd := range []int{h.mnt, h.net, h.root, h.cwd} {
			if fd >= 0 {
				unix.Close(fd)
			}
		}
		return nil, err
	}
	// Read and set back (there is no other way to read it), on the
	// calling thread's own fs_struct: the process's stays as it is.
	h.umask = unix.Umask(0o022)
	unix.Umask(h.umask)
	return h, nil
})

// newThread locks the calling goroutine (a receiver) to its thread for
// good and gives the thread its own fs_struct.
func newThread() (*thread, error) {
	runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return nil, fmt.Errorf("unshare fs: %w", err)
	}
	if _, err := agentHome(); err != nil {
		return nil, err
	}
	return &thread{}, nil
}

// run runs fn on this thread in the caller's mount namespace, root and cwd
// (see runIn), then puts the thread back. A failure to put it back makes
// the thread dirty; fn's error is what the call gets either way.
func (th *thread) run(c *callerFiles, netns int, host, fn func() error) error {
	err := runIn(c, netns, host, fn)
	if rerr := th.restore(netns >= 0); rerr != nil {
		th.dirty = true
	}
	return err
}

// restore puts the thread back in the agent's namespaces, root, cwd and
// umask.
func (th *thread) restore(net bool) error {
	h, err := agentHome()
	if err != nil {
		return err
	}
	if net {
		if err := unix.Setns(h.net, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("setns agent net: %w", err)
		}
	}
	// setns(mnt) also moves root and cwd to the namespace's root.
	if err := unix.Setns(h.mnt, unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("setns agent mnt: %w", err)
	}
	if err := unix.Fchdir(h.root); err != nil {
		return err
	}
	if err := unix.Chroot("."); err != nil {
		return err
	}
	if err := unix.Fchdir(h.cwd); err != nil {
		return err
	}
	unix.Umask(h.umask)
	return nil
}

// inCaller runs fn on the receiver's thread so that it sees the filesystem
// as the caller does: its mount namespace, root and cwd. host, if set, runs
// first while the thread is still in the agent's mount namespace (to open
// host-side sources); netns, if >= 0, is joined before host (sysfs takes
// the network namespace of its mounter).
func (cl call) inCaller(c *callerFiles, netns int, host, fn func() error) error {
	return cl.th.run(c, netns, host, fn)
}

// finishIn is inCaller for a handler's last step: it closes c and returns
// done's verdict on fn's error.
func (cl call) finishIn(c *callerFiles, netns int, host, fn func() error, done func(error) answer) answer {
	err := cl.th.run(c, netns, host, fn)
	c.close()
	return done(err)
}

// runIn is inCaller's work, on the receiver's (locked) thread.
func runIn(c *callerFiles, netns int, host, fn func() error) error {
	if netns >= 0 {
		if err := unix.Setns(netns, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("setns net: %w", err)
		}
	}
	if host != nil {
		if err := host(); err != nil {
			return err
		}
	}
	if err := enterFS(c); err != nil {
		return err
	}
	return fn()
}

// enterFS moves the thread into c's mount namespace, root and cwd.
func enterFS(c *callerFiles) error {
	if err := unix.Setns(c.mnt, unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("setns mnt: %w", err)
	}
	if err := unix.Fchdir(c.root); err != nil {
		return fmt.Errorf("enter caller's root: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot to caller's root: %w", err)
	}
	if err := unix.Fchdir(c.cwd); err != nil {
		return fmt.Errorf("enter caller's cwd: %w", err)
	}
	return nil
}
