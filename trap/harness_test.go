package trap

// The root integration harness: a child process made to look like a system
// container (own user namespace mapped to an unprivileged host range, own
// mount, pid and network namespaces, a procfs and sysfs with views, masks
// and read-only paths over them as the runtime sets them up) installs a
// seccomp filter that sends the trapped calls to a listener, hands the
// notify fd to the test process, which passes it to the agent in the OCI
// seccomp-agent message exactly as libcontainer does. The child then runs a
// list of operations and prints their results as JSON.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
	seccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"

	"github.com/sysbox-dev/sysbox/internal/ipc"
)

const (
	envChild = "TRAP_TEST_CHILD" // JSON childSpec: run as the test child
	hostUID  = 200000            // the child's root on the host
	idCount  = 65536
	testID   = "trap-test"
)

// trappedForTest is what the runtime is asked to trap.
var trappedForTest = []string{"mount", "umount2", "mknod", "mknodat", "sysinfo", "fsopen", "mount_setattr", "move_mount"}

// op is one thing the child does.
type op struct {
	Op     string   `json:"op"`
	Path   string   `json:"path,omitempty"`
	Path2  string   `json:"path2,omitempty"`
	FSType string   `json:"fstype,omitempty"`
	Data   string   `json:"data,omitempty"`
	Flags  uint64   `json:"flags,omitempty"`
	Mode   uint32   `json:"mode,omitempty"`
	Major  uint32   `json:"major,omitempty"`
	Minor  uint32   `json:"minor,omitempty"`
	N      int      `json:"n,omitempty"`
	Ops    []op     `json:"ops,omitempty"` // for "spawn": run in a grandchild
	Args   []string `json:"args,omitempty"`
}

// result is what an op gave: the errno (0 for success) and any output.
type result struct {
	Op    string   `json:"op"`
	Errno int      `json:"errno"`
	Out   string   `json:"out,omitempty"`
	Nums  []int64  `json:"nums,omitempty"`
	Sub   []result `json:"sub,omitempty"`
}

// childSpec sets the child up.
type childSpec struct {
	Views    []ipc.FsMount `json:"views"`
	Work     string        `json:"work"`     // a host dir the child mounts a tmpfs on
	NoFilter bool          `json:"noFilter"` // run without the seccomp filter (benchmarks)
	NoSetup  bool          `json:"noSetup"`  // skip the /proc and /sys setup (grandchildren)
	Ops      []op          `json:"ops"`
}

// masks and read-only paths, as Docker's default spec lists them (those
// this kernel has).
var (
	testMaskFiles = []string{"/proc/kcore", "/proc/keys", "/proc/timer_list"}
	testMaskDirs  = []string{"/proc/acpi", "/proc/scsi", "/sys/firmware"}
	testReadOnly  = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sysrq-trigger"}
)

func TestMain(m *testing.M) {
	if s := os.Getenv(envChild); s != "" {
		os.Exit(runChild(s))
	}
	os.Exit(m.Run())
}

func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: run `go test` as root for the seccomp agent's integration tests")
	}
}

// ---- the test process's side ----

// fakeViews stands in for the fs daemon.
type fakeViews struct {
	mu sync.Mutex
	m  map[string][]ipc.FsMount
}

func (v *fakeViews) Mounts(id string) ([]ipc.FsMount, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	ms, ok := v.m[id]
	return slices.Clone(ms), ok
}

// env is one agent on a private socket, with views on disk and a copy of
// the test binary the child's unprivileged root can execute.
type env struct {
	t      testing.TB
	dir    string
	socket string
	bin    string
	views  []ipc.FsMount
	agent  *Agent
	cancel context.CancelFunc
	done   chan error
}

// The view files' contents: distinct from the host's, so a test sees
// whose file it reads.
const (
	viewUptime  = "4242.42 8000.00\n"
	viewLoadavg = "1.50 0.75 0.25 3/42 1234\n"
	viewMeminfo = "MemTotal:        1048576 kB\nMemFree:          524288 kB\nMemAvailable:     786432 kB\nBuffers:               0 kB\nCached:           131072 kB\nShmem:              4096 kB\nSwapTotal:        262144 kB\nSwapFree:         131072 kB\n"
	viewSysMark = "view-of-sys-kernel"
)

func newEnv(t testing.TB) *env {
	t.Helper()
	needRoot(t)
	dir, err := os.MkdirTemp("", "trap-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// The child's root is an unprivileged host uid: it must reach all this.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dir: dir, socket: filepath.Join(dir, "seccomp.sock")}
	e.bin = filepath.Join(dir, "trap.test")
	if err := copyFile(os.Args[0], e.bin, 0o755); err != nil {
		t.Fatal(err)
	}
	vd := filepath.Join(dir, "views")
	must(t, os.MkdirAll(filepath.Join(vd, "proc"), 0o755))
	must(t, os.MkdirAll(filepath.Join(vd, "sys", "kernel"), 0o755))
	files := map[string]string{
		"proc/uptime": viewUptime, "proc/loadavg": viewLoadavg, "proc/meminfo": viewMeminfo,
		"sys/kernel/mark": viewSysMark,
	}
	for p, s := range files {
		must(t, os.WriteFile(filepath.Join(vd, p), []byte(s), 0o644))
	}
	for _, d := range []string{"/proc/uptime", "/proc/loadavg", "/proc/meminfo", "/sys/kernel"} {
		e.views = append(e.views, ipc.FsMount{Source: filepath.Join(vd, d), Dest: d})
	}
	must(t, os.MkdirAll(filepath.Join(dir, "work"), 0o755))
	e.start()
	return e
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// start runs the agent; stop (or the test's end) stops it.
func (e *env) start() {
	views := &fakeViews{m: map[string][]ipc.FsMount{testID: e.views}}
	level := slog.LevelInfo
	if os.Getenv("TRAP_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(testWriter{e.t}, &slog.HandlerOptions{Level: level}))
	e.agent = NewAgent(e.socket, views, log)
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	e.done = make(chan error, 1)
	go func() { e.done <- e.agent.Serve(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if fi, err := os.Stat(e.socket); err == nil && fi.Mode()&os.ModeSocket != 0 {
			break
		}
		if time.Now().After(deadline) {
			e.t.Fatal("the agent did not listen")
		}
		time.Sleep(time.Millisecond)
	}
	e.t.Cleanup(e.stop)
}

func (e *env) stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	e.cancel = nil
	select {
	case err := <-e.done:
		if err != nil {
			e.t.Errorf("agent: %v", err)
		}
	case <-time.After(10 * time.Second):
		e.t.Error("the agent did not stop")
	}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// run starts a container-like child that runs ops and returns their results.
func (e *env) run(ops []op) []result {
	e.t.Helper()
	return e.runSpec(childSpec{Ops: ops})
}

func (e *env) runSpec(spec childSpec) []result {
	e.t.Helper()
	spec.Views = e.views
	spec.Work = filepath.Join(e.dir, "work")
	b, err := json.Marshal(spec)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// The child hands its notify fd over this pair, as runc's init hands
	// it to runc.
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	parent := os.NewFile(uintptr(pair[0]), "parent")
	child := os.NewFile(uintptr(pair[1]), "child")
	defer parent.Close()

	cmd := exec.CommandContext(ctx, e.bin, "-test.run=^$")
	cmd.Env = []string{envChild + "=" + string(b), "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.ExtraFiles = []*os.File{child}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWNET | syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: hostUID, Size: idCount}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: hostUID, Size: idCount}},
		// Root of the namespace (host uid hostUID), as a container's init.
		Credential:                 &syscall.Credential{Uid: 0, Gid: 0},
		GidMappingsEnableSetgroups: true,
		// No Pdeathsig: it fires when the forking OS thread exits, and the
		// agent ends threads (see thread) that the runtime may have
		// forked from.
	}
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	child.Close()
	if !spec.NoFilter {
		if err := e.handOver(parent, cmd.Process.Pid); err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			e.t.Fatalf("hand the notify fd over: %v\nchild stderr:\n%s", err, stderr.String())
		}
	}
	if err := cmd.Wait(); err != nil {
		e.t.Fatalf("child: %v\nstderr:\n%s\nstdout:\n%s", err, stderr.String(), stdout.String())
	}
	var out []result
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var r result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			e.t.Fatalf("child output %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	if len(out) != len(spec.Ops) {
		e.t.Fatalf("child ran %d of %d ops\nstderr:\n%s", len(out), len(spec.Ops), stderr.String())
	}
	return out
}

// handOver receives the child's notify fd and passes it to the agent the
// way libcontainer does (sendContainerProcessState), then closes its copy:
// the agent must hold the only one, or killing it would not end the trap.
func (e *env) handOver(conn *os.File, pid int) error {
	buf := make([]byte, 1)
	oob := make([]byte, unix.CmsgSpace(4))
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	n, oobn, _, _, err := unix.Recvmsg(int(conn.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return err
	}
	if n == 0 || oobn == 0 {
		return errors.New("child sent no fd")
	}
	fds, err := ipc.Rights(oob[:oobn])
	if err != nil || len(fds) != 1 {
		return fmt.Errorf("child sent %d fds: %v", len(fds), err)
	}
	err = sendState(e.socket, pid, fds[0])
	unix.Close(fds[0])
	if err != nil {
		return err
	}
	_, err = conn.Write([]byte{1})
	return err
}

// sendState is libcontainer's sendContainerProcessState.
func sendState(socket string, pid, fd int) error {
	st := specs.ContainerProcessState{
		Version: specs.Version,
		Fds:     []string{specs.SeccompFdName},
		Pid:     pid,
		State: specs.State{
			Version: specs.Version, ID: testID, Status: specs.StateCreating, Pid: pid,
			Bundle: "/nonexistent", Annotations: map[string]string{"test": "yes"},
		},
	}
	conn, err := net.Dial("unix", socket)
	if err != nil {
		return err
	}
	defer conn.Close()
	f, err := conn.(*net.UnixConn).File()
	if err != nil {
		return err
	}
	defer f.Close()
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return unix.Sendmsg(int(f.Fd()), b, unix.UnixRights(fd), nil, 0)
}

// ---- the child's side ----

func runChild(s string) int {
	runtime.LockOSThread() // the filter applies to this thread, and the ops run on it
	var spec childSpec
	if err := json.Unmarshal([]byte(s), &spec); err != nil {
		fmt.Fprintln(os.Stderr, "child spec:", err)
		return 2
	}
	if !spec.NoSetup {
		if err := setupContainer(spec); err != nil {
			fmt.Fprintln(os.Stderr, "setup:", err)
			return 2
		}
	}
	if !spec.NoFilter && !spec.NoSetup {
		if err := installFilter(); err != nil {
			fmt.Fprintln(os.Stderr, "filter:", err)
			return 2
		}
	}
	enc := json.NewEncoder(os.Stdout)
	for _, o := range spec.Ops {
		if err := enc.Encode(do(o, spec)); err != nil {
			return 2
		}
	}
	return 0
}

// setupContainer mounts what runc mounts for a container: a procfs and a
// sysfs of its own namespaces, the views over them, masked and read-only
// paths; and a scratch tmpfs of its own.
func setupContainer(spec childSpec) error {
	steps := []struct {
		what string
		fn   func() error
	}{
		{"private /", func() error { return unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, "") }},
		{"proc", func() error {
			return unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
		}},
		{"sysfs", func() error {
			return unix.Mount("sysfs", "/sys", "sysfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
		}},
		{"work", func() error { return unix.Mount("tmpfs", spec.Work, "tmpfs", 0, "mode=1777") }},
	}
	for _, s := range steps {
		if err := s.fn(); err != nil {
			return fmt.Errorf("%s: %w", s.what, err)
		}
	}
	for _, v := range spec.Views {
		if err := unix.Mount(v.Source, v.Dest, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("view %s: %w", v.Dest, err)
		}
	}
	for _, p := range testReadOnly {
		if err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			return fmt.Errorf("read-only %s: %w", p, err)
		}
		if err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			return fmt.Errorf("read-only %s: %w", p, err)
		}
	}
	for _, p := range testMaskFiles {
		if err := unix.Mount("/dev/null", p, "", unix.MS_BIND, ""); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("mask %s: %w", p, err)
		}
	}
	for _, p := range testMaskDirs {
		if err := unix.Mount("tmpfs", p, "tmpfs", unix.MS_RDONLY, ""); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("mask %s: %w", p, err)
		}
	}
	return nil
}

// installFilter loads a filter sending the trapped calls to a listener, as
// the runtime's profile does, and hands the listener fd to the parent over
// fd 3, then waits until the agent has it.
func installFilter() error {
	f, err := seccomp.NewFilter(seccomp.ActAllow)
	if err != nil {
		return err
	}
	for _, name := range trappedForTest {
		sc, err := seccomp.GetSyscallFromName(name)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := f.AddRule(sc, seccomp.ActNotify); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	if err := f.Load(); err != nil {
		return err
	}
	fd, err := f.GetNotifFd()
	if err != nil {
		return err
	}
	if err := unix.Sendmsg(3, []byte{0}, unix.UnixRights(int(fd)), nil, 0); err != nil {
		return err
	}
	unix.Close(int(fd))
	buf := make([]byte, 1)
	if _, err := unix.Read(3, buf); err != nil {
		return err
	}
	unix.Close(3)
	return nil
}

func errnoOf(err error) int {
	if err == nil {
		return 0
	}
	var e unix.Errno
	if errors.As(err, &e) {
		return int(e)
	}
	return -1
}

func do(o op, spec childSpec) result {
	r := result{Op: o.Op}
	var err error
	switch o.Op {
	case "mount":
		err = unix.Mount(o.Path, o.Path2, o.FSType, uintptr(o.Flags), o.Data)
	case "mountfd":
		// As runc does: the target named by an O_PATH fd.
		var fd int
		if fd, err = unix.Open(o.Path2, unix.O_PATH|unix.O_CLOEXEC, 0); err == nil {
			err = unix.Mount(o.Path, fmt.Sprintf("/proc/thread-self/fd/%d", fd), o.FSType, uintptr(o.Flags), o.Data)
			unix.Close(fd)
		}
	case "umount":
		err = unix.Unmount(o.Path, int(o.Flags))
	case "mknod":
		err = unix.Mknod(o.Path, o.Mode, int(unix.Mkdev(o.Major, o.Minor)))
	case "mkdir":
		err = os.MkdirAll(o.Path, 0o755)
	case "read":
		var b []byte
		b, err = os.ReadFile(o.Path)
		r.Out = string(b)
	case "write":
		err = os.WriteFile(o.Path, []byte(o.Data), 0o644)
	case "stat":
		var st unix.Stat_t
		if err = unix.Lstat(o.Path, &st); err == nil {
			r.Nums = []int64{int64(st.Mode), int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev)), int64(st.Uid), int64(st.Gid)}
		}
	case "ls":
		var names []string
		var des []os.DirEntry
		des, err = os.ReadDir(o.Path)
		for _, d := range des {
			names = append(names, d.Name())
		}
		sort.Strings(names)
		r.Out = strings.Join(names, " ")
	case "mounts":
		// Mount points under Path in this process's view, with type and options.
		var b []byte
		b, err = os.ReadFile("/proc/self/mountinfo")
		if err == nil {
			ms, perr := parseMountinfo(b)
			err = perr
			var lines []string
			for _, m := range ms {
				if m.point == o.Path || strings.HasPrefix(m.point, o.Path+"/") {
					lines = append(lines, m.point+" "+m.fstype+" "+m.opts)
				}
			}
			r.Out = strings.Join(lines, "\n")
		}
	case "sysinfo":
		var si unix.Sysinfo_t
		if err = unix.Sysinfo(&si); err == nil {
			r.Nums = []int64{
				si.Uptime, int64(si.Totalram), int64(si.Freeram), int64(si.Sharedram), int64(si.Bufferram),
				int64(si.Totalswap), int64(si.Freeswap), int64(si.Procs), int64(si.Loads[0]), int64(si.Loads[1]), int64(si.Loads[2]), int64(si.Unit),
			}
		}
	case "setattr":
		// mount_setattr: make the mount at Path writable (Flags: AT_RECURSIVE).
		err = unix.MountSetattr(unix.AT_FDCWD, o.Path, uint(o.Flags), &unix.MountAttr{Attr_clr: unix.MOUNT_ATTR_RDONLY})
	case "clonesetattr":
		// open_tree a clone of Path, then make the detached clone writable.
		var fd int
		if fd, err = unix.OpenTree(unix.AT_FDCWD, o.Path, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|uint(o.Flags)); err == nil {
			err = unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH|uint(o.Flags), &unix.MountAttr{Attr_clr: unix.MOUNT_ATTR_RDONLY})
			unix.Close(fd)
		}
	case "movemount":
		err = unix.MoveMount(unix.AT_FDCWD, o.Path, unix.AT_FDCWD, o.Path2, 0)
	case "fsopen":
		var fd int
		fd, err = unix.Fsopen(o.FSType, unix.FSOPEN_CLOEXEC)
		if err == nil {
			unix.Close(fd)
		}
	case "open":
		var fd int
		fd, err = unix.Open(o.Path, int(o.Flags)|unix.O_CLOEXEC, 0)
		if err == nil {
			unix.Close(fd)
		}
	case "chdir":
		err = unix.Chdir(o.Path)
	case "waitfile":
		deadline := time.Now().Add(30 * time.Second)
		for {
			if _, err = os.Stat(o.Path); err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	case "getpid":
		r.Nums = []int64{int64(os.Getpid())}
	case "spawn":
		// A grandchild in new pid and mount namespaces, as
		// `unshare -pfm` makes: it inherits the filter.
		r.Sub, err = spawn(o, spec)
	case "bench":
		r.Nums, err = bench(o)
	default:
		err = fmt.Errorf("unknown op %q", o.Op)
	}
	r.Errno = errnoOf(err)
	if r.Errno < 0 {
		r.Out = err.Error()
	}
	return r
}

func spawn(o op, spec childSpec) ([]result, error) {
	sub := childSpec{NoSetup: true, Ops: o.Ops}
	b, err := json.Marshal(sub)
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = []string{envChild + "=" + string(b)}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWNS}
	if o.N != 0 {
		// An unprivileged user of the container.
		cmd.SysProcAttr.Cloneflags = 0
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(o.N), Gid: uint32(o.N)}
	}
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("grandchild: %w: %s", err, stderr.String())
	}
	var out []result
	dec := json.NewDecoder(&stdout)
	for dec.More() {
		var r result
		if err := dec.Decode(&r); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}
