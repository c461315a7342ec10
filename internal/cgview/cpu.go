package cgview

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Cpuset returns the CPUs the cgroup may run on, as host CPU numbers.
// ErrNoController when there is no cpuset controller.
func (c *Cgroup) Cpuset() ([]int, error) {
	d, err := c.need("cpuset")
	if err != nil {
		return nil, err
	}
	files := []string{"cpuset.effective_cpus", "cpuset.cpus"}
	if c.V2() {
		files = []string{"cpuset.cpus.effective"}
	}
	var last error
	for _, f := range files {
		b, err := ReadFile(filepath.Join(d, f))
		if err != nil {
			last = err
			continue
		}
		return ParseList(string(b))
	}
	if errors.Is(last, os.ErrNotExist) {
		// v2 with the cpuset controller not enabled for this subtree.
		return nil, fmt.Errorf("cpuset: %w", ErrNoController)
	}
	return nil, last
}

// Quota returns the CPU bandwidth limit in CPUs (1.5 for --cpus 1.5), the
// smallest along the hierarchy; 0 when there is none.
func (c *Cgroup) Quota() (float64, error) {
	d, err := c.need("cpu")
	if err != nil {
		return 0, err
	}
	best := math.Inf(1)
	for dir, first := d, true; ; first = false {
		q, ok, err := quotaAt(dir, c.V2())
		if err != nil {
			return 0, err
		}
		if !ok {
			if first {
				return 0, fmt.Errorf("cpu: %w", ErrNoController)
			}
			break
		}
		if q > 0 && q < best {
			best = q
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	if math.IsInf(best, 1) {
		return 0, nil
	}
	return best, nil
}

// quotaAt reads one directory's quota: ok is false if it has no quota file;
// q is 0 for no limit.
func quotaAt(dir string, v2 bool) (q float64, ok bool, err error) {
	if v2 {
		b, err := ReadFile(filepath.Join(dir, "cpu.max"))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return 0, false, nil
			}
			return 0, false, err
		}
		return parseCPUMax(string(b))
	}
	quota, err := ReadFile(filepath.Join(dir, "cpu.cfs_quota_us"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, false, nil
		}
		return 0, false, err
	}
	period, err := ReadFile(filepath.Join(dir, "cpu.cfs_period_us"))
	if err != nil {
		return 0, false, err
	}
	qs := strings.TrimSpace(string(quota))
	if strings.HasPrefix(qs, "-") {
		return 0, true, nil
	}
	return ratio(qs, strings.TrimSpace(string(period)))
}

// parseCPUMax parses v2's cpu.max: "max 100000" or "150000 100000".
func parseCPUMax(s string) (float64, bool, error) {
	f := strings.Fields(s)
	if len(f) == 0 || len(f) > 2 {
		return 0, false, fmt.Errorf("bad cpu.max %q", s)
	}
	if f[0] == "max" {
		return 0, true, nil
	}
	period := "100000"
	if len(f) == 2 {
		period = f[1]
	}
	return ratio(f[0], period)
}

func ratio(quota, period string) (float64, bool, error) {
	q, err := strconv.ParseUint(quota, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("bad cpu quota %q", quota)
	}
	p, err := strconv.ParseUint(period, 10, 64)
	if err != nil || p == 0 {
		return 0, false, fmt.Errorf("bad cpu period %q", period)
	}
	return float64(q) / float64(p), true, nil
}

// CPUUsage is the CPU time the cgroup's tasks have used.
type CPUUsage struct {
	Total, User, System time.Duration
	// PerCPU is indexed by host CPU number; nil where the kernel does not
	// split usage per CPU (v2).
	PerCPU []time.Duration
	// PerCPUUser and PerCPUSystem split PerCPU when the kernel does (v1
	// cpuacct.usage_percpu_user/_sys); nil otherwise.
	PerCPUUser, PerCPUSystem []time.Duration
}

// CPUUsage reads cpuacct (v1) or cpu.stat (v2).
func (c *Cgroup) CPUUsage() (CPUUsage, error) {
	if c.V2() {
		st, err := readKV(filepath.Join(c.unified, "cpu.stat"))
		if err != nil {
			return CPUUsage{}, err
		}
		return CPUUsage{
			Total:  time.Duration(st["usage_usec"]) * time.Microsecond,
			User:   time.Duration(st["user_usec"]) * time.Microsecond,
			System: time.Duration(st["system_usec"]) * time.Microsecond,
		}, nil
	}
	d, err := c.need("cpuacct")
	if err != nil {
		return CPUUsage{}, err
	}
	var u CPUUsage
	total, err := readUint(filepath.Join(d, "cpuacct.usage"))
	if err != nil {
		return CPUUsage{}, err
	}
	u.Total = time.Duration(total)
	if b, err := ReadFile(filepath.Join(d, "cpuacct.usage_percpu")); err == nil {
		u.PerCPU = parseDurations(b)
	}
	if b, err := ReadFile(filepath.Join(d, "cpuacct.usage_percpu_user")); err == nil {
		u.PerCPUUser = parseDurations(b)
	}
	if b, err := ReadFile(filepath.Join(d, "cpuacct.usage_percpu_sys")); err == nil {
		u.PerCPUSystem = parseDurations(b)
	}
	if len(u.PerCPUUser) != len(u.PerCPU) || len(u.PerCPUSystem) != len(u.PerCPU) {
		u.PerCPUUser, u.PerCPUSystem = nil, nil
	}
	// cpuacct.stat counts in ticks and is coarse, but it is the split every
	// v1 kernel has; scale it onto the precise total.
	st, err := readKV(filepath.Join(d, "cpuacct.stat"))
	if err != nil {
		return CPUUsage{}, err
	}
	user, sys := st["user"], st["system"]
	if user+sys > 0 {
		u.User = time.Duration(float64(u.Total) * float64(user) / float64(user+sys))
		u.System = u.Total - u.User
	} else {
		u.User = u.Total
	}
	return u, nil
}

// parseDurations parses space-separated nanosecond counters.
func parseDurations(b []byte) []time.Duration {
	f := bytes.Fields(b)
	out := make([]time.Duration, 0, len(f))
	for _, s := range f {
		v, err := strconv.ParseUint(string(s), 10, 64)
		if err != nil {
			return nil
		}
		out = append(out, time.Duration(v))
	}
	return out
}

// VisibleCPUs is what a container should believe it has: the CPUs it may
// run on (online if there is no cpuset), cut down to its quota rounded up.
// The result is host CPU numbers, ascending; a view renumbers them from 0.
func VisibleCPUs(online, cpuset []int, quota float64) []int {
	allowed := online
	if len(cpuset) > 0 {
		allowed = allowed[:0:0]
		in := make(map[int]bool, len(online))
		for _, c := range online {
			in[c] = true
		}
		for _, c := range cpuset {
			// A cpuset CPU that went offline is not usable.
			if len(online) == 0 || in[c] {
				allowed = append(allowed, c)
			}
		}
		if len(allowed) == 0 {
			allowed = cpuset
		}
	}
	n := len(allowed)
	if quota > 0 {
		if q := int(math.Ceil(quota - 1e-9)); q < n {
			n = max(q, 1)
		}
	}
	return allowed[:n:n]
}
