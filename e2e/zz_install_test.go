//go:build e2e

package e2e

// Issue 7 end to end, on the real engine: uninstall and install with a runc
// container running beside. The file's name makes it run last (go test
// runs files in name order): it takes the daemons down and up again, and
// it puts back the install the harness made (or the developer's install of
// this checkout) before it ends.

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sysbox-dev/sysbox/internal/ipc"
)

// engineRuntimes is what `docker info` lists as runtimes, by name.
func engineRuntimes(t *testing.T) map[string]string {
	t.Helper()
	out := docker(t, "info", "--format", "{{json .Runtimes}}")
	var rts map[string]struct {
		Path string `json:"path"`
	}
	if err := json.Unmarshal([]byte(out), &rts); err != nil {
		t.Fatalf("docker info runtimes %q: %v", out, err)
	}
	m := map[string]string{}
	for k, v := range rts {
		m[k] = v.Path
	}
	return m
}

// readOptional reads a file that may not exist (nil, false then).
func readOptional(t *testing.T, p string) ([]byte, bool) {
	t.Helper()
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return b, true
}

func TestInstallUninstallRoundTrip(t *testing.T) {
	needDaemons(t)
	bin := filepath.Join(env.bin, "sysbox")
	want := filepath.Join(env.bin, "sysbox-runc")
	const daemonJSON = "/etc/docker/daemon.json"

	install := func(t *testing.T) string {
		t.Helper()
		return run(t, bin, "install", "--docker", "--prefix", env.root)
	}
	// Whatever happens below, the install the other tests (and a later
	// run) count on comes back.
	t.Cleanup(func() {
		if engineRuntimes(t)[RuntimeSysbox] == want && listening(ipc.MgrSocket) && listening(ipc.FsSocket) {
			return
		}
		out, err := exec.Command(bin, "install", "--docker", "--prefix", env.root).CombinedOutput()
		if err != nil {
			t.Errorf("REINSTALL BY HAND (sysbox install --docker --prefix %s): %v\n%s", env.root, err, out)
		}
	})

	// A runc container runs through all of it, untouched.
	bystander := container{Runtime: "runc", Image: ImageBusybox, Cmd: []string{"sleep", "infinity"}}.start(t)
	startedAt := docker(t, "inspect", "-f", "{{.State.StartedAt}} {{.State.Pid}}", bystander)
	untouched := func(t *testing.T, when string) {
		t.Helper()
		if got := docker(t, "inspect", "-f", "{{.State.StartedAt}} {{.State.Pid}}", bystander); got != startedAt {
			t.Errorf("%s: the runc container was restarted (start and pid %s, was %s)", when, got, startedAt)
		}
		if st := docker(t, "inspect", "-f", "{{.State.Status}}", bystander); st != "running" {
			t.Errorf("%s: the runc container is %s", when, st)
		}
	}

	// Uninstall refuses while a sysbox container runs, and says how.
	box := sysbox("sleep", "infinity").start(t)
	out, err := runCmd(t, nil, bin, "uninstall")
	if err == nil || !strings.Contains(out, "--force") {
		t.Errorf("uninstall with a sysbox container running: %v\n%s", err, out)
	}
	if engineRuntimes(t)[RuntimeSysbox] != want {
		t.Fatalf("a refused uninstall changed the engine's runtimes: %v", engineRuntimes(t))
	}
	docker(t, "rm", "-f", box)

	// From the installed state, uninstall gives the host as it was before
	// any install: that is the reference the second uninstall must match.
	t.Logf("uninstall:\n%s", run(t, bin, "uninstall"))
	before, hadBefore := readOptional(t, daemonJSON)
	if _, ok := engineRuntimes(t)[RuntimeSysbox]; ok {
		t.Errorf("after uninstall docker still lists %s", RuntimeSysbox)
	}
	untouched(t, "after the first uninstall")

	// Install: registered without a restart, daemons up, containers run.
	t.Logf("install:\n%s", install(t))
	if got := engineRuntimes(t)[RuntimeSysbox]; got != want {
		t.Fatalf("after install docker runs %q as %s, want %s", got, RuntimeSysbox, want)
	}
	for _, s := range []string{ipc.MgrSocket, ipc.FsSocket} {
		if !listening(s) {
			t.Errorf("after install nothing answers on %s", s)
		}
	}
	if out := sysbox("sh", "-c", "head -1 /proc/self/uid_map").run(t); rootBase(t, out) < 100000 {
		t.Errorf("a sysbox container after install: uid_map %q", out)
	}
	untouched(t, "after install")
	// Twice is the same as once.
	afterOnce, _ := readOptional(t, daemonJSON)
	install(t)
	if afterTwice, _ := readOptional(t, daemonJSON); !bytes.Equal(afterOnce, afterTwice) {
		t.Errorf("a second install changed daemon.json:\n%s\nthen\n%s", afterOnce, afterTwice)
	}

	// Uninstall: daemon.json byte for byte as before, runtime gone,
	// daemons stopped, nothing left but the data root.
	t.Logf("uninstall:\n%s", run(t, bin, "uninstall"))
	after, hasAfter := readOptional(t, daemonJSON)
	if hadBefore != hasAfter || !bytes.Equal(before, after) {
		t.Errorf("daemon.json after install+uninstall (exists %v):\n%s\nwant (exists %v):\n%s", hasAfter, after, hadBefore, before)
	}
	if _, ok := engineRuntimes(t)[RuntimeSysbox]; ok {
		t.Errorf("after uninstall docker still lists %s", RuntimeSysbox)
	}
	deadline := time.Now().Add(5 * time.Second)
	for (listening(ipc.MgrSocket) || listening(ipc.FsSocket)) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	for _, s := range []string{ipc.MgrSocket, ipc.FsSocket, ipc.TrapSocket} {
		if listening(s) {
			t.Errorf("after uninstall something still answers on %s", s)
		}
	}
	assertGone(t, "/etc/systemd/system/sysbox.service", "/etc/systemd/system/sysbox-mgr.service",
		"/etc/systemd/system/sysbox-fs.service", "/etc/sysctl.d/99-sysbox.conf",
		"/etc/sysbox", ipc.RunDir)
	if out, _ := readOptional(t, "/etc/subuid"); bytes.Contains(out, []byte("sysbox:")) {
		t.Errorf("after uninstall /etc/subuid still has a sysbox entry:\n%s", out)
	}
	if _, err := os.Stat("/var/lib/sysbox"); err != nil {
		t.Errorf("uninstall without --purge removed the data root: %v", err)
	}
	untouched(t, "after the second uninstall")
}
