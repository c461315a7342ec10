package fs

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/sysbox-dev/sysbox/internal/cgview"
)

// The renderers here are pure: host file text and cgroup numbers in, file
// text out. The daemon gathers the inputs; tests feed fake ones.

// renderUptime writes /proc/uptime: seconds up, and seconds all CPUs idled.
func renderUptime(up, idle time.Duration) []byte {
	return fmt.Appendf(nil, "%.2f %.2f\n", up.Seconds(), idle.Seconds())
}

// containerIdle is the idle time of a container: its CPUs' time since it
// started less what its tasks used.
func containerIdle(up time.Duration, ncpu int, used time.Duration) time.Duration {
	idle := up*time.Duration(ncpu) - used
	return max(idle, 0)
}

// memView is the container's memory in kB, as the procfs files print it.
func memView(hostMeminfo []byte, m cgview.Memory, ok bool) (v cgview.MemView, hostTotalKB uint64) {
	hv := meminfoValues(hostMeminfo, "MemTotal", "SwapTotal")
	v = cgview.View(hv[0]*1024, hv[1]*1024, m, ok)
	for _, p := range []*uint64{&v.Total, &v.Free, &v.Available, &v.Cached, &v.SReclaimable, &v.SUnreclaim, &v.SwapTotal, &v.SwapFree} {
		*p /= 1024
	}
	return v, hv[0]
}

// meminfoKeep are host lines that describe the machine, not memory use:
// shown as they are.
var meminfoKeep = map[string]bool{
	"VmallocTotal": true, "VmallocUsed": true, "VmallocChunk": true, "Percpu": true,
	"HardwareCorrupted": true, "Hugepagesize": true, "Hugetlb": true,
	"DirectMap4k": true, "DirectMap2M": true, "DirectMap1G": true,
}

// meminfoValues parses the kB values of /proc/meminfo.
func meminfoValues(b []byte, keys ...string) []uint64 {
	out := make([]uint64, len(keys))
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		k, rest, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			continue
		}
		for i, want := range keys {
			if string(k) == want {
				f := bytes.Fields(rest)
				if len(f) > 0 {
					out[i], _ = strconv.ParseUint(string(f[0]), 10, 64)
				}
			}
		}
	}
	return out
}

// renderMeminfo writes /proc/meminfo: the host's lines, with what the cgroup
// accounts replaced by its numbers and the rest of the usage lines scaled to
// the container's share of the machine.
func renderMeminfo(hostText []byte, m cgview.Memory, ok bool) []byte {
	v, hostTotal := memView(hostText, m, ok)
	if !v.Limited {
		return hostText
	}
	ratio := float64(v.Total) / float64(hostTotal)
	kb := func(x uint64) uint64 { return x / 1024 }
	set := map[string]uint64{
		"MemTotal": v.Total, "MemFree": v.Free, "MemAvailable": v.Available,
		"Buffers": 0, "Cached": v.Cached, "SwapCached": 0,
		"Active":         kb(m.ActiveAnon + m.ActiveFile),
		"Inactive":       kb(m.InactiveAnon + m.InactiveFile),
		"Active(anon)":   kb(m.ActiveAnon),
		"Inactive(anon)": kb(m.InactiveAnon),
		"Active(file)":   kb(m.ActiveFile),
		"Inactive(file)": kb(m.InactiveFile),
		"Unevictable":    kb(m.Unevictable),
		"SwapTotal":      v.SwapTotal, "SwapFree": v.SwapFree,
		"Zswap": 0, "Zswapped": 0,
		"Dirty": kb(m.Dirty), "Writeback": kb(m.Writeback),
		"AnonPages": kb(m.Anon), "Mapped": kb(m.Mapped), "Shmem": kb(m.Shmem),
		"KReclaimable": v.SReclaimable, "Slab": v.SReclaimable + v.SUnreclaim,
		"SReclaimable": v.SReclaimable, "SUnreclaim": v.SUnreclaim,
		"AnonHugePages": kb(m.AnonHuge),
	}
	// v1 does not account these per cgroup; then the scaled host value stands.
	if m.KernelStack > 0 {
		set["KernelStack"] = kb(m.KernelStack)
	}
	if m.PageTables > 0 {
		set["PageTables"] = kb(m.PageTables)
	}
	out := make([]byte, 0, len(hostText))
	for b := hostText; len(b) > 0; {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		k, rest, found := bytes.Cut(line, []byte{':'})
		if !found {
			out = append(append(out, line...), '\n')
			continue
		}
		key := string(k)
		if val, ok := set[key]; ok {
			out = appendMeminfoLine(out, key, val)
			continue
		}
		f := bytes.Fields(rest)
		if meminfoKeep[key] || len(f) != 2 || string(f[1]) != "kB" {
			out = append(append(out, line...), '\n')
			continue
		}
		n, err := strconv.ParseUint(string(f[0]), 10, 64)
		if err != nil {
			out = append(append(out, line...), '\n')
			continue
		}
		out = appendMeminfoLine(out, key, uint64(math.Round(float64(n)*ratio)))
	}
	return out
}

// appendMeminfoLine writes a line the way the kernel's show_val_kb does.
func appendMeminfoLine(out []byte, key string, kb uint64) []byte {
	return fmt.Appendf(out, "%-16s%8d kB\n", key+":", kb)
}

// renderSwaps writes /proc/swaps: the container's swap as one virtual
// device, agreeing with meminfo's SwapTotal and SwapFree.
func renderSwaps(hostSwaps, hostMeminfo []byte, m cgview.Memory, ok bool) []byte {
	v, _ := memView(hostMeminfo, m, ok)
	if !v.Limited {
		return hostSwaps
	}
	header, _, _ := bytes.Cut(hostSwaps, []byte{'\n'})
	out := append(append([]byte{}, header...), '\n')
	if v.SwapTotal > 0 {
		out = fmt.Appendf(out, "%-40s%-16s%-16d%-16d%d\n", "none", "virtual", v.SwapTotal, v.SwapTotal-v.SwapFree, 0)
	}
	return out
}

// renderCpuinfo writes /proc/cpuinfo with only the visible CPUs (host
// numbers), renumbered from 0. Text it cannot split into per-processor
// blocks is returned as is.
func renderCpuinfo(hostText []byte, visible []int) []byte {
	blocks := bytes.Split(bytes.TrimRight(hostText, "\n"), []byte("\n\n"))
	byCPU := make(map[int][]byte, len(blocks))
	for _, b := range blocks {
		if n, ok := cpuinfoProcessor(b); ok {
			byCPU[n] = b
		}
	}
	if len(byCPU) == 0 || len(visible) == 0 {
		return hostText
	}
	out := make([]byte, 0, len(hostText))
	for i, c := range visible {
		b, ok := byCPU[c]
		if !ok {
			continue
		}
		for first := true; len(b) > 0; first = false {
			var line []byte
			line, b, _ = bytes.Cut(b, []byte{'\n'})
			if first {
				if k, _, ok := bytes.Cut(line, []byte{':'}); ok && string(bytes.TrimSpace(k)) == "processor" {
					out = fmt.Appendf(out, "%s: %d\n", k, i)
					continue
				}
			}
			out = append(append(out, line...), '\n')
		}
		out = append(out, '\n')
	}
	return out
}

func cpuinfoProcessor(block []byte) (int, bool) {
	line, _, _ := bytes.Cut(block, []byte{'\n'})
	k, v, ok := bytes.Cut(line, []byte{':'})
	if !ok || string(bytes.TrimSpace(k)) != "processor" {
		return 0, false
	}
	n, err := strconv.Atoi(string(bytes.TrimSpace(v)))
	return n, err == nil
}

// cpuTime is one cpu line of /proc/stat, in USER_HZ ticks.
type cpuTime struct{ user, system, idle uint64 }

const tick = 10 * time.Millisecond // USER_HZ = 100

// cpuTimes splits a container's CPU usage over its visible CPUs. With
// per-CPU accounting (v1) each visible CPU gets its own usage, and usage on
// CPUs it no longer sees is spread evenly; otherwise (v2) the total is
// spread evenly. Idle is the rest of the container's uptime, so it never
// runs backwards.
func cpuTimes(visible []int, u cgview.CPUUsage, up time.Duration) []cpuTime {
	n := len(visible)
	if n == 0 {
		return nil
	}
	busy := make([]time.Duration, n)
	user := make([]time.Duration, n)
	perCPU := len(u.PerCPU) > 0
	for _, c := range visible {
		if c >= len(u.PerCPU) {
			perCPU = false
		}
	}
	if perCPU {
		var seen time.Duration
		for i, c := range visible {
			busy[i] = u.PerCPU[c]
			seen += busy[i]
			if u.PerCPUUser != nil {
				user[i] = u.PerCPUUser[c]
			}
		}
		rest := max(u.Total-seen, 0) / time.Duration(n)
		for i := range busy {
			busy[i] += rest
		}
	} else {
		for i := range busy {
			busy[i] = u.Total / time.Duration(n)
		}
	}
	out := make([]cpuTime, n)
	for i := range out {
		us := user[i]
		if u.PerCPUUser == nil || !perCPU {
			if u.Total > 0 {
				us = time.Duration(float64(busy[i]) * float64(u.User) / float64(u.Total))
			}
		}
		us = min(us, busy[i])
		out[i] = cpuTime{
			user:   uint64(us / tick),
			system: uint64((busy[i] - us) / tick),
			idle:   uint64(max(up-busy[i], 0) / tick),
		}
	}
	return out
}

// renderStat writes /proc/stat: the container's cpu lines, its running and
// blocked task counts when known (running < 0: not known), and the host's
// other lines (interrupts, context switches, btime).
func renderStat(hostText []byte, times []cpuTime, running, blocked int) []byte {
	if len(times) == 0 {
		return hostText
	}
	out := make([]byte, 0, len(hostText))
	var sum cpuTime
	for _, t := range times {
		sum.user += t.user
		sum.system += t.system
		sum.idle += t.idle
	}
	out = appendCPULine(out, "cpu ", sum)
	for i, t := range times {
		out = appendCPULine(out, "cpu"+strconv.Itoa(i), t)
	}
	for b := hostText; len(b) > 0; {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		switch {
		case bytes.HasPrefix(line, []byte("cpu")):
			continue
		case running >= 0 && bytes.HasPrefix(line, []byte("procs_running ")):
			out = fmt.Appendf(out, "procs_running %d\n", running)
		case running >= 0 && bytes.HasPrefix(line, []byte("procs_blocked ")):
			out = fmt.Appendf(out, "procs_blocked %d\n", blocked)
		default:
			out = append(append(out, line...), '\n')
		}
	}
	return out
}

func appendCPULine(out []byte, name string, t cpuTime) []byte {
	return fmt.Appendf(out, "%s %d 0 %d %d 0 0 0 0 0 0\n", name, t.user, t.system, t.idle)
}

// renderDiskstats writes /proc/diskstats with the container's I/O: a line
// per device it did I/O on, named as the host names it. The kernel's time
// and queue fields have no per-cgroup counterpart and read 0.
func renderDiskstats(hostText []byte, io []cgview.IOStat) []byte {
	type dev struct {
		name   string
		fields int
	}
	devs := map[[2]uint32]dev{}
	for b := hostText; len(b) > 0; {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		f := strings.Fields(string(line))
		if len(f) < 4 {
			continue
		}
		maj, err1 := strconv.ParseUint(f[0], 10, 32)
		mnr, err2 := strconv.ParseUint(f[1], 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		devs[[2]uint32{uint32(maj), uint32(mnr)}] = dev{name: f[2], fields: len(f) - 3}
	}
	var out []byte
	for _, s := range io {
		d, ok := devs[[2]uint32{s.Major, s.Minor}]
		if !ok || s.Reads+s.Writes+s.ReadBytes+s.WriteBytes == 0 {
			continue
		}
		out = fmt.Appendf(out, "%4d %7d %s %d 0 %d 0 %d 0 %d 0", s.Major, s.Minor, d.name,
			s.Reads, s.ReadBytes/512, s.Writes, s.WriteBytes/512)
		for i := 8; i < d.fields; i++ {
			out = append(out, " 0"...)
		}
		out = append(out, '\n')
	}
	return out
}

// cpuRange is a sysfs cpu list file (online, possible, present) for n CPUs
// numbered from 0.
func cpuRange(n int) []byte {
	if n <= 0 {
		return []byte("\n")
	}
	cpus := make([]int, n)
	for i := range cpus {
		cpus[i] = i
	}
	return []byte(cgview.FormatList(cpus) + "\n")
}

// loadAvg keeps a container's load average the way the kernel keeps the
// machine's: an exponentially damped count of runnable and uninterruptible
// tasks, sampled every loadInterval.
type loadAvg struct {
	avg            [3]float64
	running, total int
	blocked        int
	lastPid        int
	sampled        bool
}

const loadInterval = 5 * time.Second

// loadDecay are the kernel's EXP_1, EXP_5, EXP_15 for a 5 s sample.
var loadDecay = [3]float64{
	math.Exp(-5.0 / 60), math.Exp(-5.0 / 300), math.Exp(-5.0 / 900),
}

func (l *loadAvg) sample(running, blocked, total, lastPid int) {
	active := float64(running + blocked)
	for i, e := range loadDecay {
		l.avg[i] = l.avg[i]*e + active*(1-e)
	}
	l.running, l.blocked, l.total, l.lastPid, l.sampled = running, blocked, total, lastPid, true
}

func (l *loadAvg) render() []byte {
	return fmt.Appendf(nil, "%.2f %.2f %.2f %d/%d %d\n", l.avg[0], l.avg[1], l.avg[2], l.running, l.total, l.lastPid)
}
