package mgr

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sysbox-dev/sysbox/internal/ipc"
)

// config is what the daemon decided at start.
type config struct {
	DataRoot  string
	RangeSize uint64 // default ids per container
	PoolStart uint64 // the sysbox subuid/subgid range
	PoolSize  uint64
	Idmap     bool // the data root's fs takes id-mapped mounts
	Kernel    []ipc.MgrMount
	Sweep     time.Duration // periodic GC interval
}

// manager holds the registry. mu guards recs and alloc and is never held
// across I/O; the per-container lock orders register, stopped and remove of
// one container.
type manager struct {
	cfg config
	st  *store

	mu    sync.Mutex
	alloc *allocator
	recs  map[string]*record
	// orphans are special dirs on disk with no record (see findOrphans).
	orphans map[string]bool

	locks  keyedLocks
	watch  *watcher
	kickCh chan struct{}
	gcErr  map[string]string // last removal error per container, to log changes only

	life   sync.RWMutex
	closed bool
	stop   context.CancelFunc
	gcDone chan struct{}
}

func newManager(cfg config, st *store, recs []record) (*manager, error) {
	m := &manager{
		cfg:     cfg,
		st:      st,
		alloc:   newAllocator(cfg.PoolStart, cfg.PoolSize),
		recs:    map[string]*record{},
		orphans: map[string]bool{},
		kickCh:  make(chan struct{}, 1),
		gcErr:   map[string]string{},
	}
	for i := range recs {
		r := recs[i]
		if err := m.alloc.add(r.ID, uint64(r.Base), uint64(r.Size)); err != nil {
			return nil, fmt.Errorf("state in %s is inconsistent: %w", st.path, err)
		}
		if r.Base < uint32(cfg.PoolStart) || uint64(r.Base)+uint64(r.Size) > cfg.PoolStart+cfg.PoolSize {
			slog.Warn("container range outside the sysbox subuid range (was it changed?); kept until the container is removed",
				"id", r.ID, "base", r.Base, "size", r.Size)
		}
		m.recs[r.ID] = &r
	}
	return m, nil
}

// begin and end bracket every call, so shutdown waits for calls in flight.
func (m *manager) begin() bool {
	m.life.RLock()
	if m.closed {
		m.life.RUnlock()
		return false
	}
	return true
}

func (m *manager) end() { m.life.RUnlock() }

var errShuttingDown = errors.New("sysbox-mgr is shutting down")

// validateID keeps a container ID usable as a path component.
func validateID(id string) error {
	switch {
	case id == "":
		return errors.New("container ID is empty")
	case len(id) > 255:
		return fmt.Errorf("container ID is %d bytes long, the limit is 255", len(id))
	case strings.ContainsAny(id, "/\x00"):
		return fmt.Errorf("container ID %q contains '/' or NUL", id)
	case strings.HasPrefix(id, "."):
		return fmt.Errorf("container ID %q starts with '.'", id)
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("container ID %q contains a control character", id)
		}
	}
	return nil
}

// rangeSize turns a requested size into a whole number of blocks.
func (m *manager) rangeSize(want uint32) (uint64, error) {
	size := uint64(want)
	if size == 0 {
		size = m.cfg.RangeSize
	}
	size = (size + BlockSize - 1) / BlockSize * BlockSize
	if size > m.cfg.PoolSize {
		return 0, fmt.Errorf("idSize %d is larger than the whole sysbox id range (%d ids from /etc/subuid)", want, m.cfg.PoolSize)
	}
	return size, nil
}

// allocate gives id its range, or returns the one it has; the range is in
// the journal (it survives kill -9) before allocate returns. It is the hot
// path the allocation benchmark measures: an in-memory search and one
// write(2) to the journal; bbolt's fsynced commit follows in the background
// (journal.go).
func (m *manager) allocate(r record, size uint64) (record, bool, error) {
	m.mu.Lock()
	if old, ok := m.recs[r.ID]; ok {
		out := *old
		m.mu.Unlock()
		return out, false, nil
	}
	base, err := m.alloc.alloc(r.ID, size)
	if err != nil {
		m.mu.Unlock()
		return record{}, false, err
	}
	r.Base, r.Size = uint32(base), uint32(size)
	m.recs[r.ID] = &r
	m.mu.Unlock()
	if err := m.st.put(r); err != nil {
		m.mu.Lock()
		m.alloc.free(r.ID)
		delete(m.recs, r.ID)
		m.mu.Unlock()
		return record{}, false, err
	}
	return r, true, nil
}

func (m *manager) save(r record) error {
	if err := m.st.put(r); err != nil {
		return err
	}
	m.mu.Lock()
	m.recs[r.ID] = &r
	m.mu.Unlock()
	return nil
}

func (m *manager) get(id string) (record, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.recs[id]
	if !ok {
		return record{}, false
	}
	return *r, true
}

func (m *manager) register(_ context.Context, req ipc.MgrRegister) (ipc.MgrRegistration, error) {
	var out ipc.MgrRegistration
	if !m.begin() {
		return out, errShuttingDown
	}
	defer m.end()
	if err := validateID(req.ID); err != nil {
		return out, err
	}
	size, err := m.rangeSize(req.IDSize)
	if err != nil {
		return out, err
	}
	if req.Bundle == "" || !filepath.IsAbs(req.Bundle) {
		return out, fmt.Errorf("bundle %q is not an absolute path", req.Bundle)
	}
	bundle := filepath.Clean(req.Bundle)
	rootfs := req.Rootfs
	if rootfs == "" {
		rootfs = "rootfs"
	}
	if !filepath.IsAbs(rootfs) {
		rootfs = filepath.Join(bundle, rootfs)
	}
	rootfs = filepath.Clean(rootfs)

	unlock := m.locks.lock(req.ID)
	defer unlock()

	if old, ok := m.get(req.ID); ok && old.Removing {
		if err := m.removeLocked(req.ID, "registered again while being removed"); err != nil {
			return out, err
		}
	}
	anchors := anchorsFor(bundle, rootfs)
	r, created, err := m.allocate(record{
		ID: req.ID, Bundle: bundle, Rootfs: rootfs, Anchors: anchors,
		Running: true, Created: time.Now().UTC(),
	}, size)
	if err != nil {
		return out, err
	}
	if created {
		slog.Info("container registered", "id", r.ID, "base", r.Base, "size", r.Size)
	} else {
		if uint64(r.Size) != size && req.IDSize != 0 {
			slog.Warn("container keeps the range it got first", "id", r.ID, "size", r.Size, "asked", size)
		}
		if r.Bundle != bundle || r.Rootfs != rootfs || !r.Running || !slices.Equal(r.Anchors, anchors) {
			r.Bundle, r.Rootfs, r.Anchors, r.Running = bundle, rootfs, anchors, true
			if err := m.save(r); err != nil {
				return out, err
			}
		}
	}
	mounts, err := m.ensureDirs(&r, req.Mounted, req.NoSpecialDirs)
	if err != nil {
		return out, err
	}
	if m.watch != nil {
		paths := make([]string, 0, len(r.Anchors))
		for _, a := range r.Anchors {
			paths = append(paths, a.Path)
		}
		m.watch.watch(r.ID, paths)
	}
	return ipc.MgrRegistration{UIDBase: r.Base, GIDBase: r.Base, Size: r.Size, Mounts: mounts}, nil
}

// ensureDirs makes the special dirs the container needs (all but those the
// spec mounts itself) and lists its mounts. A dir is recorded once its
// content is in place: a crash before leaves it unrecorded and the next
// registration starts it over.
func (m *manager) ensureDirs(r *record, mounted []string, none bool) ([]ipc.MgrMount, error) {
	var mounts []ipc.MgrMount
	changed, durable := false, false
	r.Dirs = slices.Clone(r.Dirs) // shared with the copy in recs until saved
	for _, sd := range specialDirs {
		if none || userMounted(sd.Dest, mounted) {
			continue
		}
		i := slices.IndexFunc(r.Dirs, func(d dir) bool { return d.Kind == sd.Kind })
		var d dir
		if i >= 0 {
			d = r.Dirs[i]
		} else {
			d = dir{Kind: sd.Kind, Dest: sd.Dest, Path: filepath.Join(m.cfg.DataRoot, sd.Kind, r.ID), Idmap: m.cfg.Idmap}
		}
		_, statErr := os.Lstat(d.Path)
		if !d.Ready || errors.Is(statErr, fs.ErrNotExist) {
			m.mu.Lock()
			adopt := m.orphans[d.Path]
			delete(m.orphans, d.Path)
			m.mu.Unlock()
			switch {
			case adopt && statErr == nil:
				slog.Info("special dir adopted", "id", r.ID, "path", d.Path)
			case !d.Idmap && !durable:
				// A chowned dir belongs to this range: the range must be
				// in bbolt before the dir exists, or after a power loss
				// the container could come back with another range and
				// find its dir owned by the old one (journal.go).
				if err := m.st.flush(); err != nil {
					return nil, err
				}
				durable = true
				fallthrough
			default:
				if err := fillDir(d, r.Rootfs, r.Base); err != nil {
					return nil, err
				}
			}
			d.Ready = true
			if i >= 0 {
				r.Dirs[i] = d
			} else {
				r.Dirs = append(r.Dirs, d)
			}
			changed = true
		}
		mounts = append(mounts, ipc.MgrMount{Source: d.Path, Dest: d.Dest, Idmap: d.Idmap})
	}
	if changed {
		if err := m.save(*r); err != nil {
			return nil, err
		}
	}
	for _, k := range m.cfg.Kernel {
		if !userMounted(k.Dest, mounted) {
			mounts = append(mounts, k)
		}
	}
	return mounts, nil
}

func (m *manager) stopped(_ context.Context, req ipc.MgrID) (ipc.Empty, error) {
	if !m.begin() {
		return ipc.Empty{}, errShuttingDown
	}
	defer m.end()
	if err := validateID(req.ID); err != nil {
		return ipc.Empty{}, err
	}
	unlock := m.locks.lock(req.ID)
	defer unlock()
	r, ok := m.get(req.ID)
	if !ok || !r.Running {
		return ipc.Empty{}, nil
	}
	r.Running = false
	return ipc.Empty{}, m.save(r)
}

func (m *manager) remove(_ context.Context, req ipc.MgrID) (ipc.Empty, error) {
	if !m.begin() {
		return ipc.Empty{}, errShuttingDown
	}
	defer m.end()
	if err := validateID(req.ID); err != nil {
		return ipc.Empty{}, err
	}
	unlock := m.locks.lock(req.ID)
	defer unlock()
	return ipc.Empty{}, m.removeLocked(req.ID, "asked by the runtime")
}

// removeLocked deletes id's dirs, then its record (freeing its range). The
// record is marked first, so a crash in between is finished at next start;
// a dir that cannot be deleted keeps the record, and the sweep retries.
func (m *manager) removeLocked(id, why string) error {
	r, ok := m.get(id)
	if ok && !r.Removing {
		r.Removing = true
		if err := m.save(r); err != nil {
			return err
		}
	}
	if m.watch != nil {
		m.watch.unwatch(id)
	}
	// Every kind, not only the recorded dirs: one may have been made just
	// before a crash, ahead of its record.
	for _, sd := range specialDirs {
		if err := removeTree(filepath.Join(m.cfg.DataRoot, sd.Kind, id)); err != nil {
			return err
		}
	}
	m.mu.Lock()
	for _, sd := range specialDirs {
		delete(m.orphans, filepath.Join(m.cfg.DataRoot, sd.Kind, id))
	}
	m.mu.Unlock()
	if !ok {
		return nil
	}
	// The release is in the journal before the range is free for another
	// container: so the journal never holds a reuse ahead of its release,
	// and any unbroken run of it replays to a state without overlaps.
	if err := m.st.del(id); err != nil {
		return err
	}
	m.mu.Lock()
	delete(m.recs, id)
	m.alloc.free(id)
	delete(m.gcErr, id)
	m.mu.Unlock()
	slog.Info("container removed", "id", id, "base", r.Base, "size", r.Size, "why", why)
	return nil
}

func (m *manager) status(_ context.Context, _ ipc.Empty) (ipc.MgrStatus, error) {
	if !m.begin() {
		return ipc.MgrStatus{}, errShuttingDown
	}
	defer m.end()
	m.mu.Lock()
	recs := make([]record, 0, len(m.recs))
	for _, r := range m.recs {
		recs = append(recs, *r)
	}
	used := m.alloc.used()
	var orphans []string
	for p := range m.orphans {
		orphans = append(orphans, p)
	}
	m.mu.Unlock()
	sort.Strings(orphans)
	sort.Slice(recs, func(i, j int) bool { return recs[i].Base < recs[j].Base })

	out := ipc.MgrStatus{
		DataRoot:   m.cfg.DataRoot,
		Idmap:      m.cfg.Idmap,
		IDStart:    m.cfg.PoolStart,
		IDCount:    m.cfg.PoolSize,
		IDsUsed:    used,
		Orphans:    orphans,
		Containers: make([]ipc.MgrContainer, len(recs)),
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i, r := range recs {
		c := ipc.MgrContainer{
			ID: r.ID, Bundle: r.Bundle, Rootfs: r.Rootfs, UIDBase: r.Base, GIDBase: r.Base, Size: r.Size,
			Running: r.Running, Removing: r.Removing, Created: r.Created,
		}
		for _, d := range r.Dirs {
			c.Dirs = append(c.Dirs, d.Path)
		}
		out.Containers[i] = c
		wg.Add(1)
		go func(c *ipc.MgrContainer) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			for _, p := range c.Dirs {
				c.DiskBytes += diskUse(p)
			}
		}(&out.Containers[i])
	}
	wg.Wait()
	return out, nil
}

// diskUse is the space the files under p take (hard links counted once).
func diskUse(p string) int64 {
	var total int64
	seen := map[[2]uint64]bool{}
	_ = filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		if st.Nlink > 1 && !d.IsDir() {
			k := [2]uint64{st.Dev, st.Ino}
			if seen[k] {
				return nil
			}
			seen[k] = true
		}
		total += st.Blocks * 512
		return nil
	})
	return total
}

// keyedLocks is a mutex per container ID, dropped when unused.
type keyedLocks struct {
	mu sync.Mutex
	m  map[string]*keyedLock
}

type keyedLock struct {
	sync.Mutex
	n int
}

func (k *keyedLocks) lock(id string) func() {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyedLock{}
	}
	l := k.m[id]
	if l == nil {
		l = &keyedLock{}
		k.m[id] = l
	}
	l.n++
	k.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		k.mu.Lock()
		l.n--
		if l.n == 0 {
			delete(k.m, id)
		}
		k.mu.Unlock()
	}
}
