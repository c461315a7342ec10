package trap

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

func init() {
	if sysMknod >= 0 {
		register(sysMknod, "mknod", func(c call) answer {
			return mknod(c, unix.AT_FDCWD, c.arg(0), c.arg(1), c.arg(2))
		})
	}
	register(unix.SYS_MKNODAT, "mknodat", func(c call) answer {
		return mknod(c, int32(c.arg(0)), c.arg(1), c.arg(2), c.arg(3))
	})
}

// device is a device number.
type device struct{ major, minor uint32 }

// safeDevices may be created inside a container: they give no access to
// the host's hardware or to other containers, and system software expects
// to make them (Docker's /dev setup, VPNs need tun, rootless builders fuse).
// Everything else a container asks for is refused.
var safeDevices = map[device]string{
	{1, 3}: "null", {1, 5}: "zero", {1, 7}: "full", {1, 8}: "random", {1, 9}: "urandom",
	{5, 0}:    "tty",
	{10, 200}: "net/tun",
	{10, 229}: "fuse",
}

// DeviceRules are the character devices the agent creates: the runtime's
// devices cgroup must allow them ("c major:minor rwm") for the nodes to
// work once made.
func DeviceRules() [][2]uint32 {
	out := make([][2]uint32, 0, len(safeDevices))
	for d := range safeDevices {
		out = append(out, [2]uint32{d.major, d.minor})
	}
	return out
}

type mknodVerdict int

const (
	mknodContinue mknodVerdict = iota // the kernel decides (fifos, sockets, files, whiteouts)
	mknodRefuse                       // a device not on the list: EPERM
	mknodCreate                       // a safe device: the agent makes it
)

// decodeMknod reads mknod's mode and dev the way the kernel does: mode is a
// umode_t, dev a 32-bit new-style device number.
func decodeMknod(modeArg, devArg uint64) (mode uint32, dev device) {
	mode = uint32(uint16(modeArg))
	d := uint32(devArg)
	return mode, device{major: (d & 0xfff00) >> 8, minor: (d & 0xff) | ((d >> 12) & 0xfff00)}
}

func classifyMknod(mode uint32, dev device) mknodVerdict {
	switch mode & unix.S_IFMT {
	case unix.S_IFCHR:
		if dev == (device{}) {
			// The overlayfs whiteout: the kernel lets anyone make it.
			return mknodContinue
		}
		if _, ok := safeDevices[dev]; ok {
			return mknodCreate
		}
		return mknodRefuse
	case unix.S_IFBLK:
		return mknodRefuse
	default:
		return mknodContinue
	}
}

func mknod(c call, dirfd int32, pathArg, modeArg, devArg uint64) answer {
	mode, dev := decodeMknod(modeArg, devArg)
	switch classifyMknod(mode, dev) {
	case mknodContinue:
		return continueCall
	case mknodRefuse:
		return errnoAnswer(unix.EPERM)
	}
	path, err := readString(c.tid(), pathArg, pathMax)
	if err != nil {
		return fail(err)
	}
	cr, err := readCreds(c.tid())
	if err != nil {
		return fail(err)
	}
	// What the kernel asks of a host process: CAP_MKNOD, here counted in
	// the caller's own user namespace.
	if !cr.has(capMknod) {
		return errnoAnswer(unix.EPERM)
	}
	uids, err1 := readIDMap(fmt.Sprintf("/proc/%d/uid_map", c.tid()))
	gids, err2 := readIDMap(fmt.Sprintf("/proc/%d/gid_map", c.tid()))
	if err := errors.Join(err1, err2); err != nil {
		return fail(err)
	}
	cf, err := openCaller(c.tid(), dirfd)
	if err != nil {
		return fail(err)
	}
	if !c.valid() {
		cf.close()
		return errnoAnswer(unix.ENOENT)
	}
	// makeNode takes the caller's credentials: the thread cannot be put
	// back, and goes with its receiver.
	c.th.dirty = true
	return c.finishIn(cf, -1, nil, func() error {
		return makeNode(cf.dirfd(), path, mode, dev, cr, uids, gids)
	}, func(err error) answer {
		if err != nil {
			return fail(err)
		}
		c.s.log.Debug("mknod", "tid", c.tid(), "path", path, "dev", safeDevices[dev])
		return success
	})
}

// splitPath splits a mknod path into its parent ("" for the dirfd itself)
// and last component, refusing what mknod cannot create.
func splitPath(p string) (dir, base string, err error) {
	if p == "" {
		return "", "", unix.ENOENT
	}
	if strings.HasSuffix(p, "/") {
		return "", "", unix.ENOENT
	}
	i := strings.LastIndexByte(p, '/')
	dir, base = p[:i+1], p[i+1:]
	if base == "." || base == ".." {
		return "", "", unix.EEXIST
	}
	if dir != "/" {
		dir = strings.TrimRight(dir, "/")
		if dir == "" && strings.HasPrefix(p, "/") {
			dir = "/"
		}
	}
	return dir, base, nil
}

// makeNode runs on a thread inside the caller's mount namespace, root and
// cwd. It takes the caller's file-system identity (fsuid, fsgid, groups,
// umask), so the kernel itself checks the directory's permissions, applies
// the umask and makes the caller own the node; only CAP_MKNOD is added
// (and CAP_DAC_OVERRIDE where the caller holds it over the directory).
func makeNode(dirfd int, path string, mode uint32, dev device, cr creds, uids, gids []idRange) error {
	dir, base, err := splitPath(path)
	if err != nil {
		return err
	}
	if cr.hasUmask {
		unix.Umask(int(cr.umask))
	}
	// A tmpfs of the agent's, for the fallback below: made while the
	// thread still has its own identity, so its root is root's 1777 dir.
	nodes, nodesErr := nodeTmpfs()
	if nodesErr == nil {
		defer unix.Close(nodes)
	}
	if err := becomeCaller(cr); err != nil {
		return err
	}
	pfd := dirfd
	if dir != "" {
		pfd, err = unix.Openat(dirfd, dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(pfd)
	}
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, "", &st, unix.AT_EMPTY_PATH); err != nil {
		return err
	}
	caps, err := effectiveCaps()
	if err != nil {
		return err
	}
	withCaps := caps.with(capMknod)
	if cr.has(capDacOverride) && mapped(uids, st.Uid) && mapped(gids, st.Gid) {
		withCaps = withCaps.with(capDacOverride)
	}
	if err := withCaps.set(); err != nil {
		return err
	}
	rdev := int(unix.Mkdev(dev.major, dev.minor))
	err = unix.Mknodat(pfd, base, mode, rdev)
	switch {
	case err == nil:
		// Open with DAC override so a mode like 0200 does not pass for
		// an unusable node.
		ok := caps.with(capDacOverride).set() == nil && usable(pfd, base)
		if err := withCaps.set(); err != nil {
			return err
		}
		if ok {
			return nil
		}
		// A filesystem mounted inside a user namespace (the container's
		// /dev tmpfs) never opens device nodes: bind one of the agent's.
		_ = unix.Unlinkat(pfd, base, 0)
	case errors.Is(err, unix.EPERM):
		// The filesystem made the node with other credentials than ours
		// (overlayfs uses its mounter's), which may not make devices.
	default:
		return err
	}
	if nodesErr != nil {
		return fmt.Errorf("tmpfs for device nodes: %w", nodesErr)
	}
	return bindNode(pfd, base, mode, rdev, nodes)
}

// usable reports whether the node just made opens. A node on a nodev mount
// stays as made: that is what the mount asked for.
func usable(pfd int, base string) bool {
	var fs unix.Statfs_t
	if err := unix.Fstatfs(pfd, &fs); err == nil && fs.Flags&unix.ST_NODEV != 0 {
		return true
	}
	fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err == nil {
		unix.Close(fd)
		return true
	}
	// EACCES is the kernel's answer for a device on a filesystem that may
	// hold none; any other error (ENXIO: /dev/tty without a terminal) comes
	// from the driver, so the node works.
	return !errors.Is(err, unix.EACCES)
}

// nodeTmpfs is a detached tmpfs mounted by the agent: its superblock
// belongs to the host's user namespace, so device nodes on it open.
func nodeTmpfs() (int, error) {
	fs, err := unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, err
	}
	defer unix.Close(fs)
	if err := unix.FsconfigSetString(fs, "size", "4k"); err != nil {
		return -1, err
	}
	if err := unix.FsconfigCreate(fs); err != nil {
		return -1, err
	}
	return unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NOEXEC)
}

// bindNode makes an empty file at base (as the caller, so the directory's
// permissions are checked) and binds over it a node made on the agent's
// tmpfs. The node is owned by the caller; it shows in the container as a
// mount point (rm says EBUSY: umount it first).
func bindNode(pfd int, base string, mode uint32, rdev, nodes int) error {
	if err := unix.Mknodat(pfd, base, unix.S_IFREG|(mode&0o7777), 0); err != nil {
		return err
	}
	err := func() error {
		if err := unix.Mknodat(nodes, "node", mode, rdev); err != nil {
			return fmt.Errorf("make node on the agent's tmpfs: %w", err)
		}
		node, err := unix.OpenTree(nodes, "node", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
		if err != nil {
			return fmt.Errorf("clone node: %w", err)
		}
		defer unix.Close(node)
		if err := unix.MoveMount(node, "", pfd, base, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
			return fmt.Errorf("bind node: %w", err)
		}
		return nil
	}()
	if err != nil {
		_ = unix.Unlinkat(pfd, base, 0)
	}
	return err
}

// becomeCaller gives the thread the caller's file-system identity. The
// kernel then drops the thread's file-system capabilities (CAP_MKNOD and
// CAP_DAC_OVERRIDE among them) from its effective set; CAP_SYS_ADMIN stays.
// Only this thread changes: these are raw per-thread syscalls, not the Go
// runtime's all-threads setuid family.
func becomeCaller(cr creds) error {
	groups := make([]int, len(cr.groups))
	for i, g := range cr.groups {
		groups[i] = int(g)
	}
	if err := unix.Setgroups(groups); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := unix.Setfsgid(int(cr.fsgid)); err != nil {
		return err
	}
	if err := unix.Setfsuid(int(cr.fsuid)); err != nil {
		return err
	}
	if got, _ := unix.SetfsuidRetUid(-1); got != int(cr.fsuid) {
		return fmt.Errorf("setfsuid %d: still %d", cr.fsuid, got)
	}
	return nil
}

// capSet is the thread's capability sets (capget(2) form).
type capSet struct {
	hdr  unix.CapUserHeader
	data [2]unix.CapUserData
}

func effectiveCaps() (capSet, error) {
	c := capSet{hdr: unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}}
	err := unix.Capget(&c.hdr, &c.data[0])
	return c, err
}

// with adds cap to the effective set (it must be in the permitted set).
func (c capSet) with(cap uint) capSet {
	c.data[cap/32].Effective |= 1 << (cap % 32)
	return c
}

// set applies c to this thread only.
func (c capSet) set() error {
	hdr := c.hdr
	return unix.Capset(&hdr, &c.data[0])
}

// idRange is one line of a uid_map or gid_map, read from the host: the ids
// a user namespace maps, as host ids.
type idRange struct{ first, count uint32 }

func readIDMap(path string) ([]idRange, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseIDMap(b)
}

func parseIDMap(b []byte) ([]idRange, error) {
	var out []idRange
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("bad id map line %q", sc.Text())
		}
		outside, err1 := strconv.ParseUint(f[1], 10, 32)
		count, err2 := strconv.ParseUint(f[2], 10, 32)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("bad id map line %q", sc.Text())
		}
		out = append(out, idRange{uint32(outside), uint32(count)})
	}
	return out, sc.Err()
}

func mapped(m []idRange, id uint32) bool {
	for _, r := range m {
		if id >= r.first && uint64(id) < uint64(r.first)+uint64(r.count) {
			return true
		}
	}
	return false
}
