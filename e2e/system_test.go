//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// unitsThatCannotWork are the systemd units that fail in any container,
// with the reason; a boot that is "degraded" only because of them is good.
// None today: debugfs and tracefs, which no user namespace may mount, get
// an empty read-only mount from the runtime (there is nothing of the host
// a container should see in them), so their mount units succeed.
var unitsThatCannotWork = map[string]string{}

// bootSystem starts the system image with systemd as init under sysbox and
// waits until systemd has finished booting.
func bootSystem(t *testing.T, flags ...string) string {
	t.Helper()
	c := container{Runtime: RuntimeSysbox, Image: ImageSystem, Flags: flags, Cmd: []string{"/sbin/init"}}
	name := c.start(t)
	waitBooted(t, name)
	return name
}

func waitBooted(t *testing.T, name string) {
	t.Helper()
	poll(t, 90*time.Second, func() (bool, string) {
		out, _ := dockerErr(t, "exec", name, "systemctl", "is-system-running")
		switch out {
		case "running":
			return true, out
		case "degraded":
			failed := docker(t, "exec", name, "systemctl", "--failed", "--no-legend", "--plain")
			for _, line := range strings.Split(failed, "\n") {
				f := strings.Fields(line)
				if len(f) == 0 {
					continue
				}
				if _, ok := unitsThatCannotWork[f[0]]; !ok {
					t.Fatalf("systemd degraded by %s:\n%s\n%s", f[0], failed, docker(t, "exec", name, "journalctl", "-b", "--no-pager", "-n", "60"))
				}
			}
			return true, out
		}
		return false, "systemctl is-system-running: " + out
	})
}

func TestSystemdBoots(t *testing.T) {
	needDaemons(t)
	name := bootSystem(t)
	if st, _ := dockerErr(t, "exec", name, "systemctl", "is-system-running"); st != "running" {
		t.Errorf("systemd is %q, want running; failed units:\n%s", st, docker(t, "exec", name, "systemctl", "--failed", "--no-legend", "--plain"))
	}
	// The kernel filesystems systemd mounts there show nothing of the host.
	if out := docker(t, "exec", name, "sh", "-c", "ls -A /sys/kernel/debug /sys/kernel/tracing | grep -v ':$' | grep . || true"); out != "" {
		t.Errorf("/sys/kernel/debug or tracing is not empty inside:\n%s", out)
	}
	if out, err := dockerErr(t, "exec", name, "touch", "/sys/kernel/debug/x"); err == nil {
		t.Errorf("/sys/kernel/debug is writable inside: %s", out)
	}
	docker(t, "exec", name, "systemctl", "restart", "systemd-journald")
	docker(t, "exec", name, "hostnamectl")
	if v, _ := dockerErr(t, "exec", name, "systemd-detect-virt", "--container"); v == "none" || v == "" {
		t.Errorf("systemd-detect-virt --container = %q, want a container type", v)
	}
}

func TestDockerInside(t *testing.T) {
	needDaemons(t)
	name := bootSystem(t)
	poll(t, 60*time.Second, func() (bool, string) {
		out, err := dockerErr(t, "exec", name, "docker", "info", "--format", "{{.Driver}}")
		return err == nil, out
	})
	if d := docker(t, "exec", name, "docker", "info", "--format", "{{.Driver}}"); d != "overlay2" {
		t.Errorf("inner dockerd storage driver = %q, want overlay2 on the host-backed /var/lib/docker", d)
	}
	tar := filepath.Join(t.TempDir(), "busybox.tar")
	docker(t, "save", "-o", tar, ImageBusybox)
	loadInner(t, name, tar)
	out := docker(t, "exec", name, "docker", "run", "--rm", "--network", "none", ImageBusybox, "sh", "-c", "echo inner-ok; head -c 100 /proc/uptime")
	if lines := strings.Split(out, "\n"); len(lines) < 2 || lines[0] != "inner-ok" {
		t.Fatalf("inner container: %q", out)
	}
	// The inner container's /proc is virtualized: its uptime is the
	// system container's, far below the host's.
	if up := uptimeOf(t, strings.Split(out, "\n")[1]); up > hostUptime(t)/2 && hostUptime(t) > 600 {
		t.Errorf("inner /proc/uptime %v is the host's", up)
	}
	// Inner images survive a stop and start of the system container.
	docker(t, "stop", "-t", "20", name)
	docker(t, "start", name)
	waitBooted(t, name)
	poll(t, 60*time.Second, func() (bool, string) {
		out, err := dockerErr(t, "exec", name, "docker", "images", "-q", ImageBusybox)
		return err == nil && out != "", "inner images: " + out
	})
}

func loadInner(t *testing.T, name, tar string) {
	t.Helper()
	run(t, "sh", "-c", env.dockerCLI+" exec -i "+name+" docker load < "+tar)
}

func uptimeOf(t *testing.T, s string) float64 {
	t.Helper()
	up, _ := uptimeFields(t, s)
	return up
}

func hostUptime(t *testing.T) float64 {
	t.Helper()
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		t.Fatal(err)
	}
	return uptimeOf(t, string(b))
}
