package fs

import (
	"encoding/binary"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// storePipe is a store table writing its notifications into a pipe: what
// the kernel would get, or, with the pipe full, a store stuck in the
// kernel.
func storePipe(t *testing.T) (*storeTable, int) {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	st := newStoreTable(p[1])
	t.Cleanup(func() {
		drain(p[0])
		st.close()
		unix.Close(p[0])
	})
	return st, p[0]
}

func drain(fd int) {
	_ = unix.SetNonblock(fd, true)
	buf := make([]byte, 64<<10)
	for {
		if n, err := unix.Read(fd, buf); n <= 0 || err != nil {
			return
		}
	}
}

func readFull(t *testing.T, fd int, b []byte) {
	t.Helper()
	for len(b) > 0 {
		n, err := unix.Read(fd, b)
		if err != nil || n == 0 {
			t.Fatalf("read: %d, %v", n, err)
		}
		b = b[n:]
	}
}

func render(s string) func() ([]byte, error) {
	return func() ([]byte, error) { return []byte(s), nil }
}

// TestStoreMessages: an open stores the content (FUSE_NOTIFY_STORE at
// offset 0), an unchanged one is not stored again, a shorter one is stored
// and the inode's attributes invalidated.
func TestStoreMessages(t *testing.T) {
	st, r := storePipe(t)
	next := func() (code uint32, ino uint64, body []byte) {
		t.Helper()
		// A pipe joins the messages: each says its length first.
		buf := make([]byte, 4)
		readFull(t, r, buf)
		n := int(binary.LittleEndian.Uint32(buf))
		if n < outHeaderSize+8 || n > 4096 {
			t.Fatalf("a notification of %d bytes", n)
		}
		buf = append(buf, make([]byte, n-4)...)
		readFull(t, r, buf[4:])
		return binary.LittleEndian.Uint32(buf[4:]), binary.LittleEndian.Uint64(buf[16:]), buf[outHeaderSize+8 : n]
	}
	if size, err := st.size(7, render("12345\n")); err != nil || size != 6 {
		t.Fatalf("size %d, %v", size, err)
	}
	if !st.opened(7, render("12345\n"), []byte("12345\n")) {
		t.Fatal("open not stored")
	}
	code, ino, body := next()
	if code != notifyStore || ino != 7 || binary.LittleEndian.Uint64(body[0:]) != 0 || binary.LittleEndian.Uint32(body[8:]) != 6 || string(body[16:]) != "12345\n" {
		t.Errorf("store: code %d ino %d body %q", code, ino, body)
	}
	// The same content: nothing to write.
	if !st.opened(7, render("12345\n"), []byte("12345\n")) {
		t.Fatal("unchanged open not kept")
	}
	// Shorter: stored, then the attributes invalidated.
	if !st.opened(7, render("123\n"), []byte("123\n")) {
		t.Fatal("shorter open not stored")
	}
	if code, _, body := next(); code != notifyStore || string(body[16:]) != "123\n" {
		t.Errorf("shorter store: code %d body %q", code, body)
	}
	if code, ino, body := next(); code != notifyInvalInode || ino != 7 || int64(binary.LittleEndian.Uint64(body)) != -1 {
		t.Errorf("after a shorter store: code %d ino %d off %d, want attributes invalidated", code, ino, int64(binary.LittleEndian.Uint64(body)))
	}
	if size, _ := st.size(7, render("x")); size != 4 {
		t.Errorf("size %d after the shorter store, want 4", size)
	}
	if b := st.current(7); string(b) != "123\n" {
		t.Errorf("current %q", b)
	}
	st.released(7)
	st.released(7)
	st.released(7)
	if n := st.file(7).open.Load(); n != 0 {
		t.Errorf("%d opens left", n)
	}
}

// TestStoreStuck: a store that cannot complete (here: the pipe is full; in
// the kernel: a page locked by a reader waiting for this daemon) never
// holds an open for long: it is answered without the page cache, and so
// are the next ones of that file while the store is stuck.
func TestStoreStuck(t *testing.T) {
	st, r := storePipe(t)
	w := st.dev
	_ = unix.SetNonblock(w, true)
	fill := make([]byte, 4096)
	for {
		if _, err := unix.Write(w, fill); err != nil {
			break
		}
	}
	_ = unix.SetNonblock(w, false)
	for i, b := range []string{"a\n", "b\n"} {
		start := time.Now()
		if st.opened(9, render(b), []byte(b)) {
			t.Errorf("open %d kept the page cache with its store stuck", i)
		}
		if took := time.Since(start); took > 10*storeWait {
			t.Errorf("open %d waited %v", i, took)
		}
	}
	drain(r)
}
