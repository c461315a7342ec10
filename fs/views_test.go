package fs

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sysbox-dev/sysbox/internal/cgview"
)

const hostMeminfo = `MemTotal:        8000000 kB
MemFree:         4000000 kB
MemAvailable:    6000000 kB
Buffers:          100000 kB
Cached:          2000000 kB
SwapCached:            0 kB
Active:          1500000 kB
Inactive:        1000000 kB
SwapTotal:       2000000 kB
SwapFree:        2000000 kB
Shmem:             10000 kB
SReclaimable:     300000 kB
Committed_AS:    1000000 kB
VmallocTotal:   34359738367 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
`

const mib = 1 << 20

// meminfoMap parses meminfo text into kB values.
func meminfoMap(t *testing.T, b []byte) map[string]uint64 {
	t.Helper()
	m := map[string]uint64{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			t.Fatalf("bad meminfo line %q", line)
		}
		f := strings.Fields(v)
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			t.Fatalf("bad meminfo line %q", line)
		}
		m[k] = n
	}
	return m
}

func TestRenderMeminfo(t *testing.T) {
	tests := []struct {
		name      string
		mem       cgview.Memory
		ok        bool
		wantTotal uint64
		wantSwap  uint64
	}{
		{"no cgroup yet", cgview.Memory{}, false, 8000000, 2000000},
		{"no limit", cgview.Memory{Limit: cgview.Unlimited, Usage: 100 * mib}, true, 8000000, 2000000},
		{"limit above host", cgview.Memory{Limit: 64 << 30, Usage: 100 * mib}, true, 8000000, 2000000},
		{"512m, v1 with swap", cgview.Memory{
			Limit: 512 * mib, Usage: 320 * mib, SwapLimit: 512 * mib, SwapUsage: 16 * mib,
			Anon: 100 * mib, File: 200 * mib, ActiveFile: 80 * mib, InactiveFile: 120 * mib,
		}, true, 524288, 524288},
		{"512m, v2 no swap allowed, slab", cgview.Memory{
			Limit: 512 * mib, Usage: 320 * mib, SwapLimit: 0,
			Anon: 100 * mib, File: 200 * mib, ActiveFile: 80 * mib, InactiveFile: 120 * mib,
			SlabReclaimable: 4 * mib, SlabUnrecl: 2 * mib, KernelStack: mib, PageTables: 2 * mib,
		}, true, 524288, 0},
		{"usage above limit (racing reads), cache beyond usage", cgview.Memory{
			Limit: 256 * mib, Usage: 300 * mib, SwapLimit: cgview.Unlimited, File: 400 * mib, SlabReclaimable: 50 * mib,
		}, true, 262144, 2000000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := renderMeminfo([]byte(hostMeminfo), tt.mem, tt.ok)
			m := meminfoMap(t, out)
			if m["MemTotal"] != tt.wantTotal {
				t.Errorf("MemTotal = %d, want %d", m["MemTotal"], tt.wantTotal)
			}
			if m["SwapTotal"] != tt.wantSwap {
				t.Errorf("SwapTotal = %d, want %d", m["SwapTotal"], tt.wantSwap)
			}
			if got, want := strings.Count(string(out), "\n"), strings.Count(hostMeminfo, "\n"); got != want {
				t.Errorf("%d lines, want the host's %d", got, want)
			}
			// What `free` computes must make sense.
			buffCache := m["Buffers"] + m["Cached"] + m["SReclaimable"]
			if m["MemFree"]+buffCache > m["MemTotal"] {
				t.Errorf("free %d + buff/cache %d > total %d: used would be negative", m["MemFree"], buffCache, m["MemTotal"])
			}
			if m["MemAvailable"] > m["MemTotal"] || m["MemFree"] > m["MemAvailable"] {
				t.Errorf("free %d <= available %d <= total %d does not hold", m["MemFree"], m["MemAvailable"], m["MemTotal"])
			}
			if m["SwapFree"] > m["SwapTotal"] {
				t.Errorf("SwapFree %d > SwapTotal %d", m["SwapFree"], m["SwapTotal"])
			}
			if m["VmallocTotal"] != 34359738367 || m["Hugepagesize"] != 2048 {
				t.Error("machine-describing lines changed")
			}
		})
	}
	// Scaled lines keep the container's share of the host's.
	out := meminfoMap(t, renderMeminfo([]byte(hostMeminfo), cgview.Memory{Limit: 800000 * 1024, Usage: 1024, SwapLimit: cgview.Unlimited}, true))
	if out["Committed_AS"] != 100000 {
		t.Errorf("Committed_AS = %d, want a tenth of the host's", out["Committed_AS"])
	}
	if out["MemFree"] != 799999 || out["Buffers"] != 0 {
		t.Errorf("MemFree %d Buffers %d, want 799999 and 0", out["MemFree"], out["Buffers"])
	}
	if !bytes.Contains(renderMeminfo([]byte(hostMeminfo), cgview.Memory{Limit: 512 * mib, Usage: mib}, true), []byte("MemTotal:         524288 kB\n")) {
		t.Error("MemTotal line not in the kernel's format")
	}
}

func TestRenderSwaps(t *testing.T) {
	host := []byte("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/dev/vdb                                partition\t2000000\t\t0\t\t-2\n")
	if got := renderSwaps(host, []byte(hostMeminfo), cgview.Memory{}, false); !bytes.Equal(got, host) {
		t.Errorf("unstarted: got %q, want the host's", got)
	}
	got := string(renderSwaps(host, []byte(hostMeminfo), cgview.Memory{Limit: 512 * mib, Usage: mib, SwapLimit: 256 * mib, SwapUsage: 16 * mib}, true))
	lines := strings.Split(strings.TrimSpace(got), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "Filename") {
		t.Fatalf("got %q", got)
	}
	f := strings.Fields(lines[1])
	if f[0] != "none" || f[1] != "virtual" || f[2] != "262144" || f[3] != "16384" {
		t.Errorf("swap line %q, want none virtual 262144 16384", lines[1])
	}
	got = string(renderSwaps(host, []byte(hostMeminfo), cgview.Memory{Limit: 512 * mib, SwapLimit: 0}, true))
	if strings.Count(got, "\n") != 1 {
		t.Errorf("no swap allowed: got %q, want the header only", got)
	}
}

const hostCPUInfo = `processor	: 0
vendor_id	: GenuineIntel
core id		: 0

processor	: 1
vendor_id	: GenuineIntel
core id		: 1

processor	: 2
vendor_id	: GenuineIntel
core id		: 2

processor	: 3
vendor_id	: GenuineIntel
core id		: 3

`

func TestRenderCpuinfo(t *testing.T) {
	tests := []struct {
		visible []int
		want    []string // core ids, in order, numbered from 0
	}{
		{[]int{0, 1, 2, 3}, []string{"0", "1", "2", "3"}},
		{[]int{2}, []string{"2"}},
		{[]int{1, 3}, []string{"1", "3"}},
	}
	for _, tt := range tests {
		out := string(renderCpuinfo([]byte(hostCPUInfo), tt.visible))
		blocks := strings.Split(strings.TrimSpace(out), "\n\n")
		if len(blocks) != len(tt.want) {
			t.Errorf("visible %v: %d processors, want %d:\n%s", tt.visible, len(blocks), len(tt.want), out)
			continue
		}
		for i, b := range blocks {
			if !strings.HasPrefix(b, "processor\t: "+strconv.Itoa(i)+"\n") || !strings.HasSuffix(b, "core id\t\t: "+tt.want[i]) {
				t.Errorf("visible %v: block %d = %q", tt.visible, i, b)
			}
		}
	}
	odd := []byte("no processor blocks here\n")
	if got := renderCpuinfo(odd, []int{0}); !bytes.Equal(got, odd) {
		t.Errorf("unparsable: got %q", got)
	}
}

func TestCPUTimes(t *testing.T) {
	up := 100 * time.Second
	tests := []struct {
		name    string
		visible []int
		u       cgview.CPUUsage
		want    []cpuTime
	}{
		{
			"v2 even split",
			[]int{0, 1},
			cgview.CPUUsage{Total: 4 * time.Second, User: 3 * time.Second, System: time.Second},
			[]cpuTime{{150, 50, 9800}, {150, 50, 9800}},
		},
		{
			"v1 per cpu",
			[]int{1, 2},
			cgview.CPUUsage{
				Total: 3 * time.Second, User: 3 * time.Second,
				PerCPU: []time.Duration{0, time.Second, 2 * time.Second},
			},
			[]cpuTime{{100, 0, 9900}, {200, 0, 9800}},
		},
		{
			"v1 usage on a hidden cpu folds in",
			[]int{0},
			cgview.CPUUsage{
				Total: 3 * time.Second, System: 3 * time.Second,
				PerCPU: []time.Duration{time.Second, 2 * time.Second},
			},
			[]cpuTime{{0, 300, 9700}},
		},
		{
			"v1 per-cpu user/sys",
			[]int{0},
			cgview.CPUUsage{
				Total: 2 * time.Second, User: time.Second, System: time.Second,
				PerCPU: []time.Duration{2 * time.Second}, PerCPUUser: []time.Duration{500 * time.Millisecond}, PerCPUSystem: []time.Duration{1500 * time.Millisecond},
			},
			[]cpuTime{{50, 150, 9800}},
		},
		{
			"busier than uptime: idle stays 0",
			[]int{0},
			cgview.CPUUsage{Total: 200 * time.Second, User: 200 * time.Second},
			[]cpuTime{{20000, 0, 0}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := cpuTimes(tt.visible, tt.u, up)
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("cpu%d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

const hostStat = `cpu  1000 10 500 90000 20 0 5 0 0 0
cpu0 500 5 250 45000 10 0 3 0 0 0
cpu1 500 5 250 45000 10 0 2 0 0 0
intr 12345 0 0
ctxt 99999
btime 1700000000
processes 4242
procs_running 3
procs_blocked 1
softirq 100 0 0
`

func TestRenderStat(t *testing.T) {
	out := string(renderStat([]byte(hostStat), []cpuTime{{10, 5, 100}, {20, 5, 90}}, 2, 0))
	want := `cpu  30 0 10 190 0 0 0 0 0 0
cpu0 10 0 5 100 0 0 0 0 0 0
cpu1 20 0 5 90 0 0 0 0 0 0
intr 12345 0 0
ctxt 99999
btime 1700000000
processes 4242
procs_running 2
procs_blocked 0
softirq 100 0 0
`
	if out != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
	if got := string(renderStat([]byte(hostStat), []cpuTime{{1, 1, 1}}, -1, 0)); !strings.Contains(got, "procs_running 3\n") {
		t.Errorf("unknown task counts should keep the host's: %s", got)
	}
	if got := renderStat([]byte(hostStat), nil, 0, 0); string(got) != hostStat {
		t.Error("no times: want the host's stat")
	}
}

func TestRenderDiskstats(t *testing.T) {
	host := []byte(`   8       0 sda 100 2 800 50 200 3 1600 70 0 90 120 0 0 0 0 0 0
   8       1 sda1 10 0 80 5 20 0 160 7 0 9 12 0 0 0 0 0 0
 253       0 dm-0 1 0 8 1 1 0 8 1 0 1 1
`)
	io := []cgview.IOStat{
		{Major: 8, Minor: 0, ReadBytes: 4096, WriteBytes: 8192, Reads: 1, Writes: 2},
		{Major: 8, Minor: 1}, // nothing done: left out
		{Major: 253, Minor: 0, ReadBytes: 512, Reads: 1},
		{Major: 9, Minor: 9, Reads: 5}, // unknown to the host: left out
	}
	want := "   8       0 sda 1 0 8 0 2 0 16 0 0 0 0 0 0 0 0 0 0\n" +
		" 253       0 dm-0 1 0 1 0 0 0 0 0 0 0 0\n"
	if got := string(renderDiskstats(host, io)); got != want {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
}

func TestUptimeAndLoad(t *testing.T) {
	if got := string(renderUptime(90*time.Second+500*time.Millisecond, 170*time.Second)); got != "90.50 170.00\n" {
		t.Errorf("uptime %q", got)
	}
	if got := containerIdle(10*time.Second, 2, 5*time.Second); got != 15*time.Second {
		t.Errorf("idle = %v, want 15s", got)
	}
	if got := containerIdle(10*time.Second, 1, 50*time.Second); got != 0 {
		t.Errorf("idle = %v, want 0", got)
	}
	var l loadAvg
	for range 12 { // a minute of 2 runnable tasks
		l.sample(2, 0, 10, 77)
	}
	f := strings.Fields(string(l.render()))
	one, _ := strconv.ParseFloat(f[0], 64)
	fifteen, _ := strconv.ParseFloat(f[2], 64)
	// After one minute the 1-minute average is at 1-1/e of the way.
	if one < 1.2 || one > 1.3 || fifteen >= one || f[3] != "2/10" || f[4] != "77" {
		t.Errorf("loadavg %q", l.render())
	}
	if got := string(cpuRange(1)); got != "0\n" {
		t.Errorf("cpuRange(1) = %q", got)
	}
	if got := string(cpuRange(4)); got != "0-3\n" {
		t.Errorf("cpuRange(4) = %q", got)
	}
}

func TestParseProcStat(t *testing.T) {
	line := []byte("1234 (my (odd) proc) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 10\n")
	st, ok := parseProcStat(line)
	if !ok || st.state != 'S' || st.startTime != 98765 {
		t.Errorf("got %+v, %v", st, ok)
	}
	if _, ok := parseProcStat([]byte("garbage")); ok {
		t.Error("garbage parsed")
	}
}
