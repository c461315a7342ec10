package trap

import (
	"strings"

	"golang.org/x/sys/unix"

	"github.com/sysbox-dev/sysbox/internal/ipc"
)

func init() {
	register(unix.SYS_UMOUNT2, "umount2", umount2)
}

// umount2: the container's /proc, /sys and views stay where the runtime
// put them; anything else (what the container mounted itself, a procfs the
// agent made for it) unmounts as usual.
func umount2(c call) answer {
	path, err := c.str(0)
	if err != nil {
		return continueCall
	}
	flags := int(c.arg(1))
	if m, ok := c.protectedAt(unix.AT_FDCWD, path, flags&unix.UMOUNT_NOFOLLOW == 0, false); ok {
		c.s.log.Debug("refused umount", "tid", c.tid(), "path", path, "mount", m.point)
		return errnoAnswer(unix.EBUSY)
	}
	return continueCall
}

// protectedAt reports whether the mount at (dirfd, path), as the caller
// sees it, is one of the container's /proc, /sys, their covers and views,
// or a copy of one in another mount namespace: what must stay in place.
func (c call) protectedAt(dirfd int32, path string, follow, emptyPath bool) (mountEntry, bool) {
	l := c.s.layout()
	views := c.s.views()
	viewDev := ""
	if len(views) > 0 {
		var err error
		if viewDev, err = c.s.ct.sources.dev(views[0].Source); err != nil {
			c.s.log.Debug("find the views' device", "err", err)
		}
	}
	want := func(t target) bool { return l.protectedDev(t.dev) || t.dev == viewDev }
	t, err := resolveAt(c, dirfd, path, follow, false, emptyPath, want)
	if err != nil || !t.mountRoot || !t.found {
		return mountEntry{}, false // the kernel gives the same error, or EINVAL
	}
	return t.mount, l.isProtected(t.mount) || isViewOf(views, t.mount)
}

// isViewOf reports whether m is one of views where the runtime put it (or
// its copy in another mount namespace): a FUSE mount at a view's container
// path that shows that view. The layout cannot tell: the runtime binds the
// views after it handed the notify fd over, so they are not yet in the
// mountinfo the layout was read from.
func isViewOf(views []ipc.FsMount, m mountEntry) bool {
	if !strings.HasPrefix(m.fstype, "fuse") || m.root == "/" {
		return false
	}
	for _, v := range views {
		// The source is the view's host path on the FUSE mount; the
		// mount's root is the same path inside that filesystem.
		if v.Dest == m.point && strings.HasSuffix(v.Source, m.root) {
			return true
		}
	}
	return false
}
