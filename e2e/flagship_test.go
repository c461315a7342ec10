//go:build e2e

package e2e

// The flagship (issue 8): what users come for. A system container started
// with `docker run --runtime=sysbox-runc IMG /sbin/init`, no --privileged,
// runs systemd, Docker and containerd the way a VM would, and stays
// isolated from the host. TestSystemdBoots and TestDockerInside
// (system_test.go) cover the boot and the first inner container; these cover
// the rest. Every system container here runs with --network none (the
// helpers' default): whatever the inner engines do stays inside it.

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// bootFlagship boots the system image under sysbox and waits for systemd.
// The image comes from `docker import`, which cannot set STOPSIGNAL, so the
// container gets the signal systemd shuts down on, as the README's command
// does.
func bootFlagship(t *testing.T, flags ...string) string {
	t.Helper()
	return bootSystem(t, append([]string{"--stop-signal", "SIGRTMIN+3"}, flags...)...)
}

// innerDocker boots a system container, waits for its dockerd and loads the
// busybox image into it.
func innerDocker(t *testing.T) string {
	t.Helper()
	name := bootFlagship(t)
	waitInnerDocker(t, name)
	loadInner(t, name, busyboxTar(t))
	return name
}

func waitInnerDocker(t *testing.T, name string) {
	t.Helper()
	poll(t, 60*time.Second, func() (bool, string) {
		out, err := dockerErr(t, "exec", name, "docker", "info", "--format", "{{.Driver}}")
		return err == nil, "inner docker info: " + out
	})
}

// busyboxTar saves the busybox image to a file the test owns.
func busyboxTar(t *testing.T) string {
	t.Helper()
	tar := filepath.Join(t.TempDir(), "busybox.tar")
	docker(t, "save", "-o", tar, ImageBusybox)
	return tar
}

// inside runs a shell script in a container; a non-zero exit fails the test.
func inside(t *testing.T, name, script string) string {
	t.Helper()
	return dockerExec(t, name, "sh", "-c", script)
}

// insideErr runs a shell script in a container and returns its output and
// error, for steps that are expected to fail.
func insideErr(t *testing.T, name, script string) (string, error) {
	t.Helper()
	return dockerErr(t, "exec", name, "sh", "-c", script)
}

// unique is a short random suffix for names and markers.
func unique() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// TestFlagshipInnerBridge: two inner containers on the inner engine's
// default bridge talk over TCP, inside a system container that has no
// network of its own.
func TestFlagshipInnerBridge(t *testing.T) {
	needDaemons(t)
	name := innerDocker(t)
	inside(t, name, "docker run -d --name server "+ImageBusybox+" sh -c 'echo pong | nc -l -p 7777'")
	ip := dockerExec(t, name, "docker", "inspect", "-f", "{{.NetworkSettings.IPAddress}}", "server")
	subnet := dockerExec(t, name, "docker", "network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}}{{end}}", "bridge")
	if ip == "" || subnet == "" {
		t.Fatalf("server on the inner bridge: ip %q, bridge subnet %q", ip, subnet)
	}
	poll(t, 20*time.Second, func() (bool, string) {
		out, _ := dockerErr(t, "exec", name, "docker", "exec", "server", "netstat", "-ltn")
		return strings.Contains(out, ":7777 "), "server listening sockets:\n" + out
	})
	out := inside(t, name, "docker run --rm "+ImageBusybox+" sh -c 'echo ping | nc -w 5 "+ip+" 7777'")
	if !strings.Contains(out, "pong") {
		t.Errorf("client got %q from %s:7777, want pong", out, ip)
	}
	poll(t, 10*time.Second, func() (bool, string) {
		logs, _ := dockerErr(t, "exec", name, "docker", "logs", "server")
		return strings.Contains(logs, "ping"), "server logs: " + logs
	})
	// The traffic stayed inside: the system container has no link to the
	// host's networks, only loopback, the inner bridge and its veths.
	for _, line := range strings.Split(dockerExec(t, name, "ip", "-o", "link", "show"), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		dev, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		if dev != "lo" && dev != "docker0" && !strings.HasPrefix(dev, "veth") {
			t.Errorf("system container started with --network none has link %s:\n%s", dev, line)
		}
	}
}

// TestFlagshipInnerBuild: an inner `docker build` with a RUN step.
func TestFlagshipInnerBuild(t *testing.T) {
	needDaemons(t)
	name := innerDocker(t)
	inside(t, name, fmt.Sprintf(`mkdir -p /tmp/ctx && printf 'FROM %s\nRUN echo built > /built\n' > /tmp/ctx/Dockerfile`, ImageBusybox))
	out := dockerExec(t, name, "docker", "build", "--network", "none", "-t", "flagship-built", "/tmp/ctx")
	if !strings.Contains(out, "Successfully tagged") && !strings.Contains(out, "naming to") {
		t.Errorf("docker build output:\n%s", out)
	}
	if got := dockerExec(t, name, "docker", "run", "--rm", "--network", "none", "flagship-built", "cat", "/built"); got != "built" {
		t.Errorf("/built in the built image = %q, want built", got)
	}
}

// hostDisk finds the block device the host's root filesystem is on, from
// mountinfo: its path (/dev/vda here), major and minor (from the node) and
// filesystem type.
func hostDisk(t *testing.T) (dev string, major, minor uint64, fstype string) {
	t.Helper()
	es := selfMounts(t)
	// The root's device if it is a block device, else the first mounted
	// block device (a host whose root is an overlay still has a disk).
	var st unix.Stat_t
	for _, e := range es {
		if !strings.HasPrefix(e.Source, "/dev/") {
			continue
		}
		var s unix.Stat_t
		if unix.Stat(e.Source, &s) != nil || s.Mode&unix.S_IFMT != unix.S_IFBLK {
			continue
		}
		if dev == "" || e.Point == "/" {
			dev, fstype, st = e.Source, e.FSType, s
		}
	}
	if dev == "" {
		t.Fatal("no mounted block device on the host")
	}
	return dev, uint64(unix.Major(st.Rdev)), uint64(unix.Minor(st.Rdev)), fstype
}

// diskProbe is a script that tries every way to the host's disk it knows and
// prints a marker for each that works; none may.
func diskProbe(dev string, major, minor uint64, fstype string) string {
	return fmt.Sprintf(`
test -e %[1]s && echo DEV-VISIBLE
mkdir -p /tmp/mnt
mount %[1]s /tmp/mnt 2>/dev/null && echo MOUNT-DEV-OK
for d in /tmp/hostdisk /dev/hostdisk; do
	if mknod $d b %[2]d %[3]d 2>/dev/null; then
		echo MKNOD-OK $d
		head -c 512 $d >/dev/null 2>&1 && echo READ-OK $d
		mount -t %[4]s $d /tmp/mnt 2>/dev/null && echo MOUNT-NODE-OK $d
		rm -f $d
	fi
done
echo probe-done`, dev, major, minor, fstype)
}

func checkDiskProbe(t *testing.T, where, out string) {
	t.Helper()
	if !strings.Contains(out, "probe-done") {
		t.Fatalf("%s: disk probe did not finish:\n%s", where, out)
	}
	for _, bad := range []string{"DEV-VISIBLE", "MOUNT-DEV-OK", "MKNOD-OK", "READ-OK", "MOUNT-NODE-OK"} {
		if strings.Contains(out, bad) {
			t.Errorf("%s reaches the host's disk (%s):\n%s", where, bad, out)
		}
	}
}

// TestFlagshipInnerPrivileged: inside the system container, `docker run
// --privileged` works (it can mount, it has the capabilities) and still
// cannot reach the host's devices.
func TestFlagshipInnerPrivileged(t *testing.T) {
	needDaemons(t)
	dev, major, minor, fstype := hostDisk(t)
	name := innerDocker(t)
	out := dockerExec(t, name, "docker", "run", "--rm", "--privileged", "--network", "none", ImageBusybox, "sh", "-c",
		"grep CapEff /proc/self/status; mkdir -p /m && mount -t tmpfs t /m && echo mount-ok\n"+diskProbe(dev, major, minor, fstype))
	if !strings.Contains(out, "mount-ok") {
		t.Errorf("a privileged inner container cannot mount a tmpfs:\n%s", out)
	}
	if capLine(out) == "" || capLine(out) == "0000000000000000" {
		t.Errorf("privileged inner container has no capabilities:\n%s", out)
	}
	checkDiskProbe(t, "a privileged inner container", out)
}

// level2Script builds, inside a system container, an image that holds the
// system image's dockerd, containerd, runc and docker with their libraries
// over the busybox image (about 200 MB, made from files already there: no
// 420 MB copy of the system image through the engine).
const level2Script = `set -e
rm -rf /tmp/l2 && mkdir -p /tmp/l2/root && cd /tmp/l2
for b in dockerd containerd containerd-shim-runc-v2 runc docker; do
	p=$(command -v $b)
	cp --parents "$p" root/
	for l in $(ldd "$p" | awk '/=>/ {print $3} /^[[:space:]]*\// {print $1}'); do
		cp -L --parents "$l" root/
	done
done
printf 'FROM %s\nCOPY root/ /\n' > Dockerfile
docker build --network none -q -t flagship-l2 .`

// TestFlagshipDockerTwoLevels: Docker inside a container inside the system
// container: a privileged inner container runs dockerd, which runs a busybox
// container.
func TestFlagshipDockerTwoLevels(t *testing.T) {
	needDaemons(t)
	name := innerDocker(t)
	start := time.Now()
	dockerExec(t, name, "bash", "-c", fmt.Sprintf(level2Script, ImageBusybox))
	t.Logf("level-2 image built in %s", time.Since(start).Round(100*time.Millisecond))
	// Level 2's /var/lib/docker is a volume of the inner engine, on the
	// system container's host-backed /var/lib/docker: overlay2 works there.
	dockerExec(t, name, "docker", "run", "-d", "--name", "l2", "--privileged", "--network", "none",
		"-v", "flagship-l2:/var/lib/docker", "flagship-l2",
		"dockerd", "--bridge=none", "--iptables=false", "--ip6tables=false")
	poll(t, 60*time.Second, func() (bool, string) {
		out, err := dockerErr(t, "exec", name, "docker", "exec", "l2", "docker", "info", "--format", "{{.Driver}}")
		if err != nil {
			logs, _ := dockerErr(t, "exec", name, "docker", "logs", "--tail", "20", "l2")
			return false, "level-2 docker info: " + out + "\nlevel-2 dockerd log:\n" + logs
		}
		return true, out
	})
	inside(t, name, "docker save "+ImageBusybox+" | docker exec -i l2 docker load")
	out := dockerExec(t, name, "docker", "exec", "l2", "docker", "run", "--rm", "--network", "none", ImageBusybox,
		"sh", "-c", "echo level2-ok; cat /proc/self/cgroup")
	if !strings.Contains(out, "level2-ok") {
		t.Fatalf("level-2 container:\n%s", out)
	}
}

// TestFlagshipContainerdInside: the system container's containerd imports an
// image with ctr and runs it.
func TestFlagshipContainerdInside(t *testing.T) {
	needDaemons(t)
	name := bootFlagship(t)
	poll(t, 30*time.Second, func() (bool, string) {
		out, err := dockerErr(t, "exec", name, "ctr", "version")
		return err == nil, "ctr version: " + out
	})
	run(t, "sh", "-c", env.dockerCLI+" exec -i "+name+" sh -c 'cat > /tmp/busybox.tar' < "+busyboxTar(t))
	dockerExec(t, name, "ctr", "-n", "test", "images", "import", "/tmp/busybox.tar")
	ref := dockerExec(t, name, "ctr", "-n", "test", "images", "ls", "-q")
	if ref == "" || strings.Contains(ref, "\n") {
		t.Fatalf("ctr images after import: %q, want the one busybox image", ref)
	}
	out := dockerExec(t, name, "ctr", "-n", "test", "run", "--rm", ref, "flagship", "sh", "-c", "echo from-ctr; id -u")
	if out != "from-ctr\n0" {
		t.Errorf("ctr run printed %q, want from-ctr and uid 0", out)
	}
	if left := dockerExec(t, name, "ctr", "-n", "test", "containers", "ls", "-q"); left != "" {
		t.Errorf("ctr run --rm left containers: %s", left)
	}
}

// TestFlagshipIsolation: from inside, the host's processes are invisible,
// the host's sysctls and disk are out of reach, and reboot stops only the
// container.
func TestFlagshipIsolation(t *testing.T) {
	needDaemons(t)
	name := bootFlagship(t)

	t.Run("processes", func(t *testing.T) {
		// A host process with a unique command line, and one started in
		// the container as the control (sleep takes decimal fractions).
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		mark := strconv.FormatUint(uint64(binary.BigEndian.Uint32(b)), 10)
		hostSleep := exec.Command("sleep", "4000."+mark)
		if err := hostSleep.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = hostSleep.Process.Kill()
			_ = hostSleep.Wait()
		})
		poll(t, 5*time.Second, func() (bool, string) {
			args, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", hostSleep.Process.Pid))
			return err == nil && strings.Contains(string(args), "4000."+mark), fmt.Sprintf("host sleep: %q %v", args, err)
		})
		docker(t, "exec", "-d", name, "sleep", "5000."+mark)
		var ps string
		poll(t, 10*time.Second, func() (bool, string) {
			ps = dockerExec(t, name, "ps", "-eo", "pid=,args=")
			return strings.Contains(ps, "5000."+mark), "ps inside:\n" + ps
		})
		if strings.Contains(ps, "4000."+mark) {
			t.Errorf("a host process (pid %d) is visible inside:\n%s", hostSleep.Process.Pid, ps)
		}
		lines := strings.Split(ps, "\n")
		if f := strings.Fields(lines[0]); len(f) < 2 || f[0] != "1" || (f[1] != "/sbin/init" && !strings.Contains(f[1], "systemd")) {
			t.Errorf("pid 1 inside is %q, want the container's systemd", lines[0])
		}
		hostProcs := 0
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			if _, err := strconv.Atoi(e.Name()); err == nil {
				hostProcs++
			}
		}
		if len(lines) >= hostProcs {
			t.Errorf("%d processes inside, %d on the host: the container sees them all?\n%s", len(lines), hostProcs, ps)
		}
	})

	t.Run("sysctls", func(t *testing.T) {
		for _, tc := range []struct {
			path, value string
			emulated    bool // the container gets its own value
		}{
			{"kernel/pid_max", "100000", true},
			{"kernel/panic", "7", true},
			{"vm/swappiness", "33", false},
			{"vm/overcommit_memory", "2", true},
			{"vm/dirty_ratio", "33", false},
			{"kernel/randomize_va_space", "1", false},
		} {
			hostPath := "/proc/sys/" + tc.path
			b, err := os.ReadFile(hostPath)
			if err != nil {
				t.Errorf("host %s: %v", hostPath, err)
				continue
			}
			before := strings.TrimSpace(string(b))
			if before == tc.value {
				t.Fatalf("host %s is already %s: pick another test value", tc.path, tc.value)
			}
			out, werr := insideErr(t, name, "echo "+tc.value+" > "+hostPath)
			view := dockerExec(t, name, "cat", hostPath)
			b, err = os.ReadFile(hostPath)
			if err != nil {
				t.Fatal(err)
			}
			if after := strings.TrimSpace(string(b)); after != before {
				t.Errorf("writing %s=%s inside changed the host's value from %s to %s", tc.path, tc.value, before, after)
				if err := os.WriteFile(hostPath, []byte(before), 0o644); err != nil {
					t.Errorf("restore host %s: %v", tc.path, err)
				}
			}
			switch {
			case werr == nil && view != tc.value:
				t.Errorf("writing %s=%s inside succeeded but the container reads %q", tc.path, tc.value, view)
			case tc.emulated && werr != nil:
				t.Errorf("%s is per container, but writing it inside failed: %v\n%s", tc.path, werr, out)
			case tc.emulated && view != tc.value:
				t.Errorf("%s: the container reads %q after writing %s", tc.path, view, tc.value)
			}
			t.Logf("%s: write inside %v; container reads %s, host keeps %s", tc.path, werr, view, before)
		}
	})

	t.Run("disk", func(t *testing.T) {
		dev, major, minor, fstype := hostDisk(t)
		t.Logf("host disk %s (%d:%d, %s)", dev, major, minor, fstype)
		out, _ := insideErr(t, name, diskProbe(dev, major, minor, fstype))
		checkDiskProbe(t, "the system container", out)
	})

	t.Run("reboot", func(t *testing.T) {
		bootID := func() string {
			b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
			if err != nil {
				t.Fatal(err)
			}
			return strings.TrimSpace(string(b))
		}
		boot := bootID()
		victim := bootFlagship(t)
		// The exec'd reboot may die with its container: its error says nothing.
		out, err := dockerErr(t, "exec", victim, "reboot")
		t.Logf("reboot inside: %v %s", err, out)
		poll(t, 60*time.Second, func() (bool, string) {
			st := docker(t, "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", victim)
			return strings.HasPrefix(st, "exited "), "state after reboot: " + st
		})
		if b := bootID(); b != boot {
			t.Fatalf("the host rebooted: boot_id %s, was %s", b, boot)
		}
		if st := docker(t, "inspect", "-f", "{{.State.Status}}", name); st != "running" {
			t.Errorf("the other system container is %s after a reboot in its neighbour", st)
		}
		dockerExec(t, name, "true")
	})
}

// TestFlagshipKubernetesNode: what a Kubernetes node (kubeadm, k3s) needs
// from its machine, in a system container.
func TestFlagshipKubernetesNode(t *testing.T) {
	needDaemons(t)
	name := innerDocker(t)
	// A second container, to tell per-container values from shared ones.
	other := sysbox("sleep", "infinity").start(t)

	readHost := func(t *testing.T, p string) string {
		t.Helper()
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	// perContainer writes value in name at path and checks the container
	// reads it back while the host and the other container keep theirs.
	perContainer := func(t *testing.T, path, value string) {
		t.Helper()
		host := readHost(t, path)
		otherBefore := dockerExec(t, other, "cat", path)
		inside(t, name, "echo "+value+" > "+path)
		if got := dockerExec(t, name, "cat", path); got != value {
			t.Errorf("%s reads %q inside after writing %s", path, got, value)
		}
		if got := readHost(t, path); got != host {
			t.Errorf("writing %s inside changed the host's %s from %s to %s", value, path, host, got)
			if err := os.WriteFile(path, []byte(host), 0o644); err != nil {
				t.Errorf("restore host %s: %v", path, err)
			}
		}
		if got := dockerExec(t, other, "cat", path); got != otherBefore {
			t.Errorf("writing %s in one container changed %s in another from %s to %s", value, path, otherBefore, got)
		}
	}

	t.Run("nf_conntrack", func(t *testing.T) {
		const maxPath = "/proc/sys/net/netfilter/nf_conntrack_max"
		const hashPath = "/sys/module/nf_conntrack/parameters/hashsize"
		if _, err := os.Stat(maxPath); err != nil {
			// Without conntrack on the host there is nothing to emulate:
			// the container must not pretend either.
			if _, err := os.Stat("/sys/module/nf_conntrack"); err == nil {
				t.Fatalf("host has /sys/module/nf_conntrack but no %s", maxPath)
			}
			if out, err := insideErr(t, name, "cat "+maxPath); err == nil {
				t.Errorf("host has no nf_conntrack, yet the container reads %s = %s", maxPath, out)
			}
			return
		}
		host, err := strconv.Atoi(readHost(t, maxPath))
		if err != nil {
			t.Fatal(err)
		}
		// As kube-proxy does: conntrack_max, then hashsize = max/4. Below
		// the host's value, so the fs daemon has no reason to raise the
		// host's (it raises it to the largest any container asks for).
		value := max(host/2, 1024)
		perContainer(t, maxPath, strconv.Itoa(value))
		perContainer(t, hashPath, strconv.Itoa(value/4))
	})

	t.Run("product_uuid", func(t *testing.T) {
		const uuidPath = "/sys/class/dmi/id/product_uuid"
		hostUUID, hostErr := os.ReadFile(uuidPath)
		a, errA := insideErr(t, name, "cat "+uuidPath)
		b, errB := insideErr(t, other, "cat "+uuidPath)
		if hostErr != nil {
			// This VM has no DMI tables: the kernel shows no /sys/class/dmi
			// at all, and the fs daemon only binds its per-container
			// product_uuid over a file the container's sysfs has. Check the
			// lack, and that a container showing one anyway shows its own.
			if _, err := os.Stat("/sys/class/dmi"); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("no %s on the host (%v), yet /sys/class/dmi: %v", uuidPath, hostErr, err)
			}
			t.Logf("host has no DMI (%v); inside: %q %v / %q %v", hostErr, a, errA, b, errB)
			if errA == nil && errB == nil && a == b {
				t.Errorf("two containers share product_uuid %s", a)
			}
			return
		}
		if errA != nil || errB != nil {
			t.Fatalf("host has %s, containers: %v %s / %v %s", uuidPath, errA, a, errB, b)
		}
		if a == "" || a == b || a == strings.TrimSpace(string(hostUUID)) || b == strings.TrimSpace(string(hostUUID)) {
			t.Errorf("product_uuid: host %s, containers %s and %s: want each its own", hostUUID, a, b)
		}
	})

	t.Run("lib_modules", func(t *testing.T) {
		var uts unix.Utsname
		if err := unix.Uname(&uts); err != nil {
			t.Fatal(err)
		}
		dir := "/lib/modules/" + unix.ByteSliceToString(uts.Release[:])
		if _, err := os.Stat(dir); err != nil {
			// This host has no modules for its kernel (everything is built
			// in): nothing to show. The container must not have a mount
			// there either.
			if !errors.Is(err, fs.ErrNotExist) {
				t.Fatal(err)
			}
			if mi := dockerExec(t, name, "cat", "/proc/self/mountinfo"); strings.Contains(mi, " "+dir+" ") {
				t.Errorf("host has no %s, yet the container mounts it:\n%s", dir, mi)
			}
			t.Logf("host has no %s: nothing to mount read-only", dir)
			return
		}
		hostList, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if n := dockerExec(t, name, "sh", "-c", "ls -A "+dir+" | wc -l"); n != strconv.Itoa(len(hostList)) {
			t.Errorf("%s has %s entries inside, %d on the host", dir, n, len(hostList))
		}
		out, err := insideErr(t, name, "touch "+dir+"/flagship-"+unique())
		if err == nil || !strings.Contains(out, "Read-only") {
			t.Errorf("%s is writable inside (%v): %s", dir, err, out)
		}
	})

	t.Run("nested_cgroups", func(t *testing.T) {
		outerID := docker(t, "inspect", "-f", "{{.Id}}", name)
		innerID := dockerExec(t, name, "docker", "run", "-d", "--name", "limited", "--network", "none",
			"--memory", "64m", "--memory-swap", "64m", ImageBusybox, "sleep", "3600")
		const want = "67108864"
		limit := dockerExec(t, name, "docker", "exec", "limited", "sh", "-c",
			"cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max")
		if limit != want {
			t.Errorf("inner container's memory limit reads %s inside it, want %s", limit, want)
		}
		// On the host the inner cgroup sits below the system container's,
		// with the limit set.
		hostDir := findCgroup(t, innerID)
		if !strings.Contains(hostDir, outerID) {
			t.Errorf("the inner container's cgroup %s is not below the system container's (%s)", hostDir, outerID)
		}
		file := "memory.max"
		if _, err := os.Stat(filepath.Join(hostDir, "memory.limit_in_bytes")); err == nil {
			file = "memory.limit_in_bytes"
		}
		if got := readHost(t, filepath.Join(hostDir, file)); got != want {
			t.Errorf("host %s/%s = %s, want %s", hostDir, file, got, want)
		}
		// And the limit holds: a 100 MiB buffer is killed.
		out, err := dockerErr(t, "exec", name, "docker", "run", "--rm", "--network", "none",
			"--memory", "64m", "--memory-swap", "64m", ImageBusybox, "dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1")
		if exitCode(err) != 137 {
			t.Errorf("100 MiB in a 64 MiB inner container: %v, want exit 137 (OOM kill)\n%s", err, out)
		}
		if out := dockerExec(t, name, "docker", "run", "--rm", "--network", "none",
			"--memory", "64m", "--memory-swap", "64m", ImageBusybox, "dd", "if=/dev/zero", "of=/dev/null", "bs=16M", "count=1"); !strings.Contains(out, "1+0 records out") {
			t.Errorf("16 MiB in a 64 MiB inner container:\n%s", out)
		}
	})
}

// findCgroup finds, on the host, the memory cgroup directory of a container
// by its ID (cgroup v1: the memory hierarchy; v2: the unified one).
func findCgroup(t *testing.T, id string) string {
	t.Helper()
	root := "/sys/fs/cgroup/memory"
	if _, err := os.Stat(root); err != nil {
		root = "/sys/fs/cgroup"
	}
	var found string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if strings.Count(strings.TrimPrefix(p, root), "/") > 8 {
			return filepath.SkipDir
		}
		if strings.Contains(d.Name(), id) {
			found = p
			return filepath.SkipAll
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found == "" {
		t.Fatalf("no cgroup for %s under %s", id, root)
	}
	return found
}
