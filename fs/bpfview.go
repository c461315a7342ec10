package fs

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Kernel views: files the kernel serves itself, through BPF cgroup
// iterators (fs/bpf/views.bpf.c). A FUSE read costs three waited round
// trips to this daemon (open, read, read at EOF) of a context switch each
// way; a pinned iterator is read like a procfs file, in the reader's own
// syscalls, with fresh text on every read from offset 0. Where the kernel
// cannot (no BTF, no cgroup iterators, no unified cgroup for the
// container), the FUSE file serves, with the same text.
//
// Each container gets a directory in a bpffs instance of its own (beside
// the API socket): <dir>/<id>/<file>, owned by the container's root and
// read-only. The pins outlive this daemon: a restarted one finds them, and
// a container's /proc/uptime keeps working while the daemon is down (its
// /proc/loadavg too, without new samples).

//go:generate make -C .. bpf

//go:embed bpf/views.bpf.o
var viewsObject []byte

// viewCfg is struct view_cfg of views.bpf.c.
type viewCfg struct {
	StartNs uint64
	NCPU    uint32
	_       uint32
}

// viewText is struct view_text of views.bpf.c.
type viewText struct {
	Len  uint32
	_    uint32
	Text [120]byte
}

// kernelViews are the dests the kernel serves, by the program's name.
var kernelViews = map[string]string{"/proc/uptime": "uptime", "/proc/loadavg": "loadavg"}

type bpfViews struct {
	dir   string
	progs map[string]*ebpf.Program
	cfg   *ebpf.Map // cgroup id -> viewCfg
	load  *ebpf.Map // cgroup id -> viewText (/proc/loadavg)
}

// kernelData is what the programs serve a container from.
type kernelData struct {
	cfg  viewCfg
	load []byte // /proc/loadavg's text
}

// openBPFViews loads the programs and mounts (or reuses) the bpffs at dir.
func openBPFViews(dir string) (*bpfViews, error) {
	if err := mountBPFFS(dir); err != nil {
		return nil, err
	}
	spec, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(viewsObject))
	if err != nil {
		return nil, fmt.Errorf("read the BPF object: %w", err)
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: dir}})
	if err != nil {
		return nil, fmt.Errorf("load the BPF views: %w", err)
	}
	b := &bpfViews{dir: dir, progs: map[string]*ebpf.Program{}, cfg: coll.Maps["sysbox_views"], load: coll.Maps["sysbox_loadavg"]}
	for _, name := range kernelViews {
		b.progs[name] = coll.Programs[name]
	}
	for name, p := range coll.Programs {
		if b.progs[name] == nil {
			p.Close()
		}
	}
	if b.cfg == nil || b.load == nil || len(b.progs) != len(kernelViews) || anyNil(b.progs) {
		b.close()
		return nil, errors.New("the BPF object lacks a program or a map")
	}
	return b, nil
}

func anyNil(m map[string]*ebpf.Program) bool {
	for _, p := range m {
		if p == nil {
			return true
		}
	}
	return false
}

// release closes b and, when no container has pins left, unmounts the
// bpffs: a daemon that stops clean with no container running leaves
// nothing behind.
func (b *bpfViews) release() {
	b.close()
	ents, err := os.ReadDir(b.dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if e.IsDir() {
			return
		}
	}
	if err := unix.Unmount(b.dir, unix.MNT_DETACH); err == nil {
		_ = os.Remove(b.dir)
	}
}

func (b *bpfViews) close() {
	for _, p := range b.progs {
		if p != nil {
			p.Close()
		}
	}
	for _, m := range []*ebpf.Map{b.cfg, b.load} {
		if m != nil {
			m.Close()
		}
	}
}

// mountBPFFS mounts a bpffs instance at dir unless one is there.
func mountBPFFS(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Errorf("statfs %s: %w", dir, err)
	}
	if st.Type == unix.BPF_FS_MAGIC {
		return nil
	}
	if err := unix.Mount("bpf", dir, "bpf", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0700"); err != nil {
		return fmt.Errorf("mount bpffs at %s: %w", dir, err)
	}
	return nil
}

// cgroupID is the id the kernel gives a cgroup (kernfs_node.id): its inode
// number in cgroupfs on 64-bit hosts.
func cgroupID(dir string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// attach serves dest for container id from cgroup dir cg (unified
// hierarchy) by pinning an iterator bound to cg at <dir>/<id>/<name>,
// replacing an older pin (a restarted daemon's), and returns the pin's
// path. setData comes first: the program reads it.
func (b *bpfViews) attach(id, dest, cg string, uid, gid uint32) (string, error) {
	prog := b.progs[kernelViews[dest]]
	if prog == nil {
		return "", fmt.Errorf("no kernel view for %s", dest)
	}
	cfd, err := unix.Open(cg, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	defer unix.Close(cfd)
	lfd, err := iterLink(prog.FD(), cfd)
	if err != nil {
		return "", fmt.Errorf("attach the %s iterator to %s: %w", dest, cg, err)
	}
	defer unix.Close(lfd)
	cdir := filepath.Join(b.dir, id)
	if err := os.Mkdir(cdir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return "", err
	}
	pin := filepath.Join(cdir, filepath.Base(dest))
	if err := os.Remove(pin); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	if err := pinObject(lfd, pin); err != nil {
		return "", fmt.Errorf("pin %s: %w", pin, err)
	}
	err = os.Chown(pin, int(uid), int(gid))
	if err == nil {
		err = os.Chmod(pin, 0o444)
	}
	if err != nil {
		_ = os.Remove(pin)
		return "", fmt.Errorf("pin %s: %w", pin, err)
	}
	return pin, nil
}

// setData sets what the programs serve the container in cgroup cg from.
func (b *bpfViews) setData(cg string, d kernelData) error {
	cgid, err := cgroupID(cg)
	if err != nil {
		return err
	}
	var v viewText
	v.Len = uint32(copy(v.Text[:], d.load))
	if err := b.cfg.Put(cgid, d.cfg); err != nil {
		return fmt.Errorf("set the kernel views' data: %w", err)
	}
	if err := b.load.Put(cgid, v); err != nil {
		return fmt.Errorf("set the kernel views' data: %w", err)
	}
	return nil
}

// detach removes a container's pins (the bind mounts of them that are
// left, in a dying container, keep their link until unmounted) and its
// data. cg may be "" when unknown.
func (b *bpfViews) detach(id, cg string) {
	b.forget(cg)
	removePins(filepath.Join(b.dir, id))
}

// forget drops the data of cgroup cg ("": none).
func (b *bpfViews) forget(cg string) {
	if cg == "" {
		return
	}
	if cgid, err := cgroupID(cg); err == nil {
		_ = b.cfg.Delete(cgid)
		_ = b.load.Delete(cgid)
	}
}

func removePins(cdir string) {
	ents, _ := os.ReadDir(cdir)
	for _, e := range ents {
		_ = os.Remove(filepath.Join(cdir, e.Name()))
	}
	_ = os.Remove(cdir)
}

// sweep removes the pin directories of containers that keep is false for.
func (b *bpfViews) sweep(keep func(id string) bool) {
	ents, err := os.ReadDir(b.dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if e.IsDir() && !keep(e.Name()) {
			removePins(filepath.Join(b.dir, e.Name()))
		}
	}
}

// iterLink creates a cgroup iterator link of prog over the cgroup open at
// cgfd alone (BPF_CGROUP_ITER_SELF_ONLY). cilium/ebpf's AttachIter takes
// only a map, so this is the raw BPF_LINK_CREATE.
func iterLink(prog, cgfd int) (int, error) {
	// union bpf_iter_link_info, its cgroup member.
	info := struct {
		order, cgroupFD uint32
		cgroupID        uint64
	}{order: unix.BPF_CGROUP_ITER_SELF_ONLY, cgroupFD: uint32(cgfd)}
	// bpf_attr's link_create. Typed pointers, so the collector and stack
	// moves see them.
	attr := struct {
		progFD, targetFD, attachType, flags uint32
		iterInfo                            unsafe.Pointer
		iterInfoLen, _                      uint32
	}{progFD: uint32(prog), attachType: unix.BPF_TRACE_ITER, iterInfo: unsafe.Pointer(&info), iterInfoLen: uint32(unsafe.Sizeof(info))}
	fd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_LINK_CREATE, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}

// pinObject pins the BPF object open at fd at path (BPF_OBJ_PIN).
func pinObject(fd int, path string) error {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return err
	}
	attr := struct {
		pathname        unsafe.Pointer
		bpfFD, fileFlag uint32
	}{pathname: unsafe.Pointer(p), bpfFD: uint32(fd)}
	if _, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_OBJ_PIN, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr)); errno != 0 {
		return errno
	}
	return nil
}

// attachKernelViews pins the kernel views of a container that just
// started; a view the kernel cannot serve stays with the FUSE file.
func (d *daemon) attachKernelViews(c *container, cgroups map[string]string) {
	if d.bpf == nil {
		return
	}
	cg := cgroups[""] // the unified hierarchy's, on v2 and hybrid hosts
	if cg == "" {
		return
	}
	data := d.kernelData(c)
	c.pinMu.Lock()
	defer c.pinMu.Unlock()
	if c.pinCg != cg {
		d.bpf.forget(c.pinCg) // started again, in another cgroup
	}
	c.pinCg = cg // detachKernelViews cleans up from here on
	if err := d.bpf.setData(cg, data); err != nil {
		slog.Warn("kernel views not served: the FUSE files serve them", "id", c.id, "err", err)
		return
	}
	pins := map[string]string{}
	for dest := range kernelViews {
		pin, err := d.bpf.attach(c.id, dest, cg, c.uid, c.gid)
		if err != nil {
			slog.Warn("kernel view not served: the FUSE file serves it", "id", c.id, "file", dest, "err", err)
			continue
		}
		pins[dest] = pin
	}
	c.pins = pins
}

// kernelData is what the programs serve c from: when it started, its CPU
// count, and its load as last sampled (the host's before the first sample,
// as the FUSE file shows).
func (d *daemon) kernelData(c *container) kernelData {
	s := c.snap()
	load, _ := d.loadavg(c)
	return kernelData{
		cfg:  viewCfg{StartNs: uint64(s.bootOff), NCPU: uint32(len(c.visibleCPUs(d.host)))},
		load: load,
	}
}

// refreshKernelData tells the programs the new load sample, and a changed
// CPU count (docker update). The load sampler calls it after each sample.
func (d *daemon) refreshKernelData(c *container) {
	if d.bpf == nil {
		return
	}
	data := d.kernelData(c)
	// Under pinMu: data set after detachKernelViews would stay forever.
	c.pinMu.Lock()
	defer c.pinMu.Unlock()
	if c.pinCg == "" {
		return
	}
	if err := d.bpf.setData(c.pinCg, data); err != nil {
		slog.Debug("update the kernel views' data", "id", c.id, "err", err)
	}
}

// detachKernelViews removes what attachKernelViews made.
func (d *daemon) detachKernelViews(c *container) {
	if d.bpf == nil {
		return
	}
	c.pinMu.Lock()
	defer c.pinMu.Unlock()
	d.bpf.detach(c.id, c.pinCg)
	c.pins, c.pinCg = nil, ""
}

// pinned is the kernel views' pins serving c, by dest (not to be changed:
// attach and detach replace the map, never write into it).
func (c *container) pinned() map[string]string {
	c.pinMu.Lock()
	defer c.pinMu.Unlock()
	return c.pins
}
