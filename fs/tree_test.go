package fs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/jacobsa/fuse/fuseops"

	"github.com/sysbox-dev/sysbox/internal/cgview"
	"github.com/sysbox-dev/sysbox/internal/ipc"
)

type fakeFile struct {
	content string
	mode    os.FileMode
}

func writeFiles(t testing.TB, root string, files map[string]fakeFile) {
	t.Helper()
	for p, f := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := f.mode
		if mode == 0 {
			mode = 0o644
		}
		if err := os.WriteFile(full, []byte(f.content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(full, mode); err != nil {
			t.Fatal(err)
		}
	}
}

// fakeHost builds a host /proc and /sys tree with what the views read.
func fakeHost(t testing.TB) *host {
	root := t.TempDir()
	writeFiles(t, root, map[string]fakeFile{
		"proc/meminfo":                                 {content: hostMeminfo},
		"proc/cpuinfo":                                 {content: hostCPUInfo},
		"proc/stat":                                    {content: hostStat},
		"proc/loadavg":                                 {content: "0.50 0.40 0.30 2/300 4242\n"},
		"proc/diskstats":                               {content: "   8       0 sda 1 0 8 1 1 0 8 1 0 1 1\n"},
		"proc/swaps":                                   {content: "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"},
		"proc/sys/kernel/pid_max":                      {content: "32768\n"},
		"proc/sys/kernel/printk":                       {content: "4\t4\t1\t7\n"},
		"proc/sys/kernel/cap_last_cap":                 {content: "40\n", mode: 0o444},
		"proc/sys/kernel/hostname":                     {content: "hostbox\n"},
		"proc/sys/kernel/random/uuid":                  {content: "x\n", mode: 0o444},
		"proc/sys/vm/swappiness":                       {content: "60\n"},
		"proc/sys/net/core/somaxconn":                  {content: "4096\n"},
		"proc/sys/net/netfilter/nf_conntrack_max":      {content: "262144\n"},
		"proc/sys/net/ipv4/neigh/default/gc_thresh1":   {content: "128\n"},
		"proc/sys/net/ipv4/ip_forward":                 {content: "0\n"},
		"sys/devices/system/cpu/online":                {content: "0-3\n", mode: 0o444},
		"sys/devices/system/cpu/possible":              {content: "0-63\n", mode: 0o444},
		"sys/devices/system/cpu/kernel_max":            {content: "8191\n", mode: 0o444},
		"sys/devices/system/cpu/cpu0/topology/core_id": {content: "0\n", mode: 0o444},
		"sys/devices/system/cpu/cpu1/topology/core_id": {content: "1\n", mode: 0o444},
		"sys/devices/system/cpu/cpu2/topology/core_id": {content: "2\n", mode: 0o444},
		"sys/devices/system/cpu/cpu3/topology/core_id": {content: "3\n", mode: 0o444},
		"sys/devices/system/cpu/cpufreq/boost":         {content: "1\n", mode: 0o444},
		"sys/kernel/debug/secret":                      {content: "x\n", mode: 0o600},
		"sys/kernel/tracing/trace":                     {content: "x\n", mode: 0o600},
		"sys/kernel/mm/transparent_hugepage/enabled":   {content: "always [madvise] never\n"},
		"sys/module/nf_conntrack/parameters/hashsize":  {content: "65536\n", mode: 0o600},
	})
	if err := os.Symlink("../mm", filepath.Join(root, "sys/kernel/mmlink")); err != nil {
		t.Fatal(err)
	}
	return newHost(filepath.Join(root, "proc"), filepath.Join(root, "sys"))
}

func testDaemon(t testing.TB) *daemon {
	t.Helper()
	d, err := newDaemon(fakeHost(t), "/var/lib/sysboxfs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.close)
	return d
}

// fakeStarted registers id and marks it started on a fake cgroup, without
// namespaces (no root needed).
func fakeStarted(t testing.TB, d *daemon, id string, cg map[string]string) *container {
	t.Helper()
	if _, err := d.register(context.Background(), ipc.FsRegister{ID: id, UIDBase: 100000, GIDBase: 100000, Hostname: id}); err != nil {
		t.Fatal(err)
	}
	c := d.get(id)
	c.mu.Lock()
	c.started, c.cg = true, cgview.New(cg)
	c.mu.Unlock()
	return c
}

func read(t *testing.T, d *daemon, p string) string {
	t.Helper()
	n, err := d.resolve(p)
	if err != nil {
		t.Fatalf("resolve %s: %v", p, err)
	}
	if n.kind != kFile {
		t.Fatalf("%s is not a file", p)
	}
	b, err := n.read()
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return string(b)
}

func write(d *daemon, p, data string) error {
	n, err := d.resolve(p)
	if err != nil {
		return err
	}
	if n.write == nil {
		return syscall.EACCES
	}
	return n.write(0, []byte(data))
}

func list(t *testing.T, d *daemon, p string) []string {
	t.Helper()
	n, err := d.resolve(p)
	if err != nil {
		t.Fatalf("resolve %s: %v", p, err)
	}
	if n.kind != kDir {
		t.Fatalf("%s is not a dir", p)
	}
	ents, err := n.list()
	if err != nil {
		t.Fatalf("list %s: %v", p, err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.name)
	}
	slices.Sort(names)
	return names
}

func v2Cgroup(t testing.TB, files map[string]string) string {
	dir := t.TempDir()
	ff := map[string]fakeFile{}
	for k, v := range files {
		ff[k] = fakeFile{content: v}
	}
	writeFiles(t, dir, ff)
	return dir
}

func TestResourceViews(t *testing.T) {
	d := testDaemon(t)
	cg := v2Cgroup(t, map[string]string{
		"memory.max":            "536870912\n",
		"memory.current":        "104857600\n",
		"memory.stat":           "anon 52428800\nfile 41943040\nactive_file 20971520\ninactive_file 20971520\n",
		"cpuset.cpus.effective": "1,3\n",
		"cpu.max":               "max 100000\n",
		"cpu.stat":              "usage_usec 2000000\nuser_usec 1500000\nsystem_usec 500000\n",
		"io.stat":               "8:0 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n",
		"cgroup.threads":        "",
	})
	fakeStarted(t, d, "limited", map[string]string{"": cg})
	if _, err := d.register(context.Background(), ipc.FsRegister{ID: "fresh", UIDBase: 200000, GIDBase: 200000}); err != nil {
		t.Fatal(err)
	}

	if m := meminfoMap(t, []byte(read(t, d, "limited/proc/meminfo"))); m["MemTotal"] != 524288 {
		t.Errorf("limited MemTotal = %d, want 524288", m["MemTotal"])
	}
	if got := read(t, d, "fresh/proc/meminfo"); got != hostMeminfo {
		t.Error("an unstarted container should see the host's meminfo")
	}
	if got := read(t, d, "limited/proc/cpuinfo"); strings.Count(got, "processor") != 2 || !strings.Contains(got, "core id\t\t: 3") {
		t.Errorf("cpuinfo: want host CPUs 1 and 3 as 0 and 1:\n%s", got)
	}
	if got := read(t, d, "limited/sys/devices/system/cpu/online"); got != "0-1\n" {
		t.Errorf("online = %q", got)
	}
	if got := read(t, d, "limited/sys/devices/system/cpu/possible"); got != "0-1\n" {
		t.Errorf("possible = %q", got)
	}
	if got := read(t, d, "fresh/sys/devices/system/cpu/online"); got != "0-3\n" {
		t.Errorf("unstarted online = %q", got)
	}
	if got := read(t, d, "limited/sys/devices/system/cpu/cpu1/topology/core_id"); got != "3\n" {
		t.Errorf("cpu1 should be host cpu3, core_id = %q", got)
	}
	if _, err := d.resolve("limited/sys/devices/system/cpu/cpu2"); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("cpu2 beyond the cpuset: err = %v", err)
	}
	if got, want := list(t, d, "limited/sys/devices/system/cpu"), []string{"cpu0", "cpu1", "cpufreq", "kernel_max", "online", "possible"}; !slices.Equal(got, want) {
		t.Errorf("cpu dir = %v, want %v", got, want)
	}
	if got := read(t, d, "limited/sys/devices/system/cpu/kernel_max"); got != "8191\n" {
		t.Errorf("kernel_max = %q", got)
	}
	stat := read(t, d, "limited/proc/stat")
	if !strings.HasPrefix(stat, "cpu  150 0 50 ") || !strings.Contains(stat, "\ncpu1 ") || strings.Contains(stat, "\ncpu2 ") || !strings.Contains(stat, "btime 1700000000") {
		t.Errorf("stat:\n%s", stat)
	}
	if got := read(t, d, "limited/proc/diskstats"); got != "   8       0 sda 1 0 8 0 0 0 0 0 0 0 0\n" {
		t.Errorf("diskstats %q", got)
	}
	if got := read(t, d, "limited/proc/loadavg"); got != "0.50 0.40 0.30 2/300 4242\n" {
		t.Errorf("loadavg before the first sample should be the host's: %q", got)
	}
	up := read(t, d, "fresh/proc/uptime")
	if f := strings.Fields(up); len(f) != 2 || !strings.HasPrefix(f[0], "0.") {
		t.Errorf("fresh uptime %q, want under a second", up)
	}
	n, err := d.resolve("fresh/proc/uptime")
	if err != nil || n.uid != 200000 || n.gid != 200000 || n.mode != 0o444 || n.write != nil {
		t.Errorf("uptime node %+v, %v: want read-only, owned by the container's root", n, err)
	}
}

func TestSysctlViews(t *testing.T) {
	d := testDaemon(t)
	cg := map[string]string{"": t.TempDir()}
	fakeStarted(t, d, "a", cg)
	fakeStarted(t, d, "b", cg)
	hostPidMax := filepath.Join(d.host.proc, "sys/kernel/pid_max")

	if got := read(t, d, "a/proc/sys/kernel/pid_max"); got != "32768\n" {
		t.Errorf("seeded pid_max = %q", got)
	}
	if err := write(d, "a/proc/sys/kernel/pid_max", "100000\n"); err != nil {
		t.Fatal(err)
	}
	if got := read(t, d, "a/proc/sys/kernel/pid_max"); got != "100000\n" {
		t.Errorf("a's pid_max = %q", got)
	}
	if got := read(t, d, "b/proc/sys/kernel/pid_max"); got != "32768\n" {
		t.Errorf("b's pid_max = %q: containers must not share", got)
	}
	if b, _ := os.ReadFile(hostPidMax); string(b) != "32768\n" {
		t.Errorf("host pid_max changed to %q", b)
	}
	if err := write(d, "a/proc/sys/kernel/pid_max", "abc\n"); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("write abc: %v, want EINVAL", err)
	}
	if err := write(d, "a/proc/sys/kernel/printk", "3"); err != nil {
		t.Fatal(err)
	}
	if got := read(t, d, "a/proc/sys/kernel/printk"); got != "3\t4\t1\t7\n" {
		t.Errorf("printk = %q", got)
	}
	n, _ := d.resolve("a/proc/sys/kernel/pid_max")
	if n.uid != 100000 || n.mode != 0o644 {
		t.Errorf("pid_max owner %d mode %o, want the container's root, 644", n.uid, n.mode)
	}

	// Read-only and global ones.
	if err := write(d, "a/proc/sys/kernel/cap_last_cap", "1"); !errors.Is(err, syscall.EACCES) {
		t.Errorf("cap_last_cap write: %v, want EACCES", err)
	}
	if got := read(t, d, "a/proc/sys/kernel/cap_last_cap"); got != "40\n" {
		t.Errorf("cap_last_cap = %q", got)
	}
	n, _ = d.resolve("a/proc/sys/vm/swappiness")
	if n.write != nil || n.uid == 100000 {
		t.Errorf("vm.swappiness must stay the host's and read-only: %+v", n)
	}
	u1, u2 := read(t, d, "a/proc/sys/kernel/random/uuid"), read(t, d, "a/proc/sys/kernel/random/uuid")
	if u1 == u2 || len(u1) != 37 || u1[14] != '4' {
		t.Errorf("random uuids %q %q: want a new v4 on every read", u1, u2)
	}

	// conntrack: per container, and the host raised to the largest asked for.
	hostCT := filepath.Join(d.host.proc, "sys/net/netfilter/nf_conntrack_max")
	if err := write(d, "a/proc/sys/net/netfilter/nf_conntrack_max", "1000"); err != nil {
		t.Fatal(err)
	}
	if got := read(t, d, "a/proc/sys/net/netfilter/nf_conntrack_max"); got != "1000\n" {
		t.Errorf("a conntrack = %q", got)
	}
	if b, _ := os.ReadFile(hostCT); string(b) != "262144\n" {
		t.Errorf("a lower value must not touch the host: %q", b)
	}
	if got := read(t, d, "a/proc/sys/net/nf_conntrack_max"); got != "1000\n" {
		t.Errorf("the alias should show the same value: %q", got)
	}
	if err := write(d, "b/proc/sys/net/netfilter/nf_conntrack_max", "524288"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(hostCT); strings.TrimSpace(string(b)) != "524288" {
		t.Errorf("host conntrack max = %q, want raised to 524288", b)
	}
	if got := read(t, d, "a/proc/sys/net/netfilter/nf_conntrack_max"); got != "1000\n" {
		t.Errorf("a conntrack after b's raise = %q", got)
	}
	if got := list(t, d, "a/proc/sys/net/ipv4/neigh/default"); !slices.Equal(got, []string{"gc_thresh1"}) {
		t.Errorf("neigh/default = %v", got)
	}
	if got := list(t, d, "a/proc/sys"); !slices.Equal(got, []string{"kernel", "net", "vm"}) {
		t.Errorf("/proc/sys = %v", got)
	}

	// hashsize and the product UUID.
	if err := write(d, "a/sys/module/nf_conntrack/parameters/hashsize", "131072\n"); err != nil {
		t.Fatal(err)
	}
	if got := read(t, d, "a/sys/module/nf_conntrack/parameters/hashsize"); got != "131072\n" {
		t.Errorf("a hashsize = %q", got)
	}
	if got := read(t, d, "b/sys/module/nf_conntrack/parameters/hashsize"); got != "65536\n" {
		t.Errorf("b hashsize = %q", got)
	}
	if err := write(d, "a/sys/module/nf_conntrack/parameters/hashsize", "0"); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("hashsize 0: %v, want EINVAL", err)
	}
	ua, ub := read(t, d, "a/sys/devices/virtual/dmi/id/product_uuid"), read(t, d, "b/sys/devices/virtual/dmi/id/product_uuid")
	if ua == ub || ua != read(t, d, "a/sys/devices/virtual/dmi/id/product_uuid") || ua != productUUID("a")+"\n" {
		t.Errorf("product uuids %q %q: want distinct and stable", ua, ub)
	}

	// Registering again keeps the values; unregistering drops them.
	if _, err := d.register(context.Background(), ipc.FsRegister{ID: "a", UIDBase: 100000, GIDBase: 100000}); err != nil {
		t.Fatal(err)
	}
	if got := read(t, d, "a/proc/sys/kernel/pid_max"); got != "100000\n" {
		t.Errorf("after re-register pid_max = %q", got)
	}
	if _, err := d.unregister(context.Background(), ipc.MgrID{ID: "a"}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.resolve("a/proc/uptime"); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("after unregister: %v", err)
	}
	if _, err := d.unregister(context.Background(), ipc.MgrID{ID: "a"}); err != nil {
		t.Errorf("unregister twice: %v", err)
	}
}

func TestSysKernel(t *testing.T) {
	d := testDaemon(t)
	fakeStarted(t, d, "a", map[string]string{})
	if got := list(t, d, "a/sys/kernel"); !slices.Equal(got, []string{"debug", "mm", "mmlink", "tracing"}) {
		t.Errorf("/sys/kernel = %v", got)
	}
	for _, p := range []string{"a/sys/kernel/debug", "a/sys/kernel/tracing"} {
		if got := list(t, d, p); len(got) != 0 {
			t.Errorf("%s = %v, want empty", p, got)
		}
	}
	if _, err := d.resolve("a/sys/kernel/debug/secret"); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("debug/secret: %v", err)
	}
	if got := read(t, d, "a/sys/kernel/mm/transparent_hugepage/enabled"); got != "always [madvise] never\n" {
		t.Errorf("thp = %q", got)
	}
	n, err := d.resolve("a/sys/kernel/mmlink")
	if err != nil || n.kind != kLink || n.target != "../mm" {
		t.Errorf("symlink: %+v, %v", n, err)
	}
	if n, _ := d.resolve("a/sys/kernel/mm/transparent_hugepage/enabled"); n.write != nil {
		t.Error("/sys/kernel must be read-only")
	}
}

func TestRegister(t *testing.T) {
	d := testDaemon(t)
	for _, bad := range []string{"", ".", "..", "a/b", pollFile} {
		if _, err := d.register(context.Background(), ipc.FsRegister{ID: bad}); err == nil {
			t.Errorf("register %q: no error", bad)
		}
	}
	reg, err := d.register(context.Background(), ipc.FsRegister{ID: "c1", UIDBase: 1, GIDBase: 1})
	if err != nil {
		t.Fatal(err)
	}
	var dests []string
	for _, m := range reg.Mounts {
		dests = append(dests, m.Dest)
		if m.Source != filepath.Join("/var/lib/sysboxfs/c1", m.Dest) {
			t.Errorf("source %q for %q", m.Source, m.Dest)
		}
	}
	// The fake host has conntrack but no DMI.
	want := []string{
		"/proc/uptime", "/proc/swaps", "/proc/meminfo", "/proc/cpuinfo", "/proc/stat",
		"/proc/loadavg", "/proc/diskstats", "/proc/sys", "/sys/kernel", "/sys/devices/system/cpu",
		"/sys/module/nf_conntrack/parameters/hashsize",
	}
	if !slices.Equal(dests, want) {
		t.Errorf("dests %v\nwant  %v", dests, want)
	}
	if _, err := d.started(context.Background(), ipc.FsStarted{ID: "nope", Pid: 1}); err == nil {
		t.Error("started for an unknown container: no error")
	}
	if got := list(t, d, ""); !slices.Equal(got, []string{pollFile, "c1"}) {
		t.Errorf("root = %v", got)
	}
}

func TestCmdDefaults(t *testing.T) {
	// kong needs a literal default: keep it in step with the runtime's.
	sf, _ := reflect.TypeOf(Cmd{}).FieldByName("Socket")
	if f := sf.Tag.Get("default"); f != ipc.FsSocket {
		t.Errorf("--socket default %q, want %q", f, ipc.FsSocket)
	}
}

// TestReadLarge reads a file bigger than a request buffer: the reply is then
// built from ReadFileOp.Data, in pieces at increasing offsets.
func TestReadLarge(t *testing.T) {
	d := testDaemon(t)
	// An unstarted container sees the host's diskstats as they are.
	var sb strings.Builder
	for i := range 3000 {
		fmt.Fprintf(&sb, "   8 %7d sd%d 1 0 8 1 1 0 8 1 0 1 1\n", i, i)
	}
	big := sb.String()
	if err := os.WriteFile(filepath.Join(d.host.proc, "diskstats"), []byte(big), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := d.register(context.Background(), ipc.FsRegister{ID: "a"}); err != nil {
		t.Fatal(err)
	}
	f := newFsys(d)
	var p []string
	for _, name := range []string{"a", "proc", "diskstats"} {
		parent := fuseops.InodeID(fuseops.RootInodeID)
		if len(p) > 0 {
			parent = f.ids[strings.Join(p, "/")]
		}
		op := &fuseops.LookUpInodeOp{Parent: parent, Name: name}
		if err := f.LookUpInode(context.Background(), op); err != nil {
			t.Fatalf("lookup %s: %v", name, err)
		}
		p = append(p, name)
	}
	open := &fuseops.OpenFileOp{Inode: f.ids["a/proc/diskstats"]}
	if err := f.OpenFile(context.Background(), open); err != nil || !open.UseDirectIO {
		t.Fatalf("open: %v, direct I/O %v", err, open.UseDirectIO)
	}
	var got []byte
	for {
		op := &fuseops.ReadFileOp{Handle: open.Handle, Offset: int64(len(got)), Size: 64 << 10}
		if err := f.ReadFile(context.Background(), op); err != nil {
			t.Fatal(err)
		}
		if op.BytesRead == 0 {
			break
		}
		for _, b := range op.Data {
			got = append(got, b...)
		}
	}
	if string(got) != big {
		t.Errorf("read %d bytes, want %d", len(got), len(big))
	}
	if err := f.ReleaseFileHandle(context.Background(), &fuseops.ReleaseFileHandleOp{Handle: open.Handle}); err != nil {
		t.Fatal(err)
	}
	if len(f.handles) != 0 {
		t.Error("handle not released")
	}
}

// BenchmarkRender measures making the files' content, without FUSE.
func BenchmarkRender(b *testing.B) {
	d := testDaemon(b)
	cg := v2Cgroup(b, map[string]string{
		"memory.max": "536870912\n", "memory.current": "104857600\n",
		"memory.stat": "anon 52428800\nfile 41943040\n", "cpu.max": "max 100000\n",
		"cpuset.cpus.effective": "0\n", "cpu.stat": "usage_usec 1000\nuser_usec 600\nsystem_usec 400\n",
	})
	c := fakeStarted(b, d, "c", map[string]string{"": cg})
	for _, name := range []string{"uptime", "meminfo", "stat"} {
		b.Run(name+"/cached", func(b *testing.B) {
			n, _ := d.resolve("c/proc/" + name)
			for b.Loop() {
				if _, err := n.read(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("meminfo/uncached", func(b *testing.B) {
		for b.Loop() {
			if _, err := d.renderMeminfo(c); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestTrapViews(t *testing.T) {
	d := testDaemon(t)
	if _, ok := d.Mounts("nope"); ok {
		t.Error("Mounts of an unknown container")
	}
	fakeStarted(t, d, "a", map[string]string{"": v2Cgroup(t, map[string]string{
		"memory.max": "536870912\n", "memory.current": "1048576\n", "memory.stat": "anon 1048576\n",
	})})
	ms, ok := d.Mounts("a")
	if !ok || len(ms) == 0 || ms[0].Dest != "/proc/uptime" {
		t.Errorf("Mounts = %v, %v", ms, ok)
	}
	b, err := d.ReadView("a", "/proc/meminfo")
	if err != nil || meminfoMap(t, b)["MemTotal"] != 524288 {
		t.Errorf("ReadView meminfo: %v\n%s", err, b)
	}
	if _, err := d.ReadView("a", "/proc/sys"); !errors.Is(err, syscall.EISDIR) {
		t.Errorf("ReadView of a dir: %v", err)
	}
}
