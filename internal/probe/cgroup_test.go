package probe

import (
	"slices"
	"strings"
	"testing"

	"github.com/sysbox-dev/sysbox/internal/mountinfo"
)

// This machine: v1 controllers, a named systemd hierarchy and cgroup2 at
// /sys/fs/cgroup/unified.
const hybridMountinfo = `26 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
32 30 0:29 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
33 30 0:30 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
35 30 0:32 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
36 30 0:33 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
37 30 0:34 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
38 30 0:35 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`

// A systemd host of the cgroup v1 era (Ubuntu 20.04, CentOS 7): combined
// hierarchies, no cgroup2.
const v1Mountinfo = `25 18 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,name=systemd
29 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,cpu,cpuacct
30 25 0:27 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,net_cls,net_prio
31 25 0:28 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,memory
32 25 0:29 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,pids
33 25 0:30 / /sys/fs/cgroup/devices rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,devices
34 25 0:31 / /sys/fs/cgroup/freezer rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,freezer
35 25 0:32 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,cpuset,clone_children
36 25 0:33 / /sys/fs/cgroup/blkio rw,nosuid,nodev,noexec,relatime shared:18 - cgroup cgroup rw,blkio
37 25 0:34 / /sys/fs/cgroup/hugetlb rw,nosuid,nodev,noexec,relatime shared:19 - cgroup cgroup rw,hugetlb
`

// A current systemd host: cgroup2 only.
const v2Mountinfo = `22 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 22 0:24 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`

// Docker's own legacy named hierarchy next to cgroup2: still v2.
const v2NamedMountinfo = v2Mountinfo + `50 26 0:45 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
`

func mustLayout(t *testing.T, text string) cgroupLayout {
	t.Helper()
	ms, err := mountinfo.Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return cgroupLayoutOf(ms)
}

func TestCgroupLayout(t *testing.T) {
	tests := []struct {
		name      string
		text      string
		mode      string
		v1, named []string
		v2        string
	}{
		{
			"hybrid", hybridMountinfo, "hybrid",
			[]string{"blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids"},
			[]string{"systemd"},
			"/sys/fs/cgroup/unified",
		},
		{
			"v1", v1Mountinfo, "v1",
			[]string{"blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "hugetlb", "memory", "net_cls", "net_prio", "pids"},
			[]string{"systemd"},
			"",
		},
		{"v2", v2Mountinfo, "v2", nil, nil, "/sys/fs/cgroup"},
		{"v2 with named v1", v2NamedMountinfo, "v2", nil, []string{"systemd"}, "/sys/fs/cgroup"},
		{"none", "26 1 254:0 / / rw - ext4 /dev/vda rw\n", "none", nil, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := mustLayout(t, tt.text)
			if got := l.mode(); got != tt.mode {
				t.Errorf("mode = %q, want %q", got, tt.mode)
			}
			if !slices.Equal(l.v1, tt.v1) {
				t.Errorf("v1 = %v, want %v", l.v1, tt.v1)
			}
			if !slices.Equal(l.v1Named, tt.named) {
				t.Errorf("named = %v, want %v", l.v1Named, tt.named)
			}
			if l.v2 != tt.v2 {
				t.Errorf("v2 = %q, want %q", l.v2, tt.v2)
			}
		})
	}
}

func TestCgroupResult(t *testing.T) {
	all := []string{"cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc"}
	tests := []struct {
		name          string
		text          string
		ctrls, sub    []string
		want          Status
		detailHas     []string
		remedyHasWhen string
	}{
		{
			"hybrid (this machine)", hybridMountinfo,
			[]string{"hugetlb"},
			nil, OK,
			[]string{"v1 hybrid", "cgroup2 at /sys/fs/cgroup/unified with controllers hugetlb (so hugetlb limits do not apply to containers)", "named systemd"},
			"",
		},
		{"v1", v1Mountinfo, nil, nil, OK, []string{"v1: v1 controllers"}, ""},
		{
			"v1 without memory", strings.ReplaceAll(v1Mountinfo, "rw,memory\n", "rw,name=mem\n"), nil, nil, Warn,
			[]string{"memory are not mounted"},
			"/sys/fs/cgroup",
		},
		{
			"v2 delegated", v2Mountinfo, all,
			[]string{"cpuset", "cpu", "io", "memory", "pids"},
			OK,
			[]string{"v2 at /sys/fs/cgroup"},
			"",
		},
		{
			"v2 not delegated", v2Mountinfo, all,
			[]string{"cpu", "memory"},
			Warn,
			[]string{"io,pids not delegated"},
			"+io +pids",
		},
		{
			"v2 missing memory", v2Mountinfo,
			[]string{"cpu", "io", "pids"},
			nil, Warn,
			[]string{"memory are not available"},
			"cgroup_enable",
		},
		{"none", "26 1 254:0 / / rw - ext4 /dev/vda rw\n", nil, nil, Fail, []string{"no cgroup"}, "cgroup2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := cgroupResult(mustLayout(t, tt.text), tt.ctrls, tt.sub)
			checkResult(t, r, "cgroups", tt.want)
			for _, s := range tt.detailHas {
				if !strings.Contains(r.Detail, s) {
					t.Errorf("detail %q lacks %q", r.Detail, s)
				}
			}
			if tt.remedyHasWhen != "" && !strings.Contains(r.Remedy, tt.remedyHasWhen) {
				t.Errorf("remedy %q lacks %q", r.Remedy, tt.remedyHasWhen)
			}
		})
	}
}
