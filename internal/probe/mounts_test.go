package probe

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: this test mounts (run the tests as root to cover it)")
	}
}

// hostState is what a probe must leave as it found it.
type hostState struct{ mountinfo, mntNS string }

func snapshot(t *testing.T) hostState {
	t.Helper()
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	ns, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		t.Fatal(err)
	}
	return hostState{string(mi), ns}
}

// leftovers lists what a probe left in dir.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestIDMapResults(t *testing.T) {
	base := idmapFacts{
		dataRoot: "/var/lib/sysbox", probed: "/var/lib", fstype: "ext4",
		idmapUID: probeIDBase + probeFileID, overlayUID: probeIDBase + probeFileID,
	}
	with := func(f func(*idmapFacts)) idmapFacts { x := base; f(&x); return x }
	tests := []struct {
		name       string
		f          idmapFacts
		idm, ovl   Status
		idmapHas   string
		overlayHas string
	}{
		{"this machine", base, OK, OK, "ext4 on /var/lib/sysbox (data root absent, probed /var/lib): uid 1000 shows as 1001000", "merged view"},
		{"data root exists", with(func(x *idmapFacts) { x.probed = x.dataRoot }), OK, OK, "ext4 on /var/lib/sysbox: uid", ""},
		{"filesystem without idmap", with(func(x *idmapFacts) { x.fstype, x.idmapErr = "ramfs", unix.EINVAL }), Fail, Fail, "ramfs", "not probed"},
		{"no shift", with(func(x *idmapFacts) { x.idmapUID = probeFileID }), Fail, Fail, "want 1001000", "not probed"},
		{"overlay refuses", with(func(x *idmapFacts) { x.overlayErr = unix.EINVAL }), OK, Fail, "", "failed"},
		{"overlay ignores the mapping", with(func(x *idmapFacts) { x.overlayUID = probeFileID }), OK, Fail, "", "want 1001000"},
		{"setup failed", with(func(x *idmapFacts) { x.setupErr = unix.EROFS }), Fail, Fail, "could not set up", "not probed"},
		{"cleanup failed", with(func(x *idmapFacts) { x.cleanupErr = errors.New("left /var/lib/.sysbox-check-1 in place") }), Fail, OK, "cleanup failed", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := idmapResults(tt.f)
			checkResult(t, rs[0], "idmap", tt.idm)
			checkResult(t, rs[1], "overlay", tt.ovl)
			if !strings.Contains(rs[0].Detail, tt.idmapHas) {
				t.Errorf("idmap detail %q lacks %q", rs[0].Detail, tt.idmapHas)
			}
			if !strings.Contains(rs[1].Detail, tt.overlayHas) {
				t.Errorf("overlay detail %q lacks %q", rs[1].Detail, tt.overlayHas)
			}
		})
	}
}

func TestFuseResult(t *testing.T) {
	checkResult(t, fuseResult(fuseFacts{fsKnown: true}), "fuse", OK)
	checkResult(t, fuseResult(fuseFacts{devErr: errors.New("does not exist")}), "fuse", Fail)
	r := fuseResult(fuseFacts{mountErr: unix.ENODEV})
	checkResult(t, r, "fuse", Fail)
	if !strings.Contains(r.Detail, "not in /proc/filesystems") {
		t.Errorf("detail %q does not say fuse is missing from the kernel", r.Detail)
	}
	checkResult(t, fuseResult(fuseFacts{fsKnown: true, cleanupErr: errors.New("busy")}), "fuse", Fail)
}

// The real probe, on a data root that does not exist yet: it must run on
// the parent's filesystem, see the shift, and leave the parent as it was.
func TestProbeIDMap(t *testing.T) {
	requireRoot(t)
	parent := t.TempDir()
	before := snapshot(t)
	rs := probeIDMap(host{root: true}, filepath.Join(parent, "sysbox", "data"))
	for _, r := range rs {
		if r.Status != OK {
			t.Errorf("%s: %s %s (fix: %s)", r.Name, r.Status, r.Detail, r.Remedy)
		}
	}
	if !strings.Contains(rs[0].Detail, "probed "+parent) {
		t.Errorf("idmap detail %q does not name the parent it probed", rs[0].Detail)
	}
	if left := leftovers(t, parent); len(left) > 0 {
		t.Errorf("probe left %v in %s", left, parent)
	}
	if after := snapshot(t); after != before {
		t.Errorf("mounts or mount namespace changed:\nbefore %s\n%s\nafter %s\n%s", before.mntNS, before.mountinfo, after.mntNS, after.mountinfo)
	}
}

func TestProbeFUSE(t *testing.T) {
	requireRoot(t)
	if err := checkFuseDevice(); err != nil {
		t.Skipf("no FUSE here: /dev/fuse %v", err)
	}
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	before := snapshot(t)
	r := probeFUSE(host{root: true})
	if r.Status != OK {
		t.Errorf("fuse: %s %s (fix: %s)", r.Status, r.Detail, r.Remedy)
	}
	if left := leftovers(t, tmp); len(left) > 0 {
		t.Errorf("probe left %v in %s", left, tmp)
	}
	if after := snapshot(t); after != before {
		t.Errorf("mounts or mount namespace changed")
	}
}

func TestMountProbesNeedRoot(t *testing.T) {
	for _, r := range append(probeIDMap(host{root: false}, t.TempDir()), probeFUSE(host{root: false})) {
		if r.Status == Fail {
			t.Errorf("%s failed without root instead of saying it needs root: %s", r.Name, r.Detail)
		}
	}
}

// A scratch dir whose mount could not be undone must stay: removing it would
// reach into whatever is still mounted there.
func TestScratchKeepsDirWhenUnmountFails(t *testing.T) {
	parent := t.TempDir()
	s, err := newScratch(parent, "scratch-")
	if err != nil {
		t.Fatal(err)
	}
	inner := filepath.Join(s.dir, "not-a-mount")
	if err := os.Mkdir(inner, 0o700); err != nil {
		t.Fatal(err)
	}
	s.mounted(inner)
	if err := s.Close(); err == nil || !strings.Contains(err.Error(), "left "+s.dir) {
		t.Fatalf("Close = %v, want it to report %s left in place", err, s.dir)
	}
	if _, err := os.Stat(inner); err != nil {
		t.Errorf("Close removed the dir despite the failed unmount: %v", err)
	}

	s2, err := newScratch(parent, "scratch-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s2.dir, "f"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s2.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still there after Close: %v", s2.dir, err)
	}
}

// Mounts made in the private namespace stay out of the caller's.
func TestInPrivateMountNS(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	before := snapshot(t)
	var inside bool
	err := inPrivateMountNS(func() error {
		if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"); err != nil {
			return err
		}
		mi, err := os.ReadFile("/proc/thread-self/mountinfo")
		if err != nil {
			return err
		}
		inside = strings.Contains(string(mi), " "+dir+" ")
		return nil // no unmount: the namespace's end must take care of it
	})
	if err != nil {
		t.Fatal(err)
	}
	if !inside {
		t.Error("the mount was not visible inside the private namespace")
	}
	if after := snapshot(t); after != before {
		t.Errorf("mount leaked into the caller's namespace")
	}
}
