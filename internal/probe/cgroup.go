package probe

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sysbox-dev/sysbox/internal/mountinfo"
)

// v1Controllers are the controller names a cgroup v1 mount can carry in its
// superblock options (everything else there is a mount option or name=).
var v1Controllers = map[string]bool{
	"cpuset": true, "cpu": true, "cpuacct": true, "blkio": true, "memory": true,
	"devices": true, "freezer": true, "net_cls": true, "perf_event": true,
	"net_prio": true, "hugetlb": true, "pids": true, "rdma": true, "misc": true, "debug": true,
}

// What a container needs to be limited and managed like on any runtime.
var (
	v1Essential = []string{"cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids"}
	v2Essential = []string{"cpu", "io", "memory", "pids"}
)

// cgroupLayout is what the cgroup mounts in mountinfo say about the host.
type cgroupLayout struct {
	v1      []string // controllers mounted as v1, sorted, no duplicates
	v1Named []string // named v1 hierarchies without controllers (name=systemd)
	v1Root  string   // the directory holding the v1 mounts
	v2      string   // where cgroup2 is mounted, "" if not
}

// mode is "v1", "v2", "hybrid" (v1 controllers next to a cgroup2 mount) or
// "none". A named-only v1 hierarchy next to cgroup2 is still v2: no
// controller lives in v1.
func (l cgroupLayout) mode() string {
	switch {
	case len(l.v1) > 0 && l.v2 != "":
		return "hybrid"
	case len(l.v1) > 0:
		return "v1"
	case l.v2 != "":
		return "v2"
	}
	return "none"
}

func cgroupLayoutOf(ms []mountinfo.Entry) cgroupLayout {
	var l cgroupLayout
	for _, m := range ms {
		switch m.FSType {
		case "cgroup2":
			// Prefer the canonical place when cgroup2 is mounted more than once.
			if l.v2 == "" || m.Point == "/sys/fs/cgroup" || m.Point == "/sys/fs/cgroup/unified" && l.v2 != "/sys/fs/cgroup" {
				l.v2 = m.Point
			}
		case "cgroup":
			if l.v1Root == "" {
				l.v1Root = filepath.Dir(m.Point)
			}
			named := ""
			var ctrls []string
			for _, o := range strings.Split(m.Super, ",") {
				if v1Controllers[o] {
					ctrls = append(ctrls, o)
				} else if name, ok := strings.CutPrefix(o, "name="); ok {
					named = name
				}
			}
			for _, c := range ctrls {
				if !slices.Contains(l.v1, c) {
					l.v1 = append(l.v1, c)
				}
			}
			if len(ctrls) == 0 && named != "" && !slices.Contains(l.v1Named, named) {
				l.v1Named = append(l.v1Named, named)
			}
		}
	}
	slices.Sort(l.v1)
	slices.Sort(l.v1Named)
	return l
}

func missingFrom(have, want []string) []string {
	var out []string
	for _, w := range want {
		if !slices.Contains(have, w) {
			out = append(out, w)
		}
	}
	return out
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ",")
}

// cgroupResult judges a layout. v2Ctrls is the cgroup2 root's
// cgroup.controllers, v2Subtree its cgroup.subtree_control.
func cgroupResult(l cgroupLayout, v2Ctrls, v2Subtree []string) Result {
	r := Result{Name: "cgroups"}
	switch l.mode() {
	case "none":
		r.Status, r.Detail = Fail, "no cgroup filesystem is mounted"
		r.Remedy = "mount cgroup2 at /sys/fs/cgroup (systemd does this at boot)"
	case "v1", "hybrid":
		what := "v1"
		if l.mode() == "hybrid" {
			what = "v1 hybrid"
		}
		d := fmt.Sprintf("%s: v1 controllers %s under %s", what, listOrNone(l.v1), l.v1Root)
		if len(l.v1Named) > 0 {
			d += fmt.Sprintf(" (+ named %s)", strings.Join(l.v1Named, ","))
		}
		if l.v2 != "" {
			d += fmt.Sprintf("; cgroup2 at %s with controllers %s", l.v2, listOrNone(v2Ctrls))
			// Containers on v1 are limited through v1 only.
			if only := missingFrom(l.v1, v2Ctrls); len(only) > 0 {
				d += fmt.Sprintf(" (so %s limits do not apply to containers)", strings.Join(only, ","))
			}
		}
		if miss := missingFrom(l.v1, v1Essential); len(miss) > 0 {
			r.Status = Warn
			r.Detail = d + fmt.Sprintf("; v1 controllers %s are not mounted, so containers can't be limited or managed with them", strings.Join(miss, ","))
			r.Remedy = "mount the missing v1 controllers under " + l.v1Root + ", or boot with cgroup v2 (systemd.unified_cgroup_hierarchy=1)"
			return r
		}
		r.Status, r.Detail = OK, d+"; containers use the v1 controllers (works; cgroup v2 is the common case elsewhere)"
	case "v2":
		d := fmt.Sprintf("v2 at %s: controllers %s, enabled for children %s", l.v2, listOrNone(v2Ctrls), listOrNone(v2Subtree))
		if miss := missingFrom(v2Ctrls, v2Essential); len(miss) > 0 {
			r.Status = Warn
			r.Detail = d + fmt.Sprintf("; controllers %s are not available", strings.Join(miss, ","))
			r.Remedy = "enable the missing controllers in the kernel or on its command line (e.g. cgroup_enable=memory)"
			return r
		}
		if miss := missingFrom(v2Subtree, v2Essential); len(miss) > 0 {
			r.Status = Warn
			r.Detail = d + fmt.Sprintf("; %s not delegated to child cgroups", strings.Join(miss, ","))
			r.Remedy = fmt.Sprintf("delegate them: echo '+%s' > %s/cgroup.subtree_control (systemd does this for its slices)",
				strings.Join(miss, " +"), l.v2)
			return r
		}
		r.Status, r.Detail = OK, d+"; containers get a delegated cgroup2 subtree"
	}
	return r
}

// readControllerList reads a cgroup2 controller list file ("cpu io memory").
func readControllerList(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	return strings.Fields(string(b))
}

func probeCgroups() Result {
	ms, err := mountinfo.Self()
	if err != nil {
		return Result{Name: "cgroups", Status: Fail, Detail: fmt.Sprintf("read mountinfo: %v", err), Remedy: "make sure /proc is mounted"}
	}
	l := cgroupLayoutOf(ms)
	var ctrls, subtree []string
	if l.v2 != "" {
		ctrls = readControllerList(filepath.Join(l.v2, "cgroup.controllers"))
		subtree = readControllerList(filepath.Join(l.v2, "cgroup.subtree_control"))
	}
	return cgroupResult(l, ctrls, subtree)
}
