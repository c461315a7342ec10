//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sysbox is a container under the sysbox runtime on the minimal image.
func sysbox(cmd ...string) container {
	return container{Runtime: RuntimeSysbox, Image: ImageMinimal, Cmd: cmd}
}

// rootBase reads the host uid that root inside c maps to.
func rootBase(t *testing.T, uidMap string) uint64 {
	t.Helper()
	f := strings.Fields(uidMap)
	if len(f) < 3 || f[0] != "0" {
		t.Fatalf("uid_map %q does not map root", uidMap)
	}
	n, err := strconv.ParseUint(f[1], 10, 32)
	if err != nil {
		t.Fatalf("uid_map %q: %v", uidMap, err)
	}
	return n
}

func TestRuntimeUserNamespace(t *testing.T) {
	needDaemons(t)
	name := sysbox("sleep", "infinity").start(t)
	uidMap := dockerExec(t, name, "cat", "/proc/self/uid_map")
	base := rootBase(t, uidMap)
	if base < 100000 {
		t.Fatalf("root maps to host uid %d, want an unprivileged range at 100000 or above", base)
	}
	pid := docker(t, "inspect", "-f", "{{.State.Pid}}", name)
	status, err := os.ReadFile(filepath.Join("/proc", pid, "status"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "Uid:") {
			if f := strings.Fields(line); len(f) < 2 || f[1] != strconv.FormatUint(base, 10) {
				t.Errorf("on the host the container's init runs as %q, want uid %d", line, base)
			}
		}
	}
	// Two containers never share host ids.
	other := sysbox("sleep", "infinity").start(t)
	if b2 := rootBase(t, dockerExec(t, other, "cat", "/proc/self/uid_map")); b2 == base {
		t.Errorf("two containers share host uid base %d", base)
	}
}

func TestRuntimeRootInside(t *testing.T) {
	needDaemons(t)
	out := sysbox("sh", "-c", `hostname x && hostname && mount -t tmpfs t /mnt && echo mounted && unshare -m true && echo unshared && stat -c %u:%g /etc/passwd && grep CapEff /proc/self/status`).run(t)
	for _, want := range []string{"x\n", "mounted", "unshared", "0:0"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// Every capability the kernel knows, held in the container's user
	// namespace, even where the host's own root lacks some (nothing may
	// hold CAP_SYS_RESOURCE on the test VMs).
	last, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(last)))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := capLine(out), fmt.Sprintf("%016x", uint64(1)<<(n+1)-1); got != want {
		t.Errorf("root's CapEff inside = %s, want every capability the kernel knows, %s", got, want)
	}
	if got := capLine(sysbox("grep", "CapEff", "/proc/self/status").withFlags("-u", "1000").run(t)); got != "0000000000000000" {
		t.Errorf("uid 1000 CapEff = %s, want 0", got)
	}
}

func (c container) withFlags(f ...string) container {
	c.Flags = append(append([]string{}, c.Flags...), f...)
	return c
}

func capLine(s string) string {
	for _, line := range strings.Split(s, "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func TestRuntimeBindMountOwners(t *testing.T) {
	needDaemons(t)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	name := sysbox("sleep", "infinity").withFlags("-v", dir+":/data").start(t)
	if got := dockerExec(t, name, "stat", "-c", "%u:%g", "/data"); got != "1000:1000" {
		t.Errorf("host dir owned by 1000 shows as %s inside", got)
	}
	docker(t, "exec", "-u", "1000:1000", name, "touch", "/data/by-1000")
	dockerExec(t, name, "touch", "/data/by-root")
	for f, want := range map[string]uint32{"by-1000": 1000, "by-root": 0} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if uid := fi.Sys().(*syscall.Stat_t).Uid; uid != want {
			t.Errorf("%s written inside is owned by %d on the host, want %d", f, uid, want)
		}
	}
}

func TestRuntimeRefusals(t *testing.T) {
	needDaemons(t)
	before := rootfsEntries(t)
	for _, tc := range []struct {
		flag []string
		want string
	}{
		{[]string{"--privileged"}, "--privileged"},
		{[]string{"--pid=host"}, "--pid=host"},
		{[]string{"--net=host"}, "--net=host"},
		{[]string{"--ipc=host"}, "--ipc=host"},
		{[]string{"--uts=host"}, "--uts=host"},
		{[]string{"-e", "SYSBOX_NO_SUCH_THING=1"}, "SYSBOX_NO_SUCH_THING"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			c := sysbox("true")
			name := containerName(t)
			args := append([]string{"run", "--name", name, "--runtime", RuntimeSysbox}, tc.flag...)
			if tc.flag[0] != "--net=host" {
				args = append(args, "--network", "none")
			}
			out, err := dockerErr(t, append(args, c.Image, "true")...)
			if err == nil {
				t.Fatalf("docker run %v succeeded, want a refusal", tc.flag)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("error does not name %s:\n%s", tc.want, out)
			}
		})
	}
	if after := rootfsEntries(t); len(after) != len(before) {
		t.Errorf("refused containers left rootfs dirs: before %v, after %v", before, after)
	}
}

func rootfsEntries(t *testing.T) []string {
	t.Helper()
	es, _ := os.ReadDir("/run/sysbox/rootfs")
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func TestRuntimeExitCodesAndFlags(t *testing.T) {
	needDaemons(t)
	c := sysbox("sh", "-c", "exit 42")
	out, err := dockerErr(t, c.args(containerName(t))...)
	var ee *exec.ExitError
	if !errorsAs(err, &ee) || ee.ExitCode() != 42 {
		t.Fatalf("exit 42 gave %v:\n%s", err, out)
	}
	if got := sysbox("pwd").withFlags("-w", "/tmp").run(t); got != "/tmp" {
		t.Errorf("-w /tmp: pwd = %q", got)
	}
	if got := sysbox("sh", "-c", "echo $FOO").withFlags("-e", "FOO=bar").run(t); got != "bar" {
		t.Errorf("-e FOO=bar: %q", got)
	}
	if got := sysbox("sh", "-c", "touch /x 2>&1 || echo refused").withFlags("--read-only").run(t); !strings.Contains(got, "refused") {
		t.Errorf("--read-only: rootfs writable: %q", got)
	}
	if got := sysbox("cat", "/proc/1/cmdline").withFlags("--init").run(t); !strings.Contains(got, "init") {
		t.Errorf("--init: pid 1 is %q", got)
	}
}

func errorsAs(err error, target **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	if ok {
		*target = e
	}
	return ok
}

func TestRuntimeDockerLifecycle(t *testing.T) {
	needDaemons(t)
	name := sysbox("sh", "-c", "echo hello-from-sysbox; trap 'echo got-usr1' USR1; while true; do sleep 0.2; done").start(t)
	poll(t, 10*time.Second, func() (bool, string) {
		out, _ := dockerErr(t, "logs", name)
		return strings.Contains(out, "hello-from-sysbox"), "logs: " + out
	})
	docker(t, "kill", "-s", "USR1", name)
	poll(t, 10*time.Second, func() (bool, string) {
		out, _ := dockerErr(t, "logs", name)
		return strings.Contains(out, "got-usr1"), "logs: " + out
	})
	if out := docker(t, "top", name); !strings.Contains(out, "sleep") && !strings.Contains(out, "sh") {
		t.Errorf("docker top:\n%s", out)
	}
	docker(t, "pause", name)
	if st := docker(t, "inspect", "-f", "{{.State.Status}}", name); st != "paused" {
		t.Errorf("after pause: %s", st)
	}
	docker(t, "unpause", name)
	docker(t, "stats", "--no-stream", name)
	docker(t, "update", "--memory", "256m", "--memory-swap", "512m", name)
	if got := docker(t, "inspect", "-f", "{{.HostConfig.Memory}}", name); got != "268435456" {
		t.Errorf("memory after update = %s", got)
	}
	// exec with a pty, as `docker exec -it` does from a terminal.
	if out := run(t, "script", "-qec", env.dockerCLI+" exec -it "+name+" tty", "/dev/null"); !strings.Contains(out, "/dev/pts/") {
		t.Errorf("exec -it: tty printed %q", out)
	}
	if got := docker(t, "exec", "-u", "1000", name, "id", "-u"); got != "1000" {
		t.Errorf("exec -u 1000: id -u = %q", got)
	}
	base := rootBase(t, dockerExec(t, name, "cat", "/proc/self/uid_map"))
	docker(t, "stop", "-t", "1", name)
	docker(t, "start", name)
	if b := rootBase(t, dockerExec(t, name, "cat", "/proc/self/uid_map")); b != base {
		t.Errorf("after stop and start the range moved from %d to %d", base, b)
	}
	docker(t, "restart", "-t", "1", name)
	dockerExec(t, name, "true")
	id := docker(t, "inspect", "-f", "{{.Id}}", name)
	docker(t, "rm", "-f", name)
	if out, err := dockerErr(t, "inspect", name); err == nil {
		t.Errorf("container still there after rm -f:\n%s", out)
	}
	assertGone(t, filepath.Join("/run/sysbox/rootfs", id))
}

// TestRuntimeBundle drives sysbox-runc without an engine, as runc is
// driven: spec, run, create/start/state/kill/delete.
func TestRuntimeBundle(t *testing.T) {
	needDaemons(t)
	runcBin := filepath.Join(env.bin, "sysbox-runc")
	root := t.TempDir()
	bundle := t.TempDir()
	rootfs := filepath.Join(bundle, "rootfs")
	for _, d := range []string{"bin", "proc", "sys", "dev", "etc", "tmp"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatal("busybox-static is needed: apt-get install busybox-static")
	}
	run(t, "cp", bb, filepath.Join(rootfs, "bin", "busybox"))
	for _, l := range []string{"sh", "sleep", "cat", "id", "true"} {
		if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", l)); err != nil {
			t.Fatal(err)
		}
	}
	rt := func(args ...string) string {
		t.Helper()
		return run(t, append([]string{runcBin, "--root", root}, args...)...)
	}
	rtErr := func(args ...string) (string, error) {
		t.Helper()
		return runCmd(t, nil, runcBin, append([]string{"--root", root}, args...)...)
	}
	spec, write := newSpec(t, bundle)
	proc := spec["process"].(map[string]any)
	proc["args"] = []string{"sh", "-c", "cat /proc/self/uid_map; exit 7"}
	write()
	out, err := rtErr("run", "--bundle", bundle, "r1")
	var ee *exec.ExitError
	if !errorsAs(err, &ee) || ee.ExitCode() != 7 {
		t.Fatalf("run: want exit 7, got %v:\n%s", err, out)
	}
	if rootBase(t, out) < 100000 {
		t.Errorf("run: uid_map %q", out)
	}
	proc["args"] = []string{"sleep", "100"}
	write()
	t.Cleanup(func() { _, _ = rtErr("delete", "--force", "c1") })
	// A detached container keeps the stdio it was created with: give it a
	// file, not this test's pipe (containerd gives fifos).
	logf, err := os.Create(filepath.Join(t.TempDir(), "c1.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	create := exec.Command(runcBin, "--root", root, "create", "--bundle", bundle, "c1")
	create.Stdout, create.Stderr = logf, logf
	if err := create.Run(); err != nil {
		b, _ := os.ReadFile(logf.Name())
		t.Fatalf("create: %v\n%s", err, b)
	}
	var st struct {
		Status string `json:"status"`
		Pid    int    `json:"pid"`
		Bundle string `json:"bundle"`
	}
	state := func() {
		t.Helper()
		if err := json.Unmarshal([]byte(rt("state", "c1")), &st); err != nil {
			t.Fatal(err)
		}
	}
	state()
	if st.Status != "created" || st.Pid == 0 || st.Bundle != bundle {
		t.Errorf("after create: %+v", st)
	}
	rt("start", "c1")
	state()
	if st.Status != "running" {
		t.Errorf("after start: %+v", st)
	}
	if out := rt("list", "-q"); out != "c1" {
		t.Errorf("list -q = %q", out)
	}
	rt("kill", "c1", "KILL")
	poll(t, 10*time.Second, func() (bool, string) {
		state()
		return st.Status == "stopped", st.Status
	})
	rt("delete", "c1")
	if out, err := rtErr("state", "c1"); err == nil || !strings.Contains(out, "does not exist") {
		t.Errorf("state of a deleted container: %v %q", err, out)
	}
	if out, err := rtErr("kill", "nope"); err == nil || !strings.Contains(out, "container nope does not exist") {
		t.Errorf("kill of an unknown id: %v %q", err, out)
	}
}

func TestRuntimePodman(t *testing.T) {
	needDaemons(t)
	podman, err := exec.LookPath("podman")
	if err != nil {
		t.Fatal("podman is needed: apt-get install podman")
	}
	tar := filepath.Join(t.TempDir(), "minimal.tar")
	docker(t, "save", "-o", tar, ImageMinimal)
	run(t, podman, "load", "-i", tar)
	// --log-level error: Podman's own warnings (conmon on cgroup v1) would
	// share the output with the container's.
	out := run(t, podman, "--log-level", "error", "--runtime", filepath.Join(env.bin, "sysbox-runc"), "run", "--rm", "--network", "none",
		"localhost/"+ImageMinimal, "sh", "-c", "cat /proc/self/uid_map; stat -c %u /etc/passwd; touch /x && echo wrote")
	if rootBase(t, out) < 100000 || !strings.Contains(out, "\n0\n") || !strings.Contains(out, "wrote") {
		t.Errorf("podman run under sysbox-runc:\n%s", out)
	}
}

// newSpec writes `sysbox-runc spec`'s template into bundle and returns it
// (terminal off) with what writes it back after changes.
func newSpec(t *testing.T, bundle string) (map[string]any, func()) {
	t.Helper()
	run(t, filepath.Join(env.bin, "sysbox-runc"), "spec", "--bundle", bundle)
	var spec map[string]any
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil || json.Unmarshal(b, &spec) != nil {
		t.Fatalf("spec wrote no valid config.json: %v", err)
	}
	spec["process"].(map[string]any)["terminal"] = false
	return spec, func() {
		t.Helper()
		b, err := json.Marshal(spec)
		if err == nil {
			err = os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestRuntimeNotifySocket: with NOTIFY_SOCKET set (Podman's
// --sdnotify=container, a systemd unit running the runtime), the container
// gets a socket of its own, and its READY=1 reaches the caller's socket with
// the container's MAINPID, as runc relays it.
func TestRuntimeNotifySocket(t *testing.T) {
	needDaemons(t)
	runcBin := filepath.Join(env.bin, "sysbox-runc")
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(dir, "bundle")
	rootfs := filepath.Join(bundle, "rootfs")
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	// systemd-notify comes with the system image.
	cid := docker(t, "create", ImageSystem, "true")
	t.Cleanup(func() { _, _ = runCmd(t, nil, env.dockerCLI, "rm", "-f", cid) })
	run(t, "sh", "-c", env.dockerCLI+" export "+cid+" | tar -C "+rootfs+" -x")
	spec, write := newSpec(t, bundle)
	spec["process"].(map[string]any)["args"] = []string{"sh", "-c", "systemd-notify --ready && sleep 60"}
	write()

	sock := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	root := filepath.Join(dir, "state")
	const id = "e2e-notify"
	t.Cleanup(func() { _, _ = runCmd(t, nil, runcBin, "--root", root, "delete", "--force", id) })
	logf, err := os.Create(filepath.Join(dir, "ct.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(runcBin, "--root", root, "run", "-d", "--bundle", bundle, id)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, logf, logf
	done := make(chan error, 1)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()

	buf := make([]byte, 4096)
	_ = conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	n, err := conn.Read(buf)
	if err != nil {
		out, _ := os.ReadFile(logf.Name())
		t.Fatalf("no message on NOTIFY_SOCKET after %s: %v\nruntime and container output:\n%s", time.Since(start).Round(time.Millisecond), err, out)
	}
	msg := string(buf[:n])
	if err := <-done; err != nil {
		out, _ := os.ReadFile(logf.Name())
		t.Fatalf("run -d: %v\n%s", err, out)
	}
	var st struct {
		Pid    int    `json:"pid"`
		Status string `json:"status"`
	}
	if err := json.Unmarshal([]byte(run(t, runcBin, "--root", root, "state", id)), &st); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg, "READY=1") || !strings.Contains(msg, fmt.Sprintf("MAINPID=%d", st.Pid)) {
		t.Errorf("NOTIFY_SOCKET got %q, want READY=1 and MAINPID=%d", msg, st.Pid)
	}
	if st.Status != "running" {
		t.Errorf("after READY=1 the container is %s", st.Status)
	}
}
