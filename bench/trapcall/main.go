// Command trapcall times single syscalls, for bench/trap.sh: it runs inside
// containers (static, no cgo) and prints one line per call,
// "NAME p50 p99" in microseconds. Each call is checked for the result the
// kernel gives when it runs it (an errno for most: the calls are chosen to
// change nothing), so a run where the call did something else fails
// instead of timing the wrong thing.
//
// The calls, as the sysbox trap agent sees them:
//
//	getpid          not trapped: the filter's cost alone
//	mknod-continue  mknod of a fifo: continued from the registers alone
//	mount-continue  a tmpfs on a missing dir: the type is read, then continued
//	umount-continue a dir that is no mount: resolved in the caller's view, continued
//	sysinfo         emulated: answered from the container's views
//	procfs-mount    emulated: a new procfs with the views, masks and
//	                read-only paths (unmounted after each, untimed)
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

const (
	existing = "/tmp/trapcall-file" // made first: mknod fails with EEXIST
	missing  = "/trapcall-missing"  // never made: mount fails with ENOENT
	notMount = "/tmp"               // a dir of the rootfs: umount fails with EINVAL
	procDir  = "/tmp/trapcall-proc" // where the procfs goes
)

type call struct {
	name string
	many bool // a cheap call: -n iterations, else -m
	run  func() error
	want unix.Errno // 0: success
}

var calls = []call{
	{"getpid", true, func() error { unix.Getpid(); return nil }, 0},
	{"mknod-continue", true, func() error { return unix.Mknod(existing, unix.S_IFIFO|0o644, 0) }, unix.EEXIST},
	{"mount-continue", true, func() error { return unix.Mount("none", missing, "tmpfs", 0, "") }, unix.ENOENT},
	{"umount-continue", true, func() error { return unix.Unmount(notMount, 0) }, unix.EINVAL},
	{"sysinfo", true, func() error { var si unix.Sysinfo_t; return unix.Sysinfo(&si) }, 0},
	{"procfs-mount", false, func() error {
		return unix.Mount("proc", procDir, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
	}, 0},
}

func main() {
	n := flag.Int("n", 20000, "iterations of a cheap call")
	m := flag.Int("m", 500, "iterations of a procfs mount")
	flag.Parse()
	// One thread for the whole run: no migration between the timed calls.
	runtime.LockOSThread()
	if err := setup(); err != nil {
		fmt.Fprintln(os.Stderr, "trapcall:", err)
		os.Exit(1)
	}
	names := flag.Args()
	if len(names) == 0 {
		for _, c := range calls {
			names = append(names, c.name)
		}
	}
	for _, name := range names {
		i := slices.IndexFunc(calls, func(c call) bool { return c.name == name })
		if i < 0 {
			fmt.Fprintf(os.Stderr, "trapcall: unknown call %q\n", name)
			os.Exit(2)
		}
		c := calls[i]
		iters := *m
		if c.many {
			iters = *n
		}
		p50, p99, err := measure(c, iters)
		if err != nil {
			fmt.Fprintf(os.Stderr, "trapcall: %s: %v\n", c.name, err)
			os.Exit(1)
		}
		fmt.Printf("%s %.2f %.2f\n", c.name, p50, p99)
	}
}

func setup() error {
	fd, err := unix.Open(existing, unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return err
	}
	unix.Close(fd)
	if err := os.MkdirAll(procDir, 0o755); err != nil {
		return err
	}
	_, err = os.Stat(missing)
	if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s must not exist: %v", missing, err)
	}
	return nil
}

// measure times iters calls after a warm-up and returns p50 and p99 in µs.
func measure(c call, iters int) (float64, float64, error) {
	warm := max(iters/100, 10)
	times := make([]time.Duration, 0, iters)
	for i := range warm + iters {
		t0 := time.Now()
		err := c.run()
		d := time.Since(t0)
		if err := check(err, c.want); err != nil {
			return 0, 0, err
		}
		if c.name == "procfs-mount" {
			if err := unix.Unmount(procDir, unix.MNT_DETACH); err != nil {
				return 0, 0, fmt.Errorf("unmount %s: %w", procDir, err)
			}
		}
		if i >= warm {
			times = append(times, d)
		}
	}
	slices.Sort(times)
	p := func(q float64) float64 { return float64(times[int(q*float64(len(times)-1))].Nanoseconds()) / 1000 }
	return p(0.5), p(0.99), nil
}

func check(err error, want unix.Errno) error {
	if want == 0 {
		return err
	}
	if !errors.Is(err, want) {
		return fmt.Errorf("got %v, want %v (the call must fail the same way in every container)", err, want)
	}
	return nil
}
