package trap

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Root integration tests: a container-like child under a seccomp filter,
// served by a real agent. See harness_test.go.

func wantErrno(t *testing.T, what string, r result, want unix.Errno) {
	t.Helper()
	if unix.Errno(r.Errno) != want {
		t.Errorf("%s: errno %v (%d), want %v (%d) %s", what, unix.Errno(r.Errno), r.Errno, want, int(want), r.Out)
	}
}

func TestAgentMknod(t *testing.T) {
	e := newEnv(t)
	w := filepath.Join(e.dir, "work")
	chr := uint32(unix.S_IFCHR | 0o666)
	ops := []op{
		{Op: "mknod", Path: w + "/null", Mode: chr, Major: 1, Minor: 3},               // 0
		{Op: "stat", Path: w + "/null"},                                               // 1
		{Op: "write", Path: w + "/null", Data: "discarded"},                           // 2
		{Op: "mknod", Path: w + "/sda", Mode: unix.S_IFBLK | 0o600, Major: 8},         // 3
		{Op: "mknod", Path: w + "/mem", Mode: chr, Major: 1, Minor: 1},                // 4
		{Op: "mknod", Path: w + "/fifo", Mode: unix.S_IFIFO | 0o644},                  // 5
		{Op: "mknod", Path: w + "/whiteout", Mode: unix.S_IFCHR},                      // 6
		{Op: "mknod", Path: w + "/null", Mode: chr, Major: 1, Minor: 3},               // 7: exists
		{Op: "mkdir", Path: w + "/net"},                                               // 8
		{Op: "chdir", Path: w + "/net"},                                               // 9
		{Op: "mknod", Path: "tun", Mode: unix.S_IFCHR | 0o600, Major: 10, Minor: 200}, // 10: relative to cwd
		{Op: "open", Path: w + "/net/tun", Flags: unix.O_RDWR},                        // 11
		{Op: "stat", Path: w + "/net/tun"},                                            // 12
		{Op: "mknod", Path: "/etc/trap-test-null", Mode: chr, Major: 1, Minor: 3},     // 13: a dir the container cannot write
		{Op: "mknod", Path: w + "/missing/null", Mode: chr, Major: 1, Minor: 3},       // 14
		// An unprivileged user of the container: no CAP_MKNOD.
		{Op: "spawn", N: 1000, Ops: []op{{Op: "mknod", Path: w + "/user-null", Mode: chr, Major: 1, Minor: 3}}}, // 15
	}
	r := e.run(ops)
	wantErrno(t, "mknod c 1 3", r[0], 0)
	if st := r[1].Nums; r[1].Errno != 0 || st[0]&unix.S_IFMT != unix.S_IFCHR || st[1] != 1 || st[2] != 3 || st[3] != 0 || st[4] != 0 {
		t.Errorf("stat null: %v errno %d: want a char device 1:3 owned by the container's root (0:0)", st, r[1].Errno)
	}
	wantErrno(t, "write to the new null", r[2], 0)
	wantErrno(t, "mknod b 8 0", r[3], unix.EPERM)
	wantErrno(t, "mknod c 1 1", r[4], unix.EPERM)
	wantErrno(t, "mknod fifo", r[5], 0)
	wantErrno(t, "mknod whiteout c 0 0", r[6], 0)
	wantErrno(t, "mknod over an existing node", r[7], unix.EEXIST)
	wantErrno(t, "mknod tun relative to cwd", r[10], 0)
	wantErrno(t, "open tun", r[11], 0)
	if st := r[12].Nums; r[12].Errno != 0 || st[1] != 10 || st[2] != 200 || st[0]&0o777 != 0o600 {
		t.Errorf("stat tun: %o errno %d: want 10:200 mode 600", st, r[12].Errno)
	}
	wantErrno(t, "mknod in the host's /etc", r[13], unix.EACCES)
	wantErrno(t, "mknod in a missing dir", r[14], unix.ENOENT)
	if len(r[15].Sub) != 1 {
		t.Fatalf("spawn: %+v", r[15])
	}
	wantErrno(t, "mknod by an unprivileged user", r[15].Sub[0], unix.EPERM)
	if _, err := os.Stat("/etc/trap-test-null"); err == nil {
		os.Remove("/etc/trap-test-null")
		t.Error("mknod went through in the host's /etc")
	}
}

func TestAgentUmount(t *testing.T) {
	e := newEnv(t)
	w := filepath.Join(e.dir, "work")
	ops := []op{
		{Op: "umount", Path: "/proc/uptime"},                           // 0
		{Op: "umount", Path: "/proc", Flags: unix.MNT_DETACH},          // 1
		{Op: "umount", Path: "/sys/kernel"},                            // 2
		{Op: "umount", Path: "/proc/keys"},                             // 3: a mask
		{Op: "umount", Path: "/proc/bus"},                              // 4: a read-only path
		{Op: "umount", Path: "/sys"},                                   // 5
		{Op: "mkdir", Path: w + "/t"},                                  // 6
		{Op: "mount", Path: "tmpfs", Path2: w + "/t", FSType: "tmpfs"}, // 7
		{Op: "umount", Path: w + "/t"},                                 // 8: its own mount
		{Op: "umount", Path: w + "/t"},                                 // 9: no longer a mount
		{Op: "chdir", Path: "/proc/sys"},                               // 10
		{Op: "umount", Path: "../uptime"},                              // 11: relative, via ..
		{Op: "spawn", Ops: []op{{Op: "umount", Path: "/proc/uptime"}}}, // 12: a copy in another mount ns
		{Op: "read", Path: "/proc/uptime"},                             // 13
	}
	r := e.run(ops)
	for i, what := range []string{"/proc/uptime", "/proc", "/sys/kernel", "/proc/keys", "/proc/bus", "/sys"} {
		wantErrno(t, "umount "+what, r[i], unix.EBUSY)
	}
	wantErrno(t, "mount tmpfs", r[7], 0)
	wantErrno(t, "umount own tmpfs", r[8], 0)
	wantErrno(t, "umount a dir that is no mount", r[9], unix.EINVAL)
	wantErrno(t, "umount ../uptime from /proc/sys", r[11], unix.EBUSY)
	if len(r[12].Sub) != 1 {
		t.Fatalf("spawn: %+v", r[12])
	}
	wantErrno(t, "umount /proc/uptime in a new mount ns", r[12].Sub[0], unix.EBUSY)
	if r[13].Out != viewUptime {
		t.Errorf("/proc/uptime after: %q, want the view's %q", r[13].Out, viewUptime)
	}
}

func TestAgentSysinfo(t *testing.T) {
	e := newEnv(t)
	r := e.run([]op{{Op: "sysinfo"}})
	wantErrno(t, "sysinfo", r[0], 0)
	got := r[0].Nums
	want := []int64{4243, 1048576 << 10, 524288 << 10, 4096 << 10, 0, 262144 << 10, 131072 << 10, 42, 98304, 49152, 16384, 1}
	names := []string{"uptime", "totalram", "freeram", "sharedram", "bufferram", "totalswap", "freeswap", "procs", "load1", "load5", "load15", "unit"}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("sysinfo %s = %d, want %d", names[i], got[i], want[i])
		}
	}
}

func TestAgentProcMount(t *testing.T) {
	e := newEnv(t)
	w := filepath.Join(e.dir, "work")
	p := w + "/p"
	ops := []op{
		{Op: "mkdir", Path: p}, // 0
		{Op: "mount", Path: "proc", Path2: p, FSType: "proc", Flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC}, // 1
		{Op: "read", Path: p + "/uptime"},               // 2
		{Op: "read", Path: p + "/meminfo"},              // 3
		{Op: "stat", Path: p + "/keys"},                 // 4
		{Op: "ls", Path: p + "/acpi"},                   // 5
		{Op: "mounts", Path: p},                         // 6
		{Op: "ls", Path: p},                             // 7
		{Op: "umount", Path: p + "/uptime"},             // 8: not the original place
		{Op: "umount", Path: p, Flags: unix.MNT_DETACH}, // 9
		// unshare -pfm --mount-proc: a new pid namespace's procfs over /proc.
		{Op: "spawn", Ops: []op{
			{Op: "mount", Path: "proc", Path2: "/proc", FSType: "proc", Flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
			{Op: "read", Path: "/proc/uptime"},
			{Op: "ls", Path: "/proc"},
			{Op: "read", Path: "/proc/self/stat"},
		}}, // 10
	}
	r := e.run(ops)
	wantErrno(t, "mount proc", r[1], 0)
	if r[2].Out != viewUptime {
		t.Errorf("new procfs uptime = %q, want the view's %q", r[2].Out, viewUptime)
	}
	if r[3].Out != viewMeminfo {
		t.Errorf("new procfs meminfo = %q, want the view", r[3].Out)
	}
	if st := r[4].Nums; r[4].Errno != 0 || st[0]&unix.S_IFMT != unix.S_IFCHR || st[1] != 1 || st[2] != 3 {
		t.Errorf("keys in the new procfs: %v errno %d, want masked by /dev/null", st, r[4].Errno)
	}
	if r[5].Errno != 0 || r[5].Out != "" {
		t.Errorf("acpi in the new procfs: %q errno %d, want an empty mask", r[5].Out, r[5].Errno)
	}
	mounts := r[6].Out
	for _, want := range []string{p + "/uptime", p + "/meminfo", p + "/loadavg", p + "/keys", p + "/acpi"} {
		if !strings.Contains(mounts, want+" ") {
			t.Errorf("no mount at %s in the new procfs:\n%s", want, mounts)
		}
	}
	if !strings.Contains(mounts, p+"/bus proc ro,") {
		t.Errorf("bus is not read-only in the new procfs:\n%s", mounts)
	}
	if pids := numeric(r[7].Out); len(pids) == 0 || pids[0] != "1" || len(pids) > 8 {
		t.Errorf("new procfs shows pids %v: want the container's (from 1), not the host's", pids)
	}
	wantErrno(t, "umount a view of the new procfs", r[8], 0)
	wantErrno(t, "umount the new procfs", r[9], 0)
	sub := r[10].Sub
	if r[10].Errno != 0 || len(sub) != 4 {
		t.Fatalf("spawn: %+v", r[10])
	}
	wantErrno(t, "mount --mount-proc in a new pid ns", sub[0], 0)
	if sub[1].Out != viewUptime {
		t.Errorf("nested /proc/uptime = %q, want the view's", sub[1].Out)
	}
	if pids := numeric(sub[2].Out); len(pids) != 1 || pids[0] != "1" {
		t.Errorf("nested /proc shows pids %v, want only 1", pids)
	}
	if !strings.HasPrefix(sub[3].Out, "1 ") {
		t.Errorf("nested /proc/self/stat = %q, want pid 1", sub[3].Out)
	}
}

func numeric(ls string) []string {
	var out []string
	for _, f := range strings.Fields(ls) {
		if _, err := strconv.Atoi(f); err == nil {
			out = append(out, f)
		}
	}
	return out
}

func TestAgentSysfsAndBind(t *testing.T) {
	e := newEnv(t)
	w := filepath.Join(e.dir, "work")
	ops := []op{
		{Op: "mkdir", Path: w + "/s"},                                            // 0
		{Op: "mount", Path: "sysfs", Path2: w + "/s", FSType: "sysfs"},           // 1
		{Op: "read", Path: w + "/s/kernel/mark"},                                 // 2
		{Op: "ls", Path: w + "/s/firmware"},                                      // 3
		{Op: "mkdir", Path: w + "/b"},                                            // 4
		{Op: "mount", Path: "/proc", Path2: w + "/b", Flags: unix.MS_BIND},       // 5: not recursive
		{Op: "read", Path: w + "/b/uptime"},                                      // 6
		{Op: "stat", Path: w + "/b/keys"},                                        // 7
		{Op: "mkdir", Path: w + "/k"},                                            // 8
		{Op: "mount", Path: "/sys/kernel", Path2: w + "/k", Flags: unix.MS_BIND}, // 9: a view itself
		{Op: "read", Path: w + "/k/mark"},                                        // 10
	}
	r := e.run(ops)
	wantErrno(t, "mount sysfs", r[1], 0)
	if r[2].Out != viewSysMark {
		t.Errorf("new sysfs kernel/mark = %q (errno %d), want the view's", r[2].Out, r[2].Errno)
	}
	if r[3].Errno != 0 || r[3].Out != "" {
		t.Errorf("firmware in the new sysfs: %q errno %d, want an empty mask", r[3].Out, r[3].Errno)
	}
	wantErrno(t, "bind /proc", r[5], 0)
	if r[6].Out != viewUptime {
		t.Errorf("bound /proc/uptime = %q, want the view's", r[6].Out)
	}
	if st := r[7].Nums; r[7].Errno != 0 || st[1] != 1 || st[2] != 3 {
		t.Errorf("bound /proc/keys: %v, want the mask", st)
	}
	wantErrno(t, "bind a view", r[9], 0)
	if r[10].Out != viewSysMark {
		t.Errorf("bound view = %q", r[10].Out)
	}
}

func TestAgentRemount(t *testing.T) {
	e := newEnv(t)
	w := filepath.Join(e.dir, "work")
	ops := []op{
		{Op: "mount", Path2: "/proc/bus", Flags: unix.MS_REMOUNT | unix.MS_BIND | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},                  // 0: rw
		{Op: "mount", Path2: "/proc/bus", Flags: unix.MS_REMOUNT | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},                                 // 1: rw, superblock
		{Op: "mount", Path2: "/proc/bus", Flags: unix.MS_REMOUNT | unix.MS_BIND | unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC}, // 2: stays ro
		{Op: "mount", Path: "tmpfs", Path2: w, FSType: "tmpfs", Flags: unix.MS_REMOUNT, Data: "mode=1777"},                                          // 3: not initially ro
		{Op: "mounts", Path: "/proc/bus"}, // 4
	}
	r := e.run(ops)
	wantErrno(t, "remount,bind,rw /proc/bus", r[0], unix.EPERM)
	wantErrno(t, "remount,rw /proc/bus", r[1], unix.EPERM)
	wantErrno(t, "remount,bind,ro /proc/bus", r[2], 0)
	wantErrno(t, "remount the container's own tmpfs", r[3], 0)
	if !strings.Contains(r[4].Out, "/proc/bus proc ro,") {
		t.Errorf("/proc/bus is no longer read-only:\n%s", r[4].Out)
	}
}

// TestAgentReadOnlyCopies: a read-only mount stays read-only whichever way
// it is reached: a bind of it elsewhere, the new mount API on it or on a
// detached clone of it. What the container made read-only itself may
// become writable again.
func TestAgentReadOnlyCopies(t *testing.T) {
	e := newEnv(t)
	w := filepath.Join(e.dir, "work")
	rw := unix.MS_REMOUNT | unix.MS_BIND | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	r := e.run([]op{
		{Op: "mkdir", Path: w + "/b"},                                                            // 0
		{Op: "mount", Path: "/proc/bus", Path2: w + "/b", Flags: unix.MS_BIND},                   // 1
		{Op: "mount", Path2: w + "/b", Flags: uint64(rw)},                                        // 2
		{Op: "setattr", Path: w + "/b"},                                                          // 3
		{Op: "setattr", Path: "/proc/bus"},                                                       // 4
		{Op: "setattr", Path: "/proc", Flags: unix.AT_RECURSIVE},                                 // 5
		{Op: "clonesetattr", Path: "/proc/bus"},                                                  // 6
		{Op: "clonesetattr", Path: "/proc", Flags: unix.AT_RECURSIVE},                            // 7
		{Op: "mounts", Path: w + "/b"},                                                           // 8
		{Op: "mkdir", Path: w + "/own"},                                                          // 9
		{Op: "mount", Path: "tmpfs", Path2: w + "/own", FSType: "tmpfs", Flags: unix.MS_RDONLY},  // 10
		{Op: "setattr", Path: w + "/own"},                                                        // 11
		{Op: "mount", Path2: w + "/own", Flags: unix.MS_REMOUNT | unix.MS_BIND | unix.MS_RDONLY}, // 12
		{Op: "mount", Path2: w + "/own", Flags: unix.MS_REMOUNT | unix.MS_BIND},                  // 13
	})
	wantErrno(t, "bind /proc/bus", r[1], 0)
	wantErrno(t, "remount,bind,rw a bind of /proc/bus", r[2], unix.EPERM)
	wantErrno(t, "mount_setattr rw on a bind of /proc/bus", r[3], unix.EPERM)
	wantErrno(t, "mount_setattr rw on /proc/bus", r[4], unix.EPERM)
	wantErrno(t, "mount_setattr rw on /proc, recursive", r[5], unix.EPERM)
	wantErrno(t, "mount_setattr rw on a clone of /proc/bus", r[6], unix.EPERM)
	wantErrno(t, "mount_setattr rw on a clone of /proc, recursive", r[7], unix.EPERM)
	if !strings.Contains(r[8].Out, " ro,") {
		t.Errorf("the bind of /proc/bus is no longer read-only:\n%s", r[8].Out)
	}
	wantErrno(t, "mount a read-only tmpfs", r[10], 0)
	wantErrno(t, "mount_setattr rw on the container's own", r[11], 0)
	wantErrno(t, "remount,bind,ro the container's own", r[12], 0)
	wantErrno(t, "remount,bind,rw the container's own", r[13], 0)
}

// TestAgentMove: the container's /proc, /sys and views stay in place under
// mount(MS_MOVE) and move_mount(2); its own mounts move.
func TestAgentMove(t *testing.T) {
	e := newEnv(t)
	w := filepath.Join(e.dir, "work")
	r := e.run([]op{
		{Op: "mkdir", Path: w + "/to"},                                          // 0
		{Op: "mount", Path: "/proc/bus", Path2: w + "/to", Flags: unix.MS_MOVE}, // 1
		{Op: "mount", Path: "/proc/sys", Path2: w + "/to", Flags: unix.MS_MOVE}, // 2
		{Op: "movemount", Path: "/proc/sys", Path2: w + "/to"},                  // 3
		{Op: "movemount", Path: "/sys/kernel", Path2: w + "/to"},                // 4
		{Op: "mkdir", Path: w + "/own"},                                         // 5
		{Op: "mount", Path: "tmpfs", Path2: w + "/own", FSType: "tmpfs"},        // 6
		{Op: "mount", Path: w + "/own", Path2: w + "/to", Flags: unix.MS_MOVE},  // 7
		{Op: "movemount", Path: w + "/to", Path2: w + "/own"},                   // 8
		{Op: "read", Path: "/proc/uptime"},                                      // 9
	})
	wantErrno(t, "MS_MOVE /proc/bus", r[1], unix.EINVAL)
	wantErrno(t, "MS_MOVE /proc/sys", r[2], unix.EINVAL)
	wantErrno(t, "move_mount /proc/sys", r[3], unix.EINVAL)
	wantErrno(t, "move_mount /sys/kernel", r[4], unix.EINVAL)
	wantErrno(t, "MS_MOVE the container's own", r[7], 0)
	wantErrno(t, "move_mount the container's own", r[8], 0)
	if r[9].Out != viewUptime {
		t.Errorf("/proc/uptime after: %q, want the view's %q", r[9].Out, viewUptime)
	}
}

func TestAgentFsopen(t *testing.T) {
	e := newEnv(t)
	r := e.run([]op{{Op: "fsopen", FSType: "proc"}, {Op: "fsopen", FSType: "sysfs"}, {Op: "fsopen", FSType: "tmpfs"}})
	wantErrno(t, "fsopen proc", r[0], unix.ENOSYS)
	wantErrno(t, "fsopen sysfs", r[1], unix.ENOSYS)
	wantErrno(t, "fsopen tmpfs", r[2], 0)
}

// TestAgentPermission: what the container's unprivileged users may not do,
// the agent does not do for them.
func TestAgentPermission(t *testing.T) {
	e := newEnv(t)
	w := filepath.Join(e.dir, "work")
	r := e.run([]op{
		{Op: "mkdir", Path: w + "/u"},
		{Op: "spawn", N: 1000, Ops: []op{
			{Op: "mount", Path: "proc", Path2: w + "/u", FSType: "proc"},
			{Op: "mount", Path: "/proc", Path2: w + "/u", Flags: unix.MS_BIND},
			{Op: "umount", Path: w},
		}},
	})
	sub := r[1].Sub
	if len(sub) != 3 {
		t.Fatalf("spawn: %+v", r[1])
	}
	wantErrno(t, "mount proc by a user", sub[0], unix.EPERM)
	wantErrno(t, "bind /proc by a user", sub[1], unix.EPERM)
	wantErrno(t, "umount by a user", sub[2], unix.EPERM)
}

// TestAgentRestart: a container whose agent went away gets ENOSYS for its
// trapped calls instead of hanging; a new agent serves new containers.
func TestAgentRestart(t *testing.T) {
	e := newEnv(t)
	sync := filepath.Join(e.dir, "sync")
	must(t, os.Mkdir(sync, 0o777))
	must(t, os.Chmod(sync, 0o777))
	done := make(chan []result, 1)
	go func() {
		done <- e.run([]op{
			{Op: "umount", Path: "/proc/uptime"},
			{Op: "write", Path: sync + "/ready"},
			{Op: "waitfile", Path: sync + "/go"},
			{Op: "umount", Path: "/proc/uptime"},
			{Op: "mount", Path: "tmpfs", Path2: "/mnt", FSType: "tmpfs"},
			{Op: "getpid"},
		})
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(sync + "/ready"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("child never got ready")
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.stop()
	must(t, os.WriteFile(sync+"/go", nil, 0o644))
	var r []result
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("trapped calls hang after the agent stopped")
	}
	wantErrno(t, "umount with the agent", r[0], unix.EBUSY)
	wantErrno(t, "umount after the agent stopped", r[3], unix.ENOSYS)
	wantErrno(t, "mount after the agent stopped", r[4], unix.ENOSYS)
	if _, err := os.Stat(e.socket); err == nil {
		t.Error("the socket outlived the agent")
	}

	e.start()
	r = e.run([]op{{Op: "umount", Path: "/proc/uptime"}})
	wantErrno(t, "umount with a new agent", r[0], unix.EBUSY)
}

// TestAgentSessionEnds: a session and its container state go when the
// container's init exits.
func TestAgentSessionEnds(t *testing.T) {
	e := newEnv(t)
	e.run([]op{{Op: "sysinfo"}})
	deadline := time.Now().Add(10 * time.Second)
	for {
		e.agent.mu.Lock()
		n, c := len(e.agent.sessions), len(e.agent.containers)
		e.agent.mu.Unlock()
		if n == 0 && c == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions, %d containers left after the child exited", n, c)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestAgentProcMountFallback: where procfs has no pidns= option (Linux <
// 6.17), a new procfs is a clone of the container's own /proc for callers
// in its pid namespace, and the kernel's business in a nested one.
func TestAgentProcMountFallback(t *testing.T) {
	e := newEnv(t)
	saved := hasPidnsOption
	hasPidnsOption = func() bool { return false }
	t.Cleanup(func() {
		e.stop() // no handler may be reading it
		hasPidnsOption = saved
	})
	p := filepath.Join(e.dir, "work", "p")
	r := e.run([]op{
		{Op: "mkdir", Path: p},
		{Op: "mount", Path: "proc", Path2: p, FSType: "proc", Flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
		{Op: "read", Path: p + "/uptime"},
		{Op: "mounts", Path: p},
		{Op: "spawn", Ops: []op{
			{Op: "mount", Path: "proc", Path2: "/proc", FSType: "proc"},
			{Op: "ls", Path: "/proc"},
		}},
	})
	wantErrno(t, "mount proc", r[1], 0)
	if r[2].Out != viewUptime {
		t.Errorf("cloned procfs uptime = %q, want the view's", r[2].Out)
	}
	if !strings.Contains(r[3].Out, p+"/bus proc ro,") || !strings.Contains(r[3].Out, p+"/keys ") {
		t.Errorf("cloned procfs lacks the container's covers:\n%s", r[3].Out)
	}
	sub := r[4].Sub
	if len(sub) != 2 {
		t.Fatalf("spawn: %+v", r[4])
	}
	wantErrno(t, "mount proc in a nested pid ns", sub[0], 0)
	if pids := numeric(sub[1].Out); len(pids) != 1 || pids[0] != "1" {
		t.Errorf("nested procfs pids %v: want its own pid namespace's", pids)
	}
}

// TestAgentProcFdTargets: runc names its mount targets
// /proc/thread-self/fd/N; the agent must take them as the caller's fds.
func TestAgentProcFdTargets(t *testing.T) {
	e := newEnv(t)
	w := filepath.Join(e.dir, "work")
	r := e.run([]op{
		{Op: "mkdir", Path: w + "/p"},
		{Op: "mountfd", Path: "proc", Path2: w + "/p", FSType: "proc", Flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
		{Op: "read", Path: w + "/p/uptime"},
		{Op: "mkdir", Path: w + "/b"},
		{Op: "mountfd", Path: "/proc", Path2: w + "/b", Flags: unix.MS_BIND},
		{Op: "read", Path: w + "/b/uptime"},
		{Op: "mountfd", Path2: "/proc/bus", Flags: unix.MS_REMOUNT | unix.MS_BIND},
	})
	wantErrno(t, "mount proc on an fd", r[1], 0)
	if r[2].Out != viewUptime {
		t.Errorf("procfs mounted on an fd: uptime %q, want the view's", r[2].Out)
	}
	wantErrno(t, "bind /proc on an fd", r[4], 0)
	if r[5].Out != viewUptime {
		t.Errorf("/proc bound on an fd: uptime %q, want the view's", r[5].Out)
	}
	wantErrno(t, "remount,rw /proc/bus by fd", r[6], unix.EPERM)
}
