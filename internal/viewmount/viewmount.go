// Package viewmount binds the fs daemon's views over their paths inside a
// running container's mount namespace: the runtime does it once the rootfs
// is built, and the fs daemon does it again over dead views when it comes
// back after a restart.
package viewmount

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

// Mount binds the fs daemon's views over their paths in the mount
// namespace of the container's init pid. The runtime calls it once
// libcontainer has built the rootfs and before the user's process runs:
// libcontainer refuses bind mounts inside /proc (/proc/sys, /proc/uptime…),
// so they cannot be spec mounts. With replace, whatever is mounted at a
// view's path is detached first (the dead views of an fs daemon that was
// restarted, and what was mounted on them).
//
// It also puts an empty read-only tmpfs on the mount points of the kernel
// filesystems a user namespace cannot mount (kernelStubs), so that systemd
// finds them mounted (and reaches "running", not "degraded") instead of
// failing to mount debugfs and tracefs there.
func Mount(pid int, views []ipc.FsMount, rootUID, rootGID uint32, replace bool) error {
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
			if replace {
				// A dead FUSE mount answers ENOTCONN to everything but
				// its unmount. EINVAL: nothing mounted there.
				if err := unix.Unmount(v.Dest, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
					slog.Warn("detach a view", "path", v.Dest, "err", err)
				}
			}
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
		for _, k := range kernelStubs {
			mountStub(k.path, k.source, rootUID, rootGID)
		}
		errc <- nil
	}()
	return <-errc
}

// kernelStubs are the mount points of host-wide kernel filesystems that
// systemd mounts at boot and that no user namespace may mount; the
// container sees an empty directory there either way (the fs daemon shows
// them empty). Only those the container's /sys/kernel has are mounted.
var kernelStubs = []struct{ path, source string }{
	{"/sys/kernel/debug", "debugfs"},
	{"/sys/kernel/tracing", "tracefs"},
	{"/sys/kernel/config", "configfs"},
}

// mountStub mounts an empty read-only tmpfs named source on path when path
// is a directory that is not a mount point yet, owned by the container's
// root (as the real one is by the host's). Best effort: without it only
// systemd's mount unit fails.
func mountStub(path, source string, uid, gid uint32) {
	var st, parent unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		slog.Debug("no empty mount for a kernel filesystem: not a directory", "path", path, "err", err)
		return
	}
	if unix.Lstat(path+"/..", &parent) == nil && parent.Dev != st.Dev {
		slog.Debug("no empty mount for a kernel filesystem: a mount point already", "path", path)
		return
	}
	if err := unix.Mount(source, path, "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, fmt.Sprintf("mode=700,size=4k,nr_inodes=1,uid=%d,gid=%d", uid, gid)); err != nil {
		slog.Warn("empty mount for a kernel filesystem", "path", path, "err", err)
	}
}
