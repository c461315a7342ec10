package trap

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Benchmarks run inside the container-like child (with and without the
// filter) and report percentiles of the per-call latency: a Go benchmark's
// mean hides the tail, and the filter cannot be removed from the benchmark
// process itself. Run them with
//
//	go test -tags "seccomp netgo osusergo" -run '^$' -bench . ./trap/
//
// Each reports p50/p90/p99 in ns; bench/trap.sh (make bench) prints the
// table with the added latencies and ratios against runc.

// benchCall is one call to time; the returned duration is what counts.
type benchCall func() (time.Duration, error)

func benchFn(o op) (benchCall, error) {
	timed := func(f func() error) benchCall {
		return func() (time.Duration, error) {
			t0 := time.Now()
			err := f()
			return time.Since(t0), err
		}
	}
	expect := func(want unix.Errno, f func() error) benchCall {
		return timed(func() error {
			if err := f(); !errors.Is(err, want) {
				return fmt.Errorf("got %v, want %v", err, want)
			}
			return nil
		})
	}
	switch o.Args[0] {
	case "getppid":
		return timed(func() error { unix.Getppid(); return nil }), nil
	case "mount-continue":
		// A tmpfs on a missing dir: the agent reads the type and lets the
		// kernel go on, which fails the lookup.
		return expect(unix.ENOENT, func() error {
			return unix.Mount("none", "/nonexistent-trap-bench", "tmpfs", 0, "")
		}), nil
	case "mknod-continue":
		// A fifo: decided from the registers alone.
		return expect(unix.EEXIST, func() error { return unix.Mknod(o.Path, unix.S_IFIFO|0o644, 0) }), nil
	case "umount-continue":
		// A dir that is no mount: the agent resolves it in the caller's view.
		return expect(unix.EINVAL, func() error { return unix.Unmount(o.Path, 0) }), nil
	case "sysinfo":
		return timed(func() error { var si unix.Sysinfo_t; return unix.Sysinfo(&si) }), nil
	case "procmount":
		return func() (time.Duration, error) {
			t0 := time.Now()
			err := unix.Mount("proc", o.Path, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
			d := time.Since(t0)
			if err != nil {
				return d, err
			}
			return d, unix.Unmount(o.Path, unix.MNT_DETACH)
		}, nil
	}
	return nil, fmt.Errorf("unknown bench %q", o.Args[0])
}

// bench runs in the child: N timed calls after a warm-up; p50, p90, p99 and
// mean in ns.
func bench(o op) ([]int64, error) {
	fn, err := benchFn(o)
	if err != nil {
		return nil, err
	}
	for range min(o.N/10+1, 100) {
		if _, err := fn(); err != nil {
			return nil, err
		}
	}
	d := make([]int64, o.N)
	var sum int64
	for i := range d {
		t, err := fn()
		if err != nil {
			return nil, err
		}
		d[i] = int64(t)
		sum += d[i]
	}
	slices.Sort(d)
	pct := func(p float64) int64 { return d[min(len(d)-1, int(float64(len(d))*p))] }
	return []int64{pct(0.50), pct(0.90), pct(0.99), sum / int64(len(d))}, nil
}

type benchCase struct {
	name     string
	call     string
	filter   bool
	n        int
	needPath bool
}

var benchCases = []benchCase{
	{"getppid/nofilter", "getppid", false, 200000, false},
	{"getppid/filter", "getppid", true, 200000, false},
	{"mount-continue/nofilter", "mount-continue", false, 20000, false},
	{"mount-continue/trapped", "mount-continue", true, 20000, false},
	{"mknod-continue/nofilter", "mknod-continue", false, 20000, true},
	{"mknod-continue/trapped", "mknod-continue", true, 20000, true},
	{"umount-continue/nofilter", "umount-continue", false, 5000, true},
	{"umount-continue/trapped", "umount-continue", true, 5000, true},
	{"sysinfo/nofilter", "sysinfo", false, 20000, false},
	{"sysinfo/trapped", "sysinfo", true, 5000, false},
	{"procmount/nofilter", "procmount", false, 1000, true},
	{"procmount/trapped", "procmount", true, 1000, true},
}

// runBench runs one case in a fresh child and returns p50, p90, p99, mean.
func runBench(e *env, c benchCase) []int64 {
	o := op{Op: "bench", Args: []string{c.call}, N: c.n}
	ops := []op{}
	if c.needPath {
		o.Path = filepath.Join(e.dir, "work", "bench")
		mk := op{Op: "mkdir", Path: o.Path}
		if c.call == "mknod-continue" {
			mk = op{Op: "mknod", Path: o.Path, Mode: unix.S_IFIFO | 0o644}
		}
		ops = append(ops, mk)
	}
	ops = append(ops, o)
	r := e.runSpec(childSpec{NoFilter: !c.filter, Ops: ops})
	last := r[len(r)-1]
	if last.Errno != 0 {
		e.t.Fatalf("%s: errno %d %s", c.name, last.Errno, last.Out)
	}
	return last.Nums
}

func BenchmarkTrap(b *testing.B) {
	e := newEnv(b)
	for _, c := range benchCases {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				// One child per case, whatever b.N: the child loops.
			}
			p := runBench(e, c)
			b.ReportMetric(float64(p[0]), "p50-ns")
			b.ReportMetric(float64(p[1]), "p90-ns")
			b.ReportMetric(float64(p[2]), "p99-ns")
		})
	}
}
