package runc

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/docker/go-units"
	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runtime-spec/specs-go"
)

type updateCmd struct {
	Resources         string `short:"r" help:"JSON file with the new resources (an OCI linux.resources), or - for stdin."`
	BlkioWeight       string `name:"blkio-weight" help:"Block IO weight (10-1000)."`
	CPUPeriod         string `name:"cpu-period" help:"CPU CFS period in microseconds."`
	CPUQuota          string `name:"cpu-quota" help:"CPU CFS quota in microseconds."`
	CPUShare          string `name:"cpu-share" help:"CPU shares."`
	CPURtPeriod       string `name:"cpu-rt-period" help:"CPU realtime period."`
	CPURtRuntime      string `name:"cpu-rt-runtime" help:"CPU realtime runtime."`
	CpusetCpus        string `name:"cpuset-cpus" help:"CPUs allowed (0-3, 0,1)."`
	CpusetMems        string `name:"cpuset-mems" help:"Memory nodes allowed."`
	Memory            string `help:"Memory limit (bytes or 512m)."`
	MemoryReservation string `name:"memory-reservation" help:"Memory soft limit."`
	MemorySwap        string `name:"memory-swap" help:"Memory plus swap limit (-1 for unlimited)."`
	KernelMemory      string `name:"kernel-memory" help:"Ignored (kernel memory limits are gone)."`
	PidsLimit         string `name:"pids-limit" help:"Maximum number of tasks."`
	ID                string `arg:"" help:"Container id."`
}

func (c *updateCmd) Run(g *Globals) error {
	ct, err := g.load(c.ID)
	if err != nil {
		return g.report(err)
	}
	r, err := c.resources()
	if err != nil {
		return g.report(err)
	}
	cfg := ct.Config()
	applyResources(cfg.Cgroups.Resources, r)
	return g.report(ct.Set(cfg))
}

func (c *updateCmd) resources() (*specs.LinuxResources, error) {
	r := &specs.LinuxResources{Memory: &specs.LinuxMemory{}, CPU: &specs.LinuxCPU{}, BlockIO: &specs.LinuxBlockIO{}, Pids: &specs.LinuxPids{}}
	if c.Resources != "" {
		var in io.Reader = os.Stdin
		if c.Resources != "-" {
			f, err := os.Open(c.Resources)
			if err != nil {
				return nil, err
			}
			defer f.Close()
			in = f
		}
		var got specs.LinuxResources
		if err := json.NewDecoder(in).Decode(&got); err != nil {
			return nil, fmt.Errorf("parse --resources: %w", err)
		}
		return &got, nil
	}
	u64 := func(flag, v string, dst **uint64) error {
		if v == "" {
			return nil
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return fmt.Errorf("--%s=%q: want a number", flag, v)
		}
		*dst = &n
		return nil
	}
	i64 := func(flag, v string, dst **int64) error {
		if v == "" {
			return nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("--%s=%q: want a number", flag, v)
		}
		*dst = &n
		return nil
	}
	bytes := func(flag, v string, dst **int64) error {
		if v == "" {
			return nil
		}
		var n int64
		if v == "-1" {
			n = -1
		} else {
			var err error
			if n, err = units.RAMInBytes(v); err != nil {
				return fmt.Errorf("--%s=%q: want bytes (e.g. 512m)", flag, v)
			}
		}
		*dst = &n
		return nil
	}
	var pids *int64
	errs := []error{
		u64("cpu-period", c.CPUPeriod, &r.CPU.Period),
		i64("cpu-quota", c.CPUQuota, &r.CPU.Quota),
		u64("cpu-share", c.CPUShare, &r.CPU.Shares),
		u64("cpu-rt-period", c.CPURtPeriod, &r.CPU.RealtimePeriod),
		i64("cpu-rt-runtime", c.CPURtRuntime, &r.CPU.RealtimeRuntime),
		bytes("memory", c.Memory, &r.Memory.Limit),
		bytes("memory-reservation", c.MemoryReservation, &r.Memory.Reservation),
		bytes("memory-swap", c.MemorySwap, &r.Memory.Swap),
		i64("pids-limit", c.PidsLimit, &pids),
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if pids != nil {
		r.Pids.Limit = pids
	}
	if c.BlkioWeight != "" {
		n, err := strconv.ParseUint(c.BlkioWeight, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("--blkio-weight=%q: want 10-1000", c.BlkioWeight)
		}
		w := uint16(n)
		r.BlockIO.Weight = &w
	}
	r.CPU.Cpus, r.CPU.Mems = c.CpusetCpus, c.CpusetMems
	return r, nil
}

// applyResources copies what r sets onto the container's cgroup config.
func applyResources(dst *cgroups.Resources, r *specs.LinuxResources) {
	if m := r.Memory; m != nil {
		setI64(&dst.Memory, m.Limit)
		setI64(&dst.MemoryReservation, m.Reservation)
		setI64(&dst.MemorySwap, m.Swap)
	}
	if c := r.CPU; c != nil {
		setU64(&dst.CpuPeriod, c.Period)
		setI64(&dst.CpuQuota, c.Quota)
		setU64(&dst.CpuShares, c.Shares)
		setU64(&dst.CpuRtPeriod, c.RealtimePeriod)
		setI64(&dst.CpuRtRuntime, c.RealtimeRuntime)
		if c.Cpus != "" {
			dst.CpusetCpus = c.Cpus
		}
		if c.Mems != "" {
			dst.CpusetMems = c.Mems
		}
	}
	if p := r.Pids; p != nil && p.Limit != nil {
		v := *p.Limit
		dst.PidsLimit = &v
	}
	if b := r.BlockIO; b != nil && b.Weight != nil {
		dst.BlkioWeight = *b.Weight
	}
	// A memory limit above the old memory+swap limit needs swap raised too,
	// as runc does: keep swap unlimited if it was.
	if dst.Memory > 0 && dst.MemorySwap > 0 && dst.MemorySwap < dst.Memory {
		dst.MemorySwap = dst.Memory
	}
}

func setI64(dst *int64, v *int64) {
	if v != nil {
		*dst = *v
	}
}

func setU64(dst *uint64, v *uint64) {
	if v != nil {
		*dst = *v
	}
}

type eventsCmd struct {
	Stats    bool          `help:"Print one stats event and exit."`
	Interval time.Duration `default:"5s" help:"Time between stats events."`
	ID       string        `arg:"" help:"Container id."`
}

type event struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Data any    `json:"data,omitempty"`
}

func (c *eventsCmd) Run(g *Globals) error {
	ct, err := g.load(c.ID)
	if err != nil {
		return g.report(err)
	}
	if c.Interval <= 0 {
		return g.report(errors.New("--interval must be positive"))
	}
	emit := func() error {
		st, err := ct.Stats()
		if err != nil {
			return err
		}
		return printJSON(event{Type: "stats", ID: c.ID, Data: st}, false)
	}
	if c.Stats {
		return g.report(emit())
	}
	oom, _ := ct.NotifyOOM()
	tick := time.NewTicker(c.Interval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			if st, err := ct.Status(); err != nil || st == libcontainer.Stopped {
				return nil
			}
			if err := emit(); err != nil {
				return g.report(err)
			}
		case _, ok := <-oom:
			if !ok {
				oom = nil
				continue
			}
			_ = printJSON(event{Type: "oom", ID: c.ID}, false)
		}
	}
}
