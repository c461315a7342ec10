package probe

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// onThrowawayThread runs fn on an OS thread that ends when fn returns, for
// work that changes thread state it can't undo (a mount namespace, a seccomp
// filter). The goroutine never unlocks, so Go ends the thread with it;
// except the main thread, which Go parks instead, so from there the work
// hops to another thread while the main one stays locked out of reach.
func onThrowawayThread(fn func()) {
	done := make(chan struct{})
	var run func(hopped bool)
	run = func(hopped bool) {
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() && !hopped {
			go run(true)
			<-done
			runtime.UnlockOSThread()
			return
		}
		defer close(done)
		fn()
	}
	go run(false)
	<-done
}

// inPrivateMountNS runs fn on a throwaway thread with its own mount
// namespace and private propagation: whatever fn mounts is invisible to the
// host and to every other thread, and goes away with the thread.
func inPrivateMountNS(fn func() error) error {
	var err error
	onThrowawayThread(func() {
		if err = unix.Unshare(unix.CLONE_NEWNS); err != nil {
			err = fmt.Errorf("unshare mount namespace: %w", err)
			return
		}
		if err = unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			err = fmt.Errorf("make mounts private: %w", err)
			return
		}
		err = fn()
	})
	return err
}

// scratch is a temporary directory holding probe mounts. Close unmounts them
// in reverse order and removes the directory only once nothing is mounted
// inside, so a removal can never reach into a mounted filesystem.
type scratch struct {
	dir    string
	mounts []string
}

func newScratch(parent, pattern string) (*scratch, error) {
	dir, err := os.MkdirTemp(parent, pattern)
	if err != nil {
		return nil, err
	}
	return &scratch{dir: dir}, nil
}

// mounted records a mount point for Close to unmount.
func (s *scratch) mounted(path string) { s.mounts = append(s.mounts, path) }

func (s *scratch) Close() error {
	var errs []error
	for i := len(s.mounts) - 1; i >= 0; i-- {
		if err := unmount(s.mounts[i]); err != nil {
			errs = append(errs, err)
		}
	}
	s.mounts = nil
	if len(errs) > 0 {
		return fmt.Errorf("left %s in place: %w", s.dir, errors.Join(errs...))
	}
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("remove %s: %w", s.dir, err)
	}
	return nil
}

// unmount tries a plain unmount, then a lazy one if something holds it.
func unmount(path string) error {
	err := unix.Unmount(path, 0)
	if err == nil {
		return nil
	}
	if err2 := unix.Unmount(path, unix.MNT_DETACH); err2 != nil {
		return fmt.Errorf("unmount %s: %w (lazy: %w)", path, err, err2)
	}
	return nil
}
