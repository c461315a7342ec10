package mgr

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// mountEntry is the part of a /proc/self/mountinfo line the manager needs.
type mountEntry struct {
	Point  string
	FSType string
	Super  string // super block options (overlay's lowerdir=…,upperdir=…)
}

// parseMountinfo reads mountinfo lines: the mount point is field 5, and the
// fields after the "-" separator are fstype, source, super options.
func parseMountinfo(b []byte) []mountEntry {
	var out []mountEntry
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if len(f) < 5 || sep < 0 {
			continue
		}
		e := mountEntry{Point: unescapeMount(f[4])}
		if sep+1 < len(f) {
			e.FSType = f[sep+1]
		}
		if sep+3 < len(f) {
			e.Super = f[sep+3]
		}
		out = append(out, e)
	}
	return out
}

// unescapeMount undoes the kernel's octal escapes (\040 for a space, …).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func readMounts() ([]mountEntry, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	return parseMountinfo(b), nil
}

// overlayUpper returns the upper dir of the overlay mounted at point, if
// point is one (the last mount there is the visible one).
func overlayUpper(mounts []mountEntry, point string) string {
	upper := ""
	for _, m := range mounts {
		if m.Point != point {
			continue
		}
		upper = ""
		if m.FSType != "overlay" {
			continue
		}
		for _, o := range splitOverlayOpts(m.Super) {
			if v, ok := strings.CutPrefix(o, "upperdir="); ok {
				upper = v
			}
		}
	}
	return upper
}

// splitOverlayOpts splits on commas that overlayfs did not escape.
func splitOverlayOpts(s string) []string {
	var out []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s):
			cur.WriteByte(s[i+1])
			i++
		case s[i] == ',':
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(s[i])
		}
	}
	return append(out, cur.String())
}

// mountsUnder lists the mount points at or below dir, deepest first.
func mountsUnder(mounts []mountEntry, dir string) []string {
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
	mounts, err := readMounts()
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
	mounts, err := readMounts()
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
