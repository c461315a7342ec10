package fs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sysbox-dev/sysbox/internal/cgview"
	"github.com/sysbox-dev/sysbox/internal/ipc"
	"github.com/sysbox-dev/sysbox/internal/viewmount"
)

// A restarted fs daemon (an upgrade, a crash) takes its running containers
// back. When the old daemon went, its FUSE connection went with it, and
// every view bound in a container answers ENOTCONN: /proc/uptime and
// /proc/sys fail, and `docker exec` too (libcontainer reads
// /proc/sys/kernel/cap_last_cap). So each started container leaves a
// record in the state dir; at start the daemon registers the containers
// whose init still runs and binds fresh views over the dead ones.
//
// The values a container wrote to its emulated sysctls are in the record
// too and come back. The trap agent's sessions come back through
// sysbox-mgr's fd store (trap/fdstore.go), not through these records.

// record is what the daemon keeps of a started container.
type record struct {
	ID       string            `json:"id"`
	UIDBase  uint32            `json:"uidBase"`
	GIDBase  uint32            `json:"gidBase"`
	Hostname string            `json:"hostname,omitempty"`
	Pid      int               `json:"pid"`
	Start    uint64            `json:"start"` // the init's start time, against a reused pid
	Cgroups  map[string]string `json:"cgroups"`
	// Sysctl holds the values the container wrote to its emulated
	// sysctls (and the seeds it read), as the container keeps them.
	Sysctl map[string]string `json:"sysctl,omitempty"`
}

func (d *daemon) recordPath(id string) string {
	return filepath.Join(d.stateDir, id+".json")
}

// saveRecord writes c's record (best effort: without it only a restart of
// this daemon loses the container).
func (d *daemon) saveRecord(c *container, cgroups map[string]string) {
	if d.stateDir == "" {
		return
	}
	c.mu.Lock()
	// The init's start time, as `started` read it (bootOff is its ticks).
	r := record{
		ID: c.id, UIDBase: c.uid, GIDBase: c.gid, Hostname: c.hostname, Pid: c.pid,
		Start: uint64(c.bootOff / tick), Cgroups: cgroups, Sysctl: maps.Clone(c.sysctl),
	}
	c.mu.Unlock()
	b, err := json.Marshal(r)
	if err == nil {
		// One writer at a time: two sysctl writes share the temp file.
		d.recMu.Lock()
		err = writeFileAtomic(d.recordPath(r.ID), b)
		d.recMu.Unlock()
	}
	if err != nil {
		slog.Warn("keep a record of the container for a restart of sysbox-fs", "id", r.ID, "err", err)
	}
}

func (d *daemon) dropRecord(id string) {
	if d.stateDir == "" {
		return
	}
	if err := os.Remove(d.recordPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		slog.Warn("remove the container's record", "id", id, "err", err)
	}
}

func (d *daemon) startTime(pid int) (uint64, error) {
	b, err := cgview.ReadFile(fmt.Sprintf("%s/%d/stat", d.host.proc, pid))
	if err != nil {
		return 0, err
	}
	st, ok := parseProcStat(b)
	if !ok {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return st.startTime, nil
}

func writeFileAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// recoverContainers takes back the containers the records name whose init
// still runs, and forgets the others. It needs the FUSE view served.
func (d *daemon) recoverContainers() {
	if d.stateDir == "" {
		return
	}
	ents, err := os.ReadDir(d.stateDir)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			slog.Warn("read the containers' records", "dir", d.stateDir, "err", err)
		}
		return
	}
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".json") {
			_ = os.Remove(filepath.Join(d.stateDir, name)) // a torn .tmp
			continue
		}
		id := strings.TrimSuffix(name, ".json")
		t0 := time.Now()
		if err := d.recoverOne(id); err != nil {
			slog.Warn("container not taken back", "id", id, "err", err)
			d.dropRecord(id)
			continue
		}
		slog.Info("container taken back: fresh views bound over the old ones", "id", id, "took", time.Since(t0).Round(time.Microsecond))
	}
}

func (d *daemon) recoverOne(id string) error {
	b, err := os.ReadFile(d.recordPath(id))
	if err != nil {
		return err
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("damaged record: %w", err)
	}
	if r.ID != id || validID(id) != nil || r.Pid <= 0 {
		return fmt.Errorf("record does not match its name")
	}
	if start, err := d.startTime(r.Pid); err != nil || start != r.Start {
		return fmt.Errorf("its init (pid %d) is gone", r.Pid)
	}
	if _, err := d.register(context.Background(), ipc.FsRegister{ID: r.ID, UIDBase: r.UIDBase, GIDBase: r.GIDBase, Hostname: r.Hostname}); err != nil {
		return err
	}
	// Before started, which writes the record again: with the values.
	if c := d.get(id); c != nil {
		c.mu.Lock()
		maps.Copy(c.sysctl, r.Sysctl)
		c.mu.Unlock()
	}
	if _, err := d.started(context.Background(), ipc.FsStarted{ID: r.ID, Pid: r.Pid, Cgroups: r.Cgroups}); err != nil {
		_, _ = d.unregister(context.Background(), ipc.MgrID{ID: id})
		return err
	}
	if err := viewmount.Mount(r.Pid, d.mounts(id), r.UIDBase, r.GIDBase, true); err != nil {
		_, _ = d.unregister(context.Background(), ipc.MgrID{ID: id})
		return fmt.Errorf("bind the views: %w", err)
	}
	return nil
}
