// Package cgview reads a container's cgroup limits and usage, on cgroup v1
// and v2 alike, and answers in version-free terms: bytes, CPUs, durations.
// The fs daemon builds /proc/meminfo, /proc/cpuinfo, /proc/stat... from it;
// the trap agent's sysinfo(2) uses the same numbers, so both agree.
//
// Nothing here caches or spawns: every call reads the cgroup files again,
// which is a handful of small reads of kernel-generated text.
package cgview

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Unlimited stands for "no limit" in every limit this package returns.
const Unlimited = ^uint64(0)

// unlimitedFloor: v1 reports "no limit" as a huge page-aligned number
// (9223372036854771712 on 4k pages); anything this large means none.
const unlimitedFloor = uint64(1) << 62

// ErrNoController means the cgroup has no directory for the controller asked
// about (a v1 hierarchy that is not mounted, or a container not started yet).
var ErrNoController = errors.New("cgroup controller not available")

// Cgroup is one container's cgroup: a directory per v1 controller, or one
// unified directory on v2.
type Cgroup struct {
	dirs    map[string]string
	unified string
}

// New takes what libcontainer reports as the container's cgroup paths: a v1
// controller name ("memory", "cpu", "cpuacct", "cpuset", "blkio", "pids"...)
// to its directory, or "" to the v2 directory.
//
// A hybrid host (v1 controllers, plus a controller-less cgroup2 mounted at
// /sys/fs/cgroup/unified, as systemd sets up) reports both: there the
// controllers are v1's, and the "" path holds no limits (it may not even
// exist), so it is only v2 when no v1 controller is given.
func New(dirs map[string]string) *Cgroup {
	c := &Cgroup{dirs: make(map[string]string, len(dirs))}
	v1 := false
	for k, v := range dirs {
		if v == "" {
			continue
		}
		c.dirs[k] = v
		if k != "" && !strings.HasPrefix(k, "name=") {
			v1 = true
		}
	}
	if v1 {
		delete(c.dirs, "")
	}
	c.unified = c.dirs[""]
	return c
}

// V2 reports whether this is a unified (v2) cgroup.
func (c *Cgroup) V2() bool { return c != nil && c.unified != "" }

// dir is the directory holding ctrl's files, or "" if there is none.
func (c *Cgroup) dir(ctrl string) string {
	if c == nil {
		return ""
	}
	if c.unified != "" {
		return c.unified
	}
	return c.dirs[ctrl]
}

func (c *Cgroup) need(ctrl string) (string, error) {
	d := c.dir(ctrl)
	if d == "" {
		return "", fmt.Errorf("%s: %w", ctrl, ErrNoController)
	}
	return d, nil
}

// ReadFile reads a small kernel file (also the fs daemon's reader of
// proc files). cgroup and proc files report a size of
// 0 or 4096 whatever they hold, so read to EOF rather than trusting stat.
// Raw syscalls: os.Open would also try to add each fd to the netpoller.
func ReadFile(path string) ([]byte, error) {
	var fd int
	var err error
	for {
		fd, err = unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	buf := make([]byte, 0, 4096)
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, len(buf))
		}
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}

// readUint reads a file holding one number, or "max" (v2's no limit).
func readUint(path string) (uint64, error) {
	b, err := ReadFile(path)
	if err != nil {
		return 0, err
	}
	return parseUint(string(bytes.TrimSpace(b)))
}

func parseUint(s string) (uint64, error) {
	if s == "max" {
		return Unlimited, nil
	}
	if strings.HasPrefix(s, "-") {
		// v1 cpu.cfs_quota_us says -1 for no limit.
		if _, err := strconv.ParseInt(s, 10, 64); err != nil {
			return 0, fmt.Errorf("parse %q: %w", s, err)
		}
		return Unlimited, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse %q: %w", s, err)
	}
	if v >= unlimitedFloor {
		return Unlimited, nil
	}
	return v, nil
}

// readKV parses "key value" lines (memory.stat, cpu.stat, cpuacct.stat).
// Lines that do not fit are skipped: kernels add keys over time.
func readKV(path string) (map[string]uint64, error) {
	b, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseKV(b), nil
}

func parseKV(b []byte) map[string]uint64 {
	m := make(map[string]uint64, 64)
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		k, v, ok := bytes.Cut(line, []byte{' '})
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
		if err != nil {
			continue
		}
		m[string(k)] = n
	}
	return m
}

// minUp returns the smallest value of file in dir and each ancestor that
// has it: a child cannot use more than any parent allows. The walk stops at
// the first directory without the file (above the hierarchy's root, where
// v2 has no limit files, or a test's fake tree).
func minUp(dir, file string, parse func(string) (uint64, error)) (uint64, error) {
	best := Unlimited
	for d, first := dir, true; ; first = false {
		b, err := ReadFile(filepath.Join(d, file))
		if err != nil {
			if first {
				return 0, err
			}
			return best, nil
		}
		v, err := parse(string(bytes.TrimSpace(b)))
		if err != nil {
			return 0, fmt.Errorf("%s: %w", filepath.Join(d, file), err)
		}
		if v < best {
			best = v
		}
		parent := filepath.Dir(d)
		if parent == d {
			return best, nil
		}
		d = parent
	}
}

// ParseList parses the kernel's CPU list format: "0-3,8,10-11".
func ParseList(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	var out []int
	if s == "" {
		return out, nil
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("bad cpu list %q", s)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("bad cpu list %q", s)
			}
		}
		for i := a; i <= b; i++ {
			out = append(out, i)
		}
	}
	sort.Ints(out)
	// Dedup: "0-2,1" is legal input.
	w := 0
	for i, v := range out {
		if i == 0 || v != out[w-1] {
			out[w] = v
			w++
		}
	}
	return out[:w], nil
}

// FormatList writes CPUs in the kernel's list format, collapsing runs.
func FormatList(cpus []int) string {
	var sb strings.Builder
	for i := 0; i < len(cpus); {
		j := i
		for j+1 < len(cpus) && cpus[j+1] == cpus[j]+1 {
			j++
		}
		if sb.Len() > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(strconv.Itoa(cpus[i]))
		if j > i {
			sb.WriteByte('-')
			sb.WriteString(strconv.Itoa(cpus[j]))
		}
		i = j + 1
	}
	return sb.String()
}
