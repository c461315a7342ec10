package runc

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/sysbox-dev/sysbox/internal/ipc"
)

// mountViews binds the fs daemon's views over their paths in the mount
// namespace of the container's init, once libcontainer has built its
// rootfs and before the user's process runs. libcontainer refuses bind
// mounts inside /proc (/proc/sys, /proc/uptime…), so they cannot be spec
// mounts.
func mountViews(pid int, views []ipc.FsMount) error {
	if len(views) == 0 {
		return nil
	}
	// Clone the sources here, where the daemon's mount is visible.
	fds := make([]int, 0, len(views))
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	for _, v := range views {
		fd, err := unix.OpenTree(unix.AT_FDCWD, v.Source, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
		if err != nil {
			return fmt.Errorf("view %s: %w", v.Source, err)
		}
		fds = append(fds, fd)
	}
	ns, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/ns/mnt", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("container mount namespace: %w", err)
	}
	defer unix.Close(ns)

	errc := make(chan error, 1)
	go func() {
		// This thread changes its mount namespace and root: it is never
		// handed back to the scheduler and ends with the goroutine.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("unshare fs: %w", err)
			return
		}
		if err := unix.Setns(ns, unix.CLONE_NEWNS); err != nil {
			errc <- fmt.Errorf("enter container mount namespace: %w", err)
			return
		}
		for i, v := range views {
			if _, err := os.Lstat(v.Dest); err != nil {
				if errors.Is(err, os.ErrNotExist) {
					slog.Debug("view target absent in the container", "path", v.Dest)
					continue
				}
				errc <- fmt.Errorf("view target %s: %w", v.Dest, err)
				return
			}
			if err := unix.MoveMount(fds[i], "", unix.AT_FDCWD, v.Dest, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
				errc <- fmt.Errorf("mount view over %s: %w", v.Dest, err)
				return
			}
		}
		errc <- nil
	}()
	return <-errc
}
