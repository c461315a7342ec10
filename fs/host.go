package fs

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sysbox-dev/sysbox/internal/cgview"
)

// host is where the daemon reads the machine's own /proc and /sys: the real
// ones, or a fake tree in tests. Files that hardly change are cached.
type host struct {
	proc, sys string

	mu       sync.Mutex
	cpuinfo  []byte
	online   []int
	cachedAt time.Time
}

// hostCacheTTL bounds how stale the cached host files get (a CPU brought
// online shows up after this long).
const hostCacheTTL = 10 * time.Second

func newHost(proc, sys string) *host { return &host{proc: proc, sys: sys} }

func (h *host) procPath(rel string) string { return filepath.Join(h.proc, rel) }
func (h *host) sysPath(rel string) string  { return filepath.Join(h.sys, rel) }

func (h *host) readProc(rel string) ([]byte, error) { return readSmall(h.procPath(rel)) }

// refresh rereads the cached files when they are older than the TTL.
func (h *host) refresh() {
	if time.Since(h.cachedAt) < hostCacheTTL && h.cpuinfo != nil {
		return
	}
	if b, err := readSmall(h.procPath("cpuinfo")); err == nil {
		h.cpuinfo = b
	}
	if b, err := readSmall(h.sysPath("devices/system/cpu/online")); err == nil {
		if l, err := cgview.ParseList(string(b)); err == nil {
			h.online = l
		}
	}
	h.cachedAt = time.Now()
}

// cpuInfo returns the host's /proc/cpuinfo (shared: do not modify).
func (h *host) cpuInfo() []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.refresh()
	return h.cpuinfo
}

// onlineCPUs returns the host's online CPUs (shared: do not modify).
func (h *host) onlineCPUs() []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.refresh()
	return h.online
}

// uptime is the time since the host booted, from the clock that /proc/uptime
// itself reads.
func (h *host) uptime() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// readSmall reads a kernel-generated file to EOF. Such files report a size
// of 0 or 4096 whatever they hold, so stat cannot size the buffer. Raw
// syscalls, not os.File: os.Open also registers the fd with the netpoller
// (a failing epoll_ctl per file) and sets up a finalizer, a third of the
// cost of reading a small proc or cgroup file.
func readSmall(path string) ([]byte, error) {
	fd, err := openRetry(path)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	buf := make([]byte, 0, 4096)
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, len(buf))
		}
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}

func openRetry(path string) (int, error) {
	for {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if !errors.Is(err, unix.EINTR) {
			return fd, err
		}
	}
}

// procStat is what the daemon needs from /proc/<pid>/stat.
type procStat struct {
	state     byte
	startTime uint64 // clock ticks after boot
}

// parseProcStat parses /proc/<pid>/stat; comm may hold spaces and parens,
// so fields count from the last ')'.
func parseProcStat(b []byte) (procStat, bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return procStat{}, false
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state); starttime is field 22.
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, false
	}
	st, err := strconv.ParseUint(string(f[19]), 10, 64)
	if err != nil {
		return procStat{}, false
	}
	return procStat{state: f[0][0], startTime: st}, true
}
