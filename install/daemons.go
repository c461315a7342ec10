package install

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sysbox-dev/sysbox/internal/ipc"
)

//go:embed units/*.service
var unitFiles embed.FS

const unitDir = "/etc/systemd/system"

// unitNames in the order they are enabled: the group last.
var unitNames = []string{"sysbox-mgr.service", "sysbox-fs.service", "sysbox.service"}

// renderUnit fills a unit template with this install's paths.
func renderUnit(name, prefix, dataRoot string) ([]byte, error) {
	b, err := unitFiles.ReadFile("units/" + name)
	if err != nil {
		return nil, err
	}
	s := strings.ReplaceAll(string(b), "@PREFIX@", prefix)
	s = strings.ReplaceAll(s, "@DATA_ROOT@", dataRoot)
	return []byte(s), nil
}

const logDir = "/var/log/sysbox"

// daemonSpec is how one daemon is started and found.
type daemonSpec struct {
	name    string // also its argv[0] and its /proc/PID/comm
	args    []string
	socket  string
	pidFile string
	log     string
}

func (in *installer) daemonSpecs() []daemonSpec {
	return []daemonSpec{
		{name: "sysbox-mgr", args: []string{"--data-root", in.dataRoot}, socket: ipc.MgrSocket, pidFile: ipc.RunDir + "/mgr.pid", log: logDir + "/mgr.log"},
		{name: "sysbox-fs", socket: ipc.FsSocket, pidFile: ipc.RunDir + "/fs.pid", log: logDir + "/fs.log"},
	}
}

// systemdRunning: systemd is PID 1 (its own test, sd_booted).
func (in *installer) systemdRunning() bool { return in.h.exists("/run/systemd/system") }

// writeUnits writes the units where systemd runs or is installed (a host or
// image that boots it later); elsewhere they would be litter.
func (in *installer) writeUnits() error {
	if !in.systemdRunning() && !in.h.exists(unitDir) {
		return nil
	}
	var units []string
	for _, name := range unitNames {
		b, err := renderUnit(name, in.prefix, in.dataRoot)
		if err != nil {
			return err
		}
		p := unitDir + "/" + name
		if _, err := in.editFile(p, 0o644, wholeFile(b)); err != nil {
			return err
		}
		units = append(units, p)
	}
	in.st.Units = units
	return in.saveState(false)
}

func (in *installer) removeUnits() error {
	for _, p := range in.st.Units {
		if err := in.restoreFile(p); err != nil {
			return err
		}
	}
	in.st.Units = nil
	if in.systemdRunning() {
		_ = in.systemctl("daemon-reload")
	}
	return in.saveState(false)
}

func (in *installer) systemctl(args ...string) error {
	in.h.say("systemctl %s", strings.Join(args, " "))
	if in.h.dry {
		return nil
	}
	out, err := exec.Command("systemctl", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("systemctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// startDaemons brings the daemons up and waits until each answers on its
// socket: with systemd through the units, elsewhere directly.
func (in *installer) startDaemons(ctx context.Context) error {
	if in.systemdRunning() {
		if err := in.systemctl("daemon-reload"); err != nil {
			return err
		}
		if err := in.systemctl(append([]string{"enable"}, unitNames...)...); err != nil {
			return err
		}
		in.st.Daemons = "systemd"
		if err := in.saveState(false); err != nil {
			return err
		}
		if err := in.systemctl("start", "sysbox.service"); err != nil {
			return fmt.Errorf("%w\n%s", err, journalTail())
		}
		if in.h.dry {
			return nil
		}
		for _, d := range in.daemonSpecs() {
			if err := waitSocket(ctx, d.socket, in.timeout, nil); err != nil {
				return fmt.Errorf("%s: %w\n%s", d.name, err, journalTail())
			}
		}
		in.h.say("sysbox-mgr and sysbox-fs run under systemd (systemctl status sysbox)")
		return nil
	}
	in.h.note("systemd is not running here (no /run/systemd/system): starting the daemons directly, detached; "+
		"pid files in %s, logs in %s; they do not restart on failure or at boot", ipc.RunDir, logDir)
	in.st.Daemons = "direct"
	if err := in.saveState(false); err != nil {
		return err
	}
	for _, d := range in.daemonSpecs() {
		if err := in.startDirect(ctx, d); err != nil {
			return err
		}
	}
	return nil
}

func journalTail() string {
	out, _ := exec.Command("journalctl", "--no-pager", "-n", "20", "-u", "sysbox-mgr", "-u", "sysbox-fs").CombinedOutput()
	return strings.TrimSpace(string(out))
}

// startDirect starts a daemon in its own session, stdin /dev/null, output
// appended to its log, and waits for its socket. A daemon that exits first
// is an error that quotes what it logged.
func (in *installer) startDirect(ctx context.Context, d daemonSpec) error {
	if pid := livePid(d.pidFile, d.name); pid > 0 {
		in.h.info("%s is already running (pid %d)", d.name, pid)
		return nil
	}
	if socketAnswers(d.socket) {
		in.h.info("%s already answers on %s", d.name, d.socket)
		return nil
	}
	bin := in.binPath(d.name)
	in.h.say("start %s (detached; log %s, pid file %s)", strings.Join(append([]string{bin}, d.args...), " "), d.log, d.pidFile)
	if in.h.dry {
		return nil
	}
	for _, dir := range []string{filepath.Dir(d.log), filepath.Dir(d.pidFile)} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("start %s: %w", d.name, err)
		}
	}
	logf, err := os.OpenFile(d.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("start %s: %w", d.name, err)
	}
	var logStart int64
	if fi, err := logf.Stat(); err == nil {
		logStart = fi.Size()
	}
	cmd := exec.Command(bin, d.args...)
	cmd.Args[0] = d.name
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Stdout, cmd.Stderr = logf, logf // stdin stays nil: /dev/null
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	logf.Close()
	if err != nil {
		return fmt.Errorf("start %s: %w", d.name, err)
	}
	pid := cmd.Process.Pid
	if err := os.WriteFile(d.pidFile, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		_ = cmd.Process.Kill()
		return fmt.Errorf("start %s: %w", d.name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	if err := waitSocket(ctx, d.socket, in.timeout, exited); err != nil {
		var exit *daemonExit
		if !errors.As(err, &exit) {
			// Running but deaf: do not leave it behind a failed install.
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
		}
		os.Remove(d.pidFile)
		return fmt.Errorf("%s (%s): %w; its log %s says:\n%s", d.name, bin, err, d.log, logTail(d.log, logStart))
	}
	in.h.say("%s runs (pid %d), answering on %s", d.name, pid, d.socket)
	return nil
}

// daemonExit is a daemon that exited before it was ready.
type daemonExit struct{ err error }

func (e *daemonExit) Error() string {
	if e.err == nil {
		return "exited before opening its socket (status 0)"
	}
	return "exited before opening its socket (" + e.err.Error() + ")"
}

// waitSocket polls until something answers on socket, the deadline passes,
// or exited (may be nil) says the process is gone.
func waitSocket(ctx context.Context, socket string, timeout time.Duration, exited <-chan error) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if socketAnswers(socket) {
			return nil
		}
		select {
		case err := <-exited:
			return &daemonExit{err}
		case <-deadline.C:
			return fmt.Errorf("nothing answered on %s within %s", socket, timeout)
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func socketAnswers(socket string) bool {
	c, err := net.DialTimeout("unix", socket, 500*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// logTail is what a log got since offset, at most its last 2 KiB.
func logTail(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size()-offset > 2048 {
		offset = fi.Size() - 2048
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return "(" + err.Error() + ")"
	}
	b, _ := io.ReadAll(f)
	if s := strings.TrimSpace(string(b)); s != "" {
		return s
	}
	return "(nothing)"
}

// livePid is the pid in a pid file if that process is alive and is the
// daemon (pids get reused); else 0.
func livePid(pidFile, name string) int {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 || !alive(pid, name) {
		return 0
	}
	return pid
}

// alive: pid exists, is not a zombie, and its comm is name.
func alive(pid int, name string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// "pid (comm) S ...": comm may hold spaces and parens; the state
	// follows the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	if s := b[i+2]; s == 'Z' || s == 'X' {
		return false
	}
	return procComm(pid) == name
}

// stopDaemons stops what install started: through systemd, or by pid file
// (SIGTERM, then SIGKILL after the timeout).
func (in *installer) stopDaemons() error {
	switch in.st.Daemons {
	case "systemd":
		if in.systemdRunning() {
			if err := in.systemctl(append([]string{"disable", "--now"}, unitNames...)...); err != nil {
				return err
			}
		}
	case "direct":
		for _, d := range in.daemonSpecs() {
			if err := in.stopDirect(d); err != nil {
				return err
			}
		}
	}
	in.st.Daemons = ""
	return in.saveState(false)
}

func (in *installer) stopDirect(d daemonSpec) error {
	pid := livePid(d.pidFile, d.name)
	if pid == 0 {
		return in.h.removeFile(d.pidFile)
	}
	in.h.say("stop %s (SIGTERM to pid %d)", d.name, pid)
	if in.h.dry {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop %s (pid %d): %w", d.name, pid, err)
	}
	if !waitGone(pid, d.name, in.timeout) {
		in.h.say("%s did not stop within %s: SIGKILL", d.name, in.timeout)
		_ = syscall.Kill(pid, syscall.SIGKILL)
		if !waitGone(pid, d.name, 5*time.Second) {
			return fmt.Errorf("stop %s: pid %d survives SIGKILL", d.name, pid)
		}
	}
	return in.h.removeFile(d.pidFile)
}

func waitGone(pid int, name string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for alive(pid, name) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// findProcs lists the pids whose comm is name.
func findProcs(name string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err == nil && alive(pid, name) {
			pids = append(pids, pid)
		}
	}
	return pids
}
