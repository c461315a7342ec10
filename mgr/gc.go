package mgr

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sysbox-dev/sysbox/internal/mountinfo"
)

// anchorsFor lists the paths whose existence means the container still
// exists: its bundle, its rootfs and, when the rootfs is an overlay, the
// overlay's upper dir. Docker's containerd shim deletes the bundle at stop,
// and with containerd's snapshotter the rootfs lives in the bundle, so only
// the upper dir (the container's writable layer) tells a stopped container
// from a removed one.
func anchorsFor(bundle, rootfs string) []anchor {
	paths := []string{bundle, rootfs}
	if mounts, err := mountinfo.Self(); err == nil {
		if up := overlayUpper(mounts, rootfs); up != "" && filepath.IsAbs(up) {
			paths = append(paths, filepath.Clean(up))
		}
	}
	var out []anchor
	seen := map[string]bool{}
	for _, p := range paths {
		if seen[p] {
			continue
		}
		seen[p] = true
		out = append(out, anchor{Path: p, Mount: mountRootOf(filepath.Dir(p))})
	}
	return out
}

// anchorGone: the path is missing, and the filesystem it was on is mounted
// (an empty mount point is a missing disk, not a removed container).
func anchorGone(a anchor) bool {
	_, err := os.Lstat(a.Path)
	if err == nil || !(errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)) {
		return false
	}
	if a.Mount == "" || a.Mount == "/" {
		return true
	}
	return isMountRoot(a.Mount)
}

// gone tells whether the container was removed: every anchor is gone.
func gone(r record) bool {
	if len(r.Anchors) == 0 {
		return false
	}
	for _, a := range r.Anchors {
		if !anchorGone(a) {
			return false
		}
	}
	return true
}

// sweep removes the containers that are gone, and finishes removals a crash
// or an error interrupted. It costs a stat or two per container.
func (m *manager) sweep() {
	m.mu.Lock()
	var todo []record
	for _, r := range m.recs {
		todo = append(todo, *r)
	}
	m.mu.Unlock()
	for _, r := range todo {
		if !r.Removing && !gone(r) {
			continue
		}
		m.collect(r.ID)
	}
}

func (m *manager) collect(id string) {
	unlock := m.locks.lock(id)
	defer unlock()
	// Look again under the container's lock: it may have registered anew.
	r, ok := m.get(id)
	if !ok || (!r.Removing && !gone(r)) {
		return
	}
	why := "bundle and rootfs are gone"
	if r.Removing {
		why = "finishing an interrupted removal"
	}
	err := m.removeLocked(id, why)
	m.mu.Lock()
	last, had := m.gcErr[id]
	if err != nil {
		m.gcErr[id] = err.Error()
	}
	m.mu.Unlock()
	if err != nil && (!had || last != err.Error()) {
		slog.Error("remove container; will retry", "id", id, "err", err)
	}
}

// findOrphans notes the special dirs that belong to no container. With a
// healthy database there are none (a record is written before its dirs and
// deleted after them), so an orphan means the database was lost or moved
// aside while its container may still exist: it is kept, listed by status,
// and handed back as it is if that container registers again.
func (m *manager) findOrphans() {
	if ents, err := os.ReadDir(m.cfg.DataRoot); err == nil {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".idmap-probe-") {
				_ = removeTree(filepath.Join(m.cfg.DataRoot, e.Name()))
			}
		}
	}
	for _, sd := range specialDirs {
		kindDir := filepath.Join(m.cfg.DataRoot, sd.Kind)
		ents, err := os.ReadDir(kindDir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if _, ok := m.get(e.Name()); ok {
				continue
			}
			p := filepath.Join(kindDir, e.Name())
			m.mu.Lock()
			m.orphans[p] = true
			m.mu.Unlock()
			slog.Warn("special dir of no known container: kept for it to claim at its next start; delete it if that container is gone", "path", p)
		}
	}
}

// kick asks the GC loop for a sweep soon.
func (m *manager) kick() {
	select {
	case m.kickCh <- struct{}{}:
	default:
	}
}

// gcLoop sweeps every cfg.Sweep, and shortly after an inotify event (docker
// rm deletes the rootfs right after the bundle: wait a moment to see both).
func (m *manager) gcLoop(ctx context.Context) {
	defer close(m.gcDone)
	t := time.NewTicker(m.cfg.Sweep)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.kickCh:
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
		if !m.begin() {
			return
		}
		m.sweep()
		m.end()
	}
}
