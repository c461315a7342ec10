package fs

import (
	"encoding/binary"
	"testing"

	"github.com/jacobsa/fuse/fuseops"
)

// fakeRead lays out a FUSE READ request the way jacobsa/fuse holds it: the
// request, then the destination buffer in the same allocation.
func fakeRead(size int, readFlags uint32) *fuseops.ReadFileOp {
	storage := make([]byte, pageSize+maxRequest)
	le := binary.LittleEndian
	le.PutUint32(storage[0:], readRequestSize)
	le.PutUint32(storage[4:], opcodeRead)
	le.PutUint64(storage[8:], 77)  // unique
	le.PutUint64(storage[16:], 42) // nodeid
	in := storage[inHeaderSize:]
	le.PutUint64(in[0:], 9)    // fh
	le.PutUint64(in[8:], 4096) // offset
	le.PutUint32(in[16:], uint32(size))
	le.PutUint32(in[20:], readFlags)
	return &fuseops.ReadFileOp{
		Inode: 42, Handle: 9, Offset: 4096, Size: int64(size),
		Dst:       storage[readRequestSize : readRequestSize+size],
		OpContext: fuseops.OpContext{FuseID: 77},
	}
}

func TestClassifyRead(t *testing.T) {
	for _, size := range []int{1, pageSize, maxRequest} {
		if got := classifyRead(fakeRead(size, readLockOwnerFlag)); got != readDirect {
			t.Errorf("size %d with a lock owner: %v, want direct", size, got)
		}
		if got := classifyRead(fakeRead(size, 0)); got != readCache {
			t.Errorf("size %d without a lock owner: %v, want page cache", size, got)
		}
	}
	// Anything that does not match what jacobsa decoded: unknown.
	for name, spoil := range map[string]func(*fuseops.ReadFileOp){
		"fuse id": func(op *fuseops.ReadFileOp) { op.OpContext.FuseID++ },
		"inode":   func(op *fuseops.ReadFileOp) { op.Inode++ },
		"handle":  func(op *fuseops.ReadFileOp) { op.Handle++ },
		"offset":  func(op *fuseops.ReadFileOp) { op.Offset++ },
		"size":    func(op *fuseops.ReadFileOp) { op.Size-- },
		"no dst":  func(op *fuseops.ReadFileOp) { op.Dst = nil },
	} {
		op := fakeRead(pageSize, 0)
		spoil(op)
		if got := classifyRead(op); got != readUnknown {
			t.Errorf("%s differs: %v, want unknown", name, got)
		}
	}
}
