package probe

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// fuseFacts is what the FUSE probe found.
type fuseFacts struct {
	devErr     error // /dev/fuse missing or not the FUSE device
	fsKnown    bool  // "fuse" in /proc/filesystems
	mountErr   error
	cleanupErr error
}

func fuseResult(f fuseFacts) Result {
	r := Result{Name: "fuse"}
	switch {
	case f.devErr != nil:
		r.Status, r.Detail = Fail, fmt.Sprintf("/dev/fuse: %v", f.devErr)
		r.Remedy = "use a kernel with CONFIG_FUSE_FS and create the device: mknod -m 666 /dev/fuse c 10 229"
	case f.mountErr != nil:
		r.Status, r.Detail = Fail, fmt.Sprintf("test mount failed: %v", f.mountErr)
		r.Remedy = "use a kernel with CONFIG_FUSE_FS (fuse must be listed in /proc/filesystems)"
		if !f.fsKnown {
			r.Detail += "; fuse is not in /proc/filesystems"
		}
	default:
		r.Status, r.Detail = OK, "/dev/fuse present; a test FUSE mount and unmount worked"
	}
	if f.cleanupErr != nil {
		r.Status = Fail
		r.Detail += fmt.Sprintf("; cleanup failed: %v", f.cleanupErr)
		r.Remedy = "remove the leftover directory named above by hand (unmount it first)"
	}
	return r
}

// checkFuseDevice verifies /dev/fuse is character device 10:229.
func checkFuseDevice() error {
	var st unix.Stat_t
	if err := unix.Stat("/dev/fuse", &st); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return errors.New("does not exist")
		}
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != 10 || unix.Minor(st.Rdev) != 229 {
		return fmt.Errorf("is not the FUSE character device 10:229 (mode %o, %d:%d)", st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	return nil
}

func probeFUSE(h host) Result {
	f := fuseFacts{fsKnown: hasFilesystem("fuse"), devErr: checkFuseDevice()}
	if f.devErr != nil {
		return fuseResult(f)
	}
	if !h.root {
		return needsRoot("fuse")
	}
	err := inPrivateMountNS(func() error {
		s, err := newScratch("", ".sysbox-check-fuse-")
		if err != nil {
			f.mountErr = err
			return nil
		}
		defer func() { f.cleanupErr = s.Close() }()
		f.mountErr = fuseMount(s)
		return nil
	})
	if err != nil && f.mountErr == nil {
		f.mountErr = err
	}
	return fuseResult(f)
}

// fuseMount mounts a FUSE filesystem with no server under s and unmounts
// it. The kernel queues its INIT request and the mount succeeds; nothing may
// touch the mount meanwhile (it would wait for a reply), and the unmount
// needs none. Should the unmount fail, closing the device fd aborts the
// connection, which frees anything waiting, and a lazy unmount follows.
func fuseMount(s *scratch) error {
	dir := filepath.Join(s.dir, "mnt")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open /dev/fuse: %w", err)
	}
	defer func() {
		if fd >= 0 {
			unix.Close(fd)
		}
	}()
	opts := fmt.Sprintf("fd=%d,rootmode=40000,user_id=0,group_id=0", fd)
	if err := unix.Mount("sysbox-check", dir, "fuse.sysbox-check", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mount -t fuse: %w", err)
	}
	if err := unix.Unmount(dir, 0); err != nil {
		unix.Close(fd)
		fd = -1
		s.mounted(dir) // Close retries, lazily if need be
		return fmt.Errorf("unmount the test mount: %w", err)
	}
	return nil
}
