package fs

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/jacobsa/fuse"
	"github.com/jacobsa/fuse/fuseops"
	"github.com/jacobsa/fuse/fuseutil"
	"golang.org/x/sys/unix"
)

// fsys is the FUSE side: it maps the kernel's inode and handle numbers to
// view paths and answers each op from the daemon's resolver. jacobsa/fuse
// calls every method on its own goroutine, so the tables are locked.
type fsys struct {
	d *daemon

	mu      sync.Mutex
	inodes  map[fuseops.InodeID]*inode
	ids     map[string]fuseops.InodeID
	handles map[fuseops.HandleID]*handle
	nextH   fuseops.HandleID

	// store fills the page cache of stored files (store.go); nil before
	// the mount (they are served as direct I/O files then).
	store *storeTable
}

// inode is a path the kernel holds a reference to; lookups counts them, and
// the entry goes when the kernel forgets them all.
type inode struct {
	path    string
	lookups uint64
}

// handle is an open file or dir. A file's content is made on the read at
// offset 0 and kept, so a reader that takes it in pieces sees one version.
type handle struct {
	mu   sync.Mutex
	n    *node
	buf  []byte
	have bool
	ents []dirent
	dir  string
	ns   bool // served in a container's namespace: not inline
	// stored: read through the page cache (store.go); ino: a stored
	// file's, counted open in the store (whether read through the page
	// cache or, when its store could not be made, direct).
	stored bool
	ino    fuseops.InodeID
}

func newFsys(d *daemon) *fsys {
	return &fsys{
		d:       d,
		inodes:  map[fuseops.InodeID]*inode{fuseops.RootInodeID: {path: "", lookups: 1}},
		ids:     map[string]fuseops.InodeID{"": fuseops.RootInodeID},
		handles: map[fuseops.HandleID]*handle{},
	}
}

// inoHint is the inode number a path gets: a hash, so the same path keeps
// its number across forgets and restarts.
func inoHint(p string) fuseops.InodeID {
	h := fnv.New64a()
	h.Write([]byte(p))
	id := fuseops.InodeID(h.Sum64())
	if id <= fuseops.RootInodeID {
		id += 2
	}
	return id
}

// acquire returns p's inode, taking one more kernel reference on it.
func (f *fsys) acquire(p string) fuseops.InodeID {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id, ok := f.ids[p]; ok {
		f.inodes[id].lookups++
		return id
	}
	id := inoHint(p)
	for {
		if _, taken := f.inodes[id]; !taken && id > fuseops.RootInodeID {
			break
		}
		id++ // a hash collision: probe on
	}
	f.inodes[id] = &inode{path: p, lookups: 1}
	f.ids[p] = id
	return id
}

func (f *fsys) forget(id fuseops.InodeID, n uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in, ok := f.inodes[id]
	if !ok || id == fuseops.RootInodeID {
		return
	}
	if in.lookups <= n {
		delete(f.inodes, id)
		delete(f.ids, in.path)
		if f.store != nil {
			f.store.forget(id)
		}
		return
	}
	in.lookups -= n
}

func (f *fsys) pathOf(id fuseops.InodeID) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in, ok := f.inodes[id]
	if !ok {
		return "", false
	}
	return in.path, true
}

func (f *fsys) resolveInode(id fuseops.InodeID) (*node, string, error) {
	p, ok := f.pathOf(id)
	if !ok {
		return nil, "", syscall.ESTALE
	}
	n, err := f.d.resolve(p)
	if err != nil {
		return nil, p, errnoOf(err)
	}
	return n, p, nil
}

func attrs(n *node) fuseops.InodeAttributes {
	now := time.Now()
	a := fuseops.InodeAttributes{Nlink: 1, Mode: n.mode.Perm() | n.mode&(os.ModeSetuid|os.ModeSetgid|os.ModeSticky), Uid: n.uid, Gid: n.gid, Atime: now, Mtime: now, Ctime: now}
	switch n.kind {
	case kDir:
		a.Mode |= os.ModeDir
		a.Nlink = 2
	case kLink:
		a.Mode = os.ModeSymlink | 0o777
		a.Size = uint64(len(n.target))
	case kFile:
		a.Size = pageSize // stored files: their content's (attrsOf)
	}
	return a
}

func joinPath(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// attrTTL is how long the kernel may keep a node's attributes, and
// entryTTL which names exist: owners, modes and sizes do not change while a
// container lives, and a name that comes or goes (a container registered
// or removed, a CPU a limit change hides, a sysctl a module adds) may take
// that long to show, as a changed limit does (limitsTTL). Only found names
// are kept; a miss is asked again. Without them the kernel asks on every
// open: default_permissions fetches attributes (a GETATTR round trip), and
// every path component under a directory bind (/proc/sys/kernel/pid_max)
// is looked up again, a round trip each, through the container's network
// namespace for /proc/sys/net. File sizes only bound sendfile (splice.go):
// reads are direct I/O, so a cached size never cuts one. Stored files
// (store.go) are read through the page cache instead: their size is kept
// right by the daemon, and their attributes are kept storedAttrTTL.
const (
	attrTTL  = time.Second
	entryTTL = time.Second
)

func (f *fsys) StatFS(context.Context, *fuseops.StatFSOp) error { return nil }

func (f *fsys) LookUpInode(_ context.Context, op *fuseops.LookUpInodeOp) error {
	parent, ok := f.pathOf(op.Parent)
	if !ok {
		return syscall.ESTALE
	}
	p := joinPath(parent, op.Name)
	n, err := f.d.resolve(p)
	if err != nil {
		return errnoOf(err)
	}
	ino := f.acquire(p)
	a, ttl, err := f.attrsOf(ino, n)
	if err != nil {
		f.forget(ino, 1)
		return err
	}
	now := time.Now()
	op.Entry = fuseops.ChildInodeEntry{
		Child: ino, Attributes: a,
		AttributesExpiration: now.Add(ttl), EntryExpiration: now.Add(entryTTL),
	}
	return nil
}

// attrsOf is attrs, with a stored file's size as its page cache holds it,
// and how long the kernel may keep them.
func (f *fsys) attrsOf(ino fuseops.InodeID, n *node) (fuseops.InodeAttributes, time.Duration, error) {
	if !n.stored || f.store == nil {
		return attrs(n), attrTTL, nil
	}
	a := attrs(n)
	size, err := f.store.size(ino, n.read)
	if err != nil {
		return a, 0, errnoOf(err)
	}
	a.Size = size
	return a, storedAttrTTL, nil
}

func (f *fsys) GetInodeAttributes(_ context.Context, op *fuseops.GetInodeAttributesOp) error {
	n, _, err := f.resolveInode(op.Inode)
	if err != nil {
		return err
	}
	a, ttl, err := f.attrsOf(op.Inode, n)
	if err != nil {
		return err
	}
	op.Attributes = a
	op.AttributesExpiration = time.Now().Add(ttl)
	return nil
}

// SetInodeAttributes refuses chmod and chown: owners and modes say what a
// container may do. A size change is accepted and ignored, because
// `echo 1 > file` truncates before it writes.
func (f *fsys) SetInodeAttributes(_ context.Context, op *fuseops.SetInodeAttributesOp) error {
	if op.Mode != nil || op.Uid != nil || op.Gid != nil {
		return syscall.EPERM
	}
	n, _, err := f.resolveInode(op.Inode)
	if err != nil {
		return err
	}
	if op.Size != nil {
		if n.kind == kDir {
			return syscall.EISDIR
		}
		if n.write == nil {
			return syscall.EACCES
		}
	}
	a, ttl, err := f.attrsOf(op.Inode, n)
	if err != nil {
		return err
	}
	op.Attributes, op.AttributesExpiration = a, time.Now().Add(ttl)
	return nil
}

func (f *fsys) ForgetInode(_ context.Context, op *fuseops.ForgetInodeOp) error {
	f.forget(op.Inode, op.N)
	return nil
}

func (f *fsys) BatchForget(_ context.Context, op *fuseops.BatchForgetOp) error {
	for _, e := range op.Entries {
		f.forget(e.Inode, e.N)
	}
	return nil
}

func (f *fsys) newHandle(h *handle) fuseops.HandleID {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextH++
	f.handles[f.nextH] = h
	return f.nextH
}

func (f *fsys) handle(id fuseops.HandleID) (*handle, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h, ok := f.handles[id]
	return h, ok
}

func (f *fsys) dropHandle(id fuseops.HandleID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.handles, id)
}

func (f *fsys) OpenDir(_ context.Context, op *fuseops.OpenDirOp) error {
	n, p, err := f.resolveInode(op.Inode)
	if err != nil {
		return err
	}
	if n.kind != kDir {
		return syscall.ENOTDIR
	}
	op.Handle = f.newHandle(&handle{n: n, dir: p, ns: nsPath(p)})
	return nil
}

func (f *fsys) ReadDir(_ context.Context, op *fuseops.ReadDirOp) error {
	h, ok := f.handle(op.Handle)
	if !ok {
		return syscall.EBADF
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	// A fresh listing at offset 0 (opendir or rewinddir); later offsets index it.
	if op.Offset == 0 || h.ents == nil {
		ents, err := h.n.list()
		if err != nil {
			return errnoOf(err)
		}
		h.ents = ents
	}
	for i := int(op.Offset); i < len(h.ents); i++ {
		e := h.ents[i]
		t := fuseutil.DT_File
		switch e.kind {
		case kDir:
			t = fuseutil.DT_Directory
		case kLink:
			t = fuseutil.DT_Link
		}
		n := fuseutil.WriteDirent(op.Dst[op.BytesRead:], fuseutil.Dirent{
			Offset: fuseops.DirOffset(i + 1), Inode: inoHint(joinPath(h.dir, e.name)), Name: e.name, Type: t,
		})
		if n == 0 {
			break
		}
		op.BytesRead += n
	}
	return nil
}

func (f *fsys) ReleaseDirHandle(_ context.Context, op *fuseops.ReleaseDirHandleOp) error {
	f.dropHandle(op.Handle)
	return nil
}

func (f *fsys) OpenFile(_ context.Context, op *fuseops.OpenFileOp) error {
	n, p, err := f.resolveInode(op.Inode)
	if err != nil {
		return err
	}
	if n.kind != kFile {
		return syscall.EISDIR
	}
	// As procfs: even root may not open a read-only file for writing.
	if (op.OpenFlags.IsWriteOnly() || op.OpenFlags.IsReadWrite()) && n.write == nil {
		return syscall.EACCES
	}
	if n.stored && f.store != nil {
		b, err := n.read()
		if err != nil {
			return errnoOf(err)
		}
		if f.store.opened(op.Inode, n.read, b) {
			op.Handle = f.newHandle(&handle{n: n, stored: true, ino: op.Inode})
			op.KeepPageCache = true
			return nil
		}
		// The page cache could not be given this render: direct I/O
		// for this open, which the cached size cannot cut.
		op.Handle = f.newHandle(&handle{n: n, ino: op.Inode})
		op.UseDirectIO = true
		return nil
	}
	op.Handle = f.newHandle(&handle{n: n, ns: nsPath(p)})
	// Sizes are not the content's: without direct I/O the kernel would
	// read up to them.
	op.UseDirectIO = true
	return nil
}

func (f *fsys) ReadFile(_ context.Context, op *fuseops.ReadFileOp) error {
	h, ok := f.handle(op.Handle)
	if !ok {
		return syscall.EBADF
	}
	if h.stored {
		// The page cache asks (a page evicted, or dropped by a size
		// change): what it was last given, which the inode's size is.
		return readAt(op, f.store.current(h.ino))
	}
	if classifyRead(op) == readCache {
		// sendfile or splice: see splice.go.
		return syscall.EINVAL
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if op.Offset == 0 || !h.have {
		if h.n.read == nil {
			return syscall.EINVAL
		}
		b, err := h.n.read()
		if err != nil {
			slog.Debug("read", "err", err)
			return errnoOf(err)
		}
		h.buf, h.have = b, true
	}
	return readAt(op, h.buf)
}

// readAt answers op from content b.
func readAt(op *fuseops.ReadFileOp, b []byte) error {
	if op.Offset >= int64(len(b)) {
		return nil
	}
	src := b[op.Offset:]
	if op.Dst != nil {
		op.BytesRead = copy(op.Dst, src)
		return nil
	}
	src = src[:min(int64(len(src)), op.Size)]
	op.Data = [][]byte{src}
	op.BytesRead = len(src)
	return nil
}

func (f *fsys) WriteFile(_ context.Context, op *fuseops.WriteFileOp) error {
	h, ok := f.handle(op.Handle)
	if !ok {
		return syscall.EBADF
	}
	if h.n.write == nil {
		return syscall.EACCES
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.have = false
	return errnoOf(h.n.write(op.Offset, op.Data))
}

// FlushFile answers ENOSYS on purpose: writes are applied as they come, so
// close has nothing to flush, and on ENOSYS the kernel stops sending FLUSH
// at all (fc->no_flush): one round trip less on every close(2). A no-op
// would cost that round trip forever; ENOSYS is not logged (no error
// logger is set on the connection), which is what the no-op was avoiding.
func (f *fsys) FlushFile(context.Context, *fuseops.FlushFileOp) error { return syscall.ENOSYS }

// ReleaseFileHandle forgets the handle.

func (f *fsys) ReleaseFileHandle(_ context.Context, op *fuseops.ReleaseFileHandleOp) error {
	if h, ok := f.handle(op.Handle); ok && h.ino != 0 {
		f.store.released(h.ino)
	}
	f.dropHandle(op.Handle)
	return nil
}

func (f *fsys) SyncFile(context.Context, *fuseops.SyncFileOp) error { return nil }

func (f *fsys) ReadSymlink(_ context.Context, op *fuseops.ReadSymlinkOp) error {
	n, _, err := f.resolveInode(op.Inode)
	if err != nil {
		return err
	}
	if n.kind != kLink {
		return syscall.EINVAL
	}
	op.Target = n.target
	return nil
}

// maxRequest is the most data one FUSE request carries.
const maxRequest = 128 << 10

// mountFS mounts the view at dir: allow_other so containers' processes
// reach it, default_permissions so the kernel checks the owners and modes
// the view reports. The daemon opens /dev/fuse and mounts it itself, and
// hands the connection to jacobsa/fuse as /dev/fd/N: it keeps a dup of the
// fd for the notifications that fill stored files' page caches (store.go),
// which jacobsa/fuse does not send.
func mountFS(dir string, f *fsys) (*fuse.MountedFileSystem, error) {
	cfg := &fuse.MountConfig{
		FSName:                  "sysboxfs",
		Subtype:                 "sysboxfs",
		DisableWritebackCaching: true,
		// Requests carry up to 128 KiB (larger files take several). Every
		// op in flight holds a request buffer of a page plus MaxWrite, kept
		// in a free list afterwards; ops are served on the reader (serve.go),
		// so there are few. MaxWrite is as large as a read so that a read
		// of any size gets its destination in that buffer, right after the
		// request, where classifyRead finds the request (splice.go): with a
		// smaller buffer a large page-cache read would go unrecognised.
		MaxWrite: maxRequest,
		MaxPages: maxRequest / pageSize,
	}
	// Blocking: the Go runtime's poller does not work with /dev/fuse.
	dev, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/fuse: %w", err)
	}
	data := fmt.Sprintf("fd=%d,rootmode=40000,user_id=%d,group_id=%d,default_permissions,allow_other", dev, os.Getuid(), os.Getgid())
	if err := unix.Mount(cfg.FSName, dir, "fuse."+cfg.Subtype, unix.MS_NOSUID|unix.MS_NODEV, data); err != nil {
		unix.Close(dev)
		return nil, err
	}
	notify, err := unix.FcntlInt(uintptr(dev), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		_ = unix.Unmount(dir, unix.MNT_DETACH)
		unix.Close(dev)
		return nil, err
	}
	f.store = newStoreTable(notify)
	mfs, err := fuse.Mount("/dev/fd/"+strconv.Itoa(dev), f, cfg)
	if err != nil {
		_ = unix.Unmount(dir, unix.MNT_DETACH)
		f.store.close()
		f.store = nil
		unix.Close(dev)
		return nil, err
	}
	return mfs, nil
}
