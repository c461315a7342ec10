package cgview

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// writeTree creates files (path relative to root -> content) under root.
func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

const v1MemStat = `cache 104857600
rss 52428800
rss_huge 0
shmem 1048576
mapped_file 2097152
dirty 4096
writeback 0
swap 8388608
inactive_anon 10485760
active_anon 41943040
inactive_file 62914560
active_file 41943040
unevictable 0
hierarchical_memory_limit 536870912
hierarchical_memsw_limit 1073741824
total_cache 209715200
total_rss 104857600
total_rss_huge 2097152
total_shmem 1048576
total_mapped_file 2097152
total_dirty 8192
total_writeback 0
total_swap 16777216
total_inactive_anon 20971520
total_active_anon 83886080
total_inactive_file 125829120
total_active_file 83886080
total_unevictable 0
`

const v2MemStat = `anon 104857600
file 209715200
kernel 10485760
kernel_stack 1048576
pagetables 2097152
sock 0
shmem 1048576
file_mapped 2097152
file_dirty 8192
file_writeback 0
anon_thp 2097152
inactive_anon 20971520
active_anon 83886080
inactive_file 125829120
active_file 83886080
unevictable 0
slab_reclaimable 4194304
slab_unreclaimable 2097152
slab 6291456
`

func TestMemory(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		// v1: limits come from memory.stat's hierarchical_* lines.
		"v1/memory/ct/memory.stat":             v1MemStat,
		"v1/memory/ct/memory.usage_in_bytes":   "335544320\n",
		"v1/memory/free/memory.stat":           "cache 0\nrss 4096\nhierarchical_memory_limit 9223372036854771712\n",
		"v1/memory/free/memory.usage_in_bytes": "4096\n",
		// v2: the parent's limit is lower than the child's.
		"v2/memory.max":                    "max\n",
		"v2/parent/memory.max":             "268435456\n",
		"v2/parent/memory.swap.max":        "max\n",
		"v2/parent/ct/memory.max":          "536870912\n",
		"v2/parent/ct/memory.swap.max":     "134217728\n",
		"v2/parent/ct/memory.swap.current": "1048576\n",
		"v2/parent/ct/memory.current":      "335544320\n",
		"v2/parent/ct/memory.stat":         v2MemStat,
		"v2/noswap/memory.max":             "max\n",
		"v2/noswap/memory.current":         "4096\n",
		"v2/noswap/memory.stat":            "anon 4096\n",
	})
	tests := []struct {
		name string
		dirs map[string]string
		want Memory
	}{
		{"v1 limited with swap", map[string]string{"memory": root + "/v1/memory/ct"}, Memory{
			Limit: 536870912, Usage: 335544320, SwapLimit: 536870912, SwapUsage: 16777216,
			Anon: 104857600, File: 209715200, Shmem: 1048576, Mapped: 2097152, Dirty: 8192, AnonHuge: 2097152,
			ActiveAnon: 83886080, InactiveAnon: 20971520, ActiveFile: 83886080, InactiveFile: 125829120,
		}},
		{"v1 unlimited", map[string]string{"memory": root + "/v1/memory/free"}, Memory{
			Limit: Unlimited, Usage: 4096, SwapLimit: Unlimited, Anon: 4096,
		}},
		{"v2 parent limit wins", map[string]string{"": root + "/v2/parent/ct"}, Memory{
			Limit: 268435456, Usage: 335544320, SwapLimit: 134217728, SwapUsage: 1048576,
			Anon: 104857600, File: 209715200, Shmem: 1048576, Mapped: 2097152, Dirty: 8192, AnonHuge: 2097152,
			ActiveAnon: 83886080, InactiveAnon: 20971520, ActiveFile: 83886080, InactiveFile: 125829120,
			SlabReclaimable: 4194304, SlabUnrecl: 2097152, KernelStack: 1048576, PageTables: 2097152,
		}},
		{"v2 no swap accounting", map[string]string{"": root + "/v2/noswap"}, Memory{
			Limit: Unlimited, Usage: 4096, SwapLimit: Unlimited, Anon: 4096,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := New(tt.dirs).Memory()
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
	if _, err := New(map[string]string{"cpu": root}).Memory(); !errors.Is(err, ErrNoController) {
		t.Errorf("no memory controller: err = %v, want ErrNoController", err)
	}
}

func TestCPU(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"v1/cpuset/ct/cpuset.cpus":           "0-3\n",
		"v1/cpuset/ct/cpuset.effective_cpus": "1-2\n",
		"v1/cpu/cpu.cfs_quota_us":            "-1\n",
		"v1/cpu/cpu.cfs_period_us":           "100000\n",
		"v1/cpu/ct/cpu.cfs_quota_us":         "150000\n",
		"v1/cpu/ct/cpu.cfs_period_us":        "100000\n",
		"v1/cpu/free/cpu.cfs_quota_us":       "-1\n",
		"v1/cpu/free/cpu.cfs_period_us":      "100000\n",
		"v1/cpuacct/ct/cpuacct.usage":        "3000000000\n",
		"v1/cpuacct/ct/cpuacct.usage_percpu": "1000000000 2000000000 0 0\n",
		"v1/cpuacct/ct/cpuacct.stat":         "user 200\nsystem 100\n",
		"v2/cpu.max":                         "50000 100000\n",
		"v2/ct/cpu.max":                      "max 100000\n",
		"v2/ct/cpuset.cpus.effective":        "0,2\n",
		"v2/ct/cpu.stat":                     "usage_usec 3000000\nuser_usec 2000000\nsystem_usec 1000000\n",
		"v2/nocpuset/cpu.max":                "max 100000\n",
	})
	v1 := New(map[string]string{
		"cpuset": root + "/v1/cpuset/ct", "cpu": root + "/v1/cpu/ct", "cpuacct": root + "/v1/cpuacct/ct",
	})
	if got, err := v1.Cpuset(); err != nil || !reflect.DeepEqual(got, []int{1, 2}) {
		t.Errorf("v1 cpuset = %v, %v; want effective [1 2]", got, err)
	}
	if got, err := v1.Quota(); err != nil || got != 1.5 {
		t.Errorf("v1 quota = %v, %v; want 1.5", got, err)
	}
	// A hybrid host also reports the controller-less cgroup2 dir (which
	// need not exist): the v1 controllers still hold the limits.
	hybrid := New(map[string]string{
		"cpuset": root + "/v1/cpuset/ct", "cpu": root + "/v1/cpu/ct", "cpuacct": root + "/v1/cpuacct/ct",
		"": root + "/unified/ct", "name=systemd": root + "/systemd/ct",
	})
	if hybrid.V2() {
		t.Error("hybrid cgroup taken for v2")
	}
	if got, err := hybrid.Quota(); err != nil || got != 1.5 {
		t.Errorf("hybrid quota = %v, %v; want v1's 1.5", got, err)
	}
	if got, err := New(map[string]string{"cpu": root + "/v1/cpu/free"}).Quota(); err != nil || got != 0 {
		t.Errorf("v1 no quota = %v, %v; want 0", got, err)
	}
	u, err := v1.CPUUsage()
	if err != nil {
		t.Fatal(err)
	}
	want := CPUUsage{
		Total: 3 * time.Second, User: 2 * time.Second, System: time.Second,
		PerCPU: []time.Duration{time.Second, 2 * time.Second, 0, 0},
	}
	if !reflect.DeepEqual(u, want) {
		t.Errorf("v1 usage = %+v, want %+v", u, want)
	}

	v2 := New(map[string]string{"": root + "/v2/ct"})
	if got, err := v2.Cpuset(); err != nil || !reflect.DeepEqual(got, []int{0, 2}) {
		t.Errorf("v2 cpuset = %v, %v", got, err)
	}
	// The parent's 0.5 CPU limit applies to the child with none.
	if got, err := v2.Quota(); err != nil || got != 0.5 {
		t.Errorf("v2 quota = %v, %v; want 0.5", got, err)
	}
	u, err = v2.CPUUsage()
	if err != nil {
		t.Fatal(err)
	}
	if want := (CPUUsage{Total: 3 * time.Second, User: 2 * time.Second, System: time.Second}); !reflect.DeepEqual(u, want) {
		t.Errorf("v2 usage = %+v, want %+v", u, want)
	}
	if _, err := New(map[string]string{"": root + "/v2/nocpuset"}).Cpuset(); !errors.Is(err, ErrNoController) {
		t.Errorf("v2 without cpuset: err = %v, want ErrNoController", err)
	}
}

func TestVisibleCPUs(t *testing.T) {
	online := []int{0, 1, 2, 3, 4, 5, 6, 7}
	tests := []struct {
		name   string
		cpuset []int
		quota  float64
		want   []int
	}{
		{"no limits", nil, 0, online},
		{"cpuset", []int{2, 5}, 0, []int{2, 5}},
		{"quota rounds up", nil, 1.5, []int{0, 1}},
		{"quota below one CPU", nil, 0.2, []int{0}},
		{"exact quota", nil, 3, []int{0, 1, 2}},
		{"quota above cpuset", []int{3}, 4, []int{3}},
		{"both", []int{1, 3, 5, 7}, 2.5, []int{1, 3, 5}},
		{"offline cpuset cpu dropped", []int{7, 9}, 0, []int{7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := VisibleCPUs(online, tt.cpuset, tt.quota); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestList(t *testing.T) {
	tests := []struct {
		in   string
		want []int
		out  string
	}{
		{"0-3\n", []int{0, 1, 2, 3}, "0-3"},
		{"0,2,4-5", []int{0, 2, 4, 5}, "0,2,4-5"},
		{"7", []int{7}, "7"},
		{"3-4,0-1,1", []int{0, 1, 3, 4}, "0-1,3-4"},
		{"", nil, ""},
	}
	for _, tt := range tests {
		got, err := ParseList(tt.in)
		if err != nil || !reflect.DeepEqual(got, tt.want) && len(tt.want) > 0 {
			t.Errorf("ParseList(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
		if s := FormatList(got); s != tt.out {
			t.Errorf("FormatList(%v) = %q, want %q", got, s, tt.out)
		}
	}
	for _, bad := range []string{"a", "3-1", "-1", "1-"} {
		if _, err := ParseList(bad); err == nil {
			t.Errorf("ParseList(%q): no error", bad)
		}
	}
}

func TestIO(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"v1/blkio.throttle.io_service_bytes_recursive": "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Async 0\n8:0 Total 12288\n253:1 Read 512\n253:1 Write 0\nTotal 12800\n",
		"v1/blkio.throttle.io_serviced_recursive":      "8:0 Read 1\n8:0 Write 2\n8:0 Total 3\n253:1 Read 1\n253:1 Write 0\nTotal 4\n",
		"v1/blkio.throttle.io_service_bytes":           "8:0 Read 1\n",
		"v2/io.stat":                                   "253:1 rbytes=512 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n",
	})
	want := []IOStat{
		{Major: 8, Minor: 0, ReadBytes: 4096, WriteBytes: 8192, Reads: 1, Writes: 2},
		{Major: 253, Minor: 1, ReadBytes: 512, Reads: 1},
	}
	for name, dirs := range map[string]map[string]string{
		"v1": {"blkio": root + "/v1"},
		"v2": {"": root + "/v2"},
	} {
		got, err := New(dirs).IO()
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %+v, %v; want %+v", name, got, err, want)
		}
	}
}

func TestThreads(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"v1/pids/ct/tasks":            "10\n11\n",
		"v1/pids/ct/init.scope/tasks": "12\n",
		"v2/ct/cgroup.threads":        "20\n",
		"v2/ct/sub/cgroup.threads":    "21\n22\n",
		"v2/ct/sub/memory.max":        "max\n",
	})
	for _, tt := range []struct {
		dirs map[string]string
		want []int
	}{
		{map[string]string{"pids": root + "/v1/pids/ct", "memory": "/nonexistent"}, []int{10, 11, 12}},
		{map[string]string{"": root + "/v2/ct"}, []int{20, 21, 22}},
	} {
		got, err := New(tt.dirs).Threads()
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Threads(%v) = %v, %v; want %v", tt.dirs, got, err, tt.want)
		}
	}
}

func TestParseUint(t *testing.T) {
	for in, want := range map[string]uint64{"max": Unlimited, "-1": Unlimited, "9223372036854771712": Unlimited, "42": 42} {
		if got, err := parseUint(in); err != nil || got != want {
			t.Errorf("parseUint(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	if _, err := parseUint("x"); err == nil {
		t.Error("parseUint(x): no error")
	}
}

func TestView(t *testing.T) {
	const gib = 1 << 30
	host, hostSwap := uint64(8*gib), uint64(2*gib)
	tests := []struct {
		name string
		m    Memory
		ok   bool
		want MemView
	}{
		{"not started", Memory{}, false, MemView{Total: host, SwapTotal: hostSwap}},
		{"no limit", Memory{Limit: Unlimited, Usage: gib}, true, MemView{Total: host, SwapTotal: hostSwap}},
		{"limit above host", Memory{Limit: 16 * gib}, true, MemView{Total: host, SwapTotal: hostSwap}},
		{"512m no swap", Memory{
			Limit: gib / 2, Usage: gib / 4, File: gib / 8, ActiveFile: gib / 16, InactiveFile: gib / 16,
			SlabReclaimable: gib / 32, SwapLimit: 0,
		}, true, MemView{
			Limited: true, Total: gib / 2, Free: gib / 4, Cached: gib / 8, SReclaimable: gib / 32,
			Available: gib/4 + gib/8 + gib/32, SwapTotal: 0, SwapFree: 0,
		}},
		{"usage over the limit, cache over usage", Memory{
			Limit: gib, Usage: 2 * gib, File: 3 * gib, SlabReclaimable: gib, SwapLimit: Unlimited, SwapUsage: gib / 2,
		}, true, MemView{
			Limited: true, Total: gib, Free: 0, Cached: gib, SReclaimable: 0, Available: 0,
			SwapTotal: hostSwap, SwapFree: hostSwap - gib/2,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := View(host, hostSwap, tt.m, tt.ok)
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
			if got.Limited && got.Free+got.Cached+got.SReclaimable > got.Total {
				t.Errorf("free(1) would show negative used: %+v", got)
			}
		})
	}
}
