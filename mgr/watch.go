package mgr

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// watcher reports, through kick, that something was deleted next to a
// container's bundle, rootfs or overlay upper dir, so removal is noticed at
// once rather than at the next periodic sweep. Events carry no verdict: the
// sweep decides.
type watcher struct {
	f    *os.File
	kick func()

	mu     sync.Mutex
	byPath map[string]int          // watched dir -> wd
	users  map[int]map[string]bool // wd -> container ids
	byID   map[string][]string     // container id -> watched dirs
}

const watchMask = unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR

func newWatcher(kick func()) (*watcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	// Non-blocking, so reads park in Go's poller and Close wakes them.
	w := &watcher{
		f:      os.NewFile(uintptr(fd), "inotify"),
		kick:   kick,
		byPath: map[string]int{},
		users:  map[int]map[string]bool{},
		byID:   map[string][]string{},
	}
	go w.loop()
	return w, nil
}

// watch follows the parent dirs of paths for container id (replacing what
// it followed before). A parent that does not exist is skipped: the periodic
// sweep covers it.
func (w *watcher) watch(id string, paths []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.unwatchLocked(id)
	var dirs []string
	seen := map[string]bool{}
	for _, p := range paths {
		d := filepath.Dir(p)
		if seen[d] {
			continue
		}
		seen[d] = true
		wd, ok := w.byPath[d]
		if !ok {
			var err error
			wd, err = unix.InotifyAddWatch(int(w.f.Fd()), d, watchMask)
			if err != nil {
				slog.Debug("inotify watch", "path", d, "err", err)
				continue
			}
			w.byPath[d] = wd
		}
		if w.users[wd] == nil {
			w.users[wd] = map[string]bool{}
		}
		w.users[wd][id] = true
		dirs = append(dirs, d)
	}
	w.byID[id] = dirs
}

func (w *watcher) unwatch(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.unwatchLocked(id)
}

func (w *watcher) unwatchLocked(id string) {
	for _, d := range w.byID[id] {
		wd, ok := w.byPath[d]
		if !ok {
			continue
		}
		delete(w.users[wd], id)
		if len(w.users[wd]) == 0 {
			_, _ = unix.InotifyRmWatch(int(w.f.Fd()), uint32(wd))
			delete(w.users, wd)
			delete(w.byPath, d)
		}
	}
	delete(w.byID, id)
}

func (w *watcher) loop() {
	buf := make([]byte, 64*1024)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				slog.Warn("inotify read", "err", err)
			}
			return
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			off += unix.SizeofInotifyEvent + int(ev.Len)
			if ev.Mask&unix.IN_IGNORED != 0 {
				// The dir is gone (or unmounted): the kernel dropped the watch.
				w.forget(int(ev.Wd))
			}
		}
		w.kick()
	}
}

func (w *watcher) forget(wd int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for d, x := range w.byPath {
		if x == wd {
			delete(w.byPath, d)
		}
	}
	delete(w.users, wd)
}

func (w *watcher) close() { w.f.Close() }
