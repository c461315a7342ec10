package mgr

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// copier copies an image's tree into a host dir as root: owners (shifted by
// shift, which is 0 when the dir is id-mapped), modes, times, xattrs
// (overlayfs whiteouts and opaque markers of a preloaded /var/lib/docker
// included), hard links and device nodes. Everything goes through directory
// fds with O_NOFOLLOW: a symlink in an image is copied, never followed.
type copier struct {
	shift   uint32
	dstRoot int
	links   map[[2]uint64]string // (dev, ino) of a source file -> its first copy, relative to dstRoot
}

// copyTree copies the contents of the dir open at src into the dir open at dst.
func copyTree(src, dst int, shift uint32) error {
	c := &copier{shift: shift, dstRoot: dst, links: map[[2]uint64]string{}}
	return c.dir(src, dst, "")
}

func (c *copier) id(v uint32) int {
	if v+c.shift < v {
		return int(v)
	}
	return int(v + c.shift)
}

func readNames(fd int) ([]string, error) {
	d, err := unix.Dup(fd)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(d), "dir")
	defer f.Close()
	return f.Readdirnames(-1)
}

func (c *copier) dir(src, dst int, rel string) error {
	names, err := readNames(src)
	if err != nil {
		return fmt.Errorf("read %s: %w", rel, err)
	}
	for _, name := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(src, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			return fmt.Errorf("stat %s: %w", path.Join(rel, name), err)
		}
		if err := c.entry(src, dst, name, path.Join(rel, name), &st); err != nil {
			return err
		}
	}
	return nil
}

const openDir = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC

func (c *copier) entry(src, dst int, name, rel string, st *unix.Stat_t) error {
	uid, gid := c.id(st.Uid), c.id(st.Gid)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if err := unix.Mkdirat(dst, name, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("mkdir %s: %w", rel, err)
		}
		sfd, err := unix.Openat(src, name, openDir, 0)
		if err != nil {
			return fmt.Errorf("open %s: %w", rel, err)
		}
		defer unix.Close(sfd)
		dfd, err := unix.Openat(dst, name, openDir, 0)
		if err != nil {
			return fmt.Errorf("open copy of %s: %w", rel, err)
		}
		defer unix.Close(dfd)
		if err := c.dir(sfd, dfd, rel); err != nil {
			return err
		}
		return c.meta(sfd, dfd, dst, name, rel, st, uid, gid)
	case unix.S_IFREG:
		if st.Nlink > 1 {
			key := [2]uint64{st.Dev, st.Ino}
			if first, ok := c.links[key]; ok {
				if err := unix.Linkat(c.dstRoot, first, dst, name, 0); err != nil {
					return fmt.Errorf("link %s: %w", rel, err)
				}
				return nil
			}
			c.links[key] = rel
		}
		sfd, err := unix.Openat(src, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open %s: %w", rel, err)
		}
		sf := os.NewFile(uintptr(sfd), rel)
		defer sf.Close()
		dfd, err := unix.Openat(dst, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return fmt.Errorf("create %s: %w", rel, err)
		}
		df := os.NewFile(uintptr(dfd), rel)
		defer df.Close()
		// *os.File to *os.File: copy_file_range, reflinks where the fs can.
		if _, err := io.Copy(df, sf); err != nil {
			return fmt.Errorf("copy %s: %w", rel, err)
		}
		return c.meta(sfd, dfd, dst, name, rel, st, uid, gid)
	case unix.S_IFLNK:
		buf := make([]byte, unix.PathMax)
		n, err := unix.Readlinkat(src, name, buf)
		if err != nil {
			return fmt.Errorf("readlink %s: %w", rel, err)
		}
		if err := unix.Symlinkat(string(buf[:n]), dst, name); err != nil {
			return fmt.Errorf("symlink %s: %w", rel, err)
		}
		if err := unix.Fchownat(dst, name, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("chown %s: %w", rel, err)
		}
		return c.times(dst, name, rel, st)
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO:
		if err := unix.Mknodat(dst, name, st.Mode, int(st.Rdev)); err != nil {
			return fmt.Errorf("mknod %s: %w", rel, err)
		}
		if err := unix.Fchownat(dst, name, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("chown %s: %w", rel, err)
		}
		if err := unix.Fchmodat(dst, name, st.Mode&0o7777, 0); err != nil {
			return fmt.Errorf("chmod %s: %w", rel, err)
		}
		return c.times(dst, name, rel, st)
	}
	// Sockets are bound by a live process; a copy means nothing.
	return nil
}

// meta sets owner, then mode (chown clears set-id bits), then xattrs (chown
// clears security.capability), then times (the writes above change them).
func (c *copier) meta(sfd, dfd, dstDir int, name, rel string, st *unix.Stat_t, uid, gid int) error {
	if err := unix.Fchown(dfd, uid, gid); err != nil {
		return fmt.Errorf("chown %s: %w", rel, err)
	}
	if err := unix.Fchmod(dfd, st.Mode&0o7777); err != nil {
		return fmt.Errorf("chmod %s: %w", rel, err)
	}
	if err := copyXattrs(sfd, dfd); err != nil {
		return fmt.Errorf("xattrs of %s: %w", rel, err)
	}
	return c.times(dstDir, name, rel, st)
}

func (c *copier) times(dir int, name, rel string, st *unix.Stat_t) error {
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(dir, name, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times of %s: %w", rel, err)
	}
	return nil
}

func copyXattrs(src, dst int) error {
	names, err := listXattrs(src)
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) {
			return nil
		}
		return err
	}
	for _, n := range names {
		v, err := getXattr(src, n)
		if err != nil {
			if errors.Is(err, unix.ENODATA) {
				continue
			}
			return err
		}
		if err := unix.Fsetxattr(dst, n, v, 0); err != nil {
			// A name the destination fs does not take (an LSM label of
			// another system, …) is not worth failing the copy for.
			if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EPERM) {
				continue
			}
			return fmt.Errorf("set %s: %w", n, err)
		}
	}
	return nil
}

func listXattrs(fd int) ([]string, error) {
	size, err := unix.Flistxattr(fd, nil)
	if err != nil || size == 0 {
		return nil, err
	}
	buf := make([]byte, size)
	size, err = unix.Flistxattr(fd, buf)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range strings.Split(string(buf[:size]), "\x00") {
		if n != "" {
			out = append(out, n)
		}
	}
	return out, nil
}

func getXattr(fd int, name string) ([]byte, error) {
	size, err := unix.Fgetxattr(fd, name, nil)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, size)
	size, err = unix.Fgetxattr(fd, name, buf)
	if err != nil {
		return nil, err
	}
	return buf[:size], nil
}
