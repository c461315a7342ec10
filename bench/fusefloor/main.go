// Command fusefloor mounts the least a FUSE server can be: one direct-I/O
// file with fixed content, answered on the reading goroutine with the same
// library (jacobsa/fuse) and loop shape as sysbox-fs. `make bench` reads it
// beside the real views: what open+read+close costs in round trips alone,
// before any view is rendered.
//
//	fusefloor DIR    mount at DIR until SIGINT/SIGTERM; the file is DIR/f
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jacobsa/fuse"
	"github.com/jacobsa/fuse/fuseops"
)

// content is about the size of /proc/uptime's.
var content = []byte("12345.67 23456.78\n")

const fileIno = fuseops.RootInodeID + 1

type server struct{}

func (server) ServeOps(c *fuse.Connection) {
	for {
		ctx, op, err := c.ReadOp()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "fusefloor:", err)
			return
		}
		_ = c.Reply(ctx, handle(op))
	}
}

func attrs(ino fuseops.InodeID) fuseops.InodeAttributes {
	if ino == fuseops.RootInodeID {
		return fuseops.InodeAttributes{Nlink: 2, Mode: os.ModeDir | 0o755}
	}
	return fuseops.InodeAttributes{Nlink: 1, Mode: 0o444, Size: 4096}
}

func handle(op any) error {
	switch o := op.(type) {
	case *fuseops.LookUpInodeOp:
		if o.Parent != fuseops.RootInodeID || o.Name != "f" {
			return syscall.ENOENT
		}
		// Cached for the run: no lookup per open (sysbox-fs caches 1 s).
		o.Entry.Child, o.Entry.Attributes = fileIno, attrs(fileIno)
		o.Entry.EntryExpiration = time.Now().Add(time.Hour)
		o.Entry.AttributesExpiration = o.Entry.EntryExpiration
	case *fuseops.GetInodeAttributesOp:
		o.Attributes = attrs(o.Inode)
		o.AttributesExpiration = time.Now().Add(time.Hour)
	case *fuseops.OpenFileOp:
		o.UseDirectIO = true
	case *fuseops.ReadFileOp:
		if o.Offset < int64(len(content)) {
			o.BytesRead = copy(o.Dst, content[o.Offset:])
		}
	case *fuseops.OpenDirOp, *fuseops.ReleaseFileHandleOp, *fuseops.ReleaseDirHandleOp,
		*fuseops.ForgetInodeOp, *fuseops.BatchForgetOp, *fuseops.StatFSOp:
	default:
		return syscall.ENOSYS // flush and the rest: asked once, then never
	}
	return nil
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: fusefloor DIR")
		os.Exit(2)
	}
	mfs, err := fuse.Mount(os.Args[1], server{}, &fuse.MountConfig{FSName: "fusefloor", DisableWritebackCaching: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "fusefloor:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		_ = fuse.Unmount(os.Args[1])
	}()
	if err := mfs.Join(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "fusefloor:", err)
		os.Exit(1)
	}
}
