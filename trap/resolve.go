package trap

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// target is where a caller's path leads, as the caller sees it.
type target struct {
	mount     mountEntry // the mount the path lands on, from the caller's mountinfo
	mountRoot bool       // the path is that mount's root (what umount needs)
	fsType    int64      // statfs f_type
}

// resolve looks path up the way the caller's own call would: in its mount
// namespace, from its root and cwd (or dirfd), following the last symlink
// if follow. The lookup runs on a thread that entered the caller's view, so
// symlinks, "..", chroots and mounts resolve exactly as for the caller.
func resolve(c call, dirfd int32, path string, follow bool) (target, error) {
	cf, err := openCaller(c.tid(), dirfd)
	if err != nil {
		return target{}, err
	}
	defer cf.close()
	var stx unix.Statx_t
	var fs unix.Statfs_t
	err = inCaller(cf, -1, nil, func() error {
		flags := unix.O_PATH | unix.O_CLOEXEC
		if !follow {
			flags |= unix.O_NOFOLLOW
		}
		fd, err := unix.Openat(cf.dirfd(), path, flags, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_MNT_ID, &stx); err != nil {
			return err
		}
		return unix.Fstatfs(fd, &fs)
	})
	if err != nil {
		return target{}, err
	}
	if stx.Mask&unix.STATX_MNT_ID == 0 {
		return target{}, errors.New("statx: no mount id (Linux < 5.8)")
	}
	t := target{fsType: int64(fs.Type), mountRoot: true}
	if stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0 {
		t.mountRoot = stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", c.tid()))
	if err != nil {
		return target{}, err
	}
	ms, err := parseMountinfo(b)
	if err != nil {
		return target{}, err
	}
	m, ok := findMount(ms, int(stx.Mnt_id))
	if !ok {
		return target{}, fmt.Errorf("mount %d not in the caller's mountinfo", stx.Mnt_id)
	}
	t.mount = m
	return t, nil
}
