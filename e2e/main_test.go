//go:build e2e

// Package e2e holds the end-to-end tests: real containers under a real Docker
// engine, on images built locally by scripts/build-images.sh. TestMain sets
// the stage (engine, runtime registration, images, daemons) and takes down
// only what it started. Run it as root with `make e2e` (or `make test`).
package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sysbox-dev/sysbox/internal/ipc"
)

// Images built by scripts/build-images.sh (the :latest tag follows the
// current recipe; the content-keyed tag is on the same image). Their
// repository follows SYSBOX_E2E_REPO, as the script's does, so a run can
// build and use a set of its own.
var (
	ImageMinimal = imageRef("minimal") // debootstrap minbase, procps, iproute2, busybox
	ImageSystem  = imageRef("system")  // + systemd as /sbin/init, docker.io, iptables, kmod, dbus
	ImageBusybox = imageRef("busybox") // static busybox only: small enough to load into inner engines
)

func imageRef(name string) string {
	repo := os.Getenv("SYSBOX_E2E_REPO")
	if repo == "" {
		repo = "sysbox-e2e"
	}
	return repo + "/" + name + ":latest"
}

// RuntimeSysbox is the name the engine knows bin/sysbox-runc by.
const RuntimeSysbox = "sysbox-runc"

// logDir keeps the logs of every process the harness starts.
const logDir = "/var/log/sysbox-e2e"

// env is what TestMain found or set up; tests read it, never change it.
var env struct {
	root      string // repository root
	bin       string // root/bin, where make build puts sysbox and its role links
	dockerCLI string
	skip      string           // why every test skips (not root), or ""
	daemons   map[string]error // sysbox-mgr, sysbox-fs: nil when up, else why not
}

// errNotBuilt marks a daemon whose role still answers "not built yet":
// tests that need it skip rather than fail.
var errNotBuilt = errors.New("not built yet")

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		env.skip = "e2e tests need root (run: sudo make test)"
		return m.Run()
	}
	var stops []func()
	defer func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}()
	if err := setup(&stops); err != nil {
		logf("setup failed: %v", err)
		return 1
	}
	code := m.Run()
	sweepContainers()
	return code
}

func setup(stops *[]func()) error {
	var err error
	if env.root, err = filepath.Abs(".."); err != nil {
		return err
	}
	env.bin = filepath.Join(env.root, "bin")
	if _, err := os.Stat(filepath.Join(env.bin, "sysbox")); err != nil {
		return fmt.Errorf("%w: run make build first (make e2e does)", err)
	}
	env.dockerCLI = dockerCLI()
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return err
	}

	stop, err := ensureEngine()
	if err != nil {
		return err
	}
	*stops = append(*stops, stop)
	undo, err := registerRuntime()
	if err != nil {
		return err
	}
	*stops = append(*stops, undo)

	cache := os.Getenv("SYSBOX_E2E_CACHE")
	if cache == "" {
		cache = "/var/cache/sysbox-e2e"
	}
	logf("building images (scripts/build-images.sh; cached under %s)", cache)
	start := time.Now()
	cmd := exec.Command(filepath.Join(env.root, "scripts", "build-images.sh"))
	cmd.Env = append(os.Environ(), "DOCKER="+env.dockerCLI)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build images: %w", err)
	}
	logf("images ready in %s", time.Since(start).Round(time.Second))

	*stops = append(*stops, startDaemons())
	return nil
}

// dockerCLI prefers the client that came with the distribution's engine:
// a newer client earlier in PATH works too, but tests should not depend on
// API negotiation.
func dockerCLI() string {
	if _, err := os.Stat("/usr/bin/docker"); err == nil {
		return "/usr/bin/docker"
	}
	if p, err := exec.LookPath("docker"); err == nil {
		return p
	}
	return "docker"
}

// engineUp reports whether a Docker engine answers.
func engineUp(ctx context.Context) bool {
	return exec.CommandContext(ctx, env.dockerCLI, "version", "--format", "{{.Server.Version}}").Run() == nil
}

// ensureEngine starts dockerd unless one already answers, and returns what
// undoes that: stopping the dockerd it started, by pid, or nothing.
func ensureEngine() (func(), error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if engineUp(ctx) {
		logf("Docker engine already running: using it, will leave it running")
		return func() {}, nil
	}
	dockerd, err := exec.LookPath("dockerd")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/dockerd"); serr != nil {
			return nil, errors.New("no dockerd: apt-get install docker.io (scripts/install-deps.sh does)")
		}
		dockerd = "/usr/sbin/dockerd"
	}
	logPath := filepath.Join(logDir, "dockerd.log")
	args := []string{"--log-level=info"}
	p, err := startLogged(dockerd, args, logPath)
	if err != nil {
		return nil, err
	}
	logf("started dockerd (pid %d, log %s) %s", p.cmd.Process.Pid, logPath, strings.Join(args, " "))

	// dockerd 20.10 starts its own containerd when none is running; the
	// first start on a fresh host also creates /var/lib/docker, so allow time.
	deadline := time.Now().Add(90 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		up := engineUp(ctx)
		cancel()
		if up {
			break
		}
		if p.exited() {
			return nil, fmt.Errorf("dockerd exited at start: %v\n%s", p.err, tail(p.output(), 20))
		}
		if time.Now().After(deadline) {
			p.stop(10 * time.Second)
			return nil, fmt.Errorf("dockerd did not answer within 90s\n%s", tail(p.output(), 20))
		}
		time.Sleep(250 * time.Millisecond)
	}
	return func() {
		logf("stopping the dockerd the harness started (pid %d)", p.cmd.Process.Pid)
		p.stop(60 * time.Second)
	}, nil
}

// registerRuntime registers this checkout's bin/sysbox-runc with the engine
// and starts sysbox-mgr and sysbox-fs from bin/, all through
// `sysbox install --docker` (the prefix is the checkout, so nothing is
// copied), then checks with the engine. It returns what undoes it:
// `sysbox uninstall --force --purge` puts daemon.json back as it was, stops
// the daemons and removes the data root.
func registerRuntime() (func(), error) {
	sysbox := filepath.Join(env.bin, "sysbox")
	if installedHere() {
		// A developer installed this checkout already (sysbox install
		// --docker --prefix $PWD): use it and leave it, so several test
		// runs can share one set of daemons.
		logf("sysbox is installed from this checkout and its daemons answer: using them, will leave them")
		return func() {}, nil
	}
	out, err := exec.Command(sysbox, "install", "--docker", "--prefix", env.root).CombinedOutput()
	logf("sysbox install --docker --prefix %s (%v):\n%s", env.root, err, strings.TrimSpace(string(out)))
	undo := func() {
		out, err := exec.Command(sysbox, "uninstall", "--force", "--purge").CombinedOutput()
		logf("sysbox uninstall --force --purge (%v):\n%s", err, strings.TrimSpace(string(out)))
	}
	if err != nil {
		undo()
		return nil, fmt.Errorf("sysbox install --docker: %w", err)
	}
	out, err = exec.Command(env.dockerCLI, "info", "--format", "{{json .Runtimes}}").CombinedOutput()
	if err != nil {
		undo()
		return nil, fmt.Errorf("docker info: %w\n%s", err, out)
	}
	var runtimes map[string]struct {
		Path string `json:"path"`
	}
	if err := json.Unmarshal(out, &runtimes); err != nil {
		undo()
		return nil, fmt.Errorf("parse docker info runtimes %q: %w", out, err)
	}
	want := filepath.Join(env.bin, "sysbox-runc")
	if rt := runtimes[RuntimeSysbox]; rt.Path != want {
		undo()
		return nil, fmt.Errorf("after sysbox install the engine runs %q as %s, not this checkout's %s: stop that engine so the harness starts its own", rt.Path, RuntimeSysbox, want)
	}
	logf("runtime %s registered: %s", RuntimeSysbox, want)
	return undo, nil
}

// startDaemons starts sysbox-mgr and sysbox-fs from bin/ unless they
// already answer on their sockets, and returns what stops the ones it
// started. A daemon that exits at once is logged and its reason recorded in
// env.daemons; tests that need it go through needDaemons, the others go on.
func startDaemons() func() {
	daemons := []struct{ name, socket string }{
		{"sysbox-mgr", ipc.MgrSocket},
		{"sysbox-fs", ipc.FsSocket},
	}
	env.daemons = map[string]error{}
	var started []*proc
	for _, d := range daemons {
		if listening(d.socket) {
			logf("%s already answers on %s: using it, will leave it running", d.name, d.socket)
			env.daemons[d.name] = nil
			continue
		}
		p, err := startLogged(filepath.Join(env.bin, d.name), nil, filepath.Join(logDir, d.name+".log"))
		if err == nil {
			err = waitListening(p, d.socket, 10*time.Second)
		}
		switch {
		case err == nil:
			logf("%s up (pid %d, socket %s, log %s)", d.name, p.cmd.Process.Pid, d.socket, p.logPath)
			started = append(started, p)
		case errors.Is(err, errNotBuilt):
			logf("%s: not built yet; carrying on without it", d.name)
		default:
			logf("%s did not come up: %v", d.name, err)
		}
		env.daemons[d.name] = err
	}
	return func() {
		for i := len(started) - 1; i >= 0; i-- {
			started[i].stop(10 * time.Second)
		}
	}
}

// waitListening waits until p accepts connections on socket. A daemon that
// exits first is an error that quotes what it said; one that has not
// listened by the deadline is stuck, and is stopped.
func waitListening(p *proc, socket string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for !listening(socket) {
		if p.exited() {
			out := strings.TrimSpace(p.output())
			if strings.Contains(out, "not built yet") {
				return errNotBuilt
			}
			return fmt.Errorf("exited at start (%v): %s", p.err, out)
		}
		if time.Now().After(deadline) {
			p.stop(5 * time.Second)
			return fmt.Errorf("no socket %s after %s; log %s", socket, timeout, p.logPath)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

// listening reports whether something accepts connections on a unix
// socket; a socket file left by a dead daemon does not count.
// installedHere: the engine runs this checkout's sysbox-runc and both
// daemons answer.
func installedHere() bool {
	if os.Getenv("SYSBOX_E2E_FRESH") == "1" {
		return false
	}
	out, err := exec.Command(env.dockerCLI, "info", "--format", "{{json .Runtimes}}").Output()
	if err != nil {
		return false
	}
	var runtimes map[string]struct {
		Path string `json:"path"`
	}
	if json.Unmarshal(out, &runtimes) != nil || runtimes[RuntimeSysbox].Path != filepath.Join(env.bin, "sysbox-runc") {
		return false
	}
	return listening(ipc.MgrSocket) && listening(ipc.FsSocket)
}

func listening(socket string) bool {
	c, err := net.DialTimeout("unix", socket, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// proc is a daemon the harness started and must stop.
type proc struct {
	cmd      *exec.Cmd
	logPath  string
	logStart int64 // where this run's output begins in the shared log
	done     chan struct{}
	err      error // Wait's result, once done is closed
}

// output is what the process wrote to its log in this run.
func (p *proc) output() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	if p.logStart <= int64(len(b)) {
		b = b[p.logStart:]
	}
	return string(b)
}

// startLogged starts path with args, its output appended to logPath. The
// child gets SIGTERM if the test binary dies first (a -timeout panic skips
// TestMain's cleanup), so no engine outlives the run that started it.
func startLogged(path string, args []string, logPath string) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(f, "\n=== %s: %s %s\n", time.Now().Format(time.RFC3339), path, strings.Join(args, " "))
	start, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, err
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := onSpawner(cmd.Start); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", path, err)
	}
	p := &proc{cmd: cmd, logPath: logPath, logStart: start, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// Pdeathsig fires when the *thread* that forked the child exits, and Go
// ends a thread whose goroutine exits while locked to it. So every daemon is
// forked from one goroutine that locks its thread and never returns.
var (
	spawnOnce sync.Once
	spawnReq  = make(chan func())
)

func onSpawner(f func() error) error {
	spawnOnce.Do(func() {
		go func() {
			runtime.LockOSThread()
			for req := range spawnReq {
				req()
			}
		}()
	})
	errc := make(chan error, 1)
	spawnReq <- func() { errc <- f() }
	return <-errc
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits up to grace before SIGKILL, by pid only.
func (p *proc) stop(grace time.Duration) {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		logf("pid %d ignored SIGTERM for %s: killing it", p.cmd.Process.Pid, grace)
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// sweepContainers removes any container a test left behind (each is labelled
// by dockerRun); t.Cleanup normally got there first.
func sweepContainers() {
	out, err := exec.Command(env.dockerCLI, "ps", "-aq", "--filter", "label="+runLabel).Output()
	if err != nil {
		return
	}
	if ids := strings.Fields(string(out)); len(ids) > 0 {
		logf("removing %d leftover test containers", len(ids))
		_ = exec.Command(env.dockerCLI, append([]string{"rm", "-f"}, ids...)...).Run()
	}
}

// tail returns the last n lines of s, for error messages.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "e2e: "+format+"\n", args...)
}
