package cgview

import (
	"errors"
	"os"
	"path/filepath"
)

// Memory is a cgroup's memory limit and accounting, in bytes. Counters cover
// the cgroup and its descendants (a system container makes its own
// sub-cgroups). Limits are Unlimited when none applies.
type Memory struct {
	Limit uint64 // the smallest memory limit on the way to the root
	Usage uint64 // memory in use, page cache included

	// SwapLimit is the swap the cgroup may use on top of Limit.
	SwapLimit uint64
	SwapUsage uint64

	Anon, File, Shmem, Mapped     uint64
	Dirty, Writeback, AnonHuge    uint64
	ActiveAnon, InactiveAnon      uint64
	ActiveFile, InactiveFile      uint64
	Unevictable                   uint64
	SlabReclaimable, SlabUnrecl   uint64 // v2 only; 0 on v1
	KernelStack, PageTables, Sock uint64 // v2 only; 0 on v1
}

// Memory reads the memory controller.
func (c *Cgroup) Memory() (Memory, error) {
	d, err := c.need("memory")
	if err != nil {
		return Memory{}, err
	}
	if c.V2() {
		return memoryV2(d)
	}
	return memoryV1(d)
}

func memoryV1(d string) (Memory, error) {
	st, err := readKV(filepath.Join(d, "memory.stat"))
	if err != nil {
		return Memory{}, err
	}
	usage, err := readUint(filepath.Join(d, "memory.usage_in_bytes"))
	if err != nil {
		return Memory{}, err
	}
	// total_* count descendants too; the plain keys only this cgroup.
	get := func(k string) uint64 {
		if v, ok := st["total_"+k]; ok {
			return v
		}
		return st[k]
	}
	m := Memory{
		Limit:        norm(st["hierarchical_memory_limit"]),
		Usage:        usage,
		SwapLimit:    Unlimited,
		Anon:         get("rss"),
		File:         get("cache"),
		Shmem:        get("shmem"),
		Mapped:       get("mapped_file"),
		Dirty:        get("dirty"),
		Writeback:    get("writeback"),
		AnonHuge:     get("rss_huge"),
		ActiveAnon:   get("active_anon"),
		InactiveAnon: get("inactive_anon"),
		ActiveFile:   get("active_file"),
		InactiveFile: get("inactive_file"),
		Unevictable:  get("unevictable"),
	}
	if _, ok := st["hierarchical_memory_limit"]; !ok {
		if m.Limit, err = readUint(filepath.Join(d, "memory.limit_in_bytes")); err != nil {
			return Memory{}, err
		}
	}
	// memsw is memory+swap; it exists only with swap accounting on.
	if sw, ok := st["hierarchical_memsw_limit"]; ok {
		sw = norm(sw)
		if sw != Unlimited && m.Limit != Unlimited && sw >= m.Limit {
			m.SwapLimit = sw - m.Limit
		}
		m.SwapUsage = get("swap")
	}
	return m, nil
}

func memoryV2(d string) (Memory, error) {
	st, err := readKV(filepath.Join(d, "memory.stat"))
	if err != nil {
		return Memory{}, err
	}
	usage, err := readUint(filepath.Join(d, "memory.current"))
	if err != nil {
		return Memory{}, err
	}
	limit, err := minUp(d, "memory.max", parseUint)
	if err != nil {
		return Memory{}, err
	}
	m := Memory{
		Limit:           limit,
		Usage:           usage,
		SwapLimit:       Unlimited,
		Anon:            st["anon"],
		File:            st["file"],
		Shmem:           st["shmem"],
		Mapped:          st["file_mapped"],
		Dirty:           st["file_dirty"],
		Writeback:       st["file_writeback"],
		AnonHuge:        st["anon_thp"],
		ActiveAnon:      st["active_anon"],
		InactiveAnon:    st["inactive_anon"],
		ActiveFile:      st["active_file"],
		InactiveFile:    st["inactive_file"],
		Unevictable:     st["unevictable"],
		SlabReclaimable: st["slab_reclaimable"],
		SlabUnrecl:      st["slab_unreclaimable"],
		KernelStack:     st["kernel_stack"],
		PageTables:      st["pagetables"],
		Sock:            st["sock"],
	}
	// Without swap accounting (swapaccount=0, or no swap configured in the
	// kernel) the swap files are missing: say no limit, no usage.
	if sw, err := minUp(d, "memory.swap.max", parseUint); err == nil {
		m.SwapLimit = sw
	} else if !errors.Is(err, os.ErrNotExist) {
		return Memory{}, err
	}
	if cur, err := readUint(filepath.Join(d, "memory.swap.current")); err == nil {
		m.SwapUsage = cur
	}
	return m, nil
}

func norm(v uint64) uint64 {
	if v >= unlimitedFloor {
		return Unlimited
	}
	return v
}

// MemView is memory as a container should see it, in bytes: what
// /proc/meminfo, /proc/swaps, free(1) and sysinfo(2) report. Everything
// that shows a container's memory derives it here, so they all agree.
type MemView struct {
	// Limited is false when the cgroup does not limit memory below the
	// host's: then the view is the host's own numbers.
	Limited                  bool
	Total, Free, Available   uint64
	Cached                   uint64 // page cache, within what the cgroup uses
	SReclaimable, SUnreclaim uint64
	SwapTotal, SwapFree      uint64
}

// View derives the container's view from the host's total memory and swap
// (bytes) and the cgroup's accounting (ok false: none known yet).
func View(hostTotal, hostSwapTotal uint64, m Memory, ok bool) MemView {
	if !ok || hostTotal == 0 || m.Limit == Unlimited || m.Limit >= hostTotal {
		return MemView{Total: hostTotal, SwapTotal: hostSwapTotal}
	}
	v := MemView{Limited: true, Total: m.Limit}
	usage := min(m.Usage, v.Total)
	v.Free = v.Total - usage
	// free(1) computes used = total - free - cached - SReclaimable: keep the
	// cache within the usage so used never goes negative.
	v.Cached = min(m.File, usage)
	v.SReclaimable = min(m.SlabReclaimable, usage-v.Cached)
	v.SUnreclaim = m.SlabUnrecl
	reclaimable := min(m.ActiveFile+m.InactiveFile, v.Cached) + v.SReclaimable
	v.Available = min(v.Free+reclaimable, v.Total)
	v.SwapTotal = hostSwapTotal
	if m.SwapLimit != Unlimited {
		v.SwapTotal = min(hostSwapTotal, m.SwapLimit)
	}
	v.SwapFree = v.SwapTotal - min(m.SwapUsage, v.SwapTotal)
	return v
}
