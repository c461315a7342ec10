package mgr

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/sysbox-dev/sysbox/internal/ipc"
)

// specialDirs are where inner engines keep overlayfs layers and other state
// that cannot live on the container's own overlay rootfs: each gets a host
// dir DATA_ROOT/<kind>/<container-id>.
var specialDirs = []struct{ Kind, Dest string }{
	{"docker", "/var/lib/docker"},
	{"containerd", "/var/lib/containerd"},
	{"kubelet", "/var/lib/kubelet"},
	{"k0s", "/var/lib/k0s"},
	{"k3s", "/var/lib/rancher/k3s"},
	{"rke2", "/var/lib/rancher/rke2"},
	{"buildkit", "/var/lib/buildkit"},
}

// checkDataRoot refuses filesystems that cannot back inner engines' layers
// for good: tmpfs and ramfs vanish at reboot, and overlayfs cannot be the
// upper layer of another overlay.
func checkDataRoot(root string) error {
	// The data root may not exist yet: its nearest existing parent is on
	// the filesystem it will be created on.
	probe := root
	for {
		if _, err := os.Stat(probe); err == nil || probe == "/" {
			break
		}
		probe = filepath.Dir(probe)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(probe, &st); err != nil {
		return fmt.Errorf("statfs %s: %w", probe, err)
	}
	var kind string
	switch int64(st.Type) {
	case unix.TMPFS_MAGIC:
		kind = "tmpfs"
	case unix.RAMFS_MAGIC:
		kind = "ramfs"
	case unix.OVERLAYFS_SUPER_MAGIC:
		kind = "overlayfs"
	default:
		return nil
	}
	return fmt.Errorf("data root %s is on %s: inner Docker, containerd and kubelet keep overlayfs layers there, which needs a disk filesystem such as ext4, xfs or btrfs; pass --data-root a directory on one", root, kind)
}

// userMounted tells whether the spec already mounts dest or a dir above it:
// a user's volume wins over a special dir.
func userMounted(dest string, mounted []string) bool {
	for _, m := range mounted {
		if m == "" {
			continue
		}
		c := filepath.Clean(m)
		if c == dest || c == "/" || strings.HasPrefix(dest, c+"/") {
			return true
		}
	}
	return false
}

// kernelMounts are the host's modules and headers for the running kernel,
// read-only, so inner tools (modprobe of an already loaded module, DKMS
// checks, eBPF builds) find them.
func kernelMounts() []ipc.MgrMount {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return nil
	}
	return kernelMountsIn("/", unix.ByteSliceToString(uts.Release[:]))
}

// kernelMountsIn looks for release's modules and headers under root (a test
// tree, or "/"); destinations are the paths a host has them at.
func kernelMountsIn(root, release string) []ipc.MgrMount {
	var out []ipc.MgrMount
	seen := map[string]bool{}
	add := func(dest string) bool {
		real, err := filepath.EvalSymlinks(filepath.Join(root, dest))
		if err != nil || seen[real] {
			return false
		}
		if st, err := os.Stat(real); err != nil || !st.IsDir() {
			return false
		}
		seen[real] = true
		out = append(out, ipc.MgrMount{Source: real, Dest: dest, ReadOnly: true})
		return true
	}
	add("/lib/modules/" + release)
	for _, h := range []string{"/usr/src/linux-headers-" + release, "/usr/src/kernels/" + release} {
		if !add(h) {
			continue
		}
		// Debian splits headers: the arch dir links into a -common sibling.
		ents, _ := os.ReadDir(filepath.Join(root, h))
		for _, e := range ents {
			if e.Type()&fs.ModeSymlink == 0 {
				continue
			}
			t, err := os.Readlink(filepath.Join(root, h, e.Name()))
			if err != nil {
				continue
			}
			if !filepath.IsAbs(t) {
				t = filepath.Join(h, t)
			}
			if sib, ok := strings.CutPrefix(filepath.Clean(t), "/usr/src/"); ok {
				if top, _, _ := strings.Cut(sib, "/"); top != "" && "/usr/src/"+top != h {
					add("/usr/src/" + top)
				}
			}
		}
	}
	return out
}

// probeIdmap checks, with a real id-mapped mount of a dir under root, that
// the data root's filesystem supports id-mapped mounts. A file owned by 0 on
// disk must show as the user namespace's host base through the mount.
func probeIdmap(root string) error {
	const base = 1000000000
	tmp, err := os.MkdirTemp(root, ".idmap-probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	f, err := os.OpenFile(filepath.Join(tmp, "f"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	f.Close()
	if err := os.Lchown(f.Name(), 0, 0); err != nil {
		return err
	}
	ns, err := newUserns(base, BlockSize)
	if err != nil {
		return fmt.Errorf("create a user namespace: %w", err)
	}
	defer ns.Close()
	tree, err := unix.OpenTree(unix.AT_FDCWD, tmp, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return fmt.Errorf("open_tree: %w", err)
	}
	defer unix.Close(tree)
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(ns.Fd())}
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, &attr); err != nil {
		return fmt.Errorf("mount_setattr idmap: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstatat(tree, "f", &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("stat through the id-mapped mount: %w", err)
	}
	if st.Uid != base {
		return fmt.Errorf("id-mapped mount shows uid %d, want %d", st.Uid, base)
	}
	return nil
}

// newUserns returns a user namespace mapping 0 to base (size ids). Its owner
// is a child started traced: it stops right after exec, never runs a
// single instruction of the program, and is killed and reaped here once its
// namespace is open.
func newUserns(base, size int) (*os.File, error) {
	// The tracer is this thread; keep it for the child's whole life.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	idmap := []syscall.SysProcIDMap{{ContainerID: 0, HostID: base, Size: size}}
	p, err := os.StartProcess("/proc/self/exe", []string{"sysbox-mgr-userns"}, &os.ProcAttr{
		Sys: &syscall.SysProcAttr{
			Cloneflags:  syscall.CLONE_NEWUSER,
			UidMappings: idmap,
			GidMappings: idmap,
			Ptrace:      true,
			Pdeathsig:   syscall.SIGKILL,
		},
	})
	if err != nil {
		return nil, err
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", p.Pid))
	_ = p.Kill()
	for {
		var ws unix.WaitStatus
		_, werr := unix.Wait4(p.Pid, &ws, unix.WALL, nil)
		if errors.Is(werr, unix.EINTR) {
			continue
		}
		if werr != nil || ws.Exited() || ws.Signaled() {
			break
		}
	}
	_ = p.Release()
	if err != nil {
		return nil, err
	}
	return f, nil
}

// openInRoot opens path (absolute, inside the container) under the rootfs,
// resolving symlinks as the container would: never out of the rootfs.
func openInRoot(rootfs, path string) (int, error) {
	root, err := unix.Open(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	defer unix.Close(root)
	return unix.Openat2(root, strings.TrimPrefix(path, "/"), &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
}

// fillDir makes the host dir for d: owned by the container's root (0 when
// the mount is id-mapped, the range base when it is not) and holding a copy
// of what the image has at d.Dest.
func fillDir(d dir, rootfs string, base uint32) error {
	shift := uint32(0)
	if !d.Idmap {
		shift = base
	}
	if err := os.MkdirAll(filepath.Dir(d.Path), 0o711); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(d.Path), err)
	}
	if err := os.Mkdir(d.Path, 0o700); err != nil {
		if !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create %s: %w", d.Path, err)
		}
		if err := clearTree(d.Path); err != nil {
			return err
		}
	}
	dst, err := unix.Open(d.Path, openDir, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", d.Path, err)
	}
	defer unix.Close(dst)
	uid, gid, mode := int(shift), int(shift), uint32(0o700)
	src, err := openInRoot(rootfs, d.Dest)
	switch {
	case err == nil:
		defer unix.Close(src)
		var st unix.Stat_t
		if err := unix.Fstat(src, &st); err != nil {
			return fmt.Errorf("stat %s in %s: %w", d.Dest, rootfs, err)
		}
		c := &copier{shift: shift}
		uid, gid, mode = c.id(st.Uid), c.id(st.Gid), st.Mode&0o7777
		if err := copyTree(src, dst, shift); err != nil {
			return fmt.Errorf("copy %s of the image into %s: %w", d.Dest, d.Path, err)
		}
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR):
		// Nothing in the image there (or not a dir): start empty.
	case errors.Is(err, unix.ELOOP):
		slog.Warn("the image's path is a symlink loop: special dir starts empty", "path", d.Dest, "rootfs", rootfs)
	default:
		return fmt.Errorf("open %s in %s: %w", d.Dest, rootfs, err)
	}
	if err := unix.Fchown(dst, uid, gid); err != nil {
		return fmt.Errorf("chown %s: %w", d.Path, err)
	}
	if err := unix.Fchmod(dst, mode); err != nil {
		return fmt.Errorf("chmod %s: %w", d.Path, err)
	}
	return nil
}
