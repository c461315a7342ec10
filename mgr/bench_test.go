package mgr

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sysbox-dev/sysbox/internal/ipc"
)

// reportLatency adds p50 and p99 of ds to the benchmark's output.
func reportLatency(b *testing.B, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	b.ReportMetric(float64(ds[len(ds)/2].Nanoseconds())/1e3, "p50-us")
	b.ReportMetric(float64(ds[len(ds)*99/100].Nanoseconds())/1e3, "p99-us")
}

// reportCommits closes the stores (the last commit) and adds how many
// allocations each bbolt transaction carried, on average.
func reportCommits(b *testing.B, ms ...*manager) {
	var commits uint64
	for _, m := range ms {
		if err := m.st.close(); err != nil {
			b.Fatal(err)
		}
		commits += m.st.commits.Load()
	}
	if commits > 0 {
		b.ReportMetric(float64(b.N)/float64(commits), "allocs/commit")
	}
}

// BenchmarkAllocate is one allocation at a time: the in-memory search and
// the journal write (no fsync), while the committer applies the journal to
// bbolt in fsynced transactions on the disk that holds the test's temp dir
// (set TMPDIR to measure another).
func BenchmarkAllocate(b *testing.B) {
	m := newTestManager(b, filepath.Join(b.TempDir(), "mgr.db"), 1<<16)
	ms := []*manager{m}
	ds := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i > 0 && i%(1<<16) == 0 {
			b.StopTimer()
			m = newTestManager(b, filepath.Join(b.TempDir(), "mgr.db"), 1<<16)
			ms = append(ms, m)
			b.StartTimer()
		}
		t0 := time.Now()
		if _, _, err := m.allocate(record{ID: strconv.Itoa(i)}, BlockSize); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(t0))
	}
	b.StopTimer()
	reportLatency(b, ds)
	reportCommits(b, ms...)
}

// BenchmarkAllocateParallel is many containers starting at once: concurrent
// allocations share the journal and the committer's transactions.
func BenchmarkAllocateParallel(b *testing.B) {
	m := newTestManager(b, filepath.Join(b.TempDir(), "mgr.db"), 1<<16)
	var mu sync.Mutex
	var ds []time.Duration
	var n int64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var local []time.Duration
		for pb.Next() {
			mu.Lock()
			n++
			id := strconv.FormatInt(n, 10)
			mu.Unlock()
			t0 := time.Now()
			if _, _, err := m.allocate(record{ID: id}, BlockSize); err != nil {
				b.Error(err)
				return
			}
			local = append(local, time.Since(t0))
		}
		mu.Lock()
		ds = append(ds, local...)
		mu.Unlock()
	})
	b.StopTimer()
	reportLatency(b, ds)
	reportCommits(b, m)
}

// BenchmarkRegister is the whole register call over the socket: allocation,
// seven special dirs made, the record written twice.
func BenchmarkRegister(b *testing.B) {
	needRoot(b)
	c := testCmd(b)
	start(b, c)
	bd, r := bundle(b, "b")
	ds := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := register(b, c.Socket, ipc.MgrRegister{ID: fmt.Sprint("r", i), Bundle: bd, Rootfs: r}); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(t0))
		if i%4000 == 3999 {
			b.StopTimer()
			for j := i - 3999; j <= i; j++ {
				_, _ = ipc.Call[ipc.MgrID, ipc.Empty](context.Background(), c.Socket, ipc.MgrRemoveMethod, ipc.MgrID{ID: fmt.Sprint("r", j)})
			}
			b.StartTimer()
		}
	}
	b.StopTimer()
	reportLatency(b, ds)
}

// BenchmarkDaemonRSS200 runs the daemon as its own process, registers 200
// containers and reports its resident memory; the loop measures status.
func BenchmarkDaemonRSS200(b *testing.B) {
	needRoot(b)
	c := testCmd(b)
	js, _ := json.Marshal(c)
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), "SYSBOX_MGR_TEST_CMD="+string(js))
	logf := filepath.Join(b.TempDir(), "mgr.log")
	lf, err := os.Create(logf)
	if err != nil {
		b.Fatal(err)
	}
	defer lf.Close()
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	waitSocket(b, c.Socket, logf)
	rss0 := rssKiB(b, cmd.Process.Pid)
	for i := range 200 {
		bd, r := bundle(b, fmt.Sprint("c", i))
		if _, err := register(b, c.Socket, ipc.MgrRegister{ID: fmt.Sprintf("%064d", i), Bundle: bd, Rootfs: r}); err != nil {
			b.Fatal(err)
		}
	}
	rss200 := rssKiB(b, cmd.Process.Pid)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if st := status(b, c.Socket); len(st.Containers) != 200 {
			b.Fatalf("%d containers", len(st.Containers))
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(rss0), "rss0-KiB")
	b.ReportMetric(float64(rss200), "rss200-KiB")
	b.ReportMetric(float64(rssKiB(b, cmd.Process.Pid)), "rss-after-status-KiB")
}

func rssKiB(b *testing.B, pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
