package fs

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"syscall"

	"github.com/jacobsa/fuse"
	"github.com/jacobsa/fuse/fuseops"
)

// ServeOps reads the kernel's requests and answers them, most of them on
// the reading goroutine itself: handing an op to another goroutine (as
// fuseutil's server does) parks it until the runtime wakes a thread for it,
// which costs 50-200 µs per op in a VM, more than the op. That includes
// ops in a container's namespaces (lookups and reads of /proc/sys/net,
// kernel.hostname...): inNS moves the reading thread there and back with
// two setns calls. Writes to those files still get their own goroutine: a
// network sysctl write can wait on the kernel's rtnl lock, and it must not
// stall every container's view meanwhile.
func (f *fsys) ServeOps(c *fuse.Connection) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		ctx, op, err := c.ReadOp()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			slog.Error("read FUSE request", "err", err)
			return
		}
		if f.inline(op) {
			_ = c.Reply(ctx, f.dispatch(ctx, op))
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.Reply(ctx, f.dispatch(ctx, op))
		}()
	}
}

// inline reports whether op is served on the reading goroutine: all but
// writes in a container's namespace, and, should the reading thread ever
// get stuck in a container's namespace (inNS), every namespace op.
func (f *fsys) inline(op any) bool {
	if o, ok := op.(*fuseops.WriteFileOp); ok {
		return f.handleInline(o.Handle)
	}
	if stuckThreads.Load() == 0 {
		return true
	}
	switch o := op.(type) {
	case *fuseops.LookUpInodeOp:
		p, _ := f.pathOf(o.Parent)
		return !nsPath(joinPath(p, o.Name))
	case *fuseops.GetInodeAttributesOp:
		return f.inodeInline(o.Inode)
	case *fuseops.SetInodeAttributesOp:
		return f.inodeInline(o.Inode)
	case *fuseops.OpenFileOp:
		return f.inodeInline(o.Inode)
	case *fuseops.OpenDirOp:
		return f.inodeInline(o.Inode)
	case *fuseops.ReadSymlinkOp:
		return f.inodeInline(o.Inode)
	case *fuseops.ReadFileOp:
		return f.handleInline(o.Handle)
	case *fuseops.ReadDirOp:
		return f.handleInline(o.Handle)
	}
	return true
}

func (f *fsys) inodeInline(id fuseops.InodeID) bool {
	p, _ := f.pathOf(id)
	return !nsPath(p)
}

func (f *fsys) handleInline(id fuseops.HandleID) bool {
	h, ok := f.handle(id)
	return !ok || !h.ns
}

// nsPath reports whether a view path is a sysctl reached through a
// container's namespace.
func nsPath(p string) bool {
	_, rel, _ := strings.Cut(p, "/")
	sub, ok := strings.CutPrefix(rel, "proc/sys/")
	return ok && nsOf(sub) != nsHost
}

// dispatch runs one op. A panic answers EIO instead of taking down the
// daemon and every container's view with it.
func (f *fsys) dispatch(ctx context.Context, op any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			slog.Error("FUSE op panic", "op", op, "panic", r)
			err = syscall.EIO
		}
	}()
	switch o := op.(type) {
	case *fuseops.StatFSOp:
		return f.StatFS(ctx, o)
	case *fuseops.LookUpInodeOp:
		return f.LookUpInode(ctx, o)
	case *fuseops.GetInodeAttributesOp:
		return f.GetInodeAttributes(ctx, o)
	case *fuseops.SetInodeAttributesOp:
		return f.SetInodeAttributes(ctx, o)
	case *fuseops.ForgetInodeOp:
		return f.ForgetInode(ctx, o)
	case *fuseops.BatchForgetOp:
		return f.BatchForget(ctx, o)
	case *fuseops.OpenDirOp:
		return f.OpenDir(ctx, o)
	case *fuseops.ReadDirOp:
		return f.ReadDir(ctx, o)
	case *fuseops.ReleaseDirHandleOp:
		return f.ReleaseDirHandle(ctx, o)
	case *fuseops.OpenFileOp:
		return f.OpenFile(ctx, o)
	case *fuseops.ReadFileOp:
		return f.ReadFile(ctx, o)
	case *fuseops.WriteFileOp:
		return f.WriteFile(ctx, o)
	case *fuseops.SyncFileOp:
		return f.SyncFile(ctx, o)
	case *fuseops.FlushFileOp:
		return f.FlushFile(ctx, o)
	case *fuseops.ReleaseFileHandleOp:
		return f.ReleaseFileHandle(ctx, o)
	case *fuseops.ReadSymlinkOp:
		return f.ReadSymlink(ctx, o)
	case *fuseops.MkDirOp, *fuseops.MkNodeOp, *fuseops.CreateFileOp, *fuseops.CreateLinkOp,
		*fuseops.CreateSymlinkOp, *fuseops.RenameOp, *fuseops.RmDirOp, *fuseops.UnlinkOp:
		// The view's shape is fixed: nothing is created, removed or renamed.
		return syscall.EPERM
	}
	// xattrs, fallocate, poll...: ENOSYS, which the kernel remembers and
	// stops asking.
	return syscall.ENOSYS
}
