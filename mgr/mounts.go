package mgr

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/sysbox-dev/sysbox/internal/mountinfo"
)

// overlayUpper returns the upper dir of the overlay mounted at point, if
// point is one (the last mount there is the visible one).
func overlayUpper(mounts []mountinfo.Entry, point string) string {
	upper := ""
	for _, m := range mounts {
		if m.Point != point {
			continue
		}
		upper = ""
		if m.FSType != "overlay" {
			continue
		}
		for _, o := range mountinfo.SplitOptions(m.Super) {
			if v, ok := strings.CutPrefix(o, "upperdir="); ok {
				upper = v
			}
		}
	}
	return upper
}

// mountsUnder lists the mount points at or below dir, deepest first.
func mountsUnder(mounts []mountinfo.Entry, dir string) []string {
	var out []string
	for _, m := range mounts {
		if m.Point == dir || strings.HasPrefix(m.Point, dir+"/") {
			out = append(out, m.Point)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// removeTree deletes dir and everything in it. Whatever is mounted inside is
// detached first, so the delete never walks into another filesystem.
func removeTree(dir string) error {
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	mounts, err := mountinfo.Self()
	if err != nil {
		return err
	}
	for _, p := range mountsUnder(mounts, dir) {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("unmount %s: %w", p, err)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return nil
}

// clearTree empties dir (keeping it), detaching mounts inside first.
func clearTree(dir string) error {
	mounts, err := mountinfo.Self()
	if err != nil {
		return err
	}
	for _, p := range mountsUnder(mounts, dir) {
		if p == dir {
			continue
		}
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("unmount %s: %w", p, err)
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read %s: %w", dir, err)
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("empty %s: %w", dir, err)
		}
	}
	return nil
}

// isMountRoot tells whether p is the root of a mount.
func isMountRoot(p string) bool {
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW|unix.AT_NO_AUTOMOUNT, unix.STATX_TYPE, &stx); err != nil {
		return false
	}
	if stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0 {
		return stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0
	}
	// Older kernels: a device change against the parent (misses binds).
	var parent unix.Statx_t
	if p == "/" || unix.Statx(unix.AT_FDCWD, filepath.Dir(p), unix.AT_SYMLINK_NOFOLLOW, unix.STATX_TYPE, &parent) != nil {
		return true
	}
	return stx.Dev_major != parent.Dev_major || stx.Dev_minor != parent.Dev_minor
}

// mountRootOf is the mount point holding p: the nearest existing ancestor
// (p included) that is a mount root.
func mountRootOf(p string) string {
	for q := filepath.Clean(p); ; q = filepath.Dir(q) {
		if q == "/" || q == "." {
			return "/"
		}
		if _, err := os.Lstat(q); err == nil && isMountRoot(q) {
			return q
		}
	}
}
