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

// inCaller runs fn on a fresh OS thread that sees the filesystem as the
// caller does: its mount namespace, root and cwd. host, if set, runs first
// on the same thread while it is still in the agent's mount namespace (to
// open host-side sources); netns, if >= 0, is joined before host (sysfs
// takes the network namespace of its mounter). The thread is never given
// back: its goroutine ends locked and the Go runtime ends the thread, so
// nothing it changed (fs root, namespaces, credentials, umask) can reach
// another goroutine. The cost is a thread creation, tens of microseconds.
//
// inCaller waits for fn; finishIn (below) does not, and is faster.
func inCaller(c *callerFiles, netns int, host, fn func() error) error {
	errc := make(chan error, 1)
	onThread(func() { errc <- runIn(c, netns, host, fn) })
	return <-errc
}

// finishIn is inCaller for a handler's last step: the worker thread
// answers the call itself, with done's verdict on fn's error, and closes
// c. Waiting for the thread instead would cost the time the Go runtime
// takes to run the waiting goroutine again while the worker's thread is
// being torn down: hundreds of microseconds on a busy machine.
func (cl call) finishIn(c *callerFiles, netns int, host, fn func() error, done func(error) answer) answer {
	// A container's calls wait for one of its slots: however many it makes
	// at once, it holds a bounded share of the agent's threads.
	cl.s.slots <- struct{}{}
	cl.s.workers.Add(1)
	onThread(func() {
		defer cl.s.workers.Done()
		defer func() { <-cl.s.slots }()
		err := runIn(c, netns, host, fn)
		c.close()
		cl.answer(done(err))
	})
	return answerLater
}

// spareThreads are OS threads made ahead of need, each locked to a
// goroutine waiting for one job: handing a job to one is a wake-up, where
// making a thread would be a clone on the call's path.
var (
	spareThreads = make(chan func())
	startSpares  sync.Once
)

const nSpareThreads = 2

// threadSlots bounds the worker threads alive at once: Go aborts a process
// past 10000 threads, and a container could otherwise ask for that many.
var threadSlots = make(chan struct{}, 128)

// onThread runs job on a locked OS thread with its own fs_struct, which
// ends with the job.
func onThread(job func()) {
	threadSlots <- struct{}{}
	inner := job
	job = func() {
		defer func() { <-threadSlots }()
		inner()
	}
	startSpares.Do(func() {
		for range nSpareThreads {
			go spareThread()
		}
	})
	select {
	case spareThreads <- job:
	default:
		go func() {
			runtime.LockOSThread()
			unshareFS()
			job()
		}()
	}
}

func spareThread() {
	runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
	unshareFS()
	job := <-spareThreads
	go spareThread() // the replacement, made while this one works
	job()
}

// unshareFS gives the thread its own fs_struct: Go's threads share one, and
// setns(mnt) refuses a thread that shares it. Should it fail (ENOMEM), the
// job's setns fails with EINVAL and its call gets that error.
func unshareFS() { _ = unix.Unshare(unix.CLONE_FS) }

// runIn is inCaller's work, on the calling (locked, throwaway) thread.
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
