package install

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary stand in for a daemon: started as
// `NAME fake-daemon SOCKET` it listens until SIGTERM; as `NAME fake-crash`
// it fails at once, as a daemon that is not built yet does.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "fake-daemon":
			sigs := make(chan os.Signal, 1)
			signal.Notify(sigs, syscall.SIGTERM)
			ln, err := net.Listen("unix", os.Args[2])
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			fmt.Println("listening on", os.Args[2])
			<-sigs
			ln.Close()
			os.Exit(0)
		case "fake-crash":
			fmt.Fprintln(os.Stderr, "sysbox-mgr: not built yet")
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}

// fakeDaemon links the test binary under a daemon's name in a temp prefix.
func fakeDaemon(t *testing.T, name string, args ...string) (*installer, daemonSpec) {
	t.Helper()
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(self, filepath.Join(dir, "bin", name)); err != nil {
		t.Fatal(err)
	}
	in := &installer{h: &host{out: &strings.Builder{}}, prefix: dir, timeout: 5 * time.Second}
	d := daemonSpec{
		name:    name,
		socket:  filepath.Join(dir, "d.sock"),
		pidFile: filepath.Join(dir, "run", "d.pid"),
		log:     filepath.Join(dir, "log", "d.log"),
	}
	d.args = args
	if len(args) > 1 && args[1] == "SOCKET" {
		d.args = []string{args[0], d.socket}
	}
	return in, d
}

func TestStartDirect(t *testing.T) {
	in, d := fakeDaemon(t, "fake-mgr", "fake-daemon", "SOCKET")
	if err := in.startDirect(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	pid := livePid(d.pidFile, d.name)
	if pid == 0 {
		t.Fatalf("no live pid in %s", d.pidFile)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	// Its own session, detached from ours.
	if sid, _ := syscall.Getpgid(pid); sid != pid {
		t.Errorf("daemon's process group %d, want its own (%d)", sid, pid)
	}
	if !socketAnswers(d.socket) {
		t.Fatal("socket does not answer")
	}

	// Started again: the running one is kept.
	if err := in.startDirect(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	if again := livePid(d.pidFile, d.name); again != pid {
		t.Fatalf("started a second daemon: pid %d, then %d", pid, again)
	}
	if out := in.h.out.(*strings.Builder).String(); !strings.Contains(out, "already running (pid") {
		t.Errorf("output:\n%s", out)
	}

	if err := in.stopDirect(d); err != nil {
		t.Fatal(err)
	}
	if alive(pid, d.name) {
		t.Fatal("still running after stop")
	}
	if _, err := os.Stat(d.pidFile); err == nil {
		t.Error("pid file left")
	}
}

func TestStartDirectExitsAtOnce(t *testing.T) {
	in, d := fakeDaemon(t, "fake-mgr", "fake-crash")
	start := time.Now()
	err := in.startDirect(context.Background(), d)
	if err == nil {
		t.Fatal("no error for a daemon that exits at once")
	}
	if time.Since(start) > 3*time.Second {
		t.Errorf("took %s to notice the exit", time.Since(start))
	}
	for _, want := range []string{"exited before opening its socket (exit status 1)", "not built yet", d.log} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if _, err := os.Stat(d.pidFile); err == nil {
		t.Error("pid file left for a dead daemon")
	}
}

func TestStartDirectDeafDaemon(t *testing.T) {
	// Runs, but never opens the socket it is waited on.
	in, d := fakeDaemon(t, "fake-fs", "fake-daemon", "SOCKET")
	d.args[1] = d.socket + ".elsewhere"
	in.timeout = 500 * time.Millisecond
	err := in.startDirect(context.Background(), d)
	if err == nil || !strings.Contains(err.Error(), "nothing answered on") {
		t.Fatalf("err = %v", err)
	}
	if len(findProcs(d.name)) != 0 {
		t.Error("the deaf daemon was left running")
	}
}
