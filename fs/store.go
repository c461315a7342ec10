package fs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jacobsa/fuse/fuseops"
	"golang.org/x/sys/unix"
)

// Stored files: /proc's resource views (uptime, meminfo, stat, loadavg,
// cpuinfo, swaps, diskstats) reach their readers through the kernel's page
// cache, filled by this daemon when they are opened.
//
// A direct-I/O file costs three waited round trips to the daemon per
// open+read-to-EOF+close (OPEN, READ, READ at EOF), each a context switch
// there and back: 70-90 µs on the reference VM whoever serves them, 8-10x
// what procfs costs. A stored file costs one: on OPEN the daemon renders
// the content, writes it into the inode's page cache (FUSE_NOTIFY_STORE)
// and answers with FOPEN_KEEP_CACHE; the reads, the one at EOF too, are
// then served by the kernel from that page, up to the size the daemon gave
// it. So every open shows content rendered at that open, as fresh as a
// direct-I/O read.
//
// What procfs also does and the page cache alone would not: a reader that
// keeps the file open and re-reads it after lseek(fd, 0) (procps: top,
// free -s, vmstat) must see new content. While a stored file has open
// handles, the daemon renders it again every viewTTL and stores it when
// it changed, so such a reader sees content at most viewTTL old: what a
// direct-I/O read shows too (the renders are cached for viewTTL).
//
// Sizes: the kernel's inode size is the content's length. A store that
// grows the content grows it; a shorter content is stored and the inode's
// attributes invalidated, so the next read past the end asks for them
// (GETATTR, answered with the new length), drops the page and reads it
// again (READ). Both are rare (a digit more or less).
//
// A store can block in the kernel: when another reader holds the page
// locked while it waits for a READ this daemon has not answered yet (after
// the page was evicted, or dropped by a shrink). The FUSE ops are
// served on one goroutine (serve.go), which must never wait for that: it
// hands the store to the storer goroutine and waits at most storeWait;
// past that, or when another store of the file is under way, that open is
// a direct-I/O one, as the other files are (its reads come to the daemon:
// three round trips, never stale nor cut by a size the kernel kept).
//
// A reader copying the page while a store rewrites it could in principle
// see a mix of two renders a few milliseconds apart; stores are skipped
// when the content did not change (meminfo, stat and the others change at
// most every viewTTL), which leaves /proc/uptime, read by two processes of
// one container in the same microsecond.

const (
	// storeWait bounds how long an open waits for its store.
	storeWait = 5 * time.Millisecond
	// storedAttrTTL is how long the kernel keeps a stored file's
	// attributes: its size is kept right by stores and invalidations, its
	// owner and mode never change.
	storedAttrTTL = time.Hour

	notifyInvalInode = 2 // FUSE_NOTIFY_INVAL_INODE
	notifyInvalEntry = 3 // FUSE_NOTIFY_INVAL_ENTRY
	notifyStore      = 4 // FUSE_NOTIFY_STORE
	outHeaderSize    = 16
)

// storedFile is the daemon's side of one stored file's page cache.
type storedFile struct {
	// mu is held by whoever stores the file's content (TryLock only on
	// the serving goroutine).
	mu   sync.Mutex
	cur  atomic.Pointer[[]byte] // what the page cache was last given
	size atomic.Int64           // the inode size the kernel was told
	open atomic.Int32           // open handles
	read atomic.Pointer[func() ([]byte, error)]
}

type storeJob struct {
	ino  fuseops.InodeID
	f    *storedFile
	b    []byte
	done chan bool
}

// storeTable keeps the stored files of one FUSE connection.
type storeTable struct {
	dev  int // a dup of the connection's /dev/fuse fd: notifications
	jobs chan storeJob
	stop chan struct{}
	wg   sync.WaitGroup

	mu    sync.Mutex
	files map[fuseops.InodeID]*storedFile
}

func newStoreTable(dev int) *storeTable {
	t := &storeTable{dev: dev, jobs: make(chan storeJob, 16), stop: make(chan struct{}), files: map[fuseops.InodeID]*storedFile{}}
	t.wg.Add(2)
	go t.storer()
	go t.refresher()
	return t
}

// close stops the goroutines and the notifications, once the connection
// is gone (a store still waiting in the kernel then ends). If one does not
// end within a second, its fd stays open with it.
func (t *storeTable) close() {
	close(t.stop)
	done := make(chan struct{})
	go func() {
		t.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		unix.Close(t.dev)
	case <-time.After(time.Second):
		slog.Warn("a page-cache store is still waiting in the kernel")
	}
}

func (t *storeTable) file(ino fuseops.InodeID) *storedFile {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.files[ino]
	if f == nil {
		f = &storedFile{}
		f.size.Store(-1)
		t.files[ino] = f
	}
	return f
}

// forget drops what is kept of an inode the kernel forgot.
func (t *storeTable) forget(ino fuseops.InodeID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.files, ino)
}

// size is the size to report for stored file ino: what the kernel was
// last told, or the length of a first render.
func (t *storeTable) size(ino fuseops.InodeID, read func() ([]byte, error)) (uint64, error) {
	f := t.file(ino)
	if s := f.size.Load(); s >= 0 {
		return uint64(s), nil
	}
	b, err := read()
	if err != nil {
		return 0, err
	}
	f.size.CompareAndSwap(-1, int64(len(b)))
	return uint64(f.size.Load()), nil
}

// opened stores b, just rendered for a new handle of ino, in the page
// cache, and reports whether the open may keep it (FOPEN_KEEP_CACHE).
// Called on the serving goroutine: it never waits long.
func (t *storeTable) opened(ino fuseops.InodeID, read func() ([]byte, error), b []byte) bool {
	f := t.file(ino)
	f.open.Add(1)
	f.read.Store(&read)
	if !f.mu.TryLock() {
		return false // a refresh is under way (or stuck)
	}
	if cur := f.cur.Load(); cur != nil && bytes.Equal(*cur, b) {
		f.mu.Unlock()
		return true // the page cache has it already
	}
	j := storeJob{ino: ino, f: f, b: b, done: make(chan bool, 1)}
	select {
	case t.jobs <- j: // the storer unlocks f.mu
	default:
		f.mu.Unlock()
		return false // the storer is stuck on another file
	}
	timer := time.NewTimer(storeWait)
	defer timer.Stop()
	select {
	case ok := <-j.done:
		return ok
	case <-timer.C:
		return false
	}
}

// released counts a handle of ino closed.
func (t *storeTable) released(ino fuseops.InodeID) {
	t.mu.Lock()
	f := t.files[ino]
	t.mu.Unlock()
	if f != nil {
		f.open.Add(-1)
	}
}

// current is what the page cache of ino was last given (nil: nothing yet).
func (t *storeTable) current(ino fuseops.InodeID) []byte {
	t.mu.Lock()
	f := t.files[ino]
	t.mu.Unlock()
	if f == nil {
		return nil
	}
	if b := f.cur.Load(); b != nil {
		return *b
	}
	return nil
}

func (t *storeTable) storer() {
	defer t.wg.Done()
	for {
		select {
		case <-t.stop:
			return
		case j := <-t.jobs:
			ok := t.put(j.ino, j.f, j.b)
			j.f.mu.Unlock()
			j.done <- ok
		}
	}
}

// refresher renders again, every viewTTL, the stored files that have open
// handles, and stores what changed: readers that keep them open and re-read
// see new content.
func (t *storeTable) refresher() {
	defer t.wg.Done()
	tick := time.NewTicker(viewTTL)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tick.C:
		}
		t.mu.Lock()
		var open []fuseops.InodeID
		for ino, f := range t.files {
			if f.open.Load() > 0 {
				open = append(open, ino)
			}
		}
		t.mu.Unlock()
		for _, ino := range open {
			t.refresh(ino)
		}
	}
}

func (t *storeTable) refresh(ino fuseops.InodeID) {
	t.mu.Lock()
	f := t.files[ino]
	t.mu.Unlock()
	if f == nil {
		return
	}
	read := f.read.Load()
	if read == nil {
		return
	}
	b, err := (*read)()
	if err != nil {
		return // the container went; its handles close
	}
	if cur := f.cur.Load(); cur != nil && bytes.Equal(*cur, b) {
		return
	}
	if !f.mu.TryLock() {
		return // an open stores it
	}
	defer f.mu.Unlock()
	t.put(ino, f, b)
}

// put gives the kernel r as ino's content; f.mu is held. A shorter
// content also invalidates the inode's attributes (see above).
func (t *storeTable) put(ino fuseops.InodeID, f *storedFile, b []byte) bool {
	old := f.size.Load()
	f.cur.Store(&b)
	f.size.Store(int64(len(b)))
	if err := t.notifyStore(ino, b); err != nil {
		slog.Debug("store a view in the page cache", "ino", ino, "err", err)
		return false
	}
	if int64(len(b)) < old {
		if err := t.notifyInvalAttrs(ino); err != nil {
			slog.Debug("invalidate a view's attributes", "ino", ino, "err", err)
			return false
		}
	}
	return true
}

// notifyStore writes data at offset 0 of ino's page cache
// (struct fuse_notify_store_out, then the data).
func (t *storeTable) notifyStore(ino fuseops.InodeID, data []byte) error {
	msg := make([]byte, outHeaderSize+24+len(data))
	le := binary.LittleEndian
	le.PutUint32(msg[0:], uint32(len(msg)))
	le.PutUint32(msg[4:], notifyStore) // the header's error field names the notification
	le.PutUint64(msg[16:], uint64(ino))
	le.PutUint64(msg[24:], 0)
	le.PutUint32(msg[32:], uint32(len(data)))
	copy(msg[40:], data)
	return t.write(msg)
}

// notifyInvalAttrs invalidates ino's attributes, not its pages
// (struct fuse_notify_inval_inode_out with a negative offset).
func (t *storeTable) notifyInvalAttrs(ino fuseops.InodeID) error {
	msg := make([]byte, outHeaderSize+24)
	le := binary.LittleEndian
	le.PutUint32(msg[0:], uint32(len(msg)))
	le.PutUint32(msg[4:], notifyInvalInode)
	le.PutUint64(msg[16:], uint64(ino))
	le.PutUint64(msg[24:], uint64(1<<64-1)) // offset -1: attributes only
	return t.write(msg)
}

// notifyInvalEntry drops name in directory parent from the kernel's cache
// (struct fuse_notify_inval_entry_out, then the name and a NUL); ENOENT:
// it was not cached.
func (t *storeTable) notifyInvalEntry(parent fuseops.InodeID, name string) error {
	msg := make([]byte, outHeaderSize+16+len(name)+1)
	le := binary.LittleEndian
	le.PutUint32(msg[0:], uint32(len(msg)))
	le.PutUint32(msg[4:], notifyInvalEntry)
	le.PutUint64(msg[16:], uint64(parent))
	le.PutUint32(msg[24:], uint32(len(name)))
	copy(msg[32:], name)
	return t.write(msg)
}

func (t *storeTable) write(msg []byte) error {
	n, err := unix.Write(t.dev, msg)
	if err != nil {
		return err
	}
	if n != len(msg) {
		return fmt.Errorf("wrote %d of %d bytes", n, len(msg))
	}
	return nil
}
