//go:build e2e

package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sysbox-dev/sysbox/internal/mountinfo"
)

// cmdTimeout bounds any one command a test runs, so a hung engine fails the
// test that met it instead of the whole run at -timeout.
const cmdTimeout = 10 * time.Minute

// testLabel marks every container the helpers create, for the final sweep.
const testLabel = "org.sysbox.e2e"

// runLabel marks the containers of this test run only: the final sweep
// must not remove another run's containers on a shared engine.
var runLabel = fmt.Sprintf("org.sysbox.e2e.run=%d-%d", os.Getpid(), time.Now().UnixNano())

// requireEnv skips the test when TestMain could not set up (not root).
func requireEnv(t testing.TB) {
	t.Helper()
	if env.skip != "" {
		t.Skip(env.skip)
	}
}

// needDaemons stops a test that needs the sysbox daemons (all of them, or
// those named) when TestMain could not bring them up: a skip while a role is
// still "not built yet", a failure for anything else.
func needDaemons(t testing.TB, names ...string) {
	t.Helper()
	requireEnv(t)
	if len(names) == 0 {
		names = []string{"sysbox-mgr", "sysbox-fs"}
	}
	for _, name := range names {
		err, ok := env.daemons[name]
		switch {
		case !ok:
			t.Fatalf("%s: the harness does not start it (see startDaemons)", name)
		case errors.Is(err, errNotBuilt):
			t.Skipf("%s is not built yet", name)
		case err != nil:
			t.Fatalf("%s is not running: %v", name, err)
		}
	}
}

// runCmd runs name with args and returns its combined output, trimmed. It
// does not fail the test: callers that expect an error use it directly.
func runCmd(t testing.TB, extraEnv []string, name string, args ...string) (string, error) {
	t.Helper()
	// Not t.Context(): that is cancelled before cleanups run, and cleanups
	// run commands too (docker rm).
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if extraEnv != nil {
		cmd.Env = append(os.Environ(), extraEnv...)
	}
	out, err := cmd.CombinedOutput()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("no answer in %s: %w", cmdTimeout, err)
	}
	return strings.TrimSpace(string(out)), err
}

// run runs a command and returns its output; on failure it fails the test
// with the command line, its output and its exit status.
func run(t testing.TB, args ...string) string {
	t.Helper()
	return runEnv(t, nil, args...)
}

// runEnv is run with extra environment variables (KEY=VALUE).
func runEnv(t testing.TB, extraEnv []string, args ...string) string {
	t.Helper()
	out, err := runCmd(t, extraEnv, args[0], args[1:]...)
	if err != nil {
		t.Fatalf("$ %s\n%s\n%v", shellQuote(extraEnv, args), out, err)
	}
	return out
}

// docker runs the docker client with args; see run.
func docker(t testing.TB, args ...string) string {
	t.Helper()
	return run(t, append([]string{env.dockerCLI}, args...)...)
}

// dockerErr runs the docker client and returns its output and error, for
// tests that expect a failure.
func dockerErr(t testing.TB, args ...string) (string, error) {
	t.Helper()
	return runCmd(t, nil, env.dockerCLI, args...)
}

// container describes a `docker run` the helpers make.
type container struct {
	Runtime string   // "runc", RuntimeSysbox, ...
	Image   string   // one of the Image constants
	Flags   []string // more `docker run` flags (--stop-signal, -v, ...)
	Cmd     []string // command and args; empty for the image's CMD
}

// start runs c detached and returns its name; the container is removed
// (docker rm -f) when the test ends.
func (c container) start(t testing.TB) string {
	t.Helper()
	name := containerName(t)
	docker(t, c.args(name, "-d")...)
	return name
}

// run runs c in the foreground and returns its output; a non-zero exit
// fails the test. The container is removed when the test ends.
func (c container) run(t testing.TB) string {
	t.Helper()
	return docker(t, c.args(containerName(t))...)
}

// args is the docker run command line. Test containers get no network:
// nothing here may reach outside this machine.
func (c container) args(name string, extra ...string) []string {
	args := []string{"run", "--name", name, "--label", testLabel + "=" + name, "--label", runLabel, "--network", "none"}
	if c.Runtime != "" {
		args = append(args, "--runtime", c.Runtime)
	}
	args = append(args, extra...)
	args = append(args, c.Flags...)
	args = append(args, c.Image)
	return append(args, c.Cmd...)
}

// containerName is unique per call and says which test made it; removal is
// registered before the container exists, so even a half-made one goes.
func containerName(t testing.TB) string {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	base := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '-'
	}, t.Name())
	if len(base) > 40 {
		base = base[:40]
	}
	name := "e2e-" + base + "-" + hex.EncodeToString(b)
	t.Cleanup(func() {
		if out, err := runCmd(t, nil, env.dockerCLI, "rm", "-f", "-v", name); err != nil &&
			!strings.Contains(out, "No such container") {
			t.Errorf("remove container %s: %v\n%s", name, err, out)
		}
	})
	return name
}

// dockerRun runs cmd in a new container of image under runtime with no
// network, and returns its output. The container is removed when the test
// ends, also when the run fails.
func dockerRun(t testing.TB, runtime, image string, cmd ...string) string {
	t.Helper()
	return container{Runtime: runtime, Image: image, Cmd: cmd}.run(t)
}

// dockerStart starts cmd detached in a new container (removed when the test
// ends) and returns the container's name.
func dockerStart(t testing.TB, runtime, image string, cmd ...string) string {
	t.Helper()
	return container{Runtime: runtime, Image: image, Cmd: cmd}.start(t)
}

// dockerExec runs cmd in a running container.
func dockerExec(t testing.TB, name string, cmd ...string) string {
	t.Helper()
	return docker(t, append([]string{"exec", name}, cmd...)...)
}

// poll calls cond until it reports done or timeout passes, then fails the
// test with cond's last word on why it is not done yet. The interval grows
// from 100ms to 1s: quick when things are quick, quiet when they are not.
func poll(t testing.TB, timeout time.Duration, cond func() (done bool, status string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	interval := 100 * time.Millisecond
	for {
		done, status := cond()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not done after %s: %s", timeout, status)
		}
		time.Sleep(interval)
		interval = min(interval*2, time.Second)
	}
}

// selfMounts is this mount namespace's /proc/self/mountinfo, parsed.
func selfMounts(t testing.TB) []mountinfo.Entry {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	es, err := mountinfo.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// mountPoints returns the mount points in this mount namespace, unescaped.
func mountPoints(t testing.TB) []string {
	t.Helper()
	es := selfMounts(t)
	mps := make([]string, len(es))
	for i, e := range es {
		mps[i] = e.Point
	}
	return mps
}

// mountsUnder returns the mount points at or below dir.
func mountsUnder(t testing.TB, dir string) []string {
	t.Helper()
	dir = filepath.Clean(dir)
	var under []string
	for _, mp := range mountPoints(t) {
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			under = append(under, mp)
		}
	}
	return under
}

// assertNoMountsUnder fails the test if anything is mounted at or below dir.
func assertNoMountsUnder(t testing.TB, dir string) {
	t.Helper()
	if m := mountsUnder(t, dir); len(m) > 0 {
		t.Errorf("mounts left under %s: %s", dir, strings.Join(m, ", "))
	}
}

// assertGone fails the test for each path that still exists.
func assertGone(t testing.TB, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s still exists", p)
		} else if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stat %s: %v", p, err)
		}
	}
}

// noLeftovers checks, once the test and all its other cleanups are done,
// that the host has no mount the test did not find there. Call it first in
// a test: cleanups run last-registered first, so this one runs last, after
// its containers are gone.
func noLeftovers(t testing.TB) {
	t.Helper()
	before := mountPoints(t)
	t.Cleanup(func() {
		// Removal is asynchronous inside the engine for a moment after
		// `docker rm -f` returns; give it a short deadline, not a sleep.
		var extra []string
		poll(t, 10*time.Second, func() (bool, string) {
			extra = extra[:0]
			for _, mp := range mountPoints(t) {
				if !slices.Contains(before, mp) {
					extra = append(extra, mp)
				}
			}
			return len(extra) == 0, "new mounts: " + strings.Join(extra, ", ")
		})
	})
}

// shellQuote renders a command line for a failure message, pasteable
// into a shell.
func shellQuote(extraEnv, args []string) string {
	var parts []string
	for _, a := range append(slices.Clone(extraEnv), args...) {
		if a == "" || strings.ContainsAny(a, " \t\n'\"$\\*?;&|<>(){}[]`!#~") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}
