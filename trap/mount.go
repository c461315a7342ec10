package trap

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/sysbox-dev/sysbox/internal/ipc"
)

func init() {
	register(unix.SYS_MOUNT, "mount", mount)
	register(unix.SYS_FSOPEN, "fsopen", fsopen)
}

// Filesystem magics (statfs f_type).
const (
	procMagic  = 0x9fa0
	sysfsMagic = 0x62656572
)

// mountOp is what a mount(2) call does, decided by its flags in the
// kernel's order of precedence (path_mount in fs/namespace.c).
type mountOp int

const (
	opNew mountOp = iota
	opRemount
	opBindRemount // MS_REMOUNT|MS_BIND: per-mount flags only
	opBind
	opPropagation
	opMove
)

func (o mountOp) String() string {
	return [...]string{"new", "remount", "bind-remount", "bind", "propagation", "move"}[o]
}

func classifyMount(flags uint64) (mountOp, uint64) {
	if flags&unix.MS_MGC_MSK == unix.MS_MGC_VAL {
		flags &^= unix.MS_MGC_MSK
	}
	switch {
	case flags&unix.MS_REMOUNT != 0 && flags&unix.MS_BIND != 0:
		return opBindRemount, flags
	case flags&unix.MS_REMOUNT != 0:
		return opRemount, flags
	case flags&unix.MS_BIND != 0:
		return opBind, flags
	case flags&(unix.MS_SHARED|unix.MS_PRIVATE|unix.MS_SLAVE|unix.MS_UNBINDABLE) != 0:
		return opPropagation, flags
	case flags&unix.MS_MOVE != 0:
		return opMove, flags
	}
	return opNew, flags
}

// mountAttrs turns mount(2)'s per-mount flags into fsmount's attributes.
func mountAttrs(flags uint64) int {
	var a int
	for _, f := range []struct {
		ms   uint64
		attr int
	}{
		{unix.MS_RDONLY, unix.MOUNT_ATTR_RDONLY},
		{unix.MS_NOSUID, unix.MOUNT_ATTR_NOSUID},
		{unix.MS_NODEV, unix.MOUNT_ATTR_NODEV},
		{unix.MS_NOEXEC, unix.MOUNT_ATTR_NOEXEC},
		{unix.MS_NODIRATIME, unix.MOUNT_ATTR_NODIRATIME},
	} {
		if flags&f.ms != 0 {
			a |= f.attr
		}
	}
	switch {
	case flags&unix.MS_NOATIME != 0:
		a |= unix.MOUNT_ATTR_NOATIME
	case flags&unix.MS_STRICTATIME != 0:
		a |= unix.MOUNT_ATTR_STRICTATIME
	}
	return a
}

// parseOptions splits mount(2)'s data string ("hidepid=2,gid=5") for
// fsconfig. An empty value is a flag.
func parseOptions(data string) [][2]string {
	var out [][2]string
	for _, o := range strings.Split(data, ",") {
		if o == "" {
			continue
		}
		k, v, _ := strings.Cut(o, "=")
		out = append(out, [2]string{k, v})
	}
	return out
}

func mount(c call) answer {
	op, flags := classifyMount(c.arg(3))
	switch op {
	case opRemount, opBindRemount:
		return remount(c, flags)
	case opBind:
		if flags&unix.MS_REC != 0 {
			return continueCall // a recursive bind keeps the views
		}
		return bind(c)
	case opMove:
		return move(c)
	case opNew:
		fstype, err := c.str(2)
		if err != nil {
			return continueCall // the kernel answers the bad pointer
		}
		switch fstype {
		case "proc":
			return newFS(c, flags, procFS)
		case "sysfs":
			return newFS(c, flags, sysFS)
		}
	}
	return continueCall
}

// fsopen: mount(8) from util-linux 2.39 on mounts with the new mount API,
// which the agent does not see through. For proc and sysfs, ENOSYS makes it
// fall back to mount(2), which the agent handles; every other filesystem
// goes ahead.
func fsopen(c call) answer {
	name, err := c.str(0)
	if err != nil {
		return continueCall
	}
	if name == "proc" || name == "sysfs" {
		return errnoAnswer(unix.ENOSYS)
	}
	return continueCall
}

// remount: a mount that started read-only stays read-only.
func remount(c call, flags uint64) answer {
	if flags&unix.MS_RDONLY != 0 {
		return continueCall
	}
	l := c.s.layout()
	if !l.hasReadOnly() {
		return continueCall
	}
	path, err := c.str(1)
	if err != nil {
		return continueCall
	}
	t, err := resolve(c, unix.AT_FDCWD, path, true, false, func(t target) bool { return l.readOnlyDev(t.dev) })
	if err != nil {
		return continueCall // the kernel finds the same error
	}
	if t.mountRoot && t.found && l.isReadOnly(t.mount) {
		c.s.log.Debug("refused remount read-write", "tid", c.tid(), "path", path, "mount", t.mount.point)
		return errnoAnswer(unix.EPERM)
	}
	return continueCall
}

// move: the container's /proc, /sys and views stay where they are (EINVAL,
// the kernel's answer for a locked mount).
func move(c call) answer {
	src, err := c.str(0)
	if err != nil {
		return continueCall
	}
	if m, ok := c.protectedAt(unix.AT_FDCWD, src, true, false); ok {
		c.s.log.Debug("refused move", "tid", c.tid(), "source", src, "mount", m.point)
		return errnoAnswer(unix.EINVAL)
	}
	return continueCall
}

// bind: a non-recursive bind of a /proc or /sys subtree would show the
// host's files where the container's views were mounted over them; make it
// recursive, so the views, masks and read-only paths come along.
func bind(c call) answer {
	src, err := c.str(0)
	if err != nil {
		return continueCall
	}
	dst, err := c.str(1)
	if err != nil {
		return continueCall
	}
	t, err := resolve(c, unix.AT_FDCWD, src, true, true, nil)
	if err != nil || (t.fsType != procMagic && t.fsType != sysfsMagic) {
		return continueCall
	}
	cr, err := readCaps(c.tid())
	if err != nil {
		return fail(err)
	}
	if ok, err := mayMount(c.tid(), cr, ""); err != nil || !ok {
		return errnoAnswer(unix.EPERM)
	}
	from, err := openPathArg(c.tid(), src)
	if err != nil {
		return fail(err)
	}
	to, err := openPathArg(c.tid(), dst)
	if err != nil {
		from.close()
		return fail(err)
	}
	cf, err := openCaller(c.tid(), unix.AT_FDCWD)
	if err == nil && !c.valid() {
		cf.close()
		err = unix.ENOENT
	}
	if err != nil {
		from.close()
		to.close()
		return fail(err)
	}
	return c.finishIn(cf, -1, nil, func() error {
		dfd, dpath, dflag := from.at(unix.AT_EMPTY_PATH)
		fd, err := unix.OpenTree(dfd, dpath, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE|uint(dflag))
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		tfd, tpath, tflag := to.at(unix.MOVE_MOUNT_T_EMPTY_PATH)
		return unix.MoveMount(fd, "", tfd, tpath, unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_SYMLINKS|tflag)
	}, func(err error) answer {
		from.close()
		to.close()
		if err != nil {
			return fail(err)
		}
		c.s.log.Debug("bind with views", "tid", c.tid(), "source", src, "target", dst)
		return success
	})
}

// mayMount is the kernel's check for a mount by the caller, whose
// capabilities are cr (readCaps): CAP_SYS_ADMIN over its mount namespace
// and, if nsKind is set, over that namespace too (the pid namespace a
// procfs shows, the network namespace of a sysfs).
func mayMount(tid int, cr creds, nsKind string) (bool, error) {
	userNS, err := nsFile(tid, "user")
	if err != nil {
		return false, err
	}
	defer unix.Close(userNS)
	uino, err := nsIno(userNS)
	if err != nil {
		return false, err
	}
	for _, kind := range []string{"mnt", nsKind} {
		if kind == "" {
			continue
		}
		fd, err := nsFile(tid, kind)
		if err != nil {
			return false, err
		}
		ok, err := capableOver(cr, capSysAdmin, uino, fd)
		unix.Close(fd)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// fsKind is proc or sysfs, with where its views and covers come from.
type fsKind struct {
	name string // filesystem type
	top  string // where the container has it
	ns   string // the namespace a new instance shows: the caller's
}

var (
	procFS = fsKind{name: "proc", top: "/proc", ns: "pid"}
	sysFS  = fsKind{name: "sysfs", top: "/sys", ns: "net"}
)

// overlay is one mount put over a path of the new filesystem.
type overlay struct {
	rel  string
	kind coverKind
	view string // host source, for a view
}

// viewOverlays are the container's views under top, as paths relative to
// it, shallowest first.
func viewOverlays(ms []ipc.FsMount, top string) []overlay {
	var out []overlay
	for _, m := range ms {
		rel, ok := strings.CutPrefix(m.Dest, top+"/")
		if !ok || rel == "" {
			continue
		}
		out = append(out, overlay{rel: rel, view: m.Source})
	}
	sortByDepth(out)
	return out
}

func sortByDepth(o []overlay) {
	// Insertion sort: a handful of entries, and stable.
	for i := 1; i < len(o); i++ {
		for j := i; j > 0 && depth(o[j].rel) < depth(o[j-1].rel); j-- {
			o[j], o[j-1] = o[j-1], o[j]
		}
	}
}

// overlaysFor lists what a new instance gets, in the order the runtime
// mounted them on the container's own: views, then read-only paths (which
// take the views below them along), then masks.
func overlaysFor(views []ipc.FsMount, covers []cover, top string) []overlay {
	out := viewOverlays(views, top)
	for _, k := range []coverKind{coverReadOnly, coverMaskDir, coverMaskFile} {
		for _, c := range covers {
			if c.kind == k {
				out = append(out, overlay{rel: c.rel, kind: k})
			}
		}
	}
	return out
}

// hasPidnsOption: procfs takes pidns= (Linux 6.17), so the agent can make
// a procfs of the caller's pid namespace without being in it.
// A variable, so a test can take the fallback.
var hasPidnsOption = sync.OnceValue(func() bool {
	fs, err := unix.Fsopen("proc", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return false
	}
	defer unix.Close(fs)
	ns, err := unix.Open("/proc/self/ns/pid", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(ns)
	return unix.FsconfigSetFd(fs, "pidns", ns) == nil
})

// newFS mounts a new procfs or sysfs for the caller, with the container's
// views, masks and read-only paths over it, built detached and attached in
// one step so nobody in the container sees it half-made.
func newFS(c call, flags uint64, k fsKind) answer {
	dst, err := c.str(1)
	if err != nil {
		return fail(err)
	}
	var source, data string
	if c.arg(0) != 0 {
		if source, err = c.str(0); err != nil {
			return fail(err)
		}
	}
	if c.arg(4) != 0 {
		// The kernel copies a page of options; text options end inside it.
		if data, err = readString(c.tid(), c.arg(4), int(pageSize)); err != nil {
			return fail(err)
		}
	}
	if strings.Contains(data, "subset=pid") {
		// A pid-only procfs hides the files the views cover.
		return continueCall
	}
	cr, err := readCaps(c.tid())
	if err != nil {
		return fail(err)
	}
	if ok, err := mayMount(c.tid(), cr, k.ns); err != nil || !ok {
		return errnoAnswer(unix.EPERM)
	}
	views := c.s.views()
	var covers []cover
	if l := c.s.layout(); l != nil {
		covers = l.procCovers
		if k == sysFS {
			covers = l.sysCovers
		}
	}
	spec := &fsSpec{
		kind: k, ns: -1, source: source, options: parseOptions(data), attrs: mountAttrs(flags),
		overlays: overlaysFor(views, covers, k.top), target: pathArg{fd: -1}, from: c.s.ct.sources,
	}
	// Released when the call is finished (spec.release).
	if spec.ns, err = nsFile(c.tid(), k.ns); err != nil {
		return fail(err)
	}
	if spec.target, err = openPathArg(c.tid(), dst); err != nil {
		spec.release()
		return fail(err)
	}
	cf, err := openCaller(c.tid(), unix.AT_FDCWD)
	if err == nil && !c.valid() {
		cf.close()
		err = unix.ENOENT
	}
	if err != nil {
		spec.release()
		return fail(err)
	}
	if k == procFS && !hasPidnsOption() {
		defer spec.release()
		defer cf.close()
		return cloneProc(c, cf, spec)
	}
	netns := -1
	if k == sysFS {
		netns = spec.ns // sysfs shows its mounter's network namespace
	}
	return c.finishIn(cf, netns, spec.build, spec.attach, func(err error) answer {
		spec.release()
		if err != nil {
			c.s.log.Debug("mount", "fstype", k.name, "tid", c.tid(), "target", dst, "err", err)
			return fail(err)
		}
		c.s.log.Debug("mounted", "fstype", k.name, "tid", c.tid(), "target", dst, "overlays", len(spec.overlays))
		return success
	})
}

// fsSpec is a new procfs or sysfs to make. build runs in the agent's mount
// namespace (where the views' sources are), attach in the caller's.
type fsSpec struct {
	kind     fsKind
	ns       int // the caller's pid (proc) or network (sysfs) namespace
	source   string
	options  [][2]string
	attrs    int
	overlays []overlay
	target   pathArg

	mnt  int           // the new mount
	from *mountSources // the container's, to clone the sources from
	srcs []int         // per overlay: a detached mount to move there, or -1
	late bool          // the kernel cannot mount on a detached tree (< 6.15): overlay after attaching
	open []closeFn     // fds to close when done
}

type closeFn func()

// release closes every fd the spec holds; again is a no-op.
func (f *fsSpec) release() {
	for _, c := range f.open {
		c()
	}
	f.open = nil
	if f.ns >= 0 {
		unix.Close(f.ns)
		f.ns = -1
	}
	f.target.close()
	f.target.fd = -1
}

func (f *fsSpec) keep(fd int) int {
	f.open = append(f.open, func() { unix.Close(fd) })
	return fd
}

func (f *fsSpec) build() error {
	fs, err := unix.Fsopen(f.kind.name, unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("fsopen %s: %w", f.kind.name, err)
	}
	defer unix.Close(fs)
	if f.kind == procFS {
		if err := unix.FsconfigSetFd(fs, "pidns", f.ns); err != nil {
			return fmt.Errorf("procfs pidns: %w", err)
		}
	}
	if f.source != "" {
		_ = unix.FsconfigSetString(fs, "source", f.source)
	}
	for _, o := range f.options {
		if o[1] == "" {
			err = unix.FsconfigSetFlag(fs, o[0])
		} else {
			err = unix.FsconfigSetString(fs, o[0], o[1])
		}
		if err != nil {
			return err
		}
	}
	if err := unix.FsconfigCreate(fs); err != nil {
		return err
	}
	f.mnt, err = unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, f.attrs)
	if err != nil {
		return err
	}
	f.keep(f.mnt)
	if err := f.sources(); err != nil {
		return err
	}
	for i := range f.overlays {
		err := f.apply(i)
		if i == 0 && errors.Is(err, unix.EINVAL) {
			f.late = true
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// sources opens, in the agent's mount namespace, what goes over the new
// mount: clones of the views, of /dev/null, of a read-only tmpfs. They are
// cloned from what the container's mountSources keep open, with no path
// walk: a walk to a view is a FUSE lookup per component, served by this
// very process, and would cost more than the whole rest of the mount.
func (f *fsSpec) sources() error {
	f.srcs = make([]int, len(f.overlays))
	clone := func(fd int) (int, error) {
		return unix.OpenTree(fd, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH)
	}
	for i, o := range f.overlays {
		f.srcs[i] = -1
		var from int
		var err error
		switch {
		case o.view != "":
			from, err = f.from.view(o.view)
		case o.kind == coverMaskFile:
			from, err = devNull()
		case o.kind == coverMaskDir:
			from, err = f.from.maskDir()
		default:
			continue
		}
		if err != nil {
			return err
		}
		fd, err := clone(from)
		if err != nil {
			return fmt.Errorf("clone the source of %s/%s: %w", f.kind.top, o.rel, err)
		}
		f.srcs[i] = f.keep(fd)
		if o.view != "" {
			// As the runtime binds them: nosuid, nodev.
			_ = unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV})
		}
	}
	return nil
}

// devNull is the host's /dev/null, which masks a file: opened once.
var devNull = sync.OnceValues(func() (int, error) {
	fd, err := unix.Open("/dev/null", unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open /dev/null: %w", err)
	}
	return fd, nil
})

// mountSources are what a container's new procfs and sysfs mounts are
// cloned from, opened on first use and kept until the container's last
// session ends: its views (O_PATH fds on the fs daemon's FUSE mount) and
// the empty tmpfs its masked dirs get (one per container: even made
// writable it holds no inode, and it is shared with no other container).
type mountSources struct {
	mu      sync.Mutex
	views   map[string]int // host path of a view: O_PATH fd
	mask    int            // detached tmpfs, or -1
	viewDev string         // the FUSE mount's device, once known
}

func newMountSources() *mountSources { return &mountSources{views: map[string]int{}, mask: -1} }

// view opens path in the agent's mount namespace (the caller's thread must
// be in it), once.
func (m *mountSources) view(path string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.viewLocked(path)
}

func (m *mountSources) viewLocked(path string) (int, error) {
	if fd, ok := m.views[path]; ok {
		return fd, nil
	}
	fd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open view %s: %w", path, err)
	}
	m.views[path] = fd
	return fd, nil
}

// dev is the device ("major:minor") of the filesystem that holds the view
// at path: the fs daemon's FUSE mount, the same for every view.
func (m *mountSources) dev(path string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.viewDev != "" {
		return m.viewDev, nil
	}
	fd, err := m.viewLocked(path)
	if err != nil {
		return "", err
	}
	stx, _, err := statMount(fd, false)
	if err != nil {
		return "", err
	}
	m.viewDev = fmt.Sprintf("%d:%d", stx.Dev_major, stx.Dev_minor)
	return m.viewDev, nil
}

func (m *mountSources) maskDir() (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mask < 0 {
		fd, err := emptyTmpfs()
		if err != nil {
			return -1, fmt.Errorf("mask tmpfs: %w", err)
		}
		m.mask = fd
	}
	return m.mask, nil
}

// close runs when no session of the container is left, so no receiver uses
// the fds any more.
func (m *mountSources) close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for p, fd := range m.views {
		unix.Close(fd)
		delete(m.views, p)
	}
	if m.mask >= 0 {
		unix.Close(m.mask)
		m.mask = -1
	}
}

// emptyTmpfs is an empty read-only tmpfs, what runc masks a dir with. One
// inode (its root) and one page: nothing can be made in it, even by a
// container that remounts its copy read-write.
func emptyTmpfs() (int, error) {
	fs, err := unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, err
	}
	defer unix.Close(fs)
	for _, o := range [][2]string{{"size", "4k"}, {"nr_inodes", "1"}, {"mode", "0555"}} {
		if err := unix.FsconfigSetString(fs, o[0], o[1]); err != nil {
			return -1, err
		}
	}
	if err := unix.FsconfigCreate(fs); err != nil {
		return -1, err
	}
	return unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
}

// apply puts overlay i over the new mount. A path this kernel's procfs or
// sysfs does not have is skipped, as the runtime skips it.
func (f *fsSpec) apply(i int) error {
	o := f.overlays[i]
	src := f.srcs[i]
	if o.kind == coverReadOnly && o.view == "" {
		fd, err := unix.OpenTree(f.mnt, o.rel, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return nil
		}
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
		if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &attr); err != nil {
			return err
		}
		src = fd
	}
	err := unix.MoveMount(src, "", f.mnt, o.rel, unix.MOVE_MOUNT_F_EMPTY_PATH)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("mount over %s/%s: %w", f.kind.top, o.rel, err)
	}
	return nil
}

func (f *fsSpec) attach() error {
	tfd, tpath, tflag := f.target.at(unix.MOVE_MOUNT_T_EMPTY_PATH)
	if err := unix.MoveMount(f.mnt, "", tfd, tpath, unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_SYMLINKS|tflag); err != nil {
		return err
	}
	if !f.late {
		return nil
	}
	for i := range f.overlays {
		if err := f.apply(i); err != nil {
			if f.target.fd < 0 {
				_ = unix.Unmount(f.target.path, unix.MNT_DETACH)
			}
			return err
		}
	}
	return nil
}

// cloneProc is the fallback where procfs has no pidns= option: a recursive
// clone of the container's own /proc, views and masks included. It shows
// the container's pid namespace, so it serves only callers in that one; in
// a nested pid namespace the call goes to the kernel (a plain procfs, or
// EPERM).
func cloneProc(c call, cf *callerFiles, spec *fsSpec) answer {
	same, err := samePidNS(c.tid(), c.s.ct.initPid)
	if err != nil || !same {
		return continueCall
	}
	init, err := openCaller(c.s.ct.initPid, unix.AT_FDCWD)
	if err != nil {
		return fail(err)
	}
	defer init.close()
	var tree int = -1
	err = c.inCaller(cf, -1, func() error {
		// Into init's view, to clone its /proc; then enterFS moves on
		// to the caller's.
		if err := enterFS(init); err != nil {
			return err
		}
		fd, err := unix.OpenTree(unix.AT_FDCWD, "/proc", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
		if err != nil {
			return err
		}
		tree = fd
		attr := unix.MountAttr{Attr_set: uint64(spec.attrs)}
		return unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &attr)
	}, func() error {
		defer unix.Close(tree)
		tfd, tpath, tflag := spec.target.at(unix.MOVE_MOUNT_T_EMPTY_PATH)
		return unix.MoveMount(tree, "", tfd, tpath, unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_SYMLINKS|tflag)
	})
	if err != nil {
		return fail(err)
	}
	return success
}

func samePidNS(a, b int) (bool, error) {
	fa, err := nsFile(a, "pid")
	if err != nil {
		return false, err
	}
	defer unix.Close(fa)
	fb, err := nsFile(b, "pid")
	if err != nil {
		return false, err
	}
	defer unix.Close(fb)
	ia, err1 := nsIno(fa)
	ib, err2 := nsIno(fb)
	return ia == ib && err1 == nil && err2 == nil, errors.Join(err1, err2)
}
