package fs

import (
	"bytes"
	"path/filepath"
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

func (h *host) readProc(rel string) ([]byte, error) { return cgview.ReadFile(h.procPath(rel)) }

// refresh rereads the cached files when they are older than the TTL.
func (h *host) refresh() {
	if time.Since(h.cachedAt) < hostCacheTTL && h.cpuinfo != nil {
		return
	}
	if b, err := cgview.ReadFile(h.procPath("cpuinfo")); err == nil {
		h.cpuinfo = b
	}
	if b, err := cgview.ReadFile(h.sysPath("devices/system/cpu/online")); err == nil {
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
