package fs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/sysbox-dev/sysbox/internal/cgview"
	"github.com/sysbox-dev/sysbox/internal/ipc"
)

// daemon holds the registered containers and builds their files.
type daemon struct {
	host       *host
	mountpoint string
	// nsProc is the daemon's own procfs: /proc/sys opened by a thread that
	// joined a container's namespace shows that namespace's values.
	nsProc string
	self   nsSet
	// stateDir keeps a record of each started container, so that a
	// restarted daemon takes them back (recover.go); "" for none.
	stateDir string
	recMu    sync.Mutex // serializes the records' writes

	mu         sync.RWMutex
	containers map[string]*container
}

func newDaemon(h *host, mountpoint string) (*daemon, error) {
	self, err := openNS(0)
	if err != nil {
		return nil, err
	}
	return &daemon{host: h, mountpoint: mountpoint, nsProc: "/proc", self: self, containers: map[string]*container{}}, nil
}

func (d *daemon) close() {
	d.mu.Lock()
	cs := d.containers
	d.containers = map[string]*container{}
	d.mu.Unlock()
	for _, c := range cs {
		c.close()
	}
	d.self.close()
}

func (d *daemon) get(id string) *container {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.containers[id]
}

// validID keeps an ID a single path component of the view.
func validID(id string) error {
	if id == "" || strings.HasPrefix(id, ".") || strings.ContainsAny(id, "/\x00") || len(id) > 255 {
		return fmt.Errorf("invalid container id %q", id)
	}
	return nil
}

// register brings up a container's view; registering again (a restart of
// the same container) keeps its per-container values.
func (d *daemon) register(_ context.Context, r ipc.FsRegister) (ipc.FsRegistration, error) {
	if err := validID(r.ID); err != nil {
		return ipc.FsRegistration{}, err
	}
	d.mu.Lock()
	var old *container
	c := d.containers[r.ID]
	switch {
	case c == nil:
		c = newContainer(r.ID, r.UIDBase, r.GIDBase, r.Hostname)
		d.containers[r.ID] = c
	case c.uid != r.UIDBase || c.gid != r.GIDBase:
		// Another id range is another container under a reused ID. (uid and
		// gid never change on a container: FUSE ops read them unlocked.)
		old = c
		c = newContainer(r.ID, r.UIDBase, r.GIDBase, r.Hostname)
		d.containers[r.ID] = c
	default:
		c.mu.Lock()
		c.hostname = r.Hostname
		c.mu.Unlock()
	}
	d.mu.Unlock()
	if old != nil {
		old.close()
	}
	slog.Debug("registered", "id", r.ID, "uid", r.UIDBase)
	return ipc.FsRegistration{Mounts: d.mounts(r.ID)}, nil
}

// mountDests are the container paths the view covers, and where in the view
// each comes from.
var mountDests = []string{
	"/proc/uptime", "/proc/swaps", "/proc/meminfo", "/proc/cpuinfo", "/proc/stat",
	"/proc/loadavg", "/proc/diskstats", "/proc/sys",
	"/sys/kernel", "/sys/devices/system/cpu",
	"/sys/devices/virtual/dmi/id/product_uuid",
	"/sys/module/nf_conntrack/parameters/hashsize",
}

// mounts lists what the runtime binds. A bind needs its destination to exist
// in the container's fresh sysfs, which has what the host's has: the DMI
// and conntrack files are offered only where the host has them.
func (d *daemon) mounts(id string) []ipc.FsMount {
	out := make([]ipc.FsMount, 0, len(mountDests))
	for _, dest := range mountDests {
		if sys, ok := strings.CutPrefix(dest, "/sys/"); ok && (strings.HasPrefix(sys, "devices/virtual/dmi") || strings.HasPrefix(sys, "module/")) {
			if !d.hasFile(d.host.sysPath(sys)) {
				continue
			}
		}
		out = append(out, ipc.FsMount{Source: filepath.Join(d.mountpoint, id, dest), Dest: dest})
	}
	return out
}

// Mounts is the trap agent's view of where a container's emulated files
// come from (what `register` answered the runtime), and whether the
// container is registered.
func (d *daemon) Mounts(id string) ([]ipc.FsMount, bool) {
	if d.get(id) == nil {
		return nil, false
	}
	return d.mounts(id), true
}

// ReadView returns the content of a container's emulated file by its
// container path (dest, e.g. "/proc/meminfo"), made in-process: what a read
// through the FUSE mount would return, without the round trips. For the
// trap agent (sysinfo), which runs in this process: it must not read its
// own FUSE mount with os.ReadFile (see primePoll).
func (d *daemon) ReadView(id, dest string) ([]byte, error) {
	n, err := d.resolve(id + "/" + strings.TrimPrefix(dest, "/"))
	if err != nil {
		return nil, err
	}
	if n.kind != kFile || n.read == nil {
		return nil, syscall.EISDIR
	}
	return n.read()
}

// started learns the container's init pid and cgroups.
func (d *daemon) started(_ context.Context, r ipc.FsStarted) (ipc.Empty, error) {
	c := d.get(r.ID)
	if c == nil {
		return ipc.Empty{}, fmt.Errorf("container %q is not registered", r.ID)
	}
	if r.Pid <= 0 {
		return ipc.Empty{}, fmt.Errorf("container %q: bad init pid %d", r.ID, r.Pid)
	}
	if err := c.start(d.host.proc, r.Pid, r.Cgroups); err != nil {
		return ipc.Empty{}, fmt.Errorf("container %q: %w", r.ID, err)
	}
	c.mu.Lock()
	c.changed = func() { d.saveRecord(c, r.Cgroups) }
	c.mu.Unlock()
	go c.runLoad(d.host.proc)
	d.saveRecord(c, r.Cgroups)
	slog.Debug("started", "id", r.ID, "pid", r.Pid, "cgroups", r.Cgroups)
	return ipc.Empty{}, nil
}

// unregister drops a container's view; unknown IDs are not an error, so a
// retried delete succeeds.
func (d *daemon) unregister(_ context.Context, r ipc.MgrID) (ipc.Empty, error) {
	d.mu.Lock()
	c := d.containers[r.ID]
	delete(d.containers, r.ID)
	d.mu.Unlock()
	d.dropRecord(r.ID)
	if c != nil {
		c.close()
		slog.Debug("unregistered", "id", r.ID)
	}
	return ipc.Empty{}, nil
}

// The files' contents: gather the inputs, hand them to the renderers.

func (d *daemon) uptime(c *container) []byte {
	up := c.uptime(d.host)
	vis := c.visibleCPUs(d.host)
	used, _ := c.cpuUsage()
	return renderUptime(up, containerIdle(up, len(vis), used.Total))
}

func (d *daemon) memory(c *container) (cgview.Memory, bool) {
	s := c.snap()
	if !s.started {
		return cgview.Memory{}, false
	}
	m, err := s.cg.Memory()
	if err != nil {
		if !errors.Is(err, cgview.ErrNoController) {
			slog.Debug("read memory cgroup", "id", c.id, "err", err)
		}
		return cgview.Memory{}, false
	}
	return m, true
}

func (d *daemon) meminfo(c *container) ([]byte, error) {
	return c.view("meminfo", func() ([]byte, error) { return d.renderMeminfo(c) })
}

func (d *daemon) renderMeminfo(c *container) ([]byte, error) {
	host, err := d.host.readProc("meminfo")
	if err != nil {
		return nil, err
	}
	m, ok := d.memory(c)
	return renderMeminfo(host, m, ok), nil
}

func (d *daemon) swaps(c *container) ([]byte, error) {
	return c.view("swaps", func() ([]byte, error) { return d.renderSwaps(c) })
}

func (d *daemon) renderSwaps(c *container) ([]byte, error) {
	hs, err := d.host.readProc("swaps")
	if err != nil {
		return nil, err
	}
	m, ok := d.memory(c)
	if !ok {
		return hs, nil
	}
	hm, err := d.host.readProc("meminfo")
	if err != nil {
		return nil, err
	}
	return renderSwaps(hs, hm, m, ok), nil
}

func (d *daemon) cpuinfo(c *container) ([]byte, error) {
	return c.view("cpuinfo", func() ([]byte, error) {
		return renderCpuinfo(d.host.cpuInfo(), c.visibleCPUs(d.host)), nil
	})
}

func (d *daemon) stat(c *container) ([]byte, error) {
	return c.view("stat", func() ([]byte, error) { return d.renderStat(c) })
}

func (d *daemon) renderStat(c *container) ([]byte, error) {
	hs, err := d.host.readProc("stat")
	if err != nil {
		return nil, err
	}
	s := c.snap()
	if !s.started {
		return hs, nil
	}
	u, ok := c.cpuUsage()
	if !ok {
		return hs, nil
	}
	running, blocked, ok := c.taskCounts()
	if !ok {
		running = -1
	}
	return renderStat(hs, cpuTimes(c.visibleCPUs(d.host), u, c.uptime(d.host)), running, blocked), nil
}

func (d *daemon) loadavg(c *container) ([]byte, error) {
	if b, ok := c.loadavg(); ok {
		return b, nil
	}
	return d.host.readProc("loadavg")
}

func (d *daemon) diskstats(c *container) ([]byte, error) {
	return c.view("diskstats", func() ([]byte, error) { return d.renderDiskstats(c) })
}

func (d *daemon) renderDiskstats(c *container) ([]byte, error) {
	hs, err := d.host.readProc("diskstats")
	if err != nil {
		return nil, err
	}
	s := c.snap()
	if !s.started {
		return hs, nil
	}
	io, err := s.cg.IO()
	if err != nil {
		return hs, nil
	}
	return renderDiskstats(hs, io), nil
}
