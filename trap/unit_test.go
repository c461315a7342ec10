package trap

import (
	"encoding/json"
	"net"
	"os"
	"reflect"
	"slices"
	"testing"
	"unsafe"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/sysbox-dev/sysbox/internal/ipc"
)

// Unit tests: pure logic, no root.

// A Docker container's mounts under sysbox, as its init sees them.
const containerMountinfo = `1201 1100 0:120 / / rw,relatime master:500 - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w
1202 1201 0:121 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
1203 1201 0:122 / /dev rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755,uid=165536,gid=165536
1204 1203 0:123 / /dev/pts rw,nosuid,noexec,relatime - devpts devpts rw,gid=165541,mode=620,ptmxmode=666
1205 1201 0:124 / /sys rw,nosuid,nodev,noexec,relatime - sysfs sysfs rw
1206 1205 0:125 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup rw
1207 1201 253:1 /var/lib/docker/volumes/data /data ro,relatime - ext4 /dev/vda1 rw
1208 1202 0:60 /c1/proc/uptime /proc/uptime rw,nosuid,nodev,relatime - fuse fuse rw,user_id=0,group_id=0,allow_other
1209 1202 0:60 /c1/proc/sys /proc/sys rw,nosuid,nodev,relatime - fuse fuse rw,user_id=0,group_id=0,allow_other
1210 1202 0:121 /bus /proc/bus ro,nosuid,nodev,noexec,relatime - proc proc rw
1211 1202 0:121 /fs /proc/fs ro,nosuid,nodev,noexec,relatime - proc proc rw
1212 1202 0:6 /null /proc/kcore rw,nosuid - devtmpfs udev rw,size=4k
1213 1202 0:6 /null /proc/keys rw,nosuid - devtmpfs udev rw,size=4k
1214 1202 0:126 / /proc/acpi ro,relatime - tmpfs tmpfs ro,uid=165536,gid=165536
1215 1202 0:126 / /proc/scsi ro,relatime - tmpfs tmpfs ro,uid=165536,gid=165536
1216 1205 0:60 /c1/sys/kernel /sys/kernel rw,nosuid,nodev,relatime - fuse fuse rw,user_id=0,group_id=0,allow_other
1217 1205 0:127 / /sys/firmware ro,relatime - tmpfs tmpfs ro
1218 1209 0:128 / /proc/sys/fs/binfmt_misc rw,relatime - binfmt_misc binfmt_misc rw
1219 1201 0:129 / /mnt/with\040space rw,relatime - tmpfs tmpfs rw
`

func TestParseMountinfo(t *testing.T) {
	ms, err := parseMountinfo([]byte(containerMountinfo))
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 19 {
		t.Fatalf("%d entries", len(ms))
	}
	want := mountEntry{id: 1208, parent: 1202, dev: "0:60", root: "/c1/proc/uptime", point: "/proc/uptime", opts: "rw,nosuid,nodev,relatime", fstype: "fuse", source: "fuse"}
	if ms[7] != want {
		t.Errorf("got %+v\nwant %+v", ms[7], want)
	}
	if ms[18].point != "/mnt/with space" {
		t.Errorf("escapes: %q", ms[18].point)
	}
	if !ms[6].readOnly() || ms[1].readOnly() {
		t.Error("readOnly")
	}
	for _, bad := range []string{"1 2 3", "x 1 0:1 / / rw - proc proc rw", "1 2 0:1 / / rw no-separator proc proc rw"} {
		if _, err := parseMountinfo([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestBuildLayout(t *testing.T) {
	ms, err := parseMountinfo([]byte(containerMountinfo))
	if err != nil {
		t.Fatal(err)
	}
	l := buildLayout(ms, map[string]bool{"/proc/uptime": true, "/proc/sys": true, "/sys/kernel": true})
	wantProc := []cover{
		{coverReadOnly, "bus"},
		{coverReadOnly, "fs"},
		{coverMaskFile, "kcore"},
		{coverMaskFile, "keys"},
		{coverMaskDir, "acpi"},
		{coverMaskDir, "scsi"},
	}
	// Order within a depth follows mountinfo; only depth is sorted.
	got := slices.Clone(l.procCovers)
	sortCovers := func(c []cover) {
		slices.SortFunc(c, func(a, b cover) int {
			if a.kind != b.kind {
				return int(a.kind) - int(b.kind)
			}
			if a.rel < b.rel {
				return -1
			}
			return 1
		})
	}
	sortCovers(got)
	sortCovers(wantProc)
	if !reflect.DeepEqual(got, wantProc) {
		t.Errorf("proc covers:\n got %v\nwant %v", got, wantProc)
	}
	if want := []cover{{coverMaskDir, "firmware"}}; !reflect.DeepEqual(l.sysCovers, want) {
		t.Errorf("sys covers: %v, want %v", l.sysCovers, want)
	}
	byPoint := map[string]mountEntry{}
	for _, m := range ms {
		byPoint[m.point] = m
	}
	for _, p := range []string{"/proc", "/sys", "/proc/uptime", "/proc/sys", "/sys/kernel", "/proc/bus", "/proc/kcore", "/proc/acpi", "/sys/firmware"} {
		if !l.isProtected(byPoint[p]) {
			t.Errorf("%s not protected", p)
		}
	}
	for _, p := range []string{"/", "/dev", "/sys/fs/cgroup", "/data", "/proc/sys/fs/binfmt_misc", "/mnt/with space"} {
		if l.isProtected(byPoint[p]) {
			t.Errorf("%s protected", p)
		}
	}
	// The same view mounted elsewhere is not the original.
	moved := byPoint["/proc/uptime"]
	moved.point = "/tmp/p/uptime"
	if l.isProtected(moved) {
		t.Error("a view of a new procfs is protected")
	}
	for _, p := range []string{"/data", "/proc/bus", "/proc/acpi", "/sys/firmware"} {
		if !l.isReadOnly(byPoint[p]) {
			t.Errorf("%s not read-only", p)
		}
	}
	if l.isReadOnly(byPoint["/"]) || l.isReadOnly(byPoint["/proc"]) {
		t.Error("rw mounts read-only")
	}
	// A bind of (part of) a read-only mount elsewhere is read-only for
	// good too; another part of the same filesystem is not.
	for _, m := range []mountEntry{
		{dev: "253:1", root: "/var/lib/docker/volumes/data", point: "/tmp/x"},
		{dev: "253:1", root: "/var/lib/docker/volumes/data/sub", point: "/tmp/y"},
		{dev: "0:121", root: "/bus/pci", point: "/tmp/z"},
		{dev: "0:126", root: "/", point: "/tmp/acpi"},
	} {
		if !l.isReadOnly(m) {
			t.Errorf("copy %+v not read-only", m)
		}
	}
	for _, m := range []mountEntry{
		{dev: "253:1", root: "/var/lib/docker/volumes/database", point: "/tmp/x"},
		{dev: "253:1", root: "/var/lib/docker", point: "/tmp/x"},
		{dev: "0:121", root: "/", point: "/tmp/p"},
		{dev: "0:121", root: "/busy", point: "/tmp/p"},
	} {
		if l.isReadOnly(m) {
			t.Errorf("%+v read-only", m)
		}
	}
	if !l.protectedDev("0:60") || !l.protectedDev("0:6") || l.protectedDev("0:129") {
		t.Error("protectedDev")
	}
	if !l.readOnlyDev("253:1") || l.readOnlyDev("0:120") {
		t.Error("readOnlyDev")
	}
	// Without a /proc there is nothing to copy.
	if l := buildLayout(ms[:1], nil); l.procCovers != nil || len(l.protected) != 0 {
		t.Errorf("layout of a rootfs alone: %+v", l)
	}
}

func TestOverlaysFor(t *testing.T) {
	views := []ipc.FsMount{
		{Source: "/v/c1/sys/devices/system/cpu", Dest: "/sys/devices/system/cpu"},
		{Source: "/v/c1/proc/uptime", Dest: "/proc/uptime"},
		{Source: "/v/c1/proc/sys", Dest: "/proc/sys"},
		{Source: "/v/c1/sys/kernel", Dest: "/sys/kernel"},
		{Source: "/v/c1/proc", Dest: "/proc"}, // not under: ignored
	}
	covers := []cover{{coverMaskFile, "kcore"}, {coverReadOnly, "bus"}, {coverMaskDir, "acpi"}}
	got := overlaysFor(views, covers, "/proc")
	want := []overlay{
		{rel: "uptime", view: "/v/c1/proc/uptime"},
		{rel: "sys", view: "/v/c1/proc/sys"},
		{rel: "bus", kind: coverReadOnly},
		{rel: "acpi", kind: coverMaskDir},
		{rel: "kcore", kind: coverMaskFile},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("proc:\n got %+v\nwant %+v", got, want)
	}
	got = overlaysFor(views, nil, "/sys")
	want = []overlay{{rel: "kernel", view: "/v/c1/sys/kernel"}, {rel: "devices/system/cpu", view: "/v/c1/sys/devices/system/cpu"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("sys:\n got %+v\nwant %+v", got, want)
	}
}

func TestClassifyMount(t *testing.T) {
	for _, tc := range []struct {
		flags uint64
		want  mountOp
	}{
		{0, opNew},
		{unix.MS_NOSUID | unix.MS_NODEV, opNew},
		{unix.MS_MGC_VAL | unix.MS_NOSUID, opNew},
		{unix.MS_REMOUNT, opRemount},
		{unix.MS_REMOUNT | unix.MS_RDONLY, opRemount},
		{unix.MS_REMOUNT | unix.MS_BIND, opBindRemount},
		{unix.MS_BIND, opBind},
		{unix.MS_BIND | unix.MS_REC, opBind},
		{unix.MS_PRIVATE | unix.MS_REC, opPropagation},
		{unix.MS_SHARED, opPropagation},
		{unix.MS_MOVE, opMove},
		// Precedence: remount beats bind beats propagation beats move.
		{unix.MS_BIND | unix.MS_PRIVATE, opBind},
		{unix.MS_SLAVE | unix.MS_MOVE, opPropagation},
	} {
		if got, _ := classifyMount(tc.flags); got != tc.want {
			t.Errorf("%#x: %v, want %v", tc.flags, got, tc.want)
		}
	}
	if _, f := classifyMount(unix.MS_MGC_VAL | unix.MS_RDONLY); f != unix.MS_RDONLY {
		t.Errorf("magic not stripped: %#x", f)
	}
}

func TestMountAttrs(t *testing.T) {
	for _, tc := range []struct {
		flags uint64
		want  int
	}{
		{0, 0},
		{unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC},
		{unix.MS_NOATIME, unix.MOUNT_ATTR_NOATIME},
		{unix.MS_STRICTATIME, unix.MOUNT_ATTR_STRICTATIME},
		{unix.MS_RELATIME, unix.MOUNT_ATTR_RELATIME},
		{unix.MS_NODIRATIME, unix.MOUNT_ATTR_NODIRATIME},
	} {
		if got := mountAttrs(tc.flags); got != tc.want {
			t.Errorf("%#x: %#x, want %#x", tc.flags, got, tc.want)
		}
	}
}

func TestParseOptions(t *testing.T) {
	got := parseOptions("hidepid=2,,gid=5,ro,subset=pid")
	want := [][2]string{{"hidepid", "2"}, {"gid", "5"}, {"ro", ""}, {"subset", "pid"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%v", got)
	}
	if parseOptions("") != nil {
		t.Error("empty")
	}
}

func TestMknodAllowList(t *testing.T) {
	chr, blk := uint32(unix.S_IFCHR), uint32(unix.S_IFBLK)
	for _, tc := range []struct {
		name     string
		mode     uint32
		dev      device
		want     mknodVerdict
		wantName string
	}{
		{"null", chr | 0o666, device{1, 3}, mknodCreate, "null"},
		{"zero", chr, device{1, 5}, mknodCreate, "zero"},
		{"full", chr, device{1, 7}, mknodCreate, "full"},
		{"random", chr, device{1, 8}, mknodCreate, "random"},
		{"urandom", chr, device{1, 9}, mknodCreate, "urandom"},
		{"tty", chr, device{5, 0}, mknodCreate, "tty"},
		{"tun", chr, device{10, 200}, mknodCreate, "net/tun"},
		{"fuse", chr, device{10, 229}, mknodCreate, "fuse"},
		{"whiteout", chr, device{0, 0}, mknodContinue, ""},
		{"mem", chr, device{1, 1}, mknodRefuse, ""},
		{"kmsg", chr, device{1, 11}, mknodRefuse, ""},
		{"console", chr, device{5, 1}, mknodRefuse, ""},
		{"ptmx", chr, device{5, 2}, mknodRefuse, ""},
		{"kvm", chr, device{10, 232}, mknodRefuse, ""},
		{"sda", blk, device{8, 0}, mknodRefuse, ""},
		{"loop0", blk, device{7, 0}, mknodRefuse, ""},
		{"block whiteout", blk, device{0, 0}, mknodRefuse, ""},
		{"fifo", unix.S_IFIFO | 0o644, device{}, mknodContinue, ""},
		{"socket", unix.S_IFSOCK, device{}, mknodContinue, ""},
		{"regular", unix.S_IFREG | 0o644, device{}, mknodContinue, ""},
		{"no type", 0o644, device{}, mknodContinue, ""},
	} {
		if got := classifyMknod(tc.mode, tc.dev); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
		if tc.wantName != "" && safeDevices[tc.dev] != tc.wantName {
			t.Errorf("%s: named %q", tc.name, safeDevices[tc.dev])
		}
	}
	if len(DeviceRules()) != len(safeDevices) {
		t.Error("DeviceRules")
	}
}

func TestDecodeMknod(t *testing.T) {
	// glibc's makedev for a large minor, and a mode with junk above 16 bits
	// (the kernel takes a umode_t).
	dev := unix.Mkdev(10, 200)
	mode, d := decodeMknod(uint64(unix.S_IFCHR|0o600)|1<<40, dev)
	if mode != unix.S_IFCHR|0o600 || d != (device{10, 200}) {
		t.Errorf("%o %v", mode, d)
	}
	_, d = decodeMknod(0, unix.Mkdev(259, 300))
	if d != (device{259, 300}) {
		t.Errorf("large numbers: %v", d)
	}
	// The kernel takes 32 bits of dev.
	_, d = decodeMknod(0, 1<<40|unix.Mkdev(1, 3))
	if d != (device{1, 3}) {
		t.Errorf("high bits: %v", d)
	}
}

func TestSplitPath(t *testing.T) {
	for _, tc := range []struct {
		in, dir, base string
		err           error
	}{
		{"null", "", "null", nil},
		{"/dev/null", "/dev", "null", nil},
		{"/null", "/", "null", nil},
		{"//null", "/", "null", nil},
		{"net/tun", "net", "tun", nil},
		{"/dev//net//tun", "/dev//net", "tun", nil},
		{"../x", "..", "x", nil},
		{"", "", "", unix.ENOENT},
		{"dir/", "", "", unix.ENOENT},
		{"/", "", "", unix.ENOENT},
		{"a/.", "", "", unix.EEXIST},
		{"..", "", "", unix.EEXIST},
	} {
		dir, base, err := splitPath(tc.in)
		if dir != tc.dir || base != tc.base || err != tc.err {
			t.Errorf("%q: %q %q %v, want %q %q %v", tc.in, dir, base, err, tc.dir, tc.base, tc.err)
		}
	}
}

func TestParseStatus(t *testing.T) {
	status := "Name:\tsh\nUmask:\t0022\nState:\tS (sleeping)\nUid:\t165536\t165537\t165538\t165539\nGid:\t165540\t165541\t165542\t165543\nGroups:\t165536 165546 \nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n"
	c, err := parseStatus([]byte(status))
	if err != nil {
		t.Fatal(err)
	}
	want := creds{
		uid: 165536, euid: 165537, fsuid: 165539, gid: 165540, egid: 165541, fsgid: 165543,
		groups: []uint32{165536, 165546}, capEff: 0x1ffffffffff, umask: 0o22, hasUmask: true,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got %+v\nwant %+v", c, want)
	}
	if !c.has(capSysAdmin) || !c.has(capMknod) {
		t.Error("caps")
	}
	c, _ = parseStatus([]byte("Uid:\t1 1 1 1\nGid:\t1 1 1 1\nCapEff:\t0000000000000000\n"))
	if c.has(capSysAdmin) || c.hasUmask {
		t.Error("no caps, no umask")
	}
	for _, bad := range []string{"Uid:\t1 1 1 1\nGid:\t1 1 1 1\n", "Uid:\t1 1 1\nGid:\t1 1 1 1\nCapEff:\t0\n", "Uid:\t1 1 1 1\nGid:\t1 1 1 1\nCapEff:\tzz\n"} {
		if _, err := parseStatus([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestIDMap(t *testing.T) {
	m, err := parseIDMap([]byte("         0     165536      65536\n     65536    1000000        10\n"))
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[uint32]bool{0: false, 165535: false, 165536: true, 231071: true, 231072: false, 1000009: true, 1000010: false} {
		if mapped(m, id) != want {
			t.Errorf("mapped(%d) = %v", id, !want)
		}
	}
	if _, err := parseIDMap([]byte("0 1\n")); err == nil {
		t.Error("short line")
	}
}

func TestFillSysinfo(t *testing.T) {
	si := unix.Sysinfo_t{Uptime: 999999, Totalram: 100, Freeram: 50, Totalhigh: 3, Unit: 4096, Procs: 700, Loads: [3]uint64{1, 2, 3}}
	fillSysinfo(&si, []byte(viewUptime), []byte(viewMeminfo), []byte(viewLoadavg))
	want := unix.Sysinfo_t{
		Uptime: 4243, Totalram: 1048576 << 10, Freeram: 524288 << 10, Sharedram: 4096 << 10,
		Totalswap: 262144 << 10, Freeswap: 131072 << 10, Totalhigh: 3 * 4096, Unit: 1, Procs: 42,
		Loads: [3]uint64{98304, 49152, 16384},
	}
	if si != want {
		t.Errorf("got  %+v\nwant %+v", si, want)
	}
	// Missing or broken views keep the host's numbers.
	host := unix.Sysinfo_t{Uptime: 7, Totalram: 100, Unit: 1, Procs: 5}
	si = host
	fillSysinfo(&si, nil, nil, []byte("garbage"))
	if si != host {
		t.Errorf("without views: %+v", si)
	}
	// An exact second stays; procs saturate.
	fillSysinfo(&si, []byte("12.00 1.00"), nil, []byte("0 0 0 1/99999 1"))
	if si.Uptime != 12 || si.Procs != 65535 {
		t.Errorf("uptime %d procs %d", si.Uptime, si.Procs)
	}
}

// TestReadString reads this process's own memory (process_vm_readv on
// oneself needs no privilege), including a string that ends right before
// an unmapped page.
func TestReadString(t *testing.T) {
	ps := int(pageSize)
	mem, err := unix.Mmap(-1, 0, 2*ps, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	if err := unix.Mprotect(mem[ps:], unix.PROT_NONE); err != nil {
		t.Fatal(err)
	}
	pid := os.Getpid()
	base := uint64(addrOf(mem))
	// Ends at the page's last byte.
	s := "/proc/sys/kernel/hostname"
	copy(mem[ps-len(s)-1:], s+"\x00")
	got, err := readString(pid, base+uint64(ps-len(s)-1), pathMax)
	if err != nil || got != s {
		t.Errorf("at the page end: %q %v", got, err)
	}
	// Runs into the unmapped page.
	copy(mem[ps-4:], "abcd")
	if _, err := readString(pid, base+uint64(ps-4), pathMax); err != unix.EFAULT {
		t.Errorf("into a hole: %v", err)
	}
	// Crosses a page boundary in an ordinary allocation.
	long := make([]byte, 3*ps)
	for i := range long {
		long[i] = 'a' + byte(i%26)
	}
	long[len(long)-1] = 0
	got, err = readString(pid, uint64(addrOf(long)), 4*ps)
	if err != nil || got != string(long[:len(long)-1]) {
		t.Errorf("long: %d bytes, %v", len(got), err)
	}
	if _, err := readString(pid, uint64(addrOf(long)), 100); err != unix.ENAMETOOLONG {
		t.Errorf("too long: %v", err)
	}
	if _, err := readString(pid, 0, pathMax); err != unix.EFAULT {
		t.Errorf("NULL: %v", err)
	}
}

// TestReadState reads the message libcontainer sends: state JSON with the
// notify fd in SCM_RIGHTS, in one sendmsg, then EOF.
func TestReadState(t *testing.T) {
	st := specs.ContainerProcessState{
		Version: specs.Version, Fds: []string{specs.SeccompFdName}, Pid: 4321, Metadata: "m",
		State: specs.State{Version: specs.Version, ID: "c1", Status: specs.StateCreating, Pid: 1234, Bundle: "/b", Annotations: map[string]string{"a": "b"}},
	}
	b, _ := json.Marshal(st)
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	r, w := os.NewFile(uintptr(pair[0]), "r"), os.NewFile(uintptr(pair[1]), "w")
	defer r.Close()
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	if err := unix.Sendmsg(int(w.Fd()), b, unix.UnixRights(int(devNull.Fd())), nil, 0); err != nil {
		t.Fatal(err)
	}
	w.Close()
	c, err := net.FileConn(r)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, fds, err := readState(c.(*net.UnixConn))
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(fds)
	if !reflect.DeepEqual(got, st) || len(fds) != 1 {
		t.Errorf("got %+v, %d fds", got, len(fds))
	}
	flags, err := unix.FcntlInt(uintptr(fds[0]), unix.F_GETFD, 0)
	if err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Errorf("received fd is not close-on-exec: %v", err)
	}
}

func addrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(&b[0])) }

// TestIsViewOf: the views are bound after the layout was read, so umount2
// knows them by what Views says, wherever the FUSE mount lives.
func TestIsViewOf(t *testing.T) {
	ms, err := parseMountinfo([]byte(containerMountinfo))
	if err != nil {
		t.Fatal(err)
	}
	byPoint := map[string]mountEntry{}
	for _, m := range ms {
		byPoint[m.point] = m
	}
	views := []ipc.FsMount{
		{Source: "/var/lib/sysboxfs/c1/proc/uptime", Dest: "/proc/uptime"},
		{Source: "/var/lib/sysboxfs/c1/proc/sys", Dest: "/proc/sys"},
		{Source: "/var/lib/sysboxfs/c1/sys/kernel", Dest: "/sys/kernel"},
	}
	for _, p := range []string{"/proc/uptime", "/proc/sys", "/sys/kernel"} {
		if !isViewOf(views, byPoint[p]) {
			t.Errorf("%s is not a view", p)
		}
	}
	for _, p := range []string{"/proc", "/proc/bus", "/proc/sys/fs/binfmt_misc", "/"} {
		if isViewOf(views, byPoint[p]) {
			t.Errorf("%s is a view", p)
		}
	}
	// A view at another place (a new procfs at /tmp/p), another view at a
	// view's place, another container's view: not the original.
	for _, m := range []mountEntry{
		{fstype: "fuse", root: "/c1/proc/uptime", point: "/tmp/p/uptime"},
		{fstype: "fuse", root: "/c1/proc/swaps", point: "/proc/uptime"},
		{fstype: "fuse", root: "/c2/proc/uptime", point: "/proc/uptime"},
	} {
		if isViewOf(views, m) {
			t.Errorf("%+v is a view", m)
		}
	}
	// The same path on another filesystem: not a view.
	if isViewOf(views, mountEntry{fstype: "tmpfs", root: "/c1/proc/uptime", point: "/proc/uptime"}) {
		t.Error("a tmpfs file at /proc/uptime is a view")
	}
}

// TestReadCaps: capget of another thread gives what its status says.
func TestReadCaps(t *testing.T) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	want, err := parseStatus(b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := readCaps(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if got.capEff != want.capEff {
		t.Errorf("capget: %#x, status: %#x", got.capEff, want.capEff)
	}
	if _, err := readCaps(1 << 30); err == nil {
		t.Error("capget of no such pid: no error")
	}
}
