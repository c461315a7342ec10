package trap

import (
	"bytes"
	"math"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

func init() {
	register(unix.SYS_SYSINFO, "sysinfo", sysinfo)
}

// sysinfo answers with the numbers the container's own /proc shows: its
// uptime, memory and load come from the fs daemon's views of /proc/uptime,
// /proc/meminfo and /proc/loadavg, so `free` (which mixes sysinfo(2) with
// /proc/meminfo) adds up. Fields without a view keep the host's values.
func sysinfo(c call) answer {
	if c.arg(0) == 0 {
		return errnoAnswer(unix.EFAULT)
	}
	if !c.s.ct.registered {
		return continueCall
	}
	read := func(dest string) []byte {
		if r, ok := c.s.a.views.(ViewReader); ok {
			b, err := r.ReadView(c.s.ct.id, dest)
			if err != nil {
				c.s.log.Debug("read view", "dest", dest, "err", err)
				return nil
			}
			return b
		}
		var p string
		for _, m := range c.s.views() {
			if m.Dest == dest {
				p = m.Source
			}
		}
		if p == "" {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			c.s.log.Debug("read view", "path", p, "err", err)
			return nil
		}
		return b
	}
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return continueCall
	}
	fillSysinfo(&si, read("/proc/uptime"), read("/proc/meminfo"), read("/proc/loadavg"))
	if !c.valid() {
		return errnoAnswer(unix.ENOENT)
	}
	if err := writeMem(c.tid(), c.arg(0), bytesOf(&si)); err != nil {
		return errnoAnswer(unix.EFAULT)
	}
	return success
}

// fillSysinfo overwrites si with what the views say; a view that is
// missing or unreadable leaves its fields as they were.
func fillSysinfo(si *unix.Sysinfo_t, uptime, meminfo, loadavg []byte) {
	if f := bytes.Fields(uptime); len(f) >= 1 {
		if up, err := strconv.ParseFloat(string(f[0]), 64); err == nil && up >= 0 {
			// The kernel rounds up: any fraction counts as a second.
			si.Uptime = int64(math.Ceil(up))
		}
	}
	if len(meminfo) > 0 {
		kb := meminfoKB(meminfo)
		set := func(dst *uint64, key string) {
			if v, ok := kb[key]; ok {
				*dst = v * 1024
			}
		}
		// Bytes, in units of 1: the values fit a 64-bit field.
		scale := uint64(si.Unit)
		if scale == 0 {
			scale = 1
		}
		for _, p := range []*uint64{&si.Totalram, &si.Freeram, &si.Sharedram, &si.Bufferram, &si.Totalswap, &si.Freeswap, &si.Totalhigh, &si.Freehigh} {
			*p *= scale
		}
		si.Unit = 1
		set(&si.Totalram, "MemTotal")
		set(&si.Freeram, "MemFree")
		set(&si.Sharedram, "Shmem")
		set(&si.Bufferram, "Buffers")
		set(&si.Totalswap, "SwapTotal")
		set(&si.Freeswap, "SwapFree")
		set(&si.Totalhigh, "HighTotal")
		set(&si.Freehigh, "HighFree")
	}
	// "0.52 0.58 0.59 2/345 6789": three loads, runnable/total tasks.
	if f := bytes.Fields(loadavg); len(f) >= 4 {
		for i := range 3 {
			if v, err := strconv.ParseFloat(string(f[i]), 64); err == nil && v >= 0 {
				si.Loads[i] = uint64(math.Round(v * (1 << 16))) // SI_LOAD_SHIFT
			}
		}
		if _, total, ok := bytes.Cut(f[3], []byte{'/'}); ok {
			if n, err := strconv.ParseUint(string(total), 10, 64); err == nil {
				si.Procs = uint16(min(n, math.MaxUint16))
			}
		}
	}
}

// meminfoKB parses /proc/meminfo's "Key:   123 kB" lines.
func meminfoKB(b []byte) map[string]uint64 {
	out := make(map[string]uint64, 64)
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		k, v, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			continue
		}
		f := bytes.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseUint(string(f[0]), 10, 64)
		if err != nil {
			continue
		}
		out[string(k)] = n
	}
	return out
}
