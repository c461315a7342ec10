//go:build e2e

package e2e

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// These tests prove the harness itself: the engine, the runtime
// registration, the images and their cache. They use runc, not sysbox-runc,
// so they hold whatever state the runtime is in.

func TestEngine(t *testing.T) {
	requireEnv(t)
	t.Run("server answers", func(t *testing.T) {
		if v := docker(t, "version", "--format", "{{.Server.Version}}"); v == "" {
			t.Fatal("no server version")
		}
	})
	t.Run("containerd answers", func(t *testing.T) {
		// dockerd starts its own containerd when none runs; either way the
		// engine reports the one it talks to.
		out := docker(t, "info", "--format", "{{json .ContainerdCommit}}")
		var commit struct{ ID string }
		if err := json.Unmarshal([]byte(out), &commit); err != nil || commit.ID == "" {
			t.Fatalf("no containerd commit in docker info: %q (%v)", out, err)
		}
	})
	t.Run("sysbox-runc registered", func(t *testing.T) {
		out := docker(t, "info", "--format", "{{json .Runtimes}}")
		var runtimes map[string]struct{ Path string }
		if err := json.Unmarshal([]byte(out), &runtimes); err != nil {
			t.Fatalf("parse runtimes %q: %v", out, err)
		}
		rt, ok := runtimes[RuntimeSysbox]
		if !ok {
			t.Fatalf("%s not among the engine's runtimes: %s", RuntimeSysbox, out)
		}
		if _, err := os.Stat(rt.Path); err != nil {
			t.Errorf("runtime %s points at %s: %v", RuntimeSysbox, rt.Path, err)
		}
	})
}

func TestImages(t *testing.T) {
	requireEnv(t)
	noLeftovers(t)

	t.Run("minimal", func(t *testing.T) {
		out := dockerRun(t, "runc", ImageMinimal, "cat", "/etc/debian_version")
		if !regexp.MustCompile(`^12\.\d+$`).MatchString(out) {
			t.Errorf("/etc/debian_version = %q, want bookworm's 12.x", out)
		}
		// The tools tests reach for first are there.
		dockerRun(t, "runc", ImageMinimal, "sh", "-c", "command -v ps ip mount umount busybox findmnt")
	})

	t.Run("minimal detached", func(t *testing.T) {
		name := dockerStart(t, "runc", ImageMinimal, "sleep", "infinity")
		poll(t, 30*time.Second, func() (bool, string) {
			state, err := dockerErr(t, "inspect", "--format", "{{.State.Status}}", name)
			return err == nil && state == "running", "state " + state
		})
		if out := dockerExec(t, name, "ps", "-o", "comm=", "-p", "1"); out != "sleep" {
			t.Errorf("pid 1 is %q, want sleep", out)
		}
	})

	t.Run("system", func(t *testing.T) {
		target := dockerRun(t, "runc", ImageSystem, "readlink", "-f", "/sbin/init")
		if filepath.Base(target) != "systemd" {
			t.Errorf("/sbin/init resolves to %q, want systemd", target)
		}
		dockerRun(t, "runc", ImageSystem, "sh", "-c",
			"command -v systemctl docker dockerd containerd iptables modprobe ip ps dbus-daemon")
		// An empty machine-id makes systemd generate one per container at boot.
		if id := dockerRun(t, "runc", ImageSystem, "cat", "/etc/machine-id"); id != "" {
			t.Errorf("/etc/machine-id = %q, want empty", id)
		}
		// The build's policy-rc.d must not ship: services in the box start normally.
		dockerRun(t, "runc", ImageSystem, "sh", "-c", "! test -e /usr/sbin/policy-rc.d")
		if enabled := dockerRun(t, "runc", ImageSystem, "sh", "-c",
			"test -e /etc/systemd/system/multi-user.target.wants/docker.service && echo yes"); enabled != "yes" {
			t.Errorf("docker.service not enabled in the system image")
		}
		cmd := docker(t, "image", "inspect", "--format", "{{json .Config.Cmd}}", ImageSystem)
		if cmd != `["/sbin/init"]` {
			t.Errorf("system image CMD = %s, want [\"/sbin/init\"]", cmd)
		}
	})

	t.Run("busybox", func(t *testing.T) {
		if out := dockerRun(t, "runc", ImageBusybox, "sh", "-c", "echo hello from $(uname -s)"); out != "hello from Linux" {
			t.Errorf("busybox said %q", out)
		}
		// Inner-engine tests load it with `docker load`: it must save.
		path := filepath.Join(t.TempDir(), "busybox.tar")
		docker(t, "save", "-o", path, ImageBusybox)
		if !tarHas(t, path, "manifest.json") {
			t.Errorf("docker save of %s has no manifest.json", ImageBusybox)
		}
	})
}

// TestImageBuildLeavesNothing: debootstrap mounts /proc and /sys in its
// target, and the script mounts /proc for apt; all of it, and the work dirs,
// must be gone once the images are built.
func TestImageBuildLeavesNothing(t *testing.T) {
	requireEnv(t)
	tmp := os.Getenv("TMPDIR")
	if tmp == "" {
		tmp = "/var/tmp"
	}
	work, err := filepath.Glob(filepath.Join(tmp, "sysbox-e2e-*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range work {
		assertNoMountsUnder(t, dir)
	}
	assertGone(t, work...)
	for _, mp := range mountPoints(t) {
		if strings.Contains(mp, "/sysbox-e2e-") {
			t.Errorf("image build mount left behind: %s", mp)
		}
	}
}

// TestImageCache: TestMain built (or found) every image, so building again
// must take the fast paths, which the script names on a line each.
func TestImageCache(t *testing.T) {
	requireEnv(t)

	t.Run("make images finds all present", func(t *testing.T) {
		out := run(t, "make", "--no-print-directory", "-C", env.root, "images", "DOCKER="+env.dockerCLI)
		for _, name := range []string{"minimal", "system", "busybox"} {
			if !strings.Contains(out, "images: "+name+": up to date") {
				t.Errorf("%s was not up to date on the second run", name)
			}
		}
		if strings.Contains(out, "debootstrap") || strings.Contains(out, ": built") {
			t.Errorf("second run rebuilt something:\n%s", out)
		}
	})

	t.Run("missing image imports the cached tarball", func(t *testing.T) {
		// A repository of its own, so the shared images stay as they are.
		repo := "sysbox-e2e-cachetest"
		removeRepo := func() {
			out, _ := dockerErr(t, "images", "--filter", "reference="+repo+"/*",
				"--format", "{{.Repository}}:{{.Tag}}")
			for _, ref := range strings.Fields(out) {
				if out, err := dockerErr(t, "rmi", ref); err != nil {
					t.Errorf("remove image %s: %v\n%s", ref, err, out)
				}
			}
		}
		removeRepo() // what an interrupted run may have left
		t.Cleanup(removeRepo)
		script := filepath.Join(env.root, "scripts", "build-images.sh")
		vars := []string{"SYSBOX_E2E_REPO=" + repo, "DOCKER=" + env.dockerCLI}
		out := runEnv(t, vars, script, "minimal", "busybox")
		for _, name := range []string{"minimal", "busybox"} {
			if !strings.Contains(out, "images: "+name+": imported from cache") {
				t.Errorf("%s did not come from the cached tarball:\n%s", name, out)
			}
		}
		out = runEnv(t, vars, script, "minimal", "busybox")
		if strings.Count(out, ": up to date") != 2 {
			t.Errorf("third run was not a no-op:\n%s", out)
		}
		dockerRun(t, "runc", repo+"/busybox:latest", "true")
	})
}

// tarHas reports whether the tar archive at path has an entry named name.
func tarHas(t testing.TB, path, name string) bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return false
		}
		if err != nil {
			t.Fatalf("read %s: %v", path, err)
		}
		if h.Name == name {
			return true
		}
	}
}
