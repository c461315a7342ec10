package fs

import (
	"bytes"
	"crypto/sha1"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/sysbox-dev/sysbox/internal/cgview"
)

// container is one registered container's view state. Its fields after mu
// change at `started` and on sysctl writes; FUSE ops run concurrently, so
// they go through the accessors.
type container struct {
	// Set once: read without the lock.
	id       string
	uid, gid uint32
	uuid     string
	regAt    time.Time

	mu       sync.Mutex
	hostname string
	started  bool
	pid      int
	bootOff  time.Duration // when init started, after host boot
	cg       *cgview.Cgroup
	ns       nsSet
	// nsMu is held (read) while a namespace file is in use, so close does
	// not pull it from under a setns.
	nsMu   sync.RWMutex
	sysctl map[string]string
	// changed runs after a write to sysctl (the daemon keeps its record).
	changed  func()
	netClass map[string]bool // net sysctl path -> emulated here (not the kernel's)
	load     loadAvg
	stop     chan struct{}

	// Limits change rarely (docker update); rereading them on every
	// /proc/uptime read would double its cost.
	visible   []int
	visibleAt time.Time

	views   map[string]cachedView
	usage   cgview.CPUUsage
	usageAt time.Time
}

// limitsTTL bounds how long a changed limit (docker update) takes to show.
const limitsTTL = time.Second

// viewTTL is how long a rendered resource view (meminfo, stat...) is served
// again to the container's readers. The kernel itself flushes the memory
// cgroup's statistics lazily (up to about 2 s late), so this costs no real
// accuracy, and a burst of readers (top, free, a monitoring agent) costs
// one render.
const viewTTL = 100 * time.Millisecond

type cachedView struct {
	b  []byte
	at time.Time
}

// view returns the file's content rendered at most viewTTL ago.
func (c *container) view(name string, render func() ([]byte, error)) ([]byte, error) {
	c.mu.Lock()
	v, ok := c.views[name]
	c.mu.Unlock()
	if ok && time.Since(v.at) < viewTTL {
		return v.b, nil
	}
	b, err := render()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.views == nil {
		c.views = map[string]cachedView{}
	}
	c.views[name] = cachedView{b: b, at: time.Now()}
	c.mu.Unlock()
	return b, nil
}

// cpuUsage returns the cgroup's CPU usage read at most viewTTL ago.
func (c *container) cpuUsage() (cgview.CPUUsage, bool) {
	c.mu.Lock()
	if c.started && time.Since(c.usageAt) < viewTTL {
		u := c.usage
		c.mu.Unlock()
		return u, true
	}
	cg, started := c.cg, c.started
	c.mu.Unlock()
	if !started {
		return cgview.CPUUsage{}, false
	}
	u, err := cg.CPUUsage()
	if err != nil {
		return cgview.CPUUsage{}, false
	}
	c.mu.Lock()
	c.usage, c.usageAt = u, time.Now()
	c.mu.Unlock()
	return u, true
}

func newContainer(id string, uid, gid uint32, hostname string) *container {
	return &container{
		id: id, uid: uid, gid: gid, hostname: hostname,
		uuid:     productUUID(id),
		regAt:    time.Now(),
		sysctl:   map[string]string{},
		netClass: map[string]bool{},
	}
}

// productUUID derives a stable, per-container DMI product UUID from the ID: a
// name-based (version 5) UUID, so the same container keeps it across daemon
// restarts and two containers never share one.
func productUUID(id string) string {
	// A namespace UUID of our own, so IDs do not collide with other v5 users.
	ns := []byte{0x5b, 0x1e, 0x07, 0x9c, 0x2d, 0x4a, 0x4f, 0x3e, 0x9a, 0x61, 0x53, 0x79, 0x73, 0x62, 0x6f, 0x78}
	h := sha1.Sum(append(ns, id...))
	h[6] = h[6]&0x0f | 0x50
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// start records what `started` tells: init's pid (for its namespaces and
// start time) and the cgroup.
func (c *container) start(proc string, pid int, cgroups map[string]string) error {
	b, err := cgview.ReadFile(fmt.Sprintf("%s/%d/stat", proc, pid))
	if err != nil {
		return fmt.Errorf("read init's stat: %w", err)
	}
	st, ok := parseProcStat(b)
	if !ok {
		return fmt.Errorf("parse /proc/%d/stat", pid)
	}
	ns, err := openNS(pid)
	if err != nil {
		return err
	}
	c.nsMu.Lock()
	defer c.nsMu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stop != nil {
		// Started again (a restart): the old sampler watched the old cgroup.
		close(c.stop)
		c.stop = nil
	}
	c.load = loadAvg{}
	c.ns.close()
	c.ns = ns
	c.pid = pid
	c.bootOff = time.Duration(st.startTime) * tick
	c.cg = cgview.New(cgroups)
	c.visible, c.visibleAt = nil, time.Time{}
	c.views, c.usageAt = nil, time.Time{}
	c.netClass = map[string]bool{}
	c.started = true
	return nil
}

// close releases the namespaces and stops the load sampler.
func (c *container) close() {
	c.nsMu.Lock()
	defer c.nsMu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stop != nil {
		close(c.stop)
		c.stop = nil
	}
	c.ns.close()
	c.started = false
}

// snapshot is what one file read needs of the container, taken under the lock.
type snapshot struct {
	started bool
	pid     int
	bootOff time.Duration
	cg      *cgview.Cgroup
}

func (c *container) snap() snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	return snapshot{started: c.started, pid: c.pid, bootOff: c.bootOff, cg: c.cg}
}

// visibleCPUs returns the host CPUs the container sees, cached for limitsTTL.
func (c *container) visibleCPUs(h *host) []int {
	c.mu.Lock()
	if c.visible != nil && time.Since(c.visibleAt) < limitsTTL {
		v := c.visible
		c.mu.Unlock()
		return v
	}
	cg, started := c.cg, c.started
	c.mu.Unlock()
	online := h.onlineCPUs()
	if !started {
		return online
	}
	cpuset, _ := cg.Cpuset()
	quota, _ := cg.Quota()
	v := cgview.VisibleCPUs(online, cpuset, quota)
	c.mu.Lock()
	c.visible, c.visibleAt = v, time.Now()
	c.mu.Unlock()
	return v
}

// uptime is the container's: since its init started, or since it was
// registered if it has not yet.
func (c *container) uptime(h *host) time.Duration {
	s := c.snap()
	if !s.started {
		return time.Since(c.regAt)
	}
	return max(h.uptime()-s.bootOff, 0)
}

// runLoad samples the container's tasks every loadInterval until stopped.
func (c *container) runLoad(proc string) {
	c.mu.Lock()
	if c.stop != nil {
		c.mu.Unlock()
		return
	}
	stop := make(chan struct{})
	c.stop = stop
	cg := c.cg
	c.mu.Unlock()
	if cg == nil {
		return
	}
	t := time.NewTicker(loadInterval)
	defer t.Stop()
	for {
		running, blocked, total, last, err := countTasks(proc, cg)
		if err != nil {
			slog.Debug("sample load", "id", c.id, "err", err)
		}
		c.mu.Lock()
		c.load.sample(running, blocked, total, last)
		c.mu.Unlock()
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

// countTasks counts the cgroup's runnable (R) and uninterruptible (D)
// threads, and finds the last pid handed out in the container's pid
// namespace: the one of its newest thread.
func countTasks(proc string, cg *cgview.Cgroup) (running, blocked, total, lastPid int, err error) {
	tids, err := cg.Threads()
	if err != nil {
		return 0, 0, 0, 0, err
	}
	newest := 0
	for _, tid := range tids {
		b, err := cgview.ReadFile(proc + "/" + strconv.Itoa(tid) + "/stat")
		if err != nil {
			continue // exited since the listing
		}
		st, ok := parseProcStat(b)
		if !ok {
			continue
		}
		total++
		switch st.state {
		case 'R':
			running++
		case 'D':
			blocked++
		}
		newest = max(newest, tid)
	}
	if newest > 0 {
		lastPid = nsPid(proc, newest)
	}
	return running, blocked, total, lastPid, nil
}

// nsPid returns tid's pid in its innermost pid namespace (NSpid's last).
func nsPid(proc string, tid int) int {
	b, err := os.ReadFile(proc + "/" + strconv.Itoa(tid) + "/status")
	if err != nil {
		return 0
	}
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		if rest, ok := bytes.CutPrefix(line, []byte("NSpid:")); ok {
			f := bytes.Fields(rest)
			if len(f) > 0 {
				n, _ := strconv.Atoi(string(f[len(f)-1]))
				return n
			}
		}
	}
	return 0
}

func (c *container) loadavg() ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.load.sampled {
		return nil, false
	}
	return c.load.render(), true
}

func (c *container) taskCounts() (running, blocked int, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.load.running, c.load.blocked, c.load.sampled
}

// hasNS reports whether the container's namespace of kind k is known (it is
// from `started` on).
func (c *container) hasNS(k nsKind) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ns[k] != nil
}
