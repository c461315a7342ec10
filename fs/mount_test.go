package fs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sysbox-dev/sysbox/internal/ipc"
)

// These tests mount FUSE and enter namespaces: root only.

func init() {
	slowCloseHook = func() {
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		os.Stderr.Write(append([]byte("slow close, goroutines:\n"), buf[:n]...))
	}
}

func requireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root: mounts FUSE and joins namespaces")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		tb.Skip("needs /dev/fuse")
	}
}

// readRaw and writeRaw do file I/O through the view without os.File: os.Open
// registers every file with the Go netpoller, and epoll_ctl on a FUSE file
// asks the FUSE server (FUSE_POLL) while the goroutine holds its P. With
// the server in the same process, two such readers on two Ps leave nothing
// to run the server: a deadlock no timeout can break. Raw syscalls release
// the P like any blocking syscall.
func readRaw(path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var out []byte
	buf := make([]byte, 16<<10)
	for {
		n, err := unix.Read(fd, buf)
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return out, nil
		}
		out = append(out, buf[:n]...)
	}
}

func writeRaw(path, data string) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_TRUNC|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, []byte(data)); err != nil {
		return &os.PathError{Op: "write", Path: path, Err: err}
	}
	return nil
}

func readDirRaw(path string) ([]string, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var names []string
	buf := make([]byte, 16<<10)
	for {
		n, err := unix.Getdents(fd, buf)
		if err != nil {
			return nil, &os.PathError{Op: "getdents", Path: path, Err: err}
		}
		if n == 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}

func statRaw(path string) (unix.Stat_t, error) {
	var st unix.Stat_t
	err := unix.Stat(path, &st)
	return st, err
}

type testServer struct {
	srv  *server
	mnt  string
	sock string
}

// startTestServer mounts a view on a temp dir and serves its API on a temp
// socket; cleanup unmounts and checks nothing stays mounted.
func startTestServer(tb testing.TB) *testServer {
	tb.Helper()
	dir := tb.TempDir()
	ts := &testServer{mnt: filepath.Join(dir, "mnt"), sock: filepath.Join(dir, "fs.sock")}
	// Let a container's root (an unprivileged host uid) walk to the view,
	// as it would reach the files through binds.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	srv, err := startServer(newHost("/proc", "/sys"), ts.mnt)
	if err != nil {
		tb.Fatal(err)
	}
	ts.srv = srv
	ln, err := ipc.Listen(ts.sock)
	if err != nil {
		srv.close()
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.api().Serve(ctx, ln)
	}()
	tb.Cleanup(func() {
		cancel()
		<-done
		start := time.Now()
		unmounting, draining := srv.close()
		if took := time.Since(start); took > 2*time.Second {
			tb.Errorf("close took %v: unmount %v, drain %v", took, unmounting, draining)
		}
		if fstype, err := mountedFS(ts.mnt); err != nil || fstype != "" {
			tb.Errorf("after close: %q still mounted at %s (%v)", fstype, ts.mnt, err)
		}
	})
	return ts
}

// startChild starts a sleep in its own net, uts and ipc namespaces: a
// stand-in for a container's init. Cleanup kills it by pid.
func startChild(tb testing.TB) *exec.Cmd {
	tb.Helper()
	cmd := exec.Command("sleep", "600")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNET | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

func (ts *testServer) register(tb testing.TB, id string, uid uint32) ipc.FsRegistration {
	tb.Helper()
	reg, err := ipc.Call[ipc.FsRegister, ipc.FsRegistration](context.Background(), ts.sock, ipc.FsRegisterMethod,
		ipc.FsRegister{ID: id, UIDBase: uid, GIDBase: uid, Hostname: id})
	if err != nil {
		tb.Fatal(err)
	}
	return reg
}

func (ts *testServer) started(tb testing.TB, id string, pid int, cgroups map[string]string) {
	tb.Helper()
	if _, err := ipc.Call[ipc.FsStarted, ipc.Empty](context.Background(), ts.sock, ipc.FsStartedMethod,
		ipc.FsStarted{ID: id, Pid: pid, Cgroups: cgroups}); err != nil {
		tb.Fatal(err)
	}
}

func (ts *testServer) path(id, rel string) string { return filepath.Join(ts.mnt, id, rel) }

// fakeV2 is a fake v2 cgroup dir: a 512 MiB limit, CPU 0 only.
func fakeV2(tb testing.TB, pid int) map[string]string {
	dir := tb.TempDir()
	for name, content := range map[string]string{
		"memory.max":            "536870912\n",
		"memory.current":        "104857600\n",
		"memory.stat":           "anon 52428800\nfile 41943040\nactive_file 20971520\ninactive_file 20971520\n",
		"cpuset.cpus.effective": "0\n",
		"cpu.max":               "max 100000\n",
		"cpu.stat":              "usage_usec 1000\nuser_usec 600\nsystem_usec 400\n",
		"io.stat":               "",
		"cgroup.threads":        strconv.Itoa(pid) + "\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return map[string]string{"": dir}
}

func memTotal(tb testing.TB, path string) int {
	tb.Helper()
	b, err := readRaw(path)
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	tb.Fatalf("no MemTotal in %s", path)
	return 0
}

func TestMount(t *testing.T) {
	requireRoot(t)
	ts := startTestServer(t)
	child := startChild(t)
	pid := child.Process.Pid
	const id = "it1"
	reg := ts.register(t, id, 100000)
	for _, m := range reg.Mounts {
		if _, err := os.Stat(m.Source); err != nil {
			t.Errorf("mount source %s: %v", m.Source, err)
		}
	}

	// Before `started`: sane values.
	b, err := readRaw(ts.path(id, "proc/uptime"))
	if err != nil || !strings.HasPrefix(string(b), "0.") {
		t.Errorf("uptime before start %q, %v", b, err)
	}

	ts.started(t, id, pid, fakeV2(t, pid))
	b, err = readRaw(ts.path(id, "proc/uptime"))
	if err != nil {
		t.Fatal(err)
	}
	if up, _ := strconv.ParseFloat(strings.Fields(string(b))[0], 64); up > 5 {
		t.Errorf("uptime %q right after start, want under 5 s", b)
	}
	if got := memTotal(t, ts.path(id, "proc/meminfo")); got != 524288 {
		t.Errorf("MemTotal %d kB, want 524288", got)
	}
	if b, _ := readRaw(ts.path(id, "proc/cpuinfo")); strings.Count(string(b), "processor") != 1 {
		t.Errorf("cpuinfo: want one processor:\n%s", b)
	}
	if b, _ := readRaw(ts.path(id, "sys/devices/system/cpu/online")); string(b) != "0\n" {
		t.Errorf("cpu online %q", b)
	}
	fi, err := os.Stat(ts.path(id, "proc/meminfo"))
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 100000 || st.Gid != 100000 {
		t.Errorf("meminfo owned by %d:%d, want the container's root 100000", st.Uid, st.Gid)
	}

	// A per-container sysctl: written the way a shell does (O_TRUNC, then write).
	pidMax := ts.path(id, "proc/sys/kernel/pid_max")
	hostPidMax, _ := os.ReadFile("/proc/sys/kernel/pid_max")
	if err := writeRaw(pidMax, "4194304\n"); err != nil {
		t.Fatal(err)
	}
	if b, _ := readRaw(pidMax); string(b) != "4194304\n" {
		t.Errorf("pid_max = %q", b)
	}
	if b, _ := os.ReadFile("/proc/sys/kernel/pid_max"); string(b) != string(hostPidMax) {
		t.Errorf("host pid_max changed: %q", b)
	}
	if err := writeRaw(pidMax, "abc\n"); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("write abc: %v, want EINVAL", err)
	}
	if err := os.Chown(pidMax, 0, 0); !errors.Is(err, syscall.EPERM) {
		t.Errorf("chown: %v, want EPERM", err)
	}
	if err := os.Chmod(pidMax, 0o600); !errors.Is(err, syscall.EPERM) {
		t.Errorf("chmod: %v, want EPERM", err)
	}
	if err := writeRaw(ts.path(id, "proc/sys/kernel/cap_last_cap"), "1"); !errors.Is(err, syscall.EACCES) {
		t.Errorf("write cap_last_cap: %v, want EACCES", err)
	}

	// Namespaced sysctls reach the child's namespaces and nothing else.
	hostFwd, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	want := "1\n"
	if string(hostFwd) == "1\n" {
		want = "0\n"
	}
	fwd := ts.path(id, "proc/sys/net/ipv4/ip_forward")
	if err := writeRaw(fwd, want); err != nil {
		t.Fatal(err)
	}
	if b, _ := readRaw(fwd); string(b) != want {
		t.Errorf("container ip_forward %q, want %q", b, want)
	}
	if b, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); string(b) != string(hostFwd) {
		t.Errorf("host ip_forward changed to %q", b)
	}
	if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/net/dev", pid)); strings.Contains(string(b), "eth0") {
		t.Error("child should have its own netns")
	}
	hostname := ts.path(id, "proc/sys/kernel/hostname")
	if err := writeRaw(hostname, "inner-box\n"); err != nil {
		t.Fatal(err)
	}
	if b, _ := readRaw(hostname); string(b) != "inner-box\n" {
		t.Errorf("container hostname %q", b)
	}
	if st, err := statRaw(hostname); err != nil || st.Uid != 100000 {
		t.Errorf("kernel.hostname owned by %d (%v), want the container's root", st.Uid, err)
	}
	if h, _ := os.Hostname(); h == "inner-box" {
		t.Error("host hostname changed")
	}
	ents, err := readDirRaw(ts.path(id, "proc/sys/net/ipv4"))
	if err != nil || len(ents) < 10 {
		t.Errorf("list net/ipv4: %d entries, %v", len(ents), err)
	}
	if _, err := os.Stat(ts.path(id, "proc/sys/net/ipv4/neigh/default/gc_thresh1")); err != nil {
		t.Errorf("gc_thresh1: %v", err)
	}
	ents, err = readDirRaw(ts.path(id, "sys/kernel/debug"))
	if err != nil || len(ents) != 0 {
		t.Errorf("/sys/kernel/debug: %v, %v; want empty", ents, err)
	}

	u1, err1 := readRaw(ts.path(id, "sys/devices/virtual/dmi/id/product_uuid"))
	u2, err2 := readRaw(ts.path(id, "sys/devices/virtual/dmi/id/product_uuid"))
	if err1 != nil || err2 != nil || string(u1) != string(u2) || len(u1) != 37 {
		t.Errorf("product_uuid %q %q (%v %v): want stable", u1, u2, err1, err2)
	}

	if _, err := ipc.Call[ipc.MgrID, ipc.Empty](context.Background(), ts.sock, ipc.FsUnregisterMethod, ipc.MgrID{ID: id}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(ts.path(id, "proc/uptime")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after unregister: %v", err)
	}
}

// TestRealCgroup puts a child in real cgroups with limits and checks the
// views follow them.
func TestRealCgroup(t *testing.T) {
	requireRoot(t)
	name := fmt.Sprintf("sysboxfs-test-%d", os.Getpid())
	var dirs map[string]string
	var limits map[string]map[string]string // dir -> file -> value
	if _, err := os.Stat("/sys/fs/cgroup/memory/memory.stat"); err == nil {
		dirs = map[string]string{}
		for _, c := range []string{"memory", "cpu", "cpuacct", "cpuset", "blkio", "pids"} {
			if _, err := os.Stat("/sys/fs/cgroup/" + c); err == nil {
				dirs[c] = filepath.Join("/sys/fs/cgroup", c, name)
			}
		}
		limits = map[string]map[string]string{
			dirs["memory"]: {"memory.limit_in_bytes": "536870912"},
			dirs["cpuset"]: {"cpuset.cpus": "0", "cpuset.mems": "0"},
			dirs["cpu"]:    {"cpu.cfs_quota_us": "50000"},
		}
	} else if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		d := filepath.Join("/sys/fs/cgroup", name)
		dirs = map[string]string{"": d}
		limits = map[string]map[string]string{d: {"memory.max": "536870912", "cpuset.cpus": "0", "cpu.max": "50000 100000"}}
	} else {
		t.Skip("no cgroup hierarchy found")
	}
	child := startChild(t)
	for _, d := range dirs {
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			t.Skipf("cannot create cgroups here: %v", err)
		}
		t.Cleanup(func() { _ = os.Remove(d) }) // after the child is killed (cleanups run last-in first-out)
	}
	for d, files := range limits {
		for _, f := range []string{"cpuset.mems", "cpuset.cpus", "memory.limit_in_bytes", "memory.max", "cpu.cfs_quota_us", "cpu.max"} {
			if v, ok := files[f]; ok {
				if err := os.WriteFile(filepath.Join(d, f), []byte(v), 0); err != nil {
					t.Skipf("set %s: %v", f, err)
				}
			}
		}
	}
	seen := map[string]bool{}
	for _, d := range dirs {
		if !seen[d] {
			seen[d] = true
			if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(strconv.Itoa(child.Process.Pid)), 0); err != nil {
				t.Fatalf("move child into %s: %v", d, err)
			}
		}
	}
	// Kill the child before the cgroups are removed.
	t.Cleanup(func() {
		_ = child.Process.Kill()
		_ = child.Wait()
	})

	ts := startTestServer(t)
	ts.register(t, "real", 100000)
	ts.started(t, "real", child.Process.Pid, dirs)
	if got := memTotal(t, ts.path("real", "proc/meminfo")); got != 524288 {
		t.Errorf("MemTotal %d kB, want 524288", got)
	}
	if b, _ := readRaw(ts.path("real", "proc/cpuinfo")); strings.Count(string(b), "processor") != 1 {
		t.Errorf("cpuinfo: want one processor")
	}
	if b, _ := readRaw(ts.path("real", "proc/stat")); !strings.Contains(string(b), "\ncpu0 ") || strings.Contains(string(b), "\ncpu1 ") {
		t.Errorf("stat should show cpu0 only:\n%s", b)
	}
	// The sampler runs at once on `started`: poll briefly for its first sample.
	// One task; running or not depends on when the sample caught it.
	want := fmt.Sprintf("/1 %d", child.Process.Pid)
	var la string
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		b, err := readRaw(ts.path("real", "proc/loadavg"))
		if err != nil {
			t.Fatal(err)
		}
		if la = strings.TrimSpace(string(b)); strings.HasSuffix(la, want) {
			break
		}
	}
	if !strings.HasSuffix(la, want) {
		t.Errorf("loadavg %q, want the child alone: ... %s", la, want)
	}
	if _, err := ipc.Call[ipc.MgrID, ipc.Empty](context.Background(), ts.sock, ipc.FsUnregisterMethod, ipc.MgrID{ID: "real"}); err != nil {
		t.Fatal(err)
	}
}

// TestLoad: 20 containers with 4 readers each loop over the emulated files:
// no error, no hang, and memory stays flat.
func TestLoad(t *testing.T) {
	requireRoot(t)
	dur := 10 * time.Second
	if testing.Short() {
		dur = 2 * time.Second
	}
	if s := os.Getenv("SYSBOXFS_LOAD"); s != "" {
		if d, err := time.ParseDuration(s); err == nil {
			dur = d
		}
	}
	ts := startTestServer(t)
	child := startChild(t)
	const containers, readers = 20, 4
	files := []string{
		"proc/uptime", "proc/meminfo", "proc/cpuinfo", "proc/stat", "proc/loadavg", "proc/diskstats",
		"proc/swaps", "proc/sys/kernel/pid_max", "proc/sys/net/core/somaxconn", "proc/sys/kernel/hostname",
		"sys/devices/system/cpu/online", "sys/devices/virtual/dmi/id/product_uuid",
	}
	for i := range containers {
		id := fmt.Sprintf("load%02d", i)
		ts.register(t, id, uint32(100000+65536*i))
		ts.started(t, id, child.Process.Pid, fakeV2(t, child.Process.Pid))
	}
	measure := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse
	}
	var reads, fails atomic.Int64
	run := func(d time.Duration) {
		deadline := time.Now().Add(d)
		var wg sync.WaitGroup
		for i := range containers * readers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := fmt.Sprintf("load%02d", i%containers)
				for n := i; time.Now().Before(deadline); n++ {
					p := ts.path(id, files[n%len(files)])
					if n%7 == 0 {
						if err := writeRaw(ts.path(id, "proc/sys/kernel/pid_max"), strconv.Itoa(40000+n%1000)); err != nil {
							fails.Add(1)
							t.Errorf("write pid_max: %v", err)
						}
					}
					// diskstats is empty for a container that did no I/O.
					read := readRaw
					if i%2 == 1 {
						// os.ReadFile from inside the daemon's process, as the
						// trap agent does: safe only because primePoll ran.
						read = os.ReadFile
					}
					if b, err := read(p); err != nil || len(b) == 0 && !strings.HasSuffix(p, "diskstats") {
						if fails.Add(1) < 10 {
							t.Errorf("read %s: %q, %v", p, b, err)
						}
					}
					reads.Add(1)
				}
			}()
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(d + 30*time.Second):
			t.Fatal("readers hung")
		}
	}
	run(dur / 5) // warm up: inodes, caches, goroutine stacks
	before := measure()
	run(dur)
	after := measure()
	ts.srv.fs.mu.Lock()
	inodes, handles := len(ts.srv.fs.inodes), len(ts.srv.fs.handles)
	ts.srv.fs.mu.Unlock()
	t.Logf("%d reads in %v (%.0f/s), %d failed; heap in use %d KiB -> %d KiB; %d inodes, %d handles",
		reads.Load(), dur*6/5, float64(reads.Load())/(dur*6/5).Seconds(), fails.Load(), before>>10, after>>10,
		inodes, handles)
	if fails.Load() > 0 {
		t.Errorf("%d reads failed", fails.Load())
	}
	if after > before+8<<20 {
		t.Errorf("heap grew from %d KiB to %d KiB", before>>10, after>>10)
	}
	if handles != 0 {
		t.Errorf("%d file handles left open", handles)
	}
}

// BenchmarkRead measures open+read+close of view files the way a container
// reads them: through a bind mount of the file, as the runtime sets up.
// Reports p50 and p99 latency next to the kernel's own procfs.
func BenchmarkRead(b *testing.B) {
	requireRoot(b)
	ts := startTestServer(b)
	child := startChild(b)
	ts.register(b, "bench", 100000)
	ts.started(b, "bench", child.Process.Pid, fakeV2(b, child.Process.Pid))
	bindDir := b.TempDir()
	for _, name := range []string{"uptime", "meminfo"} {
		dst := filepath.Join(bindDir, name)
		if err := os.WriteFile(dst, nil, 0o644); err != nil {
			b.Fatal(err)
		}
		if err := unix.Mount(ts.path("bench", "proc/"+name), dst, "", unix.MS_BIND, ""); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = unix.Unmount(dst, unix.MNT_DETACH) })
	}
	for _, bc := range []struct{ name, path string }{
		{"uptime/kernel", "/proc/uptime"},
		{"uptime/sysboxfs", filepath.Join(bindDir, "uptime")},
		{"meminfo/kernel", "/proc/meminfo"},
		{"meminfo/sysboxfs", filepath.Join(bindDir, "meminfo")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			buf := make([]byte, 64<<10)
			lat := make([]time.Duration, 0, 1<<16)
			for b.Loop() {
				start := time.Now()
				fd, err := unix.Open(bc.path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
				if err != nil {
					b.Fatal(err)
				}
				for {
					n, err := unix.Read(fd, buf)
					if err != nil {
						b.Fatal(err)
					}
					if n == 0 {
						break
					}
				}
				unix.Close(fd)
				lat = append(lat, time.Since(start))
			}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}

// asContainerRoot runs a shell script as root of a user namespace mapped
// onto uid/gid 100000: what a system container's root is to the view.
func asContainerRoot(t *testing.T, script string) string {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWUSER,
		// Become root of the new namespace: host uid 100000.
		Credential:  &syscall.Credential{Uid: 0, Gid: 0},
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}},
	}
	out, _ := cmd.CombinedOutput()
	return string(out)
}

// TestContainerRoot reads and writes the view as a container's root: an
// init in its own user (mapped to 100000), net, uts and ipc namespaces, and
// a shell in a user namespace with the same mapping.
func TestContainerRoot(t *testing.T) {
	requireRoot(t)
	ts := startTestServer(t)
	init := exec.Command("sleep", "600")
	init.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  unix.CLONE_NEWUSER | unix.CLONE_NEWNET | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}},
	}
	if err := init.Start(); err != nil {
		t.Skipf("cannot start a user-namespaced child: %v", err)
	}
	t.Cleanup(func() {
		_ = init.Process.Kill()
		_ = init.Wait()
	})
	ts.register(t, "ct", 100000)
	ts.started(t, "ct", init.Process.Pid, fakeV2(t, init.Process.Pid))
	S := ts.path("ct", "proc/sys")
	hostVals := map[string]string{}
	for _, f := range []string{"kernel/pid_max", "vm/swappiness", "net/netfilter/nf_conntrack_max", "net/core/somaxconn", "net/ipv4/neigh/default/gc_thresh3"} {
		b, _ := os.ReadFile("/proc/sys/" + f)
		hostVals[f] = string(b)
	}
	out := asContainerRoot(t, fmt.Sprintf(`cd %s
echo id=$(id -u)
echo 77777 > kernel/pid_max && echo pid_max=$(cat kernel/pid_max)
echo abc > kernel/pid_max 2>/dev/null || echo abc=refused
chown 0 kernel/pid_max 2>&1 | grep -q 'not permitted' && echo chown=EPERM
chmod 600 kernel/pid_max 2>&1 | grep -q 'not permitted' && echo chmod=EPERM
echo 10 > vm/swappiness 2>/dev/null || echo swappiness=refused
echo 1001 > net/core/somaxconn && echo somaxconn=$(cat net/core/somaxconn)
test -f net/netfilter/nf_conntrack_max || echo 1234 > /dev/null
echo 4321 > net/netfilter/nf_conntrack_max 2>/dev/null && echo conntrack=$(cat net/netfilter/nf_conntrack_max)
echo ctname > kernel/hostname && echo hostname=$(cat kernel/hostname)
cat %s >/dev/null && echo uuid=readable
echo neigh=$(ls net/ipv4/neigh/default | tr '\n' ' ')
echo 2048 > net/ipv4/neigh/default/gc_thresh3 && echo gc3=$(cat net/ipv4/neigh/default/gc_thresh3)
`, S, ts.path("ct", "sys/devices/virtual/dmi/id/product_uuid")))
	for _, want := range []string{
		"id=0", "pid_max=77777", "abc=refused", "chown=EPERM", "chmod=EPERM", "swappiness=refused",
		"somaxconn=1001", "hostname=ctname", "uuid=readable",
		// The kernel hides the neighbour defaults from a user-namespaced
		// netns; the view keeps the thresholds, per container.
		"neigh=gc_thresh1 gc_thresh2 gc_thresh3", "gc3=2048",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("as the container's root: no %q in:\n%s", want, out)
		}
	}
	// nf_conntrack_max exists only with the conntrack module; where it does,
	// the container sets its own value.
	if _, err := os.Stat("/proc/sys/net/netfilter/nf_conntrack_max"); err == nil && !strings.Contains(out, "conntrack=4321\n") {
		t.Errorf("conntrack max not per container:\n%s", out)
	}
	for f, v := range hostVals {
		if b, _ := os.ReadFile("/proc/sys/" + f); string(b) != v {
			t.Errorf("host %s changed from %q to %q", f, v, b)
		}
	}
	if h, _ := os.Hostname(); h == "ctname" {
		t.Error("host hostname changed")
	}
	// The UTS write reached the container's own namespace.
	if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/root/proc/sys/kernel/hostname", init.Process.Pid)); len(b) > 0 && string(b) == "ctname\n" {
		t.Log("container hostname visible through its root")
	}
}

// TestCloseWithCopies: a mount namespace made while the view is mounted (as
// every container's is) keeps a copy of the mount, and with it the FUSE
// connection, after the daemon's unmount. close must still finish.
func TestCloseWithCopies(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare(1)")
	}
	ts := startTestServer(t)
	ts.register(t, "a", 100000)
	copyNS := exec.Command("unshare", "--mount", "--propagation", "private", "sleep", "600")
	if err := copyNS.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = copyNS.Process.Kill()
		_ = copyNS.Wait()
	})
	// Wait until the copy exists: the child's mountinfo lists the view.
	mi := fmt.Sprintf("/proc/%d/mountinfo", copyNS.Process.Pid)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		l0, _ := os.Readlink("/proc/self/ns/mnt")
		l1, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", copyNS.Process.Pid))
		b, _ := os.ReadFile(mi)
		if l1 != "" && l1 != l0 && strings.Contains(string(b), ts.mnt) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the copy of the mount never showed up")
		}
	}
	start := time.Now()
	unmounting, draining := ts.srv.close()
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("close took %v (unmount %v, drain %v) with a copy of the mount alive", took, unmounting, draining)
	}
	if err := copyNS.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("the namespace holder died: %v", err)
	}
}

// sendfileAll copies path into a pipe with sendfile(2) and returns what
// came out; err is sendfile's error when it copied nothing.
func sendfileAll(path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return nil, err
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	var out []byte
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Sendfile(p[1], fd, nil, len(buf))
		if err != nil {
			return out, err
		}
		if n == 0 {
			return out, nil
		}
		k, err := unix.Read(p[0], buf)
		if err != nil {
			return out, err
		}
		out = append(out, buf[:k]...)
	}
}

// TestSendfile: sendfile and splice go through the page cache, which a
// direct-I/O FUSE file cannot serve correctly on kernels without "fuse: use
// copy_splice_read for FOPEN_DIRECT_IO" (see splice.go). Each must either
// copy exactly what read(2) returns or fail with EINVAL so its caller falls
// back to read(2): never copy nothing, a cut, or zeros, also with readers
// and stat(2) running at the same time.
func TestSendfile(t *testing.T) {
	requireRoot(t)
	ts := startTestServer(t)
	child := startChild(t)
	const id = "sf"
	ts.register(t, id, 100000)
	ts.started(t, id, child.Process.Pid, fakeV2(t, child.Process.Pid))
	files := []string{"proc/uptime", "proc/meminfo", "proc/cpuinfo", "proc/stat", "proc/sys/kernel/pid_max", "proc/sys/kernel/hostname"}
	for _, f := range files {
		p := ts.path(id, f)
		st, err := statRaw(p)
		if err != nil {
			t.Fatal(err)
		}
		want, err := readRaw(p)
		if err != nil {
			t.Fatal(err)
		}
		// /proc's resource views are stored files (store.go): their size
		// is their content's; the others report a page.
		if stored := !strings.HasPrefix(f, "proc/sys/"); stored && st.Size != int64(len(want)) && f != "proc/uptime" {
			t.Errorf("%s: size %d, want the content's %d (a stored file)", f, st.Size, len(want))
		} else if !stored && len(want) <= pageSize && st.Size != pageSize {
			t.Errorf("%s: size %d, want a page (sysfs's convention), so that splice asks", f, st.Size)
		}
		got, err := sendfileAll(p)
		switch {
		case errors.Is(err, syscall.EINVAL) && len(got) == 0:
		case err != nil:
			t.Errorf("%s: sendfile: %v after %d bytes", f, err, len(got))
		case len(got) == 0:
			t.Errorf("%s: sendfile copied nothing", f)
		case f != "proc/uptime" && f != "proc/stat" && string(got) != string(want):
			t.Errorf("%s: sendfile gave %q, read gave %q", f, got, want)
		}
	}

	var wrong, refused, ok atomic.Int64
	deadline := time.Now().Add(2 * time.Second)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := ts.path(id, files[i%2])
			for time.Now().Before(deadline) {
				_, _ = statRaw(p)
				got, err := sendfileAll(p)
				switch {
				case errors.Is(err, syscall.EINVAL) && len(got) == 0:
					refused.Add(1)
				case err != nil || len(got) == 0 || got[len(got)-1] != '\n' || strings.IndexByte(string(got), 0) >= 0:
					if wrong.Add(1) < 5 {
						t.Errorf("%s: sendfile gave %q, %v", p, got[:min(len(got), 64)], err)
					}
				default:
					ok.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("concurrent sendfile: %d exact, %d refused (EINVAL), %d wrong", ok.Load(), refused.Load(), wrong.Load())
}

// TestStoredFiles: /proc's resource views come through the page cache,
// filled at open (store.go): every open shows a fresh render; a reader
// that keeps the file open and re-reads from offset 0 sees new content
// within a refresh; a content that shrinks or grows is read whole, with no
// stale tail; sendfile copies it.
func TestStoredFiles(t *testing.T) {
	requireRoot(t)
	ts := startTestServer(t)
	child := startChild(t)
	pid := child.Process.Pid
	const id = "st1"
	ts.register(t, id, 100000)
	cg := fakeV2(t, pid)
	ts.started(t, id, pid, cg)
	memFree := func(b []byte) string {
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "MemFree:"); ok {
				return strings.TrimSpace(v)
			}
		}
		t.Fatalf("no MemFree in:\n%s", b)
		return ""
	}
	meminfo := ts.path(id, "proc/meminfo")

	// Held open: a re-read after lseek(fd, 0) shows a usage change.
	fd, err := unix.Open(meminfo, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	readFd := func() []byte {
		t.Helper()
		if _, err := unix.Seek(fd, 0, 0); err != nil {
			t.Fatalf("lseek: %v", err)
		}
		var out []byte
		buf := make([]byte, 512)
		for {
			n, err := unix.Read(fd, buf)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				return out
			}
			out = append(out, buf[:n]...)
		}
	}
	before := memFree(readFd())
	if err := os.WriteFile(filepath.Join(cg[""], "memory.current"), []byte("209715200\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for memFree(readFd()) == before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if after := memFree(readFd()); after == before || after != "319488 kB" {
		t.Errorf("held meminfo: MemFree %s, then %s after the usage went to 200 MiB, want 319488 kB", before, after)
	}
	// A new open shows it at once, and agrees with the held one.
	if b, _ := readRaw(meminfo); memFree(b) != "319488 kB" || string(b) != string(readFd()) {
		t.Errorf("meminfo opened again:\n%s", b)
	}

	// cpuinfo shrinks (two CPUs to one) and grows back: read whole each
	// time, through read(2) and sendfile(2).
	online, _ := os.ReadFile("/sys/devices/system/cpu/online")
	if strings.TrimSpace(string(online)) == "0" {
		t.Skip("one CPU: cpuinfo cannot shrink here")
	}
	cpuset := filepath.Join(cg[""], "cpuset.cpus.effective")
	cpuinfo := ts.path(id, "proc/cpuinfo")
	for _, tc := range []struct {
		cpus string
		n    int
	}{{"0-1", 2}, {"0", 1}, {"0-1", 2}, {"0", 1}} {
		if err := os.WriteFile(cpuset, []byte(tc.cpus+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		time.Sleep(limitsTTL + viewTTL)
		b, err := readRaw(cpuinfo)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Count(string(b), "processor\t:"); got != tc.n || !strings.HasSuffix(string(b), "\n\n") || strings.IndexByte(string(b), 0) >= 0 {
			t.Errorf("cpuset %s: %d processors in %d bytes (want %d, whole):\n%q", tc.cpus, got, len(b), tc.n, b)
		}
		if st, err := statRaw(cpuinfo); err != nil || st.Size != int64(len(b)) {
			t.Errorf("cpuset %s: stat size %d (%v), read %d bytes", tc.cpus, st.Size, err, len(b))
		}
		if s, err := sendfileAll(cpuinfo); err != nil || string(s) != string(b) {
			t.Errorf("cpuset %s: sendfile copied %d bytes (%v), read(2) %d", tc.cpus, len(s), err, len(b))
		}
	}
}
