package trap

import (
	"fmt"
	"os/exec"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestThreadRestore: a receiver's thread that entered a caller's mount
// namespace and cwd is the agent's again afterwards, so the receiver can
// take the next call on it.
func TestThreadRestore(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep(1)")
	}
	// A caller in a mount namespace of its own, its cwd in dir.
	cmd := exec.Command(sleep, "60")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	ino := func(path string) uint64 {
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err != nil {
			return 0
		}
		return st.Ino
	}
	agent := map[string]uint64{"/proc/thread-self/ns/mnt": ino("/proc/thread-self/ns/mnt"), "/": ino("/"), ".": ino(".")}
	caller := map[string]uint64{"/proc/thread-self/ns/mnt": ino(fmt.Sprintf("/proc/%d/ns/mnt", cmd.Process.Pid)), ".": ino(dir)}
	if caller["/proc/thread-self/ns/mnt"] == agent["/proc/thread-self/ns/mnt"] {
		t.Fatal("the caller shares the test's mount namespace")
	}
	same := func(when string, want map[string]uint64) error {
		for p, w := range want {
			if got := ino(p); got != w || w == 0 {
				return fmt.Errorf("%s: %s is inode %d, want %d", when, p, got, w)
			}
		}
		return nil
	}
	errc := make(chan error, 1)
	go func() {
		// Locked for good by newThread: the goroutine's end ends the thread.
		errc <- func() error {
			th, err := newThread()
			if err != nil {
				return err
			}
			cf, err := openCaller(cmd.Process.Pid, unix.AT_FDCWD)
			if err != nil {
				return err
			}
			defer cf.close()
			for i := range 3 {
				if err := th.run(cf, -1, nil, func() error { return same(fmt.Sprintf("run %d, entered", i), caller) }); err != nil {
					return err
				}
				if th.dirty {
					return fmt.Errorf("run %d: thread dirty", i)
				}
				if err := same(fmt.Sprintf("run %d, restored", i), agent); err != nil {
					return err
				}
			}
			return nil
		}()
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
