package fs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sysbox-dev/sysbox/internal/ipc"
)

// unifiedCgroupRoot is where the host mounts cgroup v2: alone, or beside
// the v1 hierarchies (hybrid).
func unifiedCgroupRoot(t *testing.T) string {
	for _, p := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
		var st unix.Statfs_t
		if unix.Statfs(p, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return p
		}
	}
	t.Fatal("no cgroup v2 mount (kernel views need the unified hierarchy)")
	return ""
}

// needKernelViews skips where the kernel views cannot run: not root (BPF,
// bpffs, a cgroup), or no kernel BTF (sysbox-fs serves every file through
// FUSE there). The CI machine has both.
func needKernelViews(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (BPF, bpffs, a cgroup)")
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		t.Skip("no kernel BTF: sysbox-fs serves every file through FUSE here")
	}
}

// testCgroup makes a cgroup of the test's own in the unified hierarchy,
// removed when the test ends.
func testCgroup(t *testing.T, name string) string {
	t.Helper()
	cg := filepath.Join(unifiedCgroupRoot(t), fmt.Sprintf("sysbox-unit-%s-%d", name, os.Getpid()))
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(cg) })
	return cg
}

func bootNs(t *testing.T) uint64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		t.Fatal(err)
	}
	return uint64(ts.Nano())
}

// TestKernelViews loads the programs, pins a container's /proc/uptime and
// /proc/loadavg for a cgroup of its own, reads them the way a container
// does, and removes them. Root: loading BPF and mounting bpffs need it.
func TestKernelViews(t *testing.T) {
	needKernelViews(t)
	dir := t.TempDir()
	b, err := openBPFViews(dir)
	if err != nil {
		t.Fatalf("load the kernel views: %v", err)
	}
	t.Cleanup(func() {
		b.close()
		_ = unix.Unmount(dir, unix.MNT_DETACH)
	})
	cg := testCgroup(t, "a")

	// Started 3 s ago with 2 CPUs; nothing runs in the cgroup, so it idled
	// all that time on both.
	data := kernelData{cfg: viewCfg{StartNs: bootNs(t) - uint64(3*time.Second), NCPU: 2}, load: []byte("0.50 0.25 0.10 1/7 4242\n")}
	if err := b.setData(cg, data); err != nil {
		t.Fatal(err)
	}
	pin, err := b.attach("c1", "/proc/uptime", cg, 100000, 100001)
	if err != nil {
		t.Fatal(err)
	}
	lpin, err := b.attach("c1", "/proc/loadavg", cg, 100000, 100001)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(lpin); err != nil || string(got) != string(data.load) {
		t.Errorf("loadavg %q (%v), want %q", got, err, data.load)
	}
	if want := filepath.Join(dir, "c1", "uptime"); pin != want {
		t.Errorf("pin %s, want %s", pin, want)
	}
	var st unix.Stat_t
	if err := unix.Stat(pin, &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != 100000 || st.Gid != 100001 || st.Mode&0o777 != 0o444 {
		t.Errorf("pin owned by %d:%d mode %o, want the container's root, 0444", st.Uid, st.Gid, st.Mode&0o777)
	}
	up, idle := readUptime(t, pin)
	if up < 3 || up > 4 {
		t.Errorf("uptime %.2f, want 3 s and a bit", up)
	}
	if idle < 2*up-0.05 || idle > 2*up {
		t.Errorf("idle %.2f, want about twice the uptime (%.2f): 2 CPUs, nothing ran", idle, up)
	}

	// A changed CPU count and a new load sample show on the next read.
	data.cfg.NCPU = 1
	data.load = []byte("1.00 0.50 0.20 2/9 4343\n")
	if err := b.setData(cg, data); err != nil {
		t.Fatal(err)
	}
	if up, idle := readUptime(t, pin); idle > up {
		t.Errorf("idle %.2f over uptime %.2f with 1 CPU", idle, up)
	}
	if got, _ := os.ReadFile(lpin); string(got) != string(data.load) {
		t.Errorf("loadavg %q after a new sample, want %q", got, data.load)
	}

	// Pinned again (a restarted daemon): replaced, not refused.
	if _, err := b.attach("c1", "/proc/uptime", cg, 100000, 100001); err != nil {
		t.Fatalf("attach again: %v", err)
	}
	b.detach("c1", cg)
	if _, err := os.Stat(filepath.Join(dir, "c1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("detach left %s/c1: %v", dir, err)
	}
	cgid, _ := cgroupID(cg)
	var got viewCfg
	if err := b.cfg.Lookup(cgid, &got); err == nil {
		t.Errorf("detach left the container's data: %+v", got)
	}
	var gotText viewText
	if err := b.load.Lookup(cgid, &gotText); err == nil {
		t.Errorf("detach left the container's loadavg: %q", gotText.Text[:gotText.Len])
	}

	// sweep removes what keep does not name.
	for _, id := range []string{"c2", "c3"} {
		if _, err := b.attach(id, "/proc/uptime", cg, 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	b.sweep(func(id string) bool { return id == "c3" })
	if _, err := os.Stat(filepath.Join(dir, "c2")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("sweep left c2: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "c3", "uptime")); err != nil {
		t.Errorf("sweep removed c3: %v", err)
	}
	b.detach("c3", cg)

	// A cgroup that is not one: a clear error, nothing left.
	plain := t.TempDir()
	if _, err := b.attach("c4", "/proc/uptime", plain, 0, 0); err == nil {
		t.Error("attach to a plain directory succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, "c4")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed attach left %s/c4: %v", dir, err)
	}
}

// readUptime reads a /proc/uptime file: two numbers, centiseconds.
func readUptime(t *testing.T, path string) (up, idle float64) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(raw))
	if len(f) != 2 || !strings.HasSuffix(string(raw), "\n") || len(f[0]) < 4 || f[0][len(f[0])-3] != '.' {
		t.Fatalf("%s: %q is not an uptime line", path, raw)
	}
	up, err1 := strconv.ParseFloat(f[0], 64)
	idle, err2 := strconv.ParseFloat(f[1], 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("%s: %q", path, raw)
	}
	return up, idle
}

// TestMountsSettled: before `started` the trap agent is told the list is
// not final (the pins do not exist yet); once started it is, with the
// kernel views' pins, read-only; unregister takes the pins away.
func TestMountsSettled(t *testing.T) {
	needKernelViews(t)
	d, err := newDaemon(newHost("/proc", "/sys"), "/nonexistent")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if d.bpf, err = openBPFViews(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.close()
		_ = unix.Unmount(dir, unix.MNT_DETACH)
	})
	cg := testCgroup(t, "s")

	ctx := context.Background()
	if _, err := d.register(ctx, ipc.FsRegister{ID: "ct", UIDBase: 100000, GIDBase: 100000}); err != nil {
		t.Fatal(err)
	}
	source := func(ms []ipc.FsMount, dest string) ipc.FsMount {
		for _, m := range ms {
			if m.Dest == dest {
				return m
			}
		}
		t.Fatalf("no %s in %+v", dest, ms)
		return ipc.FsMount{}
	}
	ms, reg, settled := d.Mounts("ct")
	if !reg || settled || source(ms, "/proc/uptime").ReadOnly {
		t.Errorf("before started: registered %v, settled %v, uptime %+v", reg, settled, source(ms, "/proc/uptime"))
	}
	got, err := d.started(ctx, ipc.FsStarted{ID: "ct", Pid: os.Getpid(), Cgroups: map[string]string{"": cg}})
	if err != nil {
		t.Fatal(err)
	}
	ms, _, settled = d.Mounts("ct")
	for _, list := range [][]ipc.FsMount{got.Mounts, ms} {
		for _, dest := range []string{"/proc/uptime", "/proc/loadavg"} {
			if m := source(list, dest); !m.ReadOnly || m.Source != filepath.Join(dir, "ct", filepath.Base(dest)) {
				t.Errorf("after started: %s from %+v, want its pin, read-only", dest, m)
			}
		}
		if m := source(list, "/proc/meminfo"); m.ReadOnly || !strings.HasPrefix(m.Source, "/nonexistent/ct/") {
			t.Errorf("after started: /proc/meminfo from %+v, want the FUSE file", m)
		}
	}
	if !settled {
		t.Error("after started: not settled")
	}
	if _, err := d.unregister(ctx, ipc.MgrID{ID: "ct"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ct")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("unregister left the pins: %v", err)
	}
	if _, reg, settled := d.Mounts("ct"); reg || !settled {
		t.Errorf("unregistered: registered %v, settled %v", reg, settled)
	}
}
