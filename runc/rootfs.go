package runc

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/sysbox-dev/sysbox/internal/ipc"
	"github.com/sysbox-dev/sysbox/internal/mountinfo"
)

// rootfsMount is the container's id-mapped view of its rootfs. It lives on
// the host only until the container's mount namespace holds it.
type rootfsMount struct {
	path string
	// release unmounts the host's copy; the empty dir stays until the
	// container is deleted, since libcontainer starts exec'd processes
	// from the rootfs path.
	release func()
	// remove also removes the dir (a failed create).
	remove func()
}

// removeRootfsDir removes what mountRootfs left for a container.
func removeRootfsDir(id string) {
	dir := filepath.Join(rootfsDir, id)
	_ = unix.Unmount(filepath.Join(dir, "rootfs"), unix.MNT_DETACH)
	_ = os.Remove(filepath.Join(dir, "rootfs"))
	_ = os.Remove(dir)
}

// mountRootfs shows the image's files to the container with their own
// owners, without chowning anything: an engine's overlay rootfs is rebuilt
// over id-mapped layers; a plain directory gets an id-mapped bind.
func mountRootfs(id string, s *specs.Spec) (*rootfsMount, error) {
	src := s.Root.Path
	dir := filepath.Join(rootfsDir, id)
	target := filepath.Join(dir, "rootfs")
	if err := privateDir(rootfsDir); err != nil {
		return nil, err
	}
	if err := os.Mkdir(dir, 0o711); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("%s exists: a container %s is being created under another --root; pick another id", dir, id)
		}
		return nil, err
	}
	if err := os.Mkdir(target, 0o700); err != nil {
		_ = os.Remove(dir)
		return nil, err
	}
	var once sync.Once
	rm := &rootfsMount{path: target, release: func() {
		once.Do(func() {
			if err := unix.Unmount(target, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
				slog.Warn("unmount rootfs", "path", target, "err", err)
			}
		})
	}}
	rm.remove = func() {
		rm.release()
		removeRootfsDir(id)
	}
	userns, err := usernsFd(s.Linux.UIDMappings, s.Linux.GIDMappings)
	if err != nil {
		rm.remove()
		return nil, err
	}
	defer unix.Close(userns)

	mi, err := mountAt(src)
	if err != nil {
		rm.remove()
		return nil, err
	}
	if mi != nil && mi.FSType == "overlay" {
		uid, gid := rootIDs(s)
		err = mountIdmappedOverlay(src, mi.Super, target, userns, uid, gid)
	} else {
		err = bindIdmapped(src, target, userns)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOTSUP) {
			slog.Warn("the rootfs filesystem cannot be id-mapped: chowning it into the container's range instead", "path", src, "err", err)
			rm.remove()
			if err := shiftOwners(src, s.Linux.UIDMappings[0].HostID, s.Linux.GIDMappings[0].HostID, s.Linux.UIDMappings[0].Size); err != nil {
				return nil, err
			}
			return &rootfsMount{path: src, release: func() {}, remove: func() {}}, nil
		}
	}
	if err != nil {
		rm.remove()
		return nil, fmt.Errorf("id-mapped rootfs for %s: %w", src, err)
	}
	return rm, nil
}

// rootfsDir holds the rootfs mounts while containers are created. The
// container's root must be able to walk to its rootfs, so every dir on the
// way is searchable (0711) though not listable.
var rootfsDir = ipc.RunDir + "/rootfs"

// privateDir makes dir a private mount, so the rootfs mounts under it are
// neither propagated to other namespaces nor unmounted by propagation.
func privateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return err
	}
	for d := dir; d != "/"; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(d, fi.Mode().Perm()|0o011); err != nil {
				return err
			}
		}
	}
	mi, err := mountAt(dir)
	if err != nil {
		return err
	}
	if mi == nil {
		if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s: %w", dir, err)
		}
	}
	if err := unix.Mount("", dir, "", unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make %s private: %w", dir, err)
	}
	return nil
}

// mountAt finds the topmost mount whose mount point is path (nil if path is
// not a mount point).
func mountAt(path string) (*mountinfo.Entry, error) {
	es, err := mountinfo.Self()
	if err != nil {
		return nil, err
	}
	if top, ok := mountinfo.Top(es, path); ok {
		return &top, nil
	}
	return nil, nil
}

// overlayLayers reads lowerdir, upperdir and workdir from overlay super
// options. Relative dirs (an engine's short form for long lists) are taken
// relative to base.
func overlayLayers(super, base string) (lower []string, upper, work string, err error) {
	for _, o := range mountinfo.SplitOptions(super) {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "lowerdir":
			for _, l := range strings.Split(v, ":") {
				if l != "" {
					lower = append(lower, abs(base, l))
				}
			}
		case "upperdir":
			upper = abs(base, v)
		case "workdir":
			work = abs(base, v)
		}
	}
	if len(lower) == 0 {
		return nil, "", "", fmt.Errorf("overlay without lowerdir: %q", super)
	}
	if (upper == "") != (work == "") {
		return nil, "", "", fmt.Errorf("overlay with upperdir but no workdir: %q", super)
	}
	return lower, upper, work, nil
}

// carriedOverlayOpts are the engine's overlay options a second mount over
// the same dirs must repeat.
func carriedOverlayOpts(super string) []string {
	var out []string
	for _, o := range mountinfo.SplitOptions(super) {
		k, _, _ := strings.Cut(o, "=")
		switch k {
		case "userxattr", "metacopy", "redirect_dir", "xino", "uuid":
			out = append(out, o)
		}
	}
	return out
}

func abs(base, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(base, p)
}

// commonDir is the deepest directory holding every path.
func commonDir(paths []string) string {
	if len(paths) == 0 {
		return "/"
	}
	common := filepath.Clean(paths[0])
	for _, p := range paths[1:] {
		p = filepath.Clean(p)
		for common != "/" && p != common && !strings.HasPrefix(p, common+"/") {
			common = filepath.Dir(common)
		}
	}
	return common
}

// mountIdmappedOverlay mounts at target a new overlay over the same layers
// as the engine's, seen through one id-mapped mount of their common parent.
func mountIdmappedOverlay(rootfs, super, target string, userns int, uid, gid uint32) error {
	// Docker's merged dir is <layers>/<id>/merged; its short lowerdirs are
	// relative to <layers>.
	lower, upper, work, err := overlayLayers(super, filepath.Dir(filepath.Dir(rootfs)))
	if err != nil {
		return err
	}
	all := []string{}
	for i, l := range lower {
		if r, err := filepath.EvalSymlinks(l); err == nil {
			lower[i] = r
		}
		all = append(all, lower[i])
	}
	if upper != "" {
		all = append(all, upper, work)
	}
	base := commonDir(all)
	fd, err := idmappedTree(base, userns)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	via := func(p string) string {
		rel, _ := filepath.Rel(base, p)
		return "/proc/self/fd/" + strconv.Itoa(fd) + "/" + rel
	}
	var opts []string
	ls := make([]string, len(lower))
	for i, l := range lower {
		ls[i] = via(l)
	}
	opts = append(opts, "lowerdir="+strings.Join(ls, ":"))
	if upper != "" {
		// A work dir of our own beside the engine's: two mounts cannot
		// share one (a volatile mount, as Podman makes, marks its work dir
		// so no other mount may use it). The engine removes it with the
		// container's layer dir.
		own := filepath.Join(filepath.Dir(work), "sysbox-work")
		if err := os.Mkdir(own, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create overlay work dir: %w", err)
		}
		opts = append(opts, "upperdir="+via(upper), "workdir="+via(own))
	}
	// The engine's own mount still uses the same upper dir; without an
	// index that is allowed (and nothing writes through the engine's).
	opts = append(opts, "index=off")
	// Features the engine's layers were written with must match.
	opts = append(opts, carriedOverlayOpts(super)...)
	data := strings.Join(opts, ",")
	if len(data) >= os.Getpagesize() {
		return fmt.Errorf("too many image layers (%d) for one overlay mount", len(lower))
	}
	// overlayfs works in its upper and work dirs with the mounter's
	// credentials. Host root has no id in the layers' mapping (EOVERFLOW),
	// so mount with the fsuid of the container's root, keeping every
	// capability.
	if err := withFsIDs(uid, gid, func() error {
		// Read-write even for --read-only: libcontainer creates the mount
		// points first and makes the root read-only at the end.
		return unix.Mount("overlay", target, "overlay", 0, data)
	}); err != nil {
		return fmt.Errorf("mount overlay on id-mapped layers (engine's options %q): %w", super, err)
	}
	return nil
}

// withFsIDs runs fn on a thread whose fsuid and fsgid are uid and gid and
// whose effective capabilities are the runtime's. The thread is never
// handed back to the Go scheduler: it ends with fn's goroutine.
func withFsIDs(uid, gid uint32, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // no unlock: the thread dies with its credentials
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var caps [2]unix.CapUserData
		if err := unix.Capget(&hdr, &caps[0]); err != nil {
			errc <- fmt.Errorf("capget: %w", err)
			return
		}
		unix.Setfsgid(int(gid))
		unix.Setfsuid(int(uid))
		// Changing fsuid from 0 drops the file capabilities; put them back.
		if err := unix.Capset(&hdr, &caps[0]); err != nil {
			errc <- fmt.Errorf("capset: %w", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// bindIdmapped puts at target an id-mapped bind of src.
func bindIdmapped(src, target string, userns int) error {
	fd, err := idmappedTree(src, userns)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.MoveMount(fd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move id-mapped mount to %s: %w", target, err)
	}
	return nil
}

// idmappedTree returns a detached, id-mapped clone of the mount at path.
func idmappedTree(path string, userns int) (int, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, path, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("open_tree %s: %w", path, err)
	}
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(userns)}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, attr); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("id-map %s: %w", path, err)
	}
	return fd, nil
}

// usernsFd returns a user namespace with the container's mappings. The
// process that owns it is stopped by ptrace before it runs anything, and
// is killed once we hold the namespace.
func usernsFd(uids, gids []specs.LinuxIDMapping) (int, error) {
	toSys := func(m []specs.LinuxIDMapping) []syscall.SysProcIDMap {
		var out []syscall.SysProcIDMap
		for _, x := range m {
			out = append(out, syscall.SysProcIDMap{ContainerID: int(x.ContainerID), HostID: int(x.HostID), Size: int(x.Size)})
		}
		return out
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p, err := os.StartProcess("/proc/self/exe", []string{"sysbox-userns"}, &os.ProcAttr{Sys: &syscall.SysProcAttr{
		Cloneflags:  unix.CLONE_NEWUSER,
		UidMappings: toSys(uids),
		GidMappings: toSys(gids),
		Ptrace:      true,
	}})
	if err != nil {
		return -1, fmt.Errorf("create user namespace for id-mapped mounts: %w", err)
	}
	defer func() {
		_ = p.Kill()
		_, _ = p.Wait()
	}()
	fd, err := unix.Open("/proc/"+strconv.Itoa(p.Pid)+"/ns/user", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open user namespace: %w", err)
	}
	return fd, nil
}

// shiftOwners is the fallback where the kernel cannot id-map: it moves
// every owner below size into the range starting at uid/gid.
func shiftOwners(root string, uid, gid, size uint32) error {
	return filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		nu, ng := int(st.Uid), int(st.Gid)
		if st.Uid < size {
			nu = int(uid + st.Uid)
		}
		if st.Gid < size {
			ng = int(gid + st.Gid)
		}
		if nu == int(st.Uid) && ng == int(st.Gid) {
			return nil
		}
		mode := fi.Mode()
		if err := os.Lchown(p, nu, ng); err != nil {
			return err
		}
		// chown clears setuid/setgid bits; put them back.
		if mode&(os.ModeSetuid|os.ModeSetgid) != 0 && mode&os.ModeSymlink == 0 {
			return os.Chmod(p, mode)
		}
		return nil
	})
}
