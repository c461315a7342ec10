//go:build e2e

package e2e

// Issue 6: the seccomp trap agent (trap/, run in the fs daemon) end to end,
// one test per "Done when" line, inside system containers.
//
// The fs daemon test starts and kills a private fs daemon of its own and
// runs its containers straight through the runtime, so it never disturbs
// the shared daemons. SYSBOX_E2E_TRAP_BIN names the binary it uses
// (default: bin/sysbox of this checkout).

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// procValues reads the uptime (seconds) and MemTotal (kB) out of what
// readProc prints: "UPTIME IDLE\nMemTotal: N kB".
func procValues(t *testing.T, what, out string) (float64, uint64) {
	t.Helper()
	lines := strings.Split(out, "\n")
	if len(lines) < 2 || lines[0] == "" {
		t.Fatalf("%s: want an uptime line and a MemTotal line, got:\n%s", what, out)
	}
	up := uptimeOf(t, lines[0])
	f := strings.Fields(lines[1])
	if len(f) < 2 || f[0] != "MemTotal:" {
		t.Fatalf("%s: no MemTotal line in:\n%s", what, out)
	}
	kb, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		t.Fatalf("%s: MemTotal %q: %v", what, f[1], err)
	}
	return up, kb
}

const readProc = "head -c 100 /proc/uptime; head -1 /proc/meminfo"

// hostMemTotal is the host's MemTotal in kB.
func hostMemTotal(t *testing.T) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
	if len(f) < 2 || f[0] != "MemTotal:" {
		t.Fatalf("host /proc/meminfo starts with %q", f)
	}
	kb, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return kb
}

// checkUptime: got (read after own) is the container's uptime, own, not the
// host's. A host up for less than two minutes cannot tell them apart.
func checkUptime(t *testing.T, what string, got, own float64) {
	t.Helper()
	if got < own || got > own+30 {
		t.Errorf("%s: uptime %.2f, want the container's (%.2f, read just before)", what, got, own)
	}
	if host := hostUptime(t); host > 120 && got > host-60 {
		t.Errorf("%s: uptime %.2f is the host's (%.2f)", what, got, host)
	}
}

// TestTrapUnshareMountProc: `unshare -pfm --mount-proc` mounts a procfs of
// a new pid namespace; the agent gives it the container's views, so it
// shows the container's uptime and memory, not the host's.
func TestTrapUnshareMountProc(t *testing.T) {
	needDaemons(t)
	name := sysbox("sleep", "infinity").withFlags("--memory", "256m").start(t)
	own := inside(t, name, readProc)
	nested := inside(t, name, "unshare -pfm --mount-proc sh -c '"+readProc+"; grep -c \" /proc/uptime .* - fuse\" /proc/self/mountinfo'")
	ownUp, ownMem := procValues(t, "container", own)
	up, mem := procValues(t, "unshare --mount-proc", nested)
	checkUptime(t, "unshare --mount-proc", up, ownUp)
	if mem != ownMem {
		t.Errorf("unshare --mount-proc: MemTotal %d kB, the container's /proc says %d kB", mem, ownMem)
	}
	if ownMem != 256<<10 {
		t.Errorf("container started with --memory 256m: MemTotal %d kB, want %d (host: %d)", ownMem, 256<<10, hostMemTotal(t))
	}
	if n := strings.TrimSpace(nested[strings.LastIndex(nested, "\n")+1:]); n != "2" {
		// One view under the copied /proc, one on the new procfs.
		t.Errorf("unshare --mount-proc: %s FUSE mounts at /proc/uptime, want 2 (the copy of the container's and the new procfs's)", n)
	}
}

// mountTree lists the mounts at and below dir in a container (findmnt -R)
// as "path fstype ro|rw", path relative to dir.
func mountTree(t *testing.T, name, dir string) map[string]string {
	t.Helper()
	out := inside(t, name, "findmnt -R -n -r -o TARGET,FSTYPE,OPTIONS "+dir)
	tree := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(f[0], dir), "/")
		mode := "rw"
		if hasOpt(f[2], "ro") {
			mode = "ro"
		}
		tree[rel] = f[1] + " " + mode
	}
	return tree
}

// attempt is one command of attempts.
type attempt struct {
	cmd string
	ok  bool   // exit status 0
	out string // its output
}

// attempts runs each of cmds (expected to fail, mostly) in one docker
// exec, each in its own subshell, and returns how each went.
func attempts(t *testing.T, name string, cmds []string) []attempt {
	t.Helper()
	var script strings.Builder
	for _, c := range cmds {
		fmt.Fprintf(&script, "out=$( (%s) 2>&1); echo \"@@@ $? $out\"\n", c)
	}
	out := inside(t, name, script.String())
	var res []attempt
	for _, chunk := range strings.Split(out, "@@@ ")[1:] {
		rc, msg, _ := strings.Cut(strings.TrimSpace(chunk), " ")
		res = append(res, attempt{ok: strings.TrimSpace(rc) == "0", out: msg})
	}
	if len(res) != len(cmds) {
		t.Fatalf("%d results for %d commands:\n%s", len(res), len(cmds), out)
	}
	for i := range res {
		res[i].cmd = cmds[i]
	}
	return res
}

// kernelStub: what the container's /sys has that a new sysfs need not:
// its cgroupfs, and the runtime's empty mounts where systemd mounts debugfs,
// tracefs and configfs (the /sys/kernel view shows those dirs empty anyway).
var kernelStub = map[string]bool{"kernel/debug": true, "kernel/tracing": true, "kernel/config": true}

func hasOpt(opts, o string) bool {
	for _, x := range strings.Split(opts, ",") {
		if x == o {
			return true
		}
	}
	return false
}

// TestTrapMountProc: a new procfs (and sysfs) gets the container's views,
// masks and read-only paths; the container's own /proc, /sys and views
// cannot be unmounted; a mount that started read-only cannot be made
// writable.
func TestTrapMountProc(t *testing.T) {
	needDaemons(t)
	vol := t.TempDir()
	if err := os.Chmod(vol, 0o755); err != nil {
		t.Fatal(err)
	}
	name := sysbox("sleep", "infinity").withFlags("-v", vol+":/ro:ro").start(t)

	t.Run("new procfs has the views", func(t *testing.T) {
		for _, fs := range []struct{ typ, own string }{{"proc", "/proc"}, {"sysfs", "/sys"}} {
			dir := "/tmp/new-" + fs.typ
			inside(t, name, fmt.Sprintf("mkdir -p %s && mount -t %s %s %s", dir, fs.typ, fs.typ, dir))
			got, want := mountTree(t, name, dir), mountTree(t, name, fs.own)
			views := 0
			for rel, w := range want {
				if strings.HasPrefix(rel, "fs/cgroup") || kernelStub[rel] {
					continue
				}
				if strings.HasPrefix(w, "fuse") {
					views++
				}
				if got[rel] != w {
					t.Errorf("%s: %s/%s is %q, want %q as on %s/%s", fs.typ, dir, rel, got[rel], w, fs.own, rel)
				}
			}
			if views == 0 {
				t.Errorf("%s has no FUSE views: %v", fs.own, want)
			}
			if len(got) > len(want) {
				t.Errorf("%s has more mounts than %s:\n%v\n%v", dir, fs.own, got, want)
			}
		}
		own := inside(t, name, "head -c 100 /proc/uptime")
		up := inside(t, name, "head -c 100 /tmp/new-proc/uptime")
		checkUptime(t, "new procfs", uptimeOf(t, up), uptimeOf(t, own))
		// What the agent mounted for the container unmounts as usual.
		inside(t, name, "umount -R /tmp/new-proc && umount -R /tmp/new-sysfs")
	})

	t.Run("umount of the container's mounts fails", func(t *testing.T) {
		var cmds []string
		for _, p := range []string{"/proc/sys", "/proc/uptime", "/proc/meminfo", "/proc", "/sys", "/sys/kernel", "/proc/bus"} {
			cmds = append(cmds, "umount "+p, "unshare -m umount "+p)
		}
		for _, a := range attempts(t, name, cmds) {
			if a.ok {
				t.Errorf("%s: succeeded, want EBUSY", a.cmd)
			} else if !strings.Contains(a.out, "busy") {
				t.Errorf("%s: %q, want EBUSY (target is busy)", a.cmd, a.out)
			}
		}
		// Still there, still the views.
		if got := mountTree(t, name, "/proc")["sys"]; !strings.HasPrefix(got, "fuse") {
			t.Errorf("/proc/sys is %q after the umounts, want the FUSE view", got)
		}
		// The container's own mounts come and go.
		inside(t, name, "mkdir -p /tmp/own && mount -t tmpfs own /tmp/own && umount /tmp/own")
	})

	t.Run("remount rw of a read-only mount fails", func(t *testing.T) {
		var cmds []string
		for _, p := range []string{"/ro", "/proc/bus"} {
			for _, opts := range []string{"remount,rw", "remount,bind,rw"} {
				cmds = append(cmds, "mount -o "+opts+" "+p)
			}
		}
		// A bind of it elsewhere is as read-only as the original.
		cmds = append(cmds, "mkdir -p /tmp/robind && mount --bind /ro /tmp/robind && mount -o remount,bind,rw /tmp/robind")
		for _, a := range attempts(t, name, cmds) {
			if a.ok {
				t.Errorf("%s: succeeded, want EPERM", a.cmd)
			} else if !strings.Contains(a.out, "permission denied") {
				t.Errorf("%s: %q, want EPERM (permission denied)", a.cmd, a.out)
			}
		}
		for _, p := range []string{"/ro", "/proc/bus", "/tmp/robind"} {
			if got := inside(t, name, "findmnt -n -o OPTIONS "+p); !hasOpt(got, "ro") {
				t.Errorf("%s is %s after the remounts, want ro", p, got)
			}
		}
		if _, err := insideErr(t, name, "touch /ro/x || touch /tmp/robind/x"); err == nil {
			t.Error("the read-only volume is writable")
		}
		// A read-only mount the container made itself may become writable.
		inside(t, name, "mkdir -p /tmp/a /tmp/b && mount --bind -o ro /tmp/a /tmp/b && mount -o remount,bind,rw /tmp/b && touch /tmp/b/x")
	})
}

// TestTrapMknod: /dev/net/tun can be made and works; a block device
// cannot be made.
func TestTrapMknod(t *testing.T) {
	needDaemons(t)
	name := sysbox("sleep", "infinity").start(t)
	inside(t, name, "mkdir -p /dev/net && mknod /dev/net/tun c 10 200")
	if got := inside(t, name, "stat -c '%F %t:%T' /dev/net/tun"); got != "character special file a:c8" {
		t.Errorf("/dev/net/tun: %q, want a character device 10:200 (a:c8)", got)
	}
	inside(t, name, "ip tuntap add mode tun tun0")
	if out := inside(t, name, "ip -o link show tun0"); !strings.Contains(out, "tun0") {
		t.Errorf("ip link show tun0: %q", out)
	}
	out, err := insideErr(t, name, "mknod /tmp/sda b 8 0")
	if err == nil || !strings.Contains(out, "Operation not permitted") {
		t.Errorf("mknod /tmp/sda b 8 0: %v %q, want EPERM", err, out)
	}
	if _, err := insideErr(t, name, "test -e /tmp/sda"); err == nil {
		t.Error("/tmp/sda exists")
	}
}

// TestTrapFree: busybox free (sysinfo(2)) agrees with /proc/meminfo, with
// and without a memory limit.
func TestTrapFree(t *testing.T) {
	needDaemons(t)
	for _, c := range []struct {
		name  string
		flags []string
		total uint64 // kB; 0: whatever /proc/meminfo says
	}{
		{"no limit", nil, 0},
		{"256m", []string{"--memory", "256m"}, 256 << 10},
	} {
		t.Run(c.name, func(t *testing.T) {
			ct := container{Runtime: RuntimeSysbox, Image: ImageBusybox, Flags: c.flags, Cmd: []string{"sleep", "3600"}}
			name := ct.start(t)
			out := inside(t, name, "free; head -2 /proc/meminfo")
			var total, free, memTotal, memFree uint64
			for _, line := range strings.Split(out, "\n") {
				f := strings.Fields(line)
				switch {
				case len(f) >= 4 && f[0] == "Mem:":
					total, _ = strconv.ParseUint(f[1], 10, 64)
					free, _ = strconv.ParseUint(f[3], 10, 64)
				case len(f) >= 2 && f[0] == "MemTotal:":
					memTotal, _ = strconv.ParseUint(f[1], 10, 64)
				case len(f) >= 2 && f[0] == "MemFree:":
					memFree, _ = strconv.ParseUint(f[1], 10, 64)
				}
			}
			if total == 0 || memTotal == 0 {
				t.Fatalf("free and /proc/meminfo:\n%s", out)
			}
			if total != memTotal {
				t.Errorf("free says total %d kB, /proc/meminfo %d kB:\n%s", total, memTotal, out)
			}
			// Read a moment apart: free memory moves a little.
			if d := int64(free) - int64(memFree); d > 16<<10 || d < -16<<10 {
				t.Errorf("free says free %d kB, /proc/meminfo %d kB:\n%s", free, memFree, out)
			}
			if c.total != 0 && total != c.total {
				t.Errorf("total %d kB with %v, want %d kB (host: %d)", total, c.flags, c.total, hostMemTotal(t))
			}
		})
	}
}

// TestTrapInnerDocker: a container started by the inner Docker of a system
// container sees a virtualized /proc: its uptime is the system
// container's, not the host's, from a FUSE view.
func TestTrapInnerDocker(t *testing.T) {
	needDaemons(t)
	name := innerDocker(t)
	own := inside(t, name, "head -c 100 /proc/uptime")
	out := inside(t, name, "docker run --rm --network none "+ImageBusybox+
		` sh -c 'head -c 100 /proc/uptime; echo; grep " /proc/uptime " /proc/self/mountinfo | grep -c fuse'`)
	lines := strings.Split(out, "\n")
	if len(lines) < 2 {
		t.Fatalf("inner container said:\n%s", out)
	}
	checkUptime(t, "inner container", uptimeOf(t, lines[0]), uptimeOf(t, own))
	if n := strings.TrimSpace(lines[len(lines)-1]); n != "1" {
		t.Errorf("inner container: %s view mounts at /proc/uptime, want 1:\n%s", n, out)
	}
}

// privateFs is an fs daemon (with its trap agent) of the test's own, on
// sockets and a FUSE mount in dir.
type privateFs struct {
	t    *testing.T
	bin  string
	dir  string
	runs int
	p    *proc
	log  string
}

func trapBin() string {
	if b := os.Getenv("SYSBOX_E2E_TRAP_BIN"); b != "" {
		return b
	}
	return filepath.Join(env.bin, "sysbox")
}

func (f *privateFs) fsSocket() string   { return filepath.Join(f.dir, "fs.sock") }
func (f *privateFs) trapSocket() string { return filepath.Join(f.dir, "seccomp.sock") }

// env points the runtime at this daemon (the manager stays the shared one).
func (f *privateFs) env() []string {
	return []string{"SYSBOX_FS_SOCKET=" + f.fsSocket(), "SYSBOX_TRAP_SOCKET=" + f.trapSocket()}
}

// start starts the daemon and waits for its API and its agent.
func (f *privateFs) start() {
	f.t.Helper()
	f.runs++
	f.log = filepath.Join(logDir, fmt.Sprintf("trap-%s-fs-%d.log", filepath.Base(f.dir), f.runs))
	p, err := startLogged(f.bin, []string{
		"fs", "--mountpoint", filepath.Join(f.dir, "mnt"),
		"--socket", f.fsSocket(), "--trap-socket", f.trapSocket(),
	}, f.log)
	if err != nil {
		f.t.Fatal(err)
	}
	f.p = p
	if err := waitListening(p, f.fsSocket(), 20*time.Second); err != nil {
		f.t.Fatalf("private sysbox-fs: %v", err)
	}
	poll(f.t, 20*time.Second, func() (bool, string) {
		return strings.Contains(p.output(), "seccomp agent ready"), "no \"seccomp agent ready\" in " + f.log + ":\n" + p.output()
	})
}

// kill is what a crash does: SIGKILL, nothing cleaned up.
func (f *privateFs) kill() {
	f.t.Helper()
	if err := f.p.cmd.Process.Kill(); err != nil {
		f.t.Fatal(err)
	}
	<-f.p.done
}

// runtimeCmd is `sysbox runc --root root args...` against this daemon.
func (f *privateFs) runtimeCmd(root string, args ...string) *exec.Cmd {
	cmd := exec.Command(f.bin, append([]string{"runc", "--root", root}, args...)...)
	cmd.Env = append(os.Environ(), f.env()...)
	return cmd
}

// newPrivateFs makes the daemon's dir and removes all of it at the end:
// the daemon stopped, its FUSE mount gone.
func newPrivateFs(t *testing.T) *privateFs {
	t.Helper()
	dir, err := os.MkdirTemp("", "trapkill-")
	if err != nil {
		t.Fatal(err)
	}
	// User-namespaced roots walk to their rootfs below it.
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	f := &privateFs{t: t, bin: trapBin(), dir: dir}
	t.Cleanup(func() {
		if f.p != nil {
			f.p.stop(10 * time.Second)
		}
		// A killed daemon leaves its FUSE mount behind.
		mnt := filepath.Join(dir, "mnt")
		if slices.Contains(mountPoints(t), mnt) {
			if out, err := runCmd(t, nil, "umount", "-l", mnt); err != nil {
				t.Errorf("umount %s: %v %s", mnt, err, out)
			}
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove %s: %v", dir, err)
		}
	})
	return f
}

// busyboxBundle makes an OCI bundle under dir with the busybox image as
// its rootfs, running args, with a seccomp profile (allow by default) so
// the runtime routes the trapped calls to the agent.
func busyboxBundle(t *testing.T, f *privateFs, tarball, dir string, args ...string) string {
	t.Helper()
	rootfs := filepath.Join(dir, "rootfs")
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "tar", "-C", rootfs, "-xf", tarball)
	if out, err := f.runtimeCmd(filepath.Join(f.dir, "state"), "spec", "--bundle", dir).CombinedOutput(); err != nil {
		t.Fatalf("spec: %v\n%s", err, out)
	}
	path := filepath.Join(dir, "config.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var spec map[string]any
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	proc := spec["process"].(map[string]any)
	proc["terminal"] = false
	proc["args"] = args
	spec["root"].(map[string]any)["readonly"] = false
	spec["linux"].(map[string]any)["seccomp"] = map[string]any{"defaultAction": "SCMP_ACT_ALLOW"}
	if b, err = json.Marshal(spec); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// trapRound is what the container of TestTrapFsDaemonKilled does each time
// the test tells it to: trapped calls, each with its exit status, then
// untrapped ones. Each round's output goes to /ctl/out-N, then /ctl/done-N.
const trapRound = `
round() {
	while [ ! -e /ctl/go-$1 ]; do sleep 0.1; done
	{
		mkdir -p /tmp/p$1
		mount -t proc proc /tmp/p$1; echo "mount-proc=$?"
		grep -c " /tmp/p$1/uptime " /proc/self/mountinfo
		umount -l /tmp/p$1 2>/dev/null
		mknod /tmp/null$1 c 1 3; echo "mknod=$?"
		umount /proc/sys; echo "umount-view=$?"
		echo "uptime=$(cut -d' ' -f1 /proc/uptime)"
		echo "alive=$$"
	} >/ctl/out-$1 2>&1
	touch /ctl/done-$1
}
mkdir -p /ctl
for r in 1 2 3 4; do round $r; done
exec sleep 3600
`

// TestTrapFsDaemonKilled: a private fs daemon is killed while a container
// runs. The container keeps running; its trapped calls wait (sysbox-mgr's
// fd store keeps the notify fd) and are served once the daemon is back; a
// new container cannot start while the daemon is down and says why; after
// the restart the old container's views and exec work again (the daemon
// took it back) and new containers work. Killed again and left down beyond
// the store's grace, trapped calls fail with an errno (ENOSYS) instead of
// hanging, for good.
func TestTrapFsDaemonKilled(t *testing.T) {
	needDaemons(t, "sysbox-mgr")
	f := newPrivateFs(t)
	f.start()
	state := filepath.Join(f.dir, "state")
	tarball := filepath.Join(f.dir, "busybox.tar")
	exp := containerName(t)
	docker(t, "create", "--name", exp, "--label", testLabel+"="+exp, "--label", runLabel, ImageBusybox, "true")
	run(t, "sh", "-c", env.dockerCLI+" export "+exp+" > "+tarball)

	// The long-lived container: a round of calls each time it is told.
	id := "e2e-trapkill-" + unique()
	b1 := busyboxBundle(t, f, tarball, filepath.Join(f.dir, "b1"), "sh", "-c", trapRound)
	ctl := filepath.Join(b1, "rootfs", "ctl")
	t.Cleanup(func() {
		if out, err := f.runtimeCmd(state, "delete", "--force", id).CombinedOutput(); err != nil && !strings.Contains(string(out), "does not exist") {
			t.Errorf("delete %s: %v %s", id, err, out)
		}
	})
	logf, err := os.OpenFile(filepath.Join(f.dir, "c1.log"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := f.runtimeCmd(state, "run", "-d", "--bundle", b1, id)
	// A detached container keeps the stdio it was created with: a file.
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(logf.Name())
		t.Fatalf("run -d %s: %v\n%s", id, err, b)
	}
	initPid := func() int {
		t.Helper()
		out, err := f.runtimeCmd(state, "state", id).Output()
		var st struct {
			Status string `json:"status"`
			Pid    int    `json:"pid"`
		}
		if err != nil || json.Unmarshal(out, &st) != nil || st.Status != "running" {
			t.Fatalf("container %s is not running: %v %s", id, err, out)
		}
		return st.Pid
	}
	pid := initPid()
	// round runs round n in the container and returns what it printed.
	goRound := func(n int) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(ctl, fmt.Sprintf("go-%d", n)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	round := func(n int) map[string]string {
		t.Helper()
		if _, err := os.Stat(filepath.Join(ctl, fmt.Sprintf("go-%d", n))); err != nil {
			goRound(n)
		}
		poll(t, 30*time.Second, func() (bool, string) {
			_, err := os.Stat(filepath.Join(ctl, fmt.Sprintf("done-%d", n)))
			out, _ := os.ReadFile(filepath.Join(ctl, fmt.Sprintf("out-%d", n)))
			return err == nil, fmt.Sprintf("round %d hangs; so far:\n%s", n, out)
		})
		out, err := os.ReadFile(filepath.Join(ctl, fmt.Sprintf("out-%d", n)))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d:\n%s", n, out)
		res := map[string]string{"out": string(out)}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		for i, line := range lines {
			if k, v, ok := strings.Cut(line, "="); ok && !strings.Contains(k, " ") {
				res[k] = v
			}
			if i > 0 && strings.HasPrefix(lines[i-1], "mount-proc=") {
				res["views"] = line
			}
		}
		if res["alive"] == "" {
			t.Fatalf("round %d did not finish:\n%s", n, out)
		}
		return res
	}

	// With the agent: trapped calls do what they do.
	r := round(1)
	if r["mount-proc"] != "0" || r["views"] == "0" || r["mknod"] != "0" {
		t.Fatalf("round 1 (agent up): want mount-proc=0 with views and mknod=0:\n%s", r["out"])
	}

	// A per-container sysctl value, which must outlive the daemon.
	if out, err := f.runtimeCmd(state, "exec", id, "sh", "-c", "echo 55555 > /proc/sys/kernel/pid_max").CombinedOutput(); err != nil {
		t.Fatalf("write pid_max in the container: %v\n%s", err, out)
	}
	f.kill()
	killed := time.Now()
	// The store keeps the listener: round 2's trapped calls wait.
	goRound(2)
	time.Sleep(time.Second)
	if out, _ := os.ReadFile(filepath.Join(ctl, "out-2")); strings.Contains(string(out), "mount-proc=") {
		t.Errorf("round 2 (agent killed): the trapped mount did not wait for the agent:\n%s", out)
	}
	// A container cannot start without the daemon, and says which.
	id2 := "e2e-trapkill-" + unique()
	b2 := busyboxBundle(t, f, tarball, filepath.Join(f.dir, "b2"), "sh", "-c",
		"mkdir -p /tmp/p && mount -t proc proc /tmp/p && grep -c ' /tmp/p/uptime ' /proc/self/mountinfo && mknod /tmp/n c 1 3 && echo trapped-ok")
	start := time.Now()
	out, err := f.runtimeCmd(state, "run", "--bundle", b2, id2).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "sysbox-fs") {
		t.Errorf("run with the fs daemon down: %v, want an error that names sysbox-fs:\n%s", err, out)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("run with the fs daemon down took %s to fail", d)
	}
	_, _ = f.runtimeCmd(state, "delete", "--force", id2).CombinedOutput()

	// Back well within the store's grace (15 s): the new agent takes the
	// fd back and serves the calls that waited.
	if d := time.Since(killed); d > 10*time.Second {
		t.Fatalf("the daemon was down %s, too close to the fd store's grace", d)
	}
	f.start()
	r = round(2)
	if r["mount-proc"] != "0" || r["views"] == "0" || r["mknod"] != "0" {
		t.Errorf("round 2 (waited for the restarted agent): want mount-proc=0 with views and mknod=0:\n%s", r["out"])
	}
	if r["umount-view"] == "0" || strings.Contains(r["out"], "Function not implemented") {
		t.Errorf("round 2: umount of a view must be refused by the agent, not ENOSYS:\n%s", r["out"])
	}
	if _, err := strconv.ParseFloat(r["uptime"], 64); err != nil {
		t.Errorf("round 2: /proc/uptime %q, want a number", r["uptime"])
	}
	if initPid() != pid {
		t.Errorf("the container's init changed")
	}
	// The restarted daemon took the container back: fresh views over the
	// dead ones, so its /proc reads and exec work again, and what an exec
	// starts is trapped by the new agent.
	out, err = f.runtimeCmd(state, "exec", id, "sh", "-c",
		"head -c 100 /proc/uptime && head -1 /proc/meminfo && cat /proc/sys/kernel/pid_max && mkdir -p /tmp/q && mount -t proc proc /tmp/q && grep -c ' /tmp/q/uptime ' /proc/self/mountinfo").CombinedOutput()
	if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); err != nil || len(lines) != 4 || lines[3] != "1" || !strings.HasPrefix(lines[1], "MemTotal:") || lines[2] != "55555" {
		t.Errorf("exec in the old container after the restart: %v, want its views (pid_max as it wrote it, 55555) and a trapped procfs mount:\n%s", err, out)
	} else if up, perr := strconv.ParseFloat(strings.Fields(lines[0])[0], 64); perr != nil || up > time.Since(start).Seconds()+60 {
		t.Errorf("old container's /proc/uptime after the restart = %q, want its own", lines[0])
	}
	// A new container is served by the new agent.
	id3 := "e2e-trapkill-" + unique()
	t.Cleanup(func() { _, _ = f.runtimeCmd(state, "delete", "--force", id3).CombinedOutput() })
	out, err = f.runtimeCmd(state, "run", "--bundle", b2, id3).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "trapped-ok") || strings.HasPrefix(strings.TrimSpace(string(out)), "0") {
		t.Errorf("new container after the restart: %v, want a procfs with views and mknod:\n%s", err, out)
	}

	// Killed again and not back within the grace: the store lets the fd
	// go, and trapped calls fail with ENOSYS instead of hanging.
	f.kill()
	time.Sleep(18 * time.Second)
	r = round(3)
	for _, k := range []string{"mount-proc", "mknod", "umount-view"} {
		if r[k] == "0" || r[k] == "" {
			t.Errorf("round 3 (agent gone past the grace): %s=%q, want a failure", k, r[k])
		}
	}
	if n := strings.Count(r["out"], "Function not implemented"); n < 3 {
		t.Errorf("round 3 (agent gone past the grace): want ENOSYS from mount, mknod and umount, got:\n%s", r["out"])
	}
	// For good: a restarted agent has nothing to take back for it.
	f.start()
	r = round(4)
	if r["mount-proc"] == "0" || r["mknod"] == "0" {
		t.Errorf("round 4 (agent restarted after the grace): want failures:\n%s", r["out"])
	}
	if initPid() != pid {
		t.Errorf("the container's init changed")
	}
}
