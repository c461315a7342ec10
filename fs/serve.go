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

// ServeOps reads the kernel's requests and answers them. Cheap ops are
// answered on the reading goroutine itself: handing each op to a new
// goroutine (as fuseutil's server does) parks it behind the reader, which
// has gone back into read(2) on /dev/fuse holding its P, until the runtime
// takes the P back; that costs 50-200 µs per op, most of a small read's
// latency. Ops that enter a container's namespaces, which can take longer,
// still get their own goroutine.
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

// inline reports whether op is cheap enough for the reading goroutine: all
// but the ops on paths served inside a container's namespaces.
func (f *fsys) inline(op any) bool {
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
	case *fuseops.WriteFileOp:
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
