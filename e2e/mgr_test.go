//go:build e2e

package e2e

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sysbox-dev/sysbox/internal/ipc"
)

// The manager's end-to-end tests: what `docker rm`, a user's volume and a
// kill -9 of the shared manager do to id ranges and special dirs, and how a
// second, private manager instance refuses a bad data root, a malformed
// subuid file and a damaged database. Two containers getting disjoint
// ranges, stop/start keeping the range (runtime_test.go) and inner images
// surviving stop/start (system_test.go) are tested elsewhere.

// mgrKinds are the special dir kinds: DATA_ROOT/<kind>/<container-id>
// (mgr/dirs.go, specialDirs).
var mgrKinds = []string{"docker", "containerd", "kubelet", "k0s", "k3s", "rke2", "buildkit"}

// mgrFreeWithin is how soon after `docker rm` a container's range and dirs
// must be gone (issue 4).
const mgrFreeWithin = 5 * time.Second

// mgrStatus asks the shared manager what it holds (`sysbox mgr status --json`).
func mgrStatus(t testing.TB) ipc.MgrStatus {
	t.Helper()
	out, err := mgrStatusErr(t)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func mgrStatusErr(t testing.TB) (ipc.MgrStatus, error) {
	t.Helper()
	var st ipc.MgrStatus
	out, err := runCmd(t, nil, filepath.Join(env.bin, "sysbox"), "mgr", "status", "--json")
	if err != nil {
		return st, fmt.Errorf("sysbox mgr status --json: %v\n%s", err, out)
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return st, fmt.Errorf("parse sysbox mgr status --json: %v\n%s", err, out)
	}
	return st, nil
}

func findMgrContainer(st ipc.MgrStatus, id string) (ipc.MgrContainer, bool) {
	for _, c := range st.Containers {
		if c.ID == id {
			return c, true
		}
	}
	return ipc.MgrContainer{}, false
}

// fullID is the engine's 64-hex id of a container: the id the runtime
// registers with the manager.
func fullID(t testing.TB, name string) string {
	t.Helper()
	id := docker(t, "inspect", "-f", "{{.Id}}", name)
	if len(id) != 64 {
		t.Fatalf("docker inspect %s: id %q", name, id)
	}
	return id
}

func specialDir(dataRoot, kind, id string) string { return filepath.Join(dataRoot, kind, id) }

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// registered checks that the manager holds id with the range its root maps
// to, and returns that entry.
func registered(t *testing.T, name, id string) ipc.MgrContainer {
	t.Helper()
	st := mgrStatus(t)
	c, ok := findMgrContainer(st, id)
	if !ok {
		t.Fatalf("sysbox mgr status does not list %s (%s)", name, id)
	}
	base := rootBase(t, dockerExec(t, name, "cat", "/proc/self/uid_map"))
	if uint64(c.UIDBase) != base || c.GIDBase != c.UIDBase || c.Size == 0 {
		t.Fatalf("manager holds %s at uid %d gid %d size %d; its root maps to %d", name, c.UIDBase, c.GIDBase, c.Size, base)
	}
	return c
}

// leftovers lists what the manager still holds of the containers ids: their
// record (so their range) and their special dirs on disk.
func leftovers(t testing.TB, dataRoot string, ids []string) (string, error) {
	t.Helper()
	st, err := mgrStatusErr(t)
	if err != nil {
		return "", err
	}
	var left []string
	for _, id := range ids {
		if c, ok := findMgrContainer(st, id); ok {
			left = append(left, fmt.Sprintf("%.12s: range %d+%d still registered (removing=%v)", id, c.UIDBase, c.Size, c.Removing))
		}
		for _, k := range mgrKinds {
			if p := specialDir(dataRoot, k, id); exists(p) {
				left = append(left, p)
			}
		}
	}
	return strings.Join(left, "; "), nil
}

// waitFreed waits until the manager holds nothing of ids, and fails the test
// unless that happened within mgrFreeWithin of since. The poll interval is
// fixed and short: the deadline is the assertion.
func waitFreed(t testing.TB, dataRoot string, since time.Time, ids ...string) {
	t.Helper()
	deadline := since.Add(mgrFreeWithin)
	for {
		left, err := leftovers(t, dataRoot, ids)
		if err == nil && left == "" {
			t.Logf("range and dirs freed %s after docker rm", time.Since(since).Round(10*time.Millisecond))
			return
		}
		if err != nil {
			left = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s after docker rm the manager still holds: %s", time.Since(since).Round(10*time.Millisecond), left)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestMgrRemoveFrees: stop keeps a container's range and dirs; `docker rm`
// (after a stop, or -f of a running one) frees both within 5 s.
func TestMgrRemoveFrees(t *testing.T) {
	needDaemons(t)
	for _, tc := range []struct {
		name string
		rm   func(t *testing.T, name string)
	}{
		{"stop then rm", func(t *testing.T, name string) {
			docker(t, "stop", "-t", "1", name)
			// A stopped container keeps what it has.
			id := fullID(t, name)
			st := mgrStatus(t)
			c, ok := findMgrContainer(st, id)
			if !ok {
				t.Fatalf("stopped container %s is no longer registered", name)
			}
			if c.Running {
				t.Errorf("stopped container %s is still running in the manager's eyes", name)
			}
			for _, k := range mgrKinds {
				if p := specialDir(st.DataRoot, k, id); !exists(p) {
					t.Errorf("stop removed %s", p)
				}
			}
			docker(t, "rm", name)
		}},
		{"rm -f", func(t *testing.T, name string) { docker(t, "rm", "-f", name) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := sysbox("sleep", "infinity").start(t)
			id := fullID(t, name)
			c := registered(t, name, id)
			dataRoot := mgrStatus(t).DataRoot
			var want []string
			for _, k := range mgrKinds {
				p := specialDir(dataRoot, k, id)
				want = append(want, p)
				if !exists(p) {
					t.Errorf("no special dir %s", p)
				}
			}
			if !slices.Equal(sortedCopy(c.Dirs), sortedCopy(want)) {
				t.Errorf("status lists dirs %v, want %v", c.Dirs, want)
			}
			tc.rm(t, name)
			waitFreed(t, dataRoot, time.Now(), id)
		})
	}
}

func sortedCopy(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// TestMgrNamedVolume: a user's volume on /var/lib/docker wins over the
// implicit special dir, which is then never made.
func TestMgrNamedVolume(t *testing.T) {
	needDaemons(t)
	b := make([]byte, 4)
	_, _ = crand.Read(b)
	vol := fmt.Sprintf("e2e-mgr-vol-%x", b)
	docker(t, "volume", "create", "--label", testLabel+"="+vol, vol)
	// Registered before the container's removal, so it runs after it.
	t.Cleanup(func() {
		if out, err := dockerErr(t, "volume", "rm", vol); err != nil {
			t.Errorf("docker volume rm %s: %v\n%s", vol, err, out)
		}
	})
	volDir := docker(t, "volume", "inspect", "-f", "{{.Mountpoint}}", vol)

	name := sysbox("sleep", "infinity").withFlags("-v", vol+":/var/lib/docker").start(t)
	id := fullID(t, name)
	c := registered(t, name, id)
	dataRoot := mgrStatus(t).DataRoot

	// findmnt shows the volume as the source of /var/lib/docker:
	// "/dev/vda[/var/lib/docker/volumes/NAME/_data]" (the bracket is the path
	// within its filesystem, so compare the volume's own part).
	src := dockerExec(t, name, "findmnt", "-n", "-o", "SOURCE", "/var/lib/docker")
	if !strings.Contains(src, "/volumes/"+vol+"/_data") {
		t.Errorf("inside, /var/lib/docker comes from %q, want the volume %s (%s)", src, vol, volDir)
	}
	if strings.Contains(src, dataRoot) {
		t.Errorf("inside, /var/lib/docker comes from the manager's data root: %q", src)
	}
	// What the container writes there lands in the volume.
	dockerExec(t, name, "sh", "-c", "echo from-inside > /var/lib/docker/e2e-mark")
	if b, err := os.ReadFile(filepath.Join(volDir, "e2e-mark")); err != nil || strings.TrimSpace(string(b)) != "from-inside" {
		t.Errorf("file written to /var/lib/docker inside is not in the volume %s: %q %v", volDir, b, err)
	}
	// No implicit docker dir; the other kinds are made as usual.
	if p := specialDir(dataRoot, "docker", id); exists(p) {
		t.Errorf("%s was made although a volume is on /var/lib/docker", p)
	}
	for _, d := range c.Dirs {
		if filepath.Base(filepath.Dir(d)) == "docker" {
			t.Errorf("status lists the docker dir %s for a container with a volume there", d)
		}
	}
	if p := specialDir(dataRoot, "containerd", id); !exists(p) {
		t.Errorf("no %s: the other special dirs should still be made", p)
	}

	// Removal frees the rest and leaves the user's volume alone.
	since := time.Now()
	docker(t, "rm", "-f", name)
	waitFreed(t, dataRoot, since, id)
	if b, err := os.ReadFile(filepath.Join(volDir, "e2e-mark")); err != nil || strings.TrimSpace(string(b)) != "from-inside" {
		t.Errorf("the volume lost its content at docker rm: %q %v", b, err)
	}
}

// mgrLaunch is how the running shared manager was started, read from /proc
// so that it can be started again the same way.
type mgrLaunch struct {
	pid     int
	exe     string
	argv    []string
	env     []string
	dir     string
	log     string // what its stdout and stderr are appended to
	systemd bool   // it runs as sysbox-mgr.service
}

func (l mgrLaunch) String() string {
	return fmt.Sprintf("%s (argv %q, dir %s, log %s)", l.exe, l.argv, l.dir, l.log)
}

const mgrPidFile = ipc.RunDir + "/mgr.pid"

func procComm(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}

// procAlive: pid exists, is not a zombie, and is named comm.
func procAlive(pid int, comm string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) || b[i+2] == 'Z' || b[i+2] == 'X' {
		return false
	}
	return procComm(pid) == comm
}

// readMgrLaunch finds the shared manager through its pid file and reads its
// command line, binary, environment, working dir and log.
func readMgrLaunch(t *testing.T) mgrLaunch {
	t.Helper()
	b, err := os.ReadFile(mgrPidFile)
	if err != nil {
		t.Fatalf("the shared manager's pid file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || !procAlive(pid, "sysbox-mgr") {
		t.Fatalf("%s says %q: not a live sysbox-mgr", mgrPidFile, b)
	}
	l := mgrLaunch{pid: pid}
	proc := func(f string) string { return fmt.Sprintf("/proc/%d/%s", pid, f) }
	split := func(b []byte) []string { return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00") }
	cmdline, err := os.ReadFile(proc("cmdline"))
	if err != nil || len(cmdline) == 0 {
		t.Fatalf("read %s: %v", proc("cmdline"), err)
	}
	l.argv = split(cmdline)
	if l.exe, err = os.Readlink(proc("exe")); err != nil {
		t.Fatal(err)
	}
	// A rebuilt binary (make build) leaves the old one "(deleted)": start
	// the one now at that path.
	l.exe = strings.TrimSuffix(l.exe, " (deleted)")
	// /proc/PID/exe is the binary, sysbox; install ran it through its role
	// link PREFIX/bin/sysbox-mgr, which is what gives the process its comm
	// (install and uninstall find the daemon by pid file and comm). Use
	// that link when it leads to the same binary.
	if link := filepath.Join(filepath.Dir(l.exe), filepath.Base(l.argv[0])); link != l.exe {
		if real, err := filepath.EvalSymlinks(link); err == nil && real == l.exe {
			l.exe = link
		}
	}
	environ, err := os.ReadFile(proc("environ"))
	if err != nil {
		t.Fatal(err)
	}
	if len(environ) > 0 {
		l.env = split(environ)
	}
	if l.dir, err = os.Readlink(proc("cwd")); err != nil {
		t.Fatal(err)
	}
	if l.log, err = os.Readlink(proc("fd/2")); err != nil {
		t.Fatal(err)
	}
	if cg, err := os.ReadFile(proc("cgroup")); err == nil && strings.Contains(string(cg), "/sysbox-mgr.service") {
		l.systemd = true
	}
	if !l.systemd && !filepath.IsAbs(l.log) {
		t.Fatalf("the shared manager's stderr is %s, not a log file: the test does not know how to start it again", l.log)
	}
	return l
}

// startMgrLike starts the manager again as `sysbox install` did
// (install/daemons.go, startDirect): its own session, stdin /dev/null,
// output appended to its log, the pid file written, and waits until its
// socket answers. Under systemd it asks systemd. If another manager answers
// first (someone else restarted it), that one is kept. The process started
// here is left running: it is the shared manager now.
func startMgrLike(l mgrLaunch) error {
	if listening(ipc.MgrSocket) {
		return nil
	}
	if l.systemd {
		out, err := exec.Command("systemctl", "start", "sysbox-mgr.service").CombinedOutput()
		if err != nil {
			return fmt.Errorf("systemctl start sysbox-mgr.service: %v\n%s", err, out)
		}
		return waitMgrSocket(nil, 30*time.Second)
	}
	lf, err := os.OpenFile(l.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	defer lf.Close()
	cmd := exec.Command(l.exe, l.argv[1:]...)
	cmd.Args[0] = l.argv[0]
	cmd.Dir = l.dir
	cmd.Env = l.env
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", l, err)
	}
	if err := os.WriteFile(mgrPidFile, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	logf("restarted the shared sysbox-mgr: pid %d, %s", cmd.Process.Pid, l)
	return waitMgrSocket(exited, 30*time.Second)
}

func waitMgrSocket(exited <-chan error, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for !listening(ipc.MgrSocket) {
		select {
		case err := <-exited:
			// Another manager may have won the data root's lock.
			if listening(ipc.MgrSocket) {
				return nil
			}
			return fmt.Errorf("sysbox-mgr exited at start (%v): see %s", err, "/var/log/sysbox/mgr.log")
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing answers on %s after %s", ipc.MgrSocket, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// rangesOverlap: [a, a+as) and [b, b+bs) share an id.
func rangesOverlap(a, as, b, bs uint64) bool { return a < b+bs && b < a+as }

// TestMgrKill9: kill -9 of the shared manager while containers run. They
// keep running; the manager, started again as install started it, knows
// them with their ranges, gives new containers fresh ones, and still frees
// the old ones' dirs at docker rm. The manager is down for a second or two:
// tests of others starting containers at that moment fail, so the window
// is kept short and a cleanup restarts it whatever happens.
func TestMgrKill9(t *testing.T) {
	needDaemons(t)
	type ctr struct {
		name, id string
		c        ipc.MgrContainer
		pid      string
	}
	var old []ctr
	for range 2 {
		name := sysbox("sleep", "infinity").start(t)
		id := fullID(t, name)
		old = append(old, ctr{name: name, id: id, c: registered(t, name, id), pid: docker(t, "inspect", "-f", "{{.State.Pid}}", name)})
	}
	dataRoot := mgrStatus(t).DataRoot

	l := readMgrLaunch(t)
	t.Logf("shared manager: pid %d, %s", l.pid, l)
	t.Cleanup(func() {
		if err := startMgrLike(l); err != nil {
			t.Errorf("RESTART THE SHARED MANAGER BY HAND (%s): %v", l, err)
		}
	})
	if err := syscall.Kill(l.pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d: %v", l.pid, err)
	}
	killed := time.Now()
	poll(t, 10*time.Second, func() (bool, string) {
		return !procAlive(l.pid, "sysbox-mgr"), fmt.Sprintf("pid %d still alive after SIGKILL", l.pid)
	})

	// Down: the containers run on (same init, on the host), exec works,
	// their dirs are there. Both at once, to keep the window short.
	if !l.systemd {
		// The leader shows as a zombie while its other threads still
		// close the shared fd table: give the socket a moment to go.
		gone := time.Now().Add(2 * time.Second)
		for listening(ipc.MgrSocket) && time.Now().Before(gone) {
			time.Sleep(20 * time.Millisecond)
		}
		if listening(ipc.MgrSocket) {
			t.Errorf("something still answers on %s 2 s after kill -9", ipc.MgrSocket)
		}
	}
	downChecks := make(chan string, len(old))
	for _, o := range old {
		go func() {
			var bad []string
			if pid, _ := strconv.Atoi(o.pid); pid <= 0 || !procAlive(pid, "sleep") {
				bad = append(bad, fmt.Sprintf("%s: its init (host pid %s) is gone", o.name, o.pid))
			}
			out, err := runCmd(t, nil, env.dockerCLI, "exec", o.name, "cat", "/proc/self/uid_map")
			if f := strings.Fields(out); err != nil || len(f) < 3 || f[0] != "0" || f[1] != strconv.FormatUint(uint64(o.c.UIDBase), 10) {
				bad = append(bad, fmt.Sprintf("%s: docker exec cat /proc/self/uid_map = %q (%v), want root at %d", o.name, out, err, o.c.UIDBase))
			}
			for _, k := range mgrKinds {
				if p := specialDir(dataRoot, k, o.id); !exists(p) {
					bad = append(bad, p+" gone while the manager was down")
				}
			}
			downChecks <- strings.Join(bad, "\n")
		}()
	}
	for range old {
		if bad := <-downChecks; bad != "" {
			t.Error(bad)
		}
	}
	t.Logf("containers checked %s after kill -9", time.Since(killed).Round(10*time.Millisecond))

	if err := startMgrLike(l); err != nil {
		t.Fatal(err)
	}
	t.Logf("manager down for %s", time.Since(killed).Round(10*time.Millisecond))
	nl := readMgrLaunch(t)
	if nl.pid == l.pid {
		t.Fatalf("pid file still names the killed manager %d", l.pid)
	}
	if !slices.Equal(nl.argv, l.argv) || nl.exe != l.exe {
		t.Errorf("restarted as %s, was %s", nl, l)
	}

	// It lost nothing: the running containers keep their ranges.
	st := mgrStatus(t)
	for _, o := range old {
		c, ok := findMgrContainer(st, o.id)
		switch {
		case !ok:
			t.Errorf("after restart the manager does not know %s", o.name)
		case c.UIDBase != o.c.UIDBase || c.Size != o.c.Size:
			t.Errorf("after restart %s holds %d+%d, had %d+%d", o.name, c.UIDBase, c.Size, o.c.UIDBase, o.c.Size)
		}
	}

	// New containers get fresh ranges, disjoint from every other one.
	var fresh []ctr
	for range 2 {
		name := sysbox("sleep", "infinity").start(t)
		id := fullID(t, name)
		fresh = append(fresh, ctr{name: name, id: id, c: registered(t, name, id)})
	}
	st = mgrStatus(t)
	for _, f := range fresh {
		for _, o := range st.Containers {
			if o.ID != f.id && rangesOverlap(uint64(f.c.UIDBase), uint64(f.c.Size), uint64(o.UIDBase), uint64(o.Size)) {
				t.Errorf("new container %s got %d+%d, overlapping %.12s's %d+%d", f.name, f.c.UIDBase, f.c.Size, o.ID, o.UIDBase, o.Size)
			}
		}
	}

	// Removing the old ones still frees their ranges and dirs.
	since := time.Now()
	docker(t, "rm", "-f", old[0].name, old[1].name)
	waitFreed(t, dataRoot, since, old[0].id, old[1].id)
}

// diskTempDir is a temporary dir on a disk filesystem (a manager's data root
// may not be on tmpfs or overlay), removed at the end of the test.
func diskTempDir(t *testing.T) string {
	t.Helper()
	for _, parent := range []string{"/var/tmp", "/var/lib"} {
		var sfs unix.Statfs_t
		if unix.Statfs(parent, &sfs) != nil {
			continue
		}
		if typ := int64(sfs.Type); typ == unix.TMPFS_MAGIC || typ == unix.RAMFS_MAGIC || typ == unix.OVERLAYFS_SUPER_MAGIC {
			continue
		}
		dir, err := os.MkdirTemp(parent, "sysbox-e2e-mgr-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := os.RemoveAll(dir); err != nil {
				t.Errorf("remove %s: %v", dir, err)
			}
		})
		return dir
	}
	t.Fatal("neither /var/tmp nor /var/lib is on a disk filesystem")
	return ""
}

// privateMgr is a second manager instance, away from the shared one: its
// own data root (so its own lock), socket and pid file (next to the socket),
// and id files.
type privateMgr struct {
	dir      string
	dataRoot string
	socket   string
	subuid   string
	subgid   string
}

func newPrivateMgr(t *testing.T, dataRoot string) privateMgr {
	t.Helper()
	dir := diskTempDir(t)
	if dataRoot == "" {
		dataRoot = filepath.Join(dir, "root")
	}
	p := privateMgr{
		dir:      dir,
		dataRoot: dataRoot,
		socket:   filepath.Join(dir, "run", "mgr.sock"),
		subuid:   filepath.Join(dir, "subuid"),
		subgid:   filepath.Join(dir, "subgid"),
	}
	for _, f := range []string{p.subuid, p.subgid} {
		if err := os.WriteFile(f, []byte("sysbox:100000:655360\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func (p privateMgr) args() []string {
	return []string{
		"--data-root", p.dataRoot, "--socket", p.socket,
		"--subuid-file", p.subuid, "--subgid-file", p.subgid, "--login-defs", filepath.Join(p.dir, "login.defs"),
	}
}

// mustFail runs the private manager and expects it to exit non-zero at
// start, without ever serving; it returns what it said.
func (p privateMgr) mustFail(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(env.bin, "sysbox-mgr"), p.args()...)
	cmd.WaitDelay = 5 * time.Second
	b, err := cmd.CombinedOutput()
	out := strings.TrimSpace(string(b))
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("sysbox-mgr %s did not exit in 30s (killed); it said:\n%s", strings.Join(p.args(), " "), out)
	case err == nil:
		t.Fatalf("sysbox-mgr %s exited 0, want a refusal; it said:\n%s", strings.Join(p.args(), " "), out)
	case !errors.As(err, &ee):
		t.Fatalf("run sysbox-mgr: %v", err)
	}
	if exists(p.socket) {
		t.Errorf("the refused manager left its socket %s", p.socket)
	}
	if exists(filepath.Join(filepath.Dir(p.socket), "mgr.pid")) {
		t.Errorf("the refused manager left its pid file")
	}
	t.Logf("sysbox-mgr exited %d:\n%s", ee.ExitCode(), out)
	return out
}

// TestMgrDataRootRefused: a data root on tmpfs (or overlayfs) cannot hold
// inner engines' overlay layers; the manager refuses it and says why.
func TestMgrDataRootRefused(t *testing.T) {
	requireEnv(t)
	for _, tc := range []struct {
		fs    string
		mount func(t *testing.T, dir, mp string) error
	}{
		{"tmpfs", func(t *testing.T, dir, mp string) error {
			return unix.Mount("e2e-mgr", mp, "tmpfs", 0, "size=16m,mode=0755")
		}},
		{"overlayfs", func(t *testing.T, dir, mp string) error {
			for _, d := range []string{"lower", "upper", "work"} {
				if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
					return err
				}
			}
			return unix.Mount("e2e-mgr", mp, "overlay", 0, fmt.Sprintf("lowerdir=%s/lower,upperdir=%s/upper,workdir=%s/work", dir, dir, dir))
		}},
	} {
		t.Run(tc.fs, func(t *testing.T) {
			dir := diskTempDir(t)
			mp := filepath.Join(dir, "mnt")
			if err := os.Mkdir(mp, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := tc.mount(t, dir, mp); err != nil {
				t.Fatalf("mount %s on %s: %v", tc.fs, mp, err)
			}
			// Registered after diskTempDir's removal, so it runs before it.
			t.Cleanup(func() {
				if err := unix.Unmount(mp, 0); err != nil {
					t.Errorf("umount %s: %v", mp, err)
				}
			})
			p := newPrivateMgr(t, filepath.Join(mp, "sysbox"))
			out := p.mustFail(t)
			if !strings.Contains(out, "is on "+tc.fs) || !strings.Contains(out, p.dataRoot) {
				t.Errorf("the refusal does not say that data root %s is on %s:\n%s", p.dataRoot, tc.fs, out)
			}
			if exists(filepath.Join(p.dataRoot, "mgr.db")) {
				t.Errorf("the refused manager made a database on %s", tc.fs)
			}
			// The shared manager did not notice.
			if needDaemonsUp() {
				if _, err := mgrStatusErr(t); err != nil {
					t.Errorf("shared manager after the refusal: %v", err)
				}
			}
		})
	}
}

// needDaemonsUp: the harness has a shared manager running.
func needDaemonsUp() bool {
	err, ok := env.daemons["sysbox-mgr"]
	return ok && err == nil
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// TestMgrBadInput: a malformed subuid or subgid line is reported with its
// file and line number; a damaged database is reported by name and left as
// it was.
func TestMgrBadInput(t *testing.T) {
	requireEnv(t)
	for _, which := range []string{"subuid", "subgid"} {
		t.Run("malformed "+which, func(t *testing.T) {
			p := newPrivateMgr(t, "")
			file := p.subuid
			if which == "subgid" {
				file = p.subgid
			}
			content := "# ids for sysbox\nsysbox:100000:655360\n\nbob:zzz:65536\nalice:900000:65536\n"
			if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			out := p.mustFail(t)
			if want := file + " line 4"; !strings.Contains(out, want) || !strings.Contains(out, "bob:zzz:65536") {
				t.Errorf("the error does not name %q and quote the line:\n%s", want, out)
			}
			if b, _ := os.ReadFile(file); string(b) != content {
				t.Errorf("%s was changed:\n%s", file, b)
			}
		})
	}

	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, p privateMgr, db string)
	}{
		{"garbage", func(t *testing.T, _ privateMgr, db string) {
			garbage := make([]byte, 64<<10)
			_, _ = rand.NewChaCha8([32]byte{4, 2}).Read(garbage)
			if err := os.WriteFile(db, garbage, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"pages overwritten", func(t *testing.T, p privateMgr, db string) {
			// A real database, made by the manager and closed cleanly, whose
			// pages after the two meta pages (tree and freelist) are garbage.
			cmd := exec.Command(filepath.Join(env.bin, "sysbox-mgr"), p.args()...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			poll(t, 30*time.Second, func() (bool, string) {
				select {
				case err := <-done:
					t.Fatalf("sysbox-mgr exited at start (%v):\n%s", err, out.String())
				default:
				}
				return listening(p.socket), "no socket " + p.socket
			})
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("sysbox-mgr after SIGTERM: %v\n%s", err, out.String())
				}
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				<-done
				t.Fatalf("sysbox-mgr ignored SIGTERM for 30s:\n%s", out.String())
			}
			f, err := os.OpenFile(db, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			fi, err := f.Stat()
			if err != nil {
				t.Fatal(err)
			}
			ps := int64(os.Getpagesize())
			if fi.Size() <= 2*ps {
				t.Fatalf("%s is %d bytes: no pages after the meta pages", db, fi.Size())
			}
			garbage := make([]byte, fi.Size()-2*ps)
			_, _ = rand.NewChaCha8([32]byte{4, 2}).Read(garbage)
			if _, err := f.WriteAt(garbage, 2*ps); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run("damaged database "+tc.name, func(t *testing.T) {
			p := newPrivateMgr(t, "")
			if err := os.MkdirAll(p.dataRoot, 0o711); err != nil {
				t.Fatal(err)
			}
			db := filepath.Join(p.dataRoot, "mgr.db")
			tc.damage(t, p, db)
			before := fileSum(t, db)
			// What the data root held (a cleanly stopped manager leaves
			// its empty journal files beside the database).
			had := map[string]bool{}
			if ents, err := os.ReadDir(p.dataRoot); err == nil {
				for _, e := range ents {
					had[e.Name()] = true
				}
			}
			fi0, _ := os.Stat(db)
			out := p.mustFail(t)
			if !strings.Contains(out, db) || !strings.Contains(out, "damaged") {
				t.Errorf("the error does not say that %s is damaged:\n%s", db, out)
			}
			if fileSum(t, db) != before {
				t.Errorf("%s was changed", db)
			}
			if fi, _ := os.Stat(db); fi == nil || fi0 == nil || fi.Mode() != fi0.Mode() || !fi.ModTime().Equal(fi0.ModTime()) {
				t.Errorf("%s was touched: %v, was %v", db, fi, fi0)
			}
			// Kept in place: not renamed, not replaced.
			ents, _ := os.ReadDir(p.dataRoot)
			for _, e := range ents {
				if !had[e.Name()] && strings.HasPrefix(e.Name(), "mgr.db") {
					t.Errorf("%s appeared next to the damaged database", e.Name())
				}
			}
		})
	}
}
