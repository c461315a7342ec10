package trap

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// target is where a caller's path leads, as the caller sees it.
type target struct {
	mntID     uint64
	dev       string // the filesystem's major:minor, as mountinfo has it
	mountRoot bool   // the path is its mount's root (what umount needs)
	fsType    int64  // statfs f_type, if asked for (0 if not)
	// mount is the mount the path lands on, from the caller's mountinfo;
	// read only when asked for (found says whether it was; not found: a
	// detached mount, from open_tree). all: the whole mountinfo then.
	mount mountEntry
	found bool
	all   []mountEntry
}

// below lists t.mount and every mount under it (what AT_RECURSIVE covers).
func (t target) below() []mountEntry {
	out := []mountEntry{t.mount}
	in := map[int]bool{t.mount.id: true}
	for _, m := range t.all {
		// mountinfo lists parents before their children.
		if in[m.parent] && !in[m.id] {
			in[m.id] = true
			out = append(out, m)
		}
	}
	return out
}

// resolve looks path up the way the caller's own call would: in its mount
// namespace, from its root and cwd (or dirfd), following the last symlink
// if follow. withType: find the filesystem type too (a statfs, which most
// callers spare). If want says the filesystem (t.dev, t.fsType) is of
// interest, the mount is looked up in the caller's mountinfo too.
func resolve(c call, dirfd int32, path string, follow, withType bool, want func(t target) bool) (target, error) {
	return resolveAt(c, dirfd, path, follow, withType, false, want)
}

// resolveAt is resolve where, if emptyPath (AT_EMPTY_PATH and its kin), an
// empty path names dirfd itself.
func resolveAt(c call, dirfd int32, path string, follow, withType, emptyPath bool, want func(t target) bool) (target, error) {
	var t target
	var stx unix.Statx_t
	var fs unix.Statfs_t
	arg, err := openPathArg(c.tid(), path)
	if err != nil {
		return t, err
	}
	if path == "" && emptyPath {
		// The file dirfd names (AT_EMPTY_PATH), through the host's /proc.
		base := "cwd"
		if dirfd != unix.AT_FDCWD {
			base = fmt.Sprintf("fd/%d", dirfd)
		}
		if arg.fd, err = unix.Open(fmt.Sprintf("/proc/%d/%s", c.tid(), base), unix.O_PATH|unix.O_CLOEXEC, 0); err != nil {
			return t, err
		}
	}
	if arg.fd >= 0 {
		stx, fs, err = statMount(arg.fd, withType)
		arg.close()
	} else {
		stx, fs, err = lookupFast(c.tid(), dirfd, path, follow, withType)
	}
	if err != nil && arg.fd < 0 {
		stx, fs, err = lookupSlow(c, dirfd, path, follow, withType)
	}
	if err != nil {
		return t, err
	}
	if stx.Mask&unix.STATX_MNT_ID == 0 {
		return t, errors.New("statx: no mount id (Linux < 5.8)")
	}
	t.mntID = stx.Mnt_id
	t.dev = fmt.Sprintf("%d:%d", stx.Dev_major, stx.Dev_minor)
	t.fsType = int64(fs.Type)
	t.mountRoot = true
	if stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0 {
		t.mountRoot = stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0
	}
	if want == nil || !want(t) {
		return t, nil
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", c.tid()))
	if err != nil {
		return t, err
	}
	ms, err := parseMountinfo(b)
	if err != nil {
		return t, err
	}
	t.mount, t.found = findMount(ms, int(t.mntID))
	t.all = ms
	return t, nil
}

// lookupFast resolves without entering the caller's namespaces: openat2
// from the caller's root (an absolute path, RESOLVE_IN_ROOT: the root acts
// as a chroot, as it does for the caller) or from its cwd or dirfd (a
// relative path that stays beneath it, RESOLVE_BENEATH). Paths that leave
// that ground (.. above the cwd, an absolute symlink from a relative path,
// a /proc magic link) fail here and take lookupSlow.
func lookupFast(tid int, dirfd int32, path string, follow, withType bool) (unix.Statx_t, unix.Statfs_t, error) {
	var stx unix.Statx_t
	var fs unix.Statfs_t
	if path == "" {
		return stx, fs, unix.ENOENT
	}
	var base string
	var resolveFlags uint64 = unix.RESOLVE_NO_MAGICLINKS
	switch {
	case path[0] == '/':
		base = fmt.Sprintf("/proc/%d/root", tid)
		resolveFlags |= unix.RESOLVE_IN_ROOT
	case dirfd == unix.AT_FDCWD:
		base = fmt.Sprintf("/proc/%d/cwd", tid)
		resolveFlags |= unix.RESOLVE_BENEATH
	default:
		base = fmt.Sprintf("/proc/%d/fd/%d", tid, dirfd)
		resolveFlags |= unix.RESOLVE_BENEATH
	}
	bfd, err := unix.Open(base, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return stx, fs, err
	}
	defer unix.Close(bfd)
	how := unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: resolveFlags}
	if !follow {
		how.Flags |= unix.O_NOFOLLOW
	}
	fd, err := unix.Openat2(bfd, path, &how)
	if err != nil {
		return stx, fs, err
	}
	defer unix.Close(fd)
	return statMount(fd, withType)
}

// lookupSlow resolves on a thread that entered the caller's view, so
// symlinks, "..", chroots and mounts resolve exactly as for the caller.
func lookupSlow(c call, dirfd int32, path string, follow, withType bool) (unix.Statx_t, unix.Statfs_t, error) {
	var stx unix.Statx_t
	var fs unix.Statfs_t
	cf, err := openCaller(c.tid(), dirfd)
	if err != nil {
		return stx, fs, err
	}
	defer cf.close()
	err = c.inCaller(cf, -1, nil, func() error {
		flags := unix.O_PATH | unix.O_CLOEXEC
		if !follow {
			flags |= unix.O_NOFOLLOW
		}
		fd, err := unix.Openat(cf.dirfd(), path, flags, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		stx, fs, err = statMount(fd, withType)
		return err
	})
	return stx, fs, err
}

func statMount(fd int, withType bool) (unix.Statx_t, unix.Statfs_t, error) {
	var stx unix.Statx_t
	var fs unix.Statfs_t
	// DONT_SYNC: a FUSE file's mount id and device need no round trip to
	// its server.
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH|unix.AT_STATX_DONT_SYNC, unix.STATX_MNT_ID, &stx); err != nil {
		return stx, fs, err
	}
	if !withType {
		return stx, fs, nil
	}
	err := unix.Fstatfs(fd, &fs)
	return stx, fs, err
}
