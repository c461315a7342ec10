package mgr

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alecthomas/kong"
	"golang.org/x/sys/unix"

	"github.com/sysbox-dev/sysbox/internal/ipc"
)

// TestMain doubles as the daemon for tests that need a real process to
// kill: SYSBOX_MGR_TEST_CMD holds a ServeCmd as JSON; and as the allocating
// child of TestCrashMidway (SYSBOX_MGR_TEST_CRASH).
func TestMain(m *testing.M) {
	if s := os.Getenv("SYSBOX_MGR_TEST_CRASH"); s != "" {
		if err := crashChild(s); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if s := os.Getenv("SYSBOX_MGR_TEST_CMD"); s != "" {
		var c ServeCmd
		if err := json.Unmarshal([]byte(s), &c); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		if err := c.Run(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: chowns special dirs, probes id-mapped mounts, mounts tmpfs")
	}
}

// testCmd is a daemon config rooted in a fresh temp dir.
func testCmd(t testing.TB) ServeCmd {
	t.Helper()
	base := t.TempDir()
	etc := filepath.Join(base, "etc")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	return ServeCmd{
		DataRoot:  filepath.Join(base, "data"),
		Socket:    filepath.Join(base, "run", "mgr.sock"),
		RangeSize: BlockSize,
		SubUID:    filepath.Join(etc, "subuid"),
		SubGID:    filepath.Join(etc, "subgid"),
		LoginDefs: filepath.Join(etc, "login.defs"),
		SubIDSize: 4096 * BlockSize,
		Sweep:     200 * time.Millisecond,
		FdGrace:   2 * time.Second,
	}
}

type daemon struct {
	cmd    ServeCmd
	cancel context.CancelFunc
	done   chan error
}

// start runs the daemon in this process until the test ends.
func start(t testing.TB, c ServeCmd) *daemon {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := &daemon{cmd: c, cancel: cancel, done: make(chan error, 1)}
	ready := make(chan struct{})
	go func() { d.done <- c.serve(ctx, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-d.done:
		cancel()
		t.Fatalf("daemon did not start: %v", err)
	case <-time.After(20 * time.Second):
		cancel()
		t.Fatal("daemon did not start in 20s")
	}
	t.Cleanup(func() { d.stop(t) })
	return d
}

func (d *daemon) stop(t testing.TB) {
	t.Helper()
	if d.cancel == nil {
		return
	}
	d.cancel()
	d.cancel = nil
	select {
	case err := <-d.done:
		if err != nil {
			t.Errorf("daemon: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Error("daemon did not stop in 20s")
	}
}

func register(t testing.TB, socket string, req ipc.MgrRegister) (ipc.MgrRegistration, error) {
	t.Helper()
	return ipc.Call[ipc.MgrRegister, ipc.MgrRegistration](context.Background(), socket, ipc.MgrRegisterMethod, req)
}

func status(t testing.TB, socket string) ipc.MgrStatus {
	t.Helper()
	st, err := ipc.Call[ipc.Empty, ipc.MgrStatus](context.Background(), socket, ipc.MgrStatusMethod, ipc.Empty{})
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	return st
}

func findContainer(st ipc.MgrStatus, id string) (ipc.MgrContainer, bool) {
	for _, c := range st.Containers {
		if c.ID == id {
			return c, true
		}
	}
	return ipc.MgrContainer{}, false
}

// bundle makes a bundle dir with a rootfs dir inside, as containerd's shim does.
func bundle(t testing.TB, id string) (string, string) {
	t.Helper()
	b := filepath.Join(t.TempDir(), id)
	r := filepath.Join(b, "rootfs")
	if err := os.MkdirAll(r, 0o755); err != nil {
		t.Fatal(err)
	}
	return b, r
}

func mustRun(t testing.TB, f func() error) {
	t.Helper()
	if err := f(); err != nil {
		t.Fatal(err)
	}
}

func owner(t testing.TB, p string) (uint32, uint32, os.FileMode) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Uid, st.Gid, os.FileMode(st.Mode & 0o7777)
}

func TestDaemonRegister(t *testing.T) {
	needRoot(t)
	c := testCmd(t)
	start(t, c)

	b, rootfs := bundle(t, "c1")
	// What an image may hold at /var/lib/docker: preloaded layers with
	// owners, a hard link, a whiteout, an opaque marker, a symlink out.
	img := filepath.Join(rootfs, "var/lib/docker")
	mustRun(t, func() error { return os.MkdirAll(filepath.Join(img, "overlay2/l1/diff"), 0o710) })
	mustRun(t, func() error { return os.Chmod(img, 0o710) })
	mustRun(t, func() error { return os.WriteFile(filepath.Join(img, "a"), []byte("data"), 0o640) })
	mustRun(t, func() error { return os.Lchown(filepath.Join(img, "a"), 1000, 1001) })
	mustRun(t, func() error {
		return os.Link(filepath.Join(img, "a"), filepath.Join(img, "overlay2/l1/diff/a-link"))
	})
	mustRun(t, func() error { return os.Symlink("/etc/shadow", filepath.Join(img, "shadow")) })
	mustRun(t, func() error { return unix.Mknod(filepath.Join(img, "overlay2/l1/diff/gone"), unix.S_IFCHR, 0) })
	mustRun(t, func() error {
		return unix.Setxattr(filepath.Join(img, "overlay2/l1/diff"), "trusted.overlay.opaque", []byte("y"), 0)
	})
	// A symlinked dest pointing at the host's /etc must resolve inside.
	mustRun(t, func() error { return os.Symlink("/etc", filepath.Join(rootfs, "var/lib/containerd")) })

	reg, err := register(t, c.Socket, ipc.MgrRegister{ID: "c1", Bundle: b, Rootfs: "rootfs"})
	if err != nil {
		t.Fatal(err)
	}
	if reg.UIDBase != reg.GIDBase || reg.Size != BlockSize || reg.UIDBase < 100000 {
		t.Fatalf("registration %+v", reg)
	}
	byDest := map[string]ipc.MgrMount{}
	for _, m := range reg.Mounts {
		byDest[m.Dest] = m
	}
	for _, sd := range specialDirs {
		m, ok := byDest[sd.Dest]
		if !ok {
			t.Fatalf("no mount for %s: %+v", sd.Dest, reg.Mounts)
		}
		want := filepath.Join(c.DataRoot, sd.Kind, "c1")
		if m.Source != want || !m.Idmap || m.ReadOnly {
			t.Errorf("mount %+v, want source %s, id-mapped, read-write", m, want)
		}
		if sd.Kind != "docker" {
			if uid, gid, mode := owner(t, want); uid != 0 || gid != 0 || mode != 0o700 {
				t.Errorf("%s: %d:%d %o, want 0:0 0700", want, uid, gid, mode)
			}
		}
	}
	dd := filepath.Join(c.DataRoot, "docker", "c1")
	if uid, gid, mode := owner(t, dd); uid != 0 || gid != 0 || mode != 0o710 {
		t.Errorf("docker dir %d:%d %o, want the image's 0:0 0710", uid, gid, mode)
	}
	if uid, gid, mode := owner(t, filepath.Join(dd, "a")); uid != 1000 || gid != 1001 || mode != 0o640 {
		t.Errorf("a: %d:%d %o, want 1000:1001 0640 as in the image", uid, gid, mode)
	}
	var sa, sl unix.Stat_t
	mustRun(t, func() error { return unix.Lstat(filepath.Join(dd, "a"), &sa) })
	mustRun(t, func() error { return unix.Lstat(filepath.Join(dd, "overlay2/l1/diff/a-link"), &sl) })
	if sa.Ino != sl.Ino {
		t.Error("hard link became two files")
	}
	if l, _ := os.Readlink(filepath.Join(dd, "shadow")); l != "/etc/shadow" {
		t.Errorf("symlink = %q", l)
	}
	var sg unix.Stat_t
	if err := unix.Lstat(filepath.Join(dd, "overlay2/l1/diff/gone"), &sg); err != nil || sg.Mode&unix.S_IFMT != unix.S_IFCHR || sg.Rdev != 0 {
		t.Errorf("whiteout not copied: %v %+v", err, sg)
	}
	buf := make([]byte, 8)
	if n, err := unix.Getxattr(filepath.Join(dd, "overlay2/l1/diff"), "trusted.overlay.opaque", buf); err != nil || string(buf[:n]) != "y" {
		t.Errorf("opaque xattr: %q %v", buf[:n], err)
	}
	if ents, _ := os.ReadDir(filepath.Join(c.DataRoot, "containerd", "c1")); len(ents) != 0 {
		t.Errorf("containerd dir holds %d entries: a symlink in the image was followed out of the rootfs", len(ents))
	}

	// Same ID: same range, same dirs, nothing copied again.
	mustRun(t, func() error { return os.WriteFile(filepath.Join(dd, "inner-state"), nil, 0o600) })
	again, err := register(t, c.Socket, ipc.MgrRegister{ID: "c1", Bundle: b, Rootfs: rootfs})
	if err != nil {
		t.Fatal(err)
	}
	if again.UIDBase != reg.UIDBase || len(again.Mounts) != len(reg.Mounts) {
		t.Fatalf("second registration %+v, first %+v", again, reg)
	}
	if _, err := os.Stat(filepath.Join(dd, "inner-state")); err != nil {
		t.Fatal("a second registration wiped the dir")
	}

	// A user's volume on /var/lib/docker wins; a volume on /var/lib takes all.
	b2, _ := bundle(t, "c2")
	reg2, err := register(t, c.Socket, ipc.MgrRegister{ID: "c2", Bundle: b2, Mounted: []string{"/var/lib/docker/", "/proc"}})
	if err != nil {
		t.Fatal(err)
	}
	if reg2.UIDBase == reg.UIDBase {
		t.Fatal("two containers got the same range")
	}
	for _, m := range reg2.Mounts {
		if m.Dest == "/var/lib/docker" {
			t.Fatal("special dir mounted over the user's volume")
		}
	}
	if _, err := os.Stat(filepath.Join(c.DataRoot, "docker", "c2")); err == nil {
		t.Fatal("docker dir made for a container that mounts its own")
	}
	b3, _ := bundle(t, "c3")
	reg3, err := register(t, c.Socket, ipc.MgrRegister{ID: "c3", Bundle: b3, Mounted: []string{"/var/lib"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range reg3.Mounts {
		if strings.HasPrefix(m.Dest, "/var/lib/") {
			t.Fatalf("special dir %s under the user's /var/lib volume", m.Dest)
		}
	}

	// No special dirs at all when the runtime will not mount them.
	b4, _ := bundle(t, "c4")
	reg4, err := register(t, c.Socket, ipc.MgrRegister{ID: "c4", Bundle: b4, NoSpecialDirs: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(reg4.Mounts) != len(kernelMounts()) {
		t.Fatalf("mounts with NoSpecialDirs: %+v", reg4.Mounts)
	}
	if _, err := os.Stat(filepath.Join(c.DataRoot, "docker", "c4")); err == nil {
		t.Fatal("special dir made with NoSpecialDirs")
	}

	// stopped, status, remove.
	if _, err := ipc.Call[ipc.MgrID, ipc.Empty](context.Background(), c.Socket, ipc.MgrStoppedMethod, ipc.MgrID{ID: "c1"}); err != nil {
		t.Fatal(err)
	}
	st := status(t, c.Socket)
	c1, ok := findContainer(st, "c1")
	if !ok || c1.Running || c1.UIDBase != reg.UIDBase || len(c1.Dirs) != len(specialDirs) || c1.DiskBytes == 0 {
		t.Fatalf("status of c1: %+v", c1)
	}
	if st.IDsUsed != 4*BlockSize || !st.Idmap {
		t.Fatalf("status: %+v", st)
	}
	if _, err := ipc.Call[ipc.MgrID, ipc.Empty](context.Background(), c.Socket, ipc.MgrRemoveMethod, ipc.MgrID{ID: "c1"}); err != nil {
		t.Fatal(err)
	}
	for _, sd := range specialDirs {
		if _, err := os.Lstat(filepath.Join(c.DataRoot, sd.Kind, "c1")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s dir of a removed container: %v", sd.Kind, err)
		}
	}
	if _, ok := findContainer(status(t, c.Socket), "c1"); ok {
		t.Fatal("removed container still listed")
	}
	// Removing twice, or something unknown, is fine.
	if _, err := ipc.Call[ipc.MgrID, ipc.Empty](context.Background(), c.Socket, ipc.MgrRemoveMethod, ipc.MgrID{ID: "c1"}); err != nil {
		t.Fatal(err)
	}
}

func TestDaemonBadRequests(t *testing.T) {
	needRoot(t)
	c := testCmd(t)
	start(t, c)
	b, _ := bundle(t, "x")
	tests := []struct {
		name string
		req  ipc.MgrRegister
		want string
	}{
		{"empty ID", ipc.MgrRegister{Bundle: b}, "container ID is empty"},
		{"slash", ipc.MgrRegister{ID: "../../etc", Bundle: b}, "contains '/'"},
		{"dot", ipc.MgrRegister{ID: "..", Bundle: b}, "starts with '.'"},
		{"huge size", ipc.MgrRegister{ID: "x", Bundle: b, IDSize: 4000000000}, "larger than the whole sysbox id range"},
		{"relative bundle", ipc.MgrRegister{ID: "x", Bundle: "b"}, "not an absolute path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := register(t, c.Socket, tt.req)
			var re *ipc.RemoteError
			if !errors.As(err, &re) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want a remote error with %q", err, tt.want)
			}
		})
	}
	if _, err := ipc.Call[ipc.MgrID, ipc.Empty](context.Background(), c.Socket, ipc.MgrRemoveMethod, ipc.MgrID{ID: "a/b"}); err == nil {
		t.Fatal("remove of a/b accepted")
	}
	// A garbage line does not take the daemon down.
	conn, err := net.Dial("unix", c.Socket)
	if err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte("{not json\n"))
	conn.Close()
	if st := status(t, c.Socket); len(st.Containers) != 0 {
		t.Fatalf("bad requests left containers: %+v", st.Containers)
	}
	// A larger range on request, rounded up to whole blocks.
	reg, err := register(t, c.Socket, ipc.MgrRegister{ID: "big", Bundle: b, IDSize: 3*BlockSize + 1})
	if err != nil || reg.Size != 4*BlockSize {
		t.Fatalf("big: %+v %v", reg, err)
	}
}

func TestDaemonGC(t *testing.T) {
	needRoot(t)
	c := testCmd(t)
	c.Sweep = 2 * time.Second // as in production: inotify must do better
	start(t, c)

	// Like Docker's overlay2 graph driver: the rootfs is outside the bundle.
	b, _ := bundle(t, "gc1")
	layer := filepath.Join(t.TempDir(), "overlay2", "layer1")
	rootfs := filepath.Join(layer, "merged")
	mustRun(t, func() error { return os.MkdirAll(rootfs, 0o755) })
	if _, err := register(t, c.Socket, ipc.MgrRegister{ID: "gc1", Bundle: b, Rootfs: rootfs}); err != nil {
		t.Fatal(err)
	}
	dd := filepath.Join(c.DataRoot, "docker", "gc1")
	mustRun(t, func() error { return os.MkdirAll(filepath.Join(dd, "overlay2/x/merged"), 0o700) })
	// Something the inner engine mounted there and never unmounted.
	mustRun(t, func() error { return unix.Mount("tmpfs", filepath.Join(dd, "overlay2/x/merged"), "tmpfs", 0, "") })
	t.Cleanup(func() { _ = unix.Unmount(filepath.Join(dd, "overlay2/x/merged"), unix.MNT_DETACH) })

	// docker stop: the shim deletes the bundle; the container stays.
	mustRun(t, func() error { return os.RemoveAll(b) })
	time.Sleep(time.Second)
	if _, ok := findContainer(status(t, c.Socket), "gc1"); !ok {
		t.Fatal("container collected while its rootfs is still there")
	}

	// docker rm: the layer goes too.
	removed := time.Now()
	mustRun(t, func() error { return os.RemoveAll(layer) })
	deadline := removed.Add(5 * time.Second)
	for {
		if _, ok := findContainer(status(t, c.Socket), "gc1"); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("container not collected within 5s of its removal")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("collected %v after removal", time.Since(removed).Round(time.Millisecond))
	if _, err := os.Lstat(dd); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("dir of a collected container: %v", err)
	}
	if st := status(t, c.Socket); st.IDsUsed != 0 {
		t.Fatalf("range not freed: %d ids in use", st.IDsUsed)
	}
}

func TestDaemonRestart(t *testing.T) {
	needRoot(t)
	c := testCmd(t)
	d := start(t, c)
	keepB, keepR := bundle(t, "keep")
	goneB, goneR := bundle(t, "gone")
	keep, err := register(t, c.Socket, ipc.MgrRegister{ID: "keep", Bundle: keepB, Rootfs: keepR})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := register(t, c.Socket, ipc.MgrRegister{ID: "gone", Bundle: goneB, Rootfs: goneR}); err != nil {
		t.Fatal(err)
	}
	d.stop(t)
	if _, err := os.Stat(c.Socket); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("socket left after a clean stop")
	}
	if _, err := os.Stat(c.pidFile()); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("pid file left after a clean stop")
	}
	// Removed while the manager was down.
	mustRun(t, func() error { return os.RemoveAll(goneB) })
	// A dir of no known container: kept and reported.
	orphan := filepath.Join(c.DataRoot, "kubelet", "orphan")
	mustRun(t, func() error { return os.MkdirAll(orphan, 0o700) })

	start(t, c)
	st := status(t, c.Socket)
	if len(st.Containers) != 1 || st.Containers[0].ID != "keep" || st.Containers[0].UIDBase != keep.UIDBase {
		t.Fatalf("after restart: %+v", st.Containers)
	}
	if _, err := os.Stat(filepath.Join(c.DataRoot, "docker", "gone")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("dirs of a container removed while down are still there")
	}
	if _, err := os.Stat(orphan); err != nil || len(st.Orphans) != 1 || st.Orphans[0] != orphan {
		t.Fatalf("orphan %s: %v, status lists %v", orphan, err, st.Orphans)
	}
	again, err := register(t, c.Socket, ipc.MgrRegister{ID: "keep", Bundle: keepB, Rootfs: keepR})
	if err != nil || again.UIDBase != keep.UIDBase {
		t.Fatalf("keep after restart: %+v %v, want base %d", again, err, keep.UIDBase)
	}
}

func TestSingleInstance(t *testing.T) {
	needRoot(t)
	c := testCmd(t)
	start(t, c)
	c2 := c
	c2.Socket = filepath.Join(t.TempDir(), "other.sock")
	err := c2.serve(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "another sysbox-mgr") || !strings.Contains(err.Error(), fmt.Sprint(os.Getpid())) {
		t.Fatalf("second instance: %v", err)
	}
}

func TestDamagedDatabase(t *testing.T) {
	c := testCmd(t)
	mustRun(t, func() error { return os.MkdirAll(c.DataRoot, 0o711) })
	db := filepath.Join(c.DataRoot, "mgr.db")
	garbage := bytes.Repeat([]byte("this is not a bbolt database\n"), 1000)
	mustRun(t, func() error { return os.WriteFile(db, garbage, 0o600) })
	before := sha256.Sum256(garbage)
	// Its journal, with changes it never got: kept too.
	journal := bytes.Join(frames(7, put("a", 100000), del("b")), nil)
	writeJournal(t, db, 0, journal)

	err := c.serve(context.Background(), nil)
	if err == nil || !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), db) {
		t.Fatalf("err = %v, want a damaged-database error naming %s", err, db)
	}
	t.Log(err)
	after, rerr := os.ReadFile(db)
	if rerr != nil || sha256.Sum256(after) != before {
		t.Fatal("the damaged database was changed")
	}
	if after, err := os.ReadFile(journalPath(db, 0)); err != nil || !bytes.Equal(after, journal) {
		t.Fatalf("the damaged database's journal was changed: %v", err)
	}
	if _, err := os.Stat(journalPath(db, 1)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a journal file was made next to a damaged database: %v", err)
	}

	// A valid file with a record bbolt can read but we cannot.
	db2 := filepath.Join(t.TempDir(), "mgr.db")
	st, _, _, err := openStore(db2)
	if err != nil {
		t.Fatal(err)
	}
	st.close()
	mustRun(t, func() error { return corruptRecord(db2) })
	if _, _, _, err := openStore(db2); !errors.Is(err, ErrDamaged) {
		t.Fatalf("bad record: err = %v", err)
	}
}

func TestTmpfsDataRootRefused(t *testing.T) {
	needRoot(t)
	c := testCmd(t)
	mnt := filepath.Join(t.TempDir(), "tmpfs")
	mustRun(t, func() error { return os.Mkdir(mnt, 0o700) })
	mustRun(t, func() error { return unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m") })
	t.Cleanup(func() { _ = unix.Unmount(mnt, unix.MNT_DETACH) })
	c.DataRoot = filepath.Join(mnt, "sysbox")
	err := c.serve(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "is on tmpfs") {
		t.Fatalf("err = %v, want tmpfs refused", err)
	}
	t.Log(err)
}

func TestNotifyReady(t *testing.T) {
	needRoot(t)
	c := testCmd(t)
	ns := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: ns, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", ns)
	start(t, c)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 256)
	n, err := conn.Read(buf)
	if err != nil || !strings.HasPrefix(string(buf[:n]), "READY=1") {
		t.Fatalf("notify: %q %v", buf[:n], err)
	}
}

func TestAnchorOnMissingMount(t *testing.T) {
	needRoot(t)
	mnt := filepath.Join(t.TempDir(), "disk")
	mustRun(t, func() error { return os.Mkdir(mnt, 0o700) })
	mustRun(t, func() error { return unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m") })
	t.Cleanup(func() { _ = unix.Unmount(mnt, unix.MNT_DETACH) })
	p := filepath.Join(mnt, "overlay2", "l", "merged")
	mustRun(t, func() error { return os.MkdirAll(p, 0o700) })
	as := anchorsFor(filepath.Join(t.TempDir(), "bundle"), p)
	if as[1].Mount != mnt {
		t.Fatalf("anchor %+v, want mount %s", as[1], mnt)
	}
	r := record{Anchors: as}
	if gone(r) {
		t.Fatal("gone while the rootfs exists")
	}
	// The disk is not mounted (late at boot): not a removal.
	mustRun(t, func() error { return unix.Unmount(mnt, 0) })
	if gone(r) {
		t.Fatal("gone because its filesystem is not mounted")
	}
	// Mounted again, without the layer: removed.
	mustRun(t, func() error { return unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m") })
	if !gone(r) {
		t.Fatal("not gone once its filesystem is back without it")
	}
}

func TestFillDirChownFallback(t *testing.T) {
	needRoot(t)
	rootfs := t.TempDir()
	img := filepath.Join(rootfs, "var/lib/docker")
	mustRun(t, func() error { return os.MkdirAll(img, 0o711) })
	mustRun(t, func() error { return os.WriteFile(filepath.Join(img, "f"), nil, 0o600) })
	mustRun(t, func() error { return os.Lchown(filepath.Join(img, "f"), 5, 6) })
	d := dir{Kind: "docker", Dest: "/var/lib/docker", Path: filepath.Join(t.TempDir(), "docker", "x")}
	if err := fillDir(d, rootfs, 300000); err != nil {
		t.Fatal(err)
	}
	if uid, gid, _ := owner(t, d.Path); uid != 300000 || gid != 300000 {
		t.Errorf("dir %d:%d, want the range base", uid, gid)
	}
	if uid, gid, _ := owner(t, filepath.Join(d.Path, "f")); uid != 300005 || gid != 300006 {
		t.Errorf("file %d:%d, want shifted by the base", uid, gid)
	}
}

func TestCmdParse(t *testing.T) {
	type cli struct {
		Mgr Cmd `cmd:""`
	}
	tests := []struct {
		args []string
		want string
		chk  func(*cli) bool
	}{
		{[]string{"mgr"}, "mgr serve", func(c *cli) bool {
			return c.Mgr.Serve.DataRoot == "/var/lib/sysbox" && c.Mgr.Serve.Socket == ipc.MgrSocket && c.Mgr.Serve.RangeSize == 65536
		}},
		{[]string{"mgr", "--data-root", "/x", "--debug", "--log-format", "json"}, "mgr serve", func(c *cli) bool {
			return c.Mgr.Serve.DataRoot == "/x" && c.Mgr.Serve.Debug
		}},
		{[]string{"mgr", "serve", "--range-size=131072"}, "mgr serve", func(c *cli) bool { return c.Mgr.Serve.RangeSize == 131072 }},
		{[]string{"mgr", "status", "--socket", "/s", "--json"}, "mgr status", func(c *cli) bool {
			return c.Mgr.Status.Socket == "/s" && c.Mgr.Status.JSON
		}},
	}
	for _, tt := range tests {
		var c cli
		p, err := kong.New(&c, kong.Exit(func(int) { t.Fatalf("kong exited on %v", tt.args) }))
		if err != nil {
			t.Fatal(err)
		}
		ctx, err := p.Parse(tt.args)
		if err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		if ctx.Command() != tt.want || !tt.chk(&c) {
			t.Errorf("%v: command %q, %+v", tt.args, ctx.Command(), c.Mgr)
		}
	}
}

// TestKill9 registers 1000 containers from 16 clients into a daemon
// process, kills it with SIGKILL midway, restarts it and checks that every
// answered registration survived, and that no two containers share ids.
func TestKill9(t *testing.T) {
	needRoot(t)
	c := testCmd(t)
	logf := filepath.Join(t.TempDir(), "mgr.log")
	run := func() *exec.Cmd {
		js, _ := json.Marshal(c)
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "SYSBOX_MGR_TEST_CMD="+string(js))
		lf, err := os.OpenFile(logf, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer lf.Close()
		cmd.Stdout, cmd.Stderr = lf, lf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		waitSocket(t, c.Socket, logf)
		return cmd
	}
	p := run()

	const n = 1000
	type result struct {
		id   string
		base uint32
	}
	acked := make(chan result, n)
	ids := make(chan string, n)
	for i := range n {
		ids <- fmt.Sprintf("k%03d", i)
	}
	close(ids)
	b, r := bundle(t, "k")
	done := make(chan struct{})
	for range 16 {
		go func() {
			defer func() { done <- struct{}{} }()
			for id := range ids {
				reg, err := register(t, c.Socket, ipc.MgrRegister{ID: id, Bundle: b, Rootfs: r})
				if err != nil {
					return // the daemon died
				}
				acked <- result{id, reg.UIDBase}
			}
		}()
	}
	// Kill it once about a third is answered.
	for len(acked) < n/3 {
		time.Sleep(time.Millisecond)
	}
	if err := p.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p.Wait()
	for range 16 {
		<-done
	}
	close(acked)
	got := map[string]uint32{}
	for a := range acked {
		got[a.id] = a.base
	}
	t.Logf("killed after %d answered registrations", len(got))

	run()
	st := status(t, c.Socket)
	var recs []record
	for _, ct := range st.Containers {
		recs = append(recs, record{ID: ct.ID, Base: ct.UIDBase, Size: ct.Size})
	}
	assertDisjoint(t, recs)
	for id, base := range got {
		ct, ok := findContainer(st, id)
		if !ok || ct.UIDBase != base {
			t.Fatalf("%s was answered with base %d; after kill -9: %+v (listed %v)", id, base, ct, ok)
		}
		for _, d := range ct.Dirs {
			if _, err := os.Stat(d); err != nil {
				t.Fatalf("%s: recorded dir %s: %v", id, d, err)
			}
		}
	}
	// Finish the job: all n, the earlier ones keeping their ranges.
	for i := range n {
		id := fmt.Sprintf("k%03d", i)
		reg, err := register(t, c.Socket, ipc.MgrRegister{ID: id, Bundle: b, Rootfs: r})
		if err != nil {
			t.Fatal(err)
		}
		if base, ok := got[id]; ok && base != reg.UIDBase {
			t.Fatalf("%s: base %d before the kill, %d after", id, base, reg.UIDBase)
		}
	}
	st = status(t, c.Socket)
	if len(st.Containers) != n {
		t.Fatalf("%d containers, want %d", len(st.Containers), n)
	}
	recs = recs[:0]
	for _, ct := range st.Containers {
		recs = append(recs, record{ID: ct.ID, Base: ct.UIDBase, Size: ct.Size})
	}
	assertDisjoint(t, recs)
}

func waitSocket(t testing.TB, socket, logf string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := ipc.Call[ipc.Empty, ipc.MgrStatus](context.Background(), socket, ipc.MgrStatusMethod, ipc.Empty{}); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	b, _ := os.ReadFile(logf)
	t.Fatalf("daemon did not answer on %s in 20s; its log:\n%s", socket, b)
}

// TestOverlayRootfs is Docker with containerd's snapshotter: the rootfs is an
// overlay mounted inside the bundle, and both go at docker stop; only the
// overlay's upper dir (the writable layer) goes at docker rm.
func TestOverlayRootfs(t *testing.T) {
	needRoot(t)
	c := testCmd(t)
	start(t, c)
	snap := filepath.Join(t.TempDir(), "snapshots")
	lower, upper, work := filepath.Join(snap, "1/fs"), filepath.Join(snap, "2/fs"), filepath.Join(snap, "2/work")
	for _, d := range []string{lower, upper, work} {
		mustRun(t, func() error { return os.MkdirAll(d, 0o755) })
	}
	b, rootfs := bundle(t, "ov")
	mustRun(t, func() error {
		return unix.Mount("overlay", rootfs, "overlay", 0, "lowerdir="+lower+",upperdir="+upper+",workdir="+work)
	})
	t.Cleanup(func() { _ = unix.Unmount(rootfs, unix.MNT_DETACH) })
	if _, err := register(t, c.Socket, ipc.MgrRegister{ID: "ov", Bundle: b, Rootfs: "rootfs"}); err != nil {
		t.Fatal(err)
	}
	// docker stop: the shim unmounts the rootfs and deletes the bundle.
	mustRun(t, func() error { return unix.Unmount(rootfs, 0) })
	mustRun(t, func() error { return os.RemoveAll(b) })
	time.Sleep(4 * c.Sweep)
	if _, ok := findContainer(status(t, c.Socket), "ov"); !ok {
		t.Fatal("stopped container collected: its writable layer is still there")
	}
	// docker rm: containerd removes the snapshot.
	mustRun(t, func() error { return os.RemoveAll(filepath.Join(snap, "2")) })
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok := findContainer(status(t, c.Socket), "ov"); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("not collected within 5s of its snapshot's removal")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAdoptAfterNewDatabase: the database moved aside (it was damaged), the
// special dirs on disk wait for their containers instead of being deleted.
func TestAdoptAfterNewDatabase(t *testing.T) {
	needRoot(t)
	c := testCmd(t)
	d := start(t, c)
	b, r := bundle(t, "a1")
	if _, err := register(t, c.Socket, ipc.MgrRegister{ID: "a1", Bundle: b, Rootfs: r}); err != nil {
		t.Fatal(err)
	}
	inner := filepath.Join(c.DataRoot, "docker", "a1", "image-layer")
	mustRun(t, func() error { return os.WriteFile(inner, []byte("x"), 0o600) })
	d.stop(t)
	db := filepath.Join(c.DataRoot, "mgr.db")
	mustRun(t, func() error { return os.Rename(db, db+".damaged") })
	start(t, c)
	if _, err := os.Stat(inner); err != nil {
		t.Fatalf("dir of an unknown container deleted with a new database: %v", err)
	}
	if _, err := register(t, c.Socket, ipc.MgrRegister{ID: "a1", Bundle: b, Rootfs: r}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(inner); err != nil {
		t.Fatalf("adopted dir was emptied: %v", err)
	}
}
