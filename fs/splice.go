package fs

import (
	"encoding/binary"
	"unsafe"

	"github.com/jacobsa/fuse/fuseops"
)

// sendfile(2) and splice(2) from the view's files.
//
// (This is about the direct-I/O files: /proc/sys, /sys. /proc's resource
// views are stored files, read through the page cache the daemon fills,
// with their true size: sendfile copies them; see store.go.)
//
// Files are opened with direct I/O (FOPEN_DIRECT_IO): read(2) reaches
// ReadFile every time and sees exactly what the daemon makes, whatever size
// the file reports. Splice does not: up to at least Linux 6.18, FUSE splices
// a direct-I/O file through the page cache (filemap_splice_read), which
// stops at the inode's size. The upstream fix, "fuse: use copy_splice_read
// for FOPEN_DIRECT_IO", is not in every kernel. With the size procfs
// reports, 0, sendfile copies nothing and returns 0, which its callers take
// for an empty file: busybox cat printed nothing.
//
// Serving those page-cache reads cannot be made safe from here. The kernel
// learns a generated file's length only from a short read, which shrinks
// the inode's size; an attribute reply that lands while another reader's
// read is in flight cancels that shrink (attr_version), and the reader then
// splices the zero-filled rest of the page: a test with four concurrent
// sendfile readers got NUL padding in a third of its reads. A size left
// shrunk truncates the next read of a longer content. Both are silent.
//
// So the daemon makes sendfile fail instead of lie: files report a size,
// so that splice asks, and a read that comes from the page cache is refused
// with EINVAL, which sendfile(2) documents for a file it cannot copy from.
// Its callers fall back to read(2): busybox (any sendfile error), Go's
// io.Copy, Python's shutil, Rust's io::copy. A raw sendfile caller gets the
// error, never wrong data.
//
// The size is sysfs's convention, a page: tools take it for an estimate
// and read to EOF (coreutils' wc and tail say so; cp stops at EOF). These
// files (sysctls, cpu lists, the machine's UUID) fit in one; the resource
// views that can outgrow it (cpuinfo, stat, diskstats on a big host) are
// stored files, which report their length.

// pageSize is the size a direct-I/O file reports.
const pageSize = 4096

// readKind is where a FUSE read comes from.
type readKind uint8

const (
	readUnknown readKind = iota // the request could not be inspected
	readDirect                  // read(2) on a direct-I/O file
	readCache                   // the page cache: splice, sendfile, mmap
)

// FUSE protocol constants (linux/fuse.h).
const (
	opcodeRead        = 15
	readLockOwnerFlag = 1 << 1 // FUSE_READ_LOCKOWNER
	inHeaderSize      = 40     // struct fuse_in_header
	readInSize        = 40     // struct fuse_read_in, protocol 7.9 on
	readRequestSize   = inHeaderSize + readInSize
)

// classifyRead tells a direct read from a page-cache read. The kernel marks
// every direct read with the reader's lock owner (FUSE_READ_LOCKOWNER);
// page-cache reads (fuse_read_folio, readahead) carry none. jacobsa/fuse
// does not pass read_flags on, but it hands ReadFileOp a destination buffer
// taken from the same allocation right after the request it read
// (InMessage.GetFree): the request's 80 bytes sit just before op.Dst. The
// header is trusted only if every field jacobsa decoded from it matches, so
// a change in that layout makes this answer readUnknown, never a wrong kind.
func classifyRead(op *fuseops.ReadFileOp) readKind {
	if cap(op.Dst) == 0 || op.Size <= 0 {
		return readUnknown
	}
	// Within the request buffer's allocation: Dst starts readRequestSize
	// bytes into it for a READ request (the checks below confirm it).
	p := unsafe.Add(unsafe.Pointer(unsafe.SliceData(op.Dst)), -readRequestSize)
	req := unsafe.Slice((*byte)(p), readRequestSize)
	le := binary.LittleEndian
	in := req[inHeaderSize:]
	if le.Uint32(req[0:4]) != readRequestSize ||
		le.Uint32(req[4:8]) != opcodeRead ||
		le.Uint64(req[8:16]) != op.OpContext.FuseID ||
		le.Uint64(req[16:24]) != uint64(op.Inode) ||
		le.Uint64(in[0:8]) != uint64(op.Handle) ||
		le.Uint64(in[8:16]) != uint64(op.Offset) ||
		int64(le.Uint32(in[16:20])) != op.Size {
		return readUnknown
	}
	if le.Uint32(in[20:24])&readLockOwnerFlag != 0 {
		return readDirect
	}
	return readCache
}
