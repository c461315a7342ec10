package trap

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// TestAgentRunc runs a real runc container (busybox, user namespace, views
// bound over /proc, the trapped calls sent to the agent through
// linux.seccomp.listenerPath) and checks from inside what the issue's
// "done when" asks. It needs root, runc and a static busybox on the host
// (scripts/install-deps.sh installs both); it proves the agent speaks what
// libcontainer sends and copes with a pivot_root'ed container's layout.
func TestAgentRunc(t *testing.T) {
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Skip("no runc")
	}
	e := newEnv(t)
	script := `
mkdir -p /tmp/p && mount -t proc proc /tmp/p && echo "newproc uptime: $(cat /tmp/p/uptime)"
grep -c " /tmp/p/" /proc/self/mountinfo | sed 's/^/newproc submounts: /'
umount /proc/uptime; echo "umount view: $?"
umount /proc/sys 2>/dev/null; echo "umount sys: $?"
mount -o remount,rw,bind /proc/bus; echo "remount bus: $?"
mknod /tmp/null c 1 3 && echo x > /tmp/null && echo "mknod null: ok"
mknod /tmp/sda b 8 0; echo "mknod sda: $?"
mkdir -p /dev/net && mknod /dev/net/tun c 10 200 && echo "mknod tun: ok"
free | head -2 | tail -1
unshare -pfm --mount-proc sh -c 'echo "unshare uptime: $(cat /proc/uptime)"; echo "unshare pids: $(ls /proc | grep -c "^[0-9]")"'
`
	bundle := runcBundle(t, e, runc, []string{"/bin/sh", "-c", script})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	state := filepath.Join(e.dir, "runc-state")
	cmd := exec.CommandContext(ctx, runc, "--root", state, "run", "--bundle", bundle, testID)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	_ = exec.Command(runc, "--root", state, "delete", "-f", testID).Run()
	t.Logf("container output:\n%s", out.String())
	if err != nil {
		t.Fatalf("runc: %v", err)
	}
	for _, want := range []string{
		"newproc uptime: " + strings.TrimSpace(viewUptime),
		"umount view: 1", "umount sys: 1", "remount bus: 1",
		"mknod null: ok", "mknod sda: 1", "mknod tun: ok",
		"unshare uptime: " + strings.TrimSpace(viewUptime),
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	for _, line := range strings.Split(out.String(), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[0] == "Mem:":
			// busybox free: total and free from sysinfo(2), as meminfo says.
			if f[1] != "1048576" || f[3] != "524288" {
				t.Errorf("free disagrees with the meminfo view: %q", line)
			}
		case len(f) == 3 && f[0] == "unshare" && f[1] == "pids:":
			if n, err := strconv.Atoi(f[2]); err != nil || n > 8 {
				t.Errorf("the unshared procfs shows %s pids: not its own pid namespace", f[2])
			}
		}
	}
}

func runcSpec(t *testing.T, runc, bundle string) *specs.Spec {
	t.Helper()
	if out, err := exec.Command(runc, "spec", "--bundle", bundle).CombinedOutput(); err != nil {
		t.Fatalf("runc spec: %v: %s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	must(t, err)
	var s specs.Spec
	must(t, json.Unmarshal(b, &s))
	return &s
}

// runcBundle makes a busybox bundle whose container runs args in its own
// user namespace, with the views bound over /proc and the trapped calls
// sent to e's agent.
func runcBundle(t *testing.T, e *env, runc string, args []string) string {
	t.Helper()
	bundle := filepath.Join(e.dir, "bundle")
	rootfs := filepath.Join(bundle, "rootfs")
	for _, d := range []string{"bin", "proc", "sys", "dev", "tmp", "etc"} {
		must(t, os.MkdirAll(filepath.Join(rootfs, d), 0o755))
	}
	must(t, os.Chmod(filepath.Join(rootfs, "tmp"), 0o1777))
	must(t, os.Chmod(bundle, 0o755))
	must(t, copyFile("/usr/bin/busybox", filepath.Join(rootfs, "bin", "busybox"), 0o755))
	for _, a := range []string{"sh", "mount", "umount", "mknod", "free", "unshare", "cat", "ls", "mkdir", "echo", "head", "grep"} {
		must(t, os.Symlink("busybox", filepath.Join(rootfs, "bin", a)))
	}
	spec := runcSpec(t, runc, bundle)
	spec.Process.Args = args
	spec.Process.Env = []string{"PATH=/bin"}
	spec.Process.Terminal = false
	spec.Hostname = "trap"
	spec.Root.Readonly = false
	spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: hostUID, Size: idCount}}
	spec.Linux.GIDMappings = spec.Linux.UIDMappings
	all := []string{"CAP_SYS_ADMIN", "CAP_MKNOD", "CAP_DAC_OVERRIDE", "CAP_CHOWN", "CAP_FOWNER", "CAP_SETUID", "CAP_SETGID", "CAP_SYS_CHROOT", "CAP_NET_ADMIN"}
	spec.Process.Capabilities = &specs.LinuxCapabilities{Bounding: all, Effective: all, Permitted: all}
	for _, v := range e.views {
		if strings.HasPrefix(v.Dest, "/proc/") {
			spec.Mounts = append(spec.Mounts, specs.Mount{Destination: v.Dest, Source: v.Source, Type: "bind", Options: []string{"bind", "nosuid", "nodev"}})
		}
	}
	spec.Linux.Seccomp = &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: []specs.Arch{specs.ArchX86_64},
		ListenerPath:  e.socket,
		Syscalls:      []specs.LinuxSyscall{{Names: trappedForTest, Action: specs.ActNotify}},
	}
	b, err := json.MarshalIndent(spec, "", "  ")
	must(t, err)
	must(t, os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o644))

	return bundle
}
