package trap

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// The new mount API reaches what mount(2) and umount2(2) are guarded
// against: mount_setattr(2) makes a mount writable, move_mount(2) takes a
// mount away from its place. The runtime must trap both for these to run.

func init() {
	register(unix.SYS_MOUNT_SETATTR, "mount_setattr", mountSetattr)
	register(unix.SYS_MOVE_MOUNT, "move_mount", moveMount)
}

// mountSetattr: a mount that started read-only (or a bind or clone of
// one) stays read-only, as with mount(2)'s remount.
func mountSetattr(c call) answer {
	l := c.s.layout()
	if !l.hasReadOnly() {
		return continueCall
	}
	// struct mount_attr: attr_set, attr_clr, propagation, userns_fd.
	if c.arg(4) < 16 || c.arg(3) == 0 {
		return continueCall // the kernel refuses it
	}
	var attr [16]byte
	if n, err := readMem(c.tid(), c.arg(3), attr[:]); err != nil || n != len(attr) {
		return continueCall // the kernel finds the same fault
	}
	if binary.NativeEndian.Uint64(attr[8:])&unix.MOUNT_ATTR_RDONLY == 0 {
		return continueCall
	}
	var path string
	if c.arg(1) != 0 {
		var err error
		if path, err = c.str(1); err != nil {
			return continueCall
		}
	}
	flags := c.arg(2)
	recursive := flags&unix.AT_RECURSIVE != 0
	// Only a mount on a read-only filesystem can be one, unless the whole
	// tree below it counts: the caller's mountinfo is read for those alone.
	t, err := resolveAt(c, int32(c.arg(0)), path, flags&unix.AT_SYMLINK_NOFOLLOW == 0, false, flags&unix.AT_EMPTY_PATH != 0,
		func(t target) bool { return recursive || l.readOnlyDev(t.dev) })
	if err != nil || !t.mountRoot {
		return continueCall
	}
	if !t.found {
		// A detached mount (open_tree): its mounts are nowhere to be
		// read. A clone of a read-only filesystem, or a whole tree,
		// stays as it is.
		if l.readOnlyDev(t.dev) || recursive {
			return errnoAnswer(unix.EPERM)
		}
		return continueCall
	}
	ms := []mountEntry{t.mount}
	if recursive {
		ms = t.below()
	}
	for _, m := range ms {
		if l.isReadOnly(m) {
			c.s.log.Debug("refused mount_setattr read-write", "tid", c.tid(), "mount", m.point)
			return errnoAnswer(unix.EPERM)
		}
	}
	return continueCall
}

// moveMount: the container's /proc, /sys and views stay where they are,
// as with mount(2)'s MS_MOVE. EINVAL, the kernel's answer for a locked
// mount.
func moveMount(c call) answer {
	var path string
	if c.arg(1) != 0 {
		var err error
		if path, err = c.str(1); err != nil {
			return continueCall
		}
	}
	flags := c.arg(4)
	m, ok := c.protectedAt(int32(c.arg(0)), path, flags&unix.MOVE_MOUNT_F_SYMLINKS != 0, flags&unix.MOVE_MOUNT_F_EMPTY_PATH != 0)
	if ok {
		c.s.log.Debug("refused move_mount", "tid", c.tid(), "mount", m.point)
		return errnoAnswer(unix.EINVAL)
	}
	return continueCall
}
