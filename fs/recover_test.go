package fs

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// The record a started container leaves names its init by pid and start
// time; one whose init is gone (or whose pid was reused) is forgotten.
func TestRecords(t *testing.T) {
	d, err := newDaemon(newHost("/proc", "/sys"), "/nonexistent")
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	d.stateDir = t.TempDir()

	c := newContainer("ct", 100000, 100000, "box")
	// Started as the runtime's `started` does: the record takes the init's
	// start time from what start read.
	if err := c.start("/proc", os.Getpid(), map[string]string{"": "/sys/fs/cgroup/x"}); err != nil {
		t.Fatal(err)
	}
	defer c.close()
	c.sysctl["kernel/pid_max"] = "77777"
	d.saveRecord(c, map[string]string{"": "/sys/fs/cgroup/x"})
	b, err := os.ReadFile(d.recordPath("ct"))
	if err != nil {
		t.Fatal(err)
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	start, err := d.startTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if r.ID != "ct" || r.UIDBase != 100000 || r.Hostname != "box" || r.Pid != os.Getpid() || r.Start != start || r.Cgroups[""] != "/sys/fs/cgroup/x" || r.Sysctl["kernel/pid_max"] != "77777" {
		t.Errorf("record = %+v, start %d", r, start)
	}

	// The same pid with another start time: a reused pid, not the init.
	r.Start++
	b, _ = json.Marshal(r)
	if err := os.WriteFile(d.recordPath("ct"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.recoverOne("ct"); err == nil || !strings.Contains(err.Error(), "gone") {
		t.Errorf("recoverOne with a reused pid: %v", err)
	}
	// A record under another name, and a damaged one.
	if err := os.WriteFile(d.recordPath("other"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.recoverOne("other"); err == nil {
		t.Error("recoverOne took a record under another container's name")
	}
	if err := os.WriteFile(d.recordPath("bad"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	// recoverContainers forgets all three and registers none.
	d.recoverContainers()
	if ents, _ := os.ReadDir(d.stateDir); len(ents) != 0 {
		t.Errorf("records left: %v", ents)
	}
	if d.get("ct") != nil || d.get("other") != nil {
		t.Error("a container was registered from a stale record")
	}

	d.saveRecord(c, nil)
	d.dropRecord("ct")
	if _, err := os.Stat(d.recordPath("ct")); !os.IsNotExist(err) {
		t.Errorf("record after drop: %v", err)
	}
}
