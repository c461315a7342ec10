package trap

import "golang.org/x/sys/unix"

func init() {
	register(unix.SYS_UMOUNT2, "umount2", umount2)
}

// umount2: the container's /proc, /sys and views stay where the runtime
// put them; anything else (what the container mounted itself, a procfs the
// agent made for it) unmounts as usual.
func umount2(c call) answer {
	l := c.s.layout()
	if l == nil || len(l.protected) == 0 {
		return continueCall
	}
	path, err := c.str(0)
	if err != nil {
		return continueCall
	}
	flags := int(c.arg(1))
	t, err := resolve(c, unix.AT_FDCWD, path, flags&unix.UMOUNT_NOFOLLOW == 0, l.protectedDev)
	if err != nil || !t.mountRoot {
		return continueCall // the kernel gives the same error, or EINVAL
	}
	if t.found && l.isProtected(t.mount) {
		c.s.log.Debug("refused umount", "tid", c.tid(), "path", path, "mount", t.mount.point)
		return errnoAnswer(unix.EBUSY)
	}
	return continueCall
}
