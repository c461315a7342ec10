package probe

import (
	"os"
	"testing"
)

// Every probe answers, with a remedy whenever it is not OK. The exact
// verdicts depend on the host; the tables above pin them down.
func TestAll(t *testing.T) {
	dataRoot := t.TempDir()
	rs := All(Options{DataRoot: dataRoot})
	want := []string{
		"kernel", "userns", "idmap", "overlay", "fuse",
		"seccomp-notify", "seccomp-addfd", "seccomp-wakeup",
		"cgroups", "binfmt_misc", "modules", "subid", "docker", "containerd", "podman",
	}
	if len(rs) != len(want) {
		t.Fatalf("got %d results, want %d: %+v", len(rs), len(want), rs)
	}
	for i, r := range rs {
		if r.Name != want[i] {
			t.Errorf("result %d is %q, want %q", i, r.Name, want[i])
		}
		switch r.Status {
		case OK, Warn, Fail:
		default:
			t.Errorf("%s: status %q", r.Name, r.Status)
		}
		if r.Detail == "" {
			t.Errorf("%s: no detail", r.Name)
		}
		if r.Status != OK && r.Remedy == "" {
			t.Errorf("%s: %s without a remedy: %s", r.Name, r.Status, r.Detail)
		}
		t.Logf("%-4s %-15s %s", r.Status, r.Name, r.Detail)
	}
	if left := leftovers(t, dataRoot); len(left) > 0 {
		t.Errorf("probes left %v in the data root", left)
	}
	if os.Geteuid() == 0 {
		for _, r := range rs[2:5] {
			if r.Status == Warn && r.Detail == needsRoot(r.Name).Detail {
				t.Errorf("%s skipped although running as root", r.Name)
			}
		}
	}
}
