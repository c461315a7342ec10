package fs

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/sysbox-dev/sysbox/internal/cgview"
)

// nodeKind is what a path in the view is.
type nodeKind uint8

const (
	kDir nodeKind = iota
	kFile
	kLink
)

// node is one resolved path: its attributes and how to read, write or list
// it. Resolving is cheap and stateless, so every FUSE op resolves its path
// again: a container unregistered, a sysctl appearing in a netns, a cpuset
// changed, all show up at once.
type node struct {
	kind     nodeKind
	mode     os.FileMode // permission bits only
	uid, gid uint32
	read     func() ([]byte, error)
	write    func(off int64, data []byte) error // nil: read-only
	// stored: read through the page cache, filled at open (store.go).
	stored bool
	list   func() ([]dirent, error)
	target string
}

type dirent struct {
	name string
	kind nodeKind
}

// fixedDirs is the skeleton of every container's view (paths relative to
// the container's directory).
var fixedDirs = map[string][]string{
	"":                                   {"proc", "sys"},
	"proc":                               {"uptime", "swaps", "meminfo", "cpuinfo", "stat", "loadavg", "diskstats", "sys"},
	"sys":                                {"kernel", "devices", "module"},
	"sys/devices":                        {"virtual", "system"},
	"sys/devices/virtual":                {"dmi"},
	"sys/devices/virtual/dmi":            {"id"},
	"sys/devices/virtual/dmi/id":         {"product_uuid"},
	"sys/devices/system":                 {"cpu"},
	"sys/module":                         {"nf_conntrack"},
	"sys/module/nf_conntrack":            {"parameters"},
	"sys/module/nf_conntrack/parameters": {"hashsize"},
}

// subtrees are the dirs whose content comes from elsewhere.
var subtrees = map[string]bool{"proc/sys": true, "sys/kernel": true, "sys/devices/system/cpu": true}

// conntrackDir: the view has a module/nf_conntrack only where the host has it.
const hashsizeRel = "module/nf_conntrack/parameters/hashsize"

// sysKernelEmpty are /sys/kernel's dirs shown empty: the mount points of
// debugfs, tracefs, securityfs and configfs, where the host's own mounts
// would otherwise show through (read-only, but none of the container's
// business).
var sysKernelEmpty = map[string]bool{"debug": true, "tracing": true, "security": true, "config": true}

// errnoOf turns an error into what a FUSE op answers: an errno (nil stays
// nil: a zero Errno is a non-nil error).
func errnoOf(err error) error {
	var e syscall.Errno
	switch {
	case err == nil:
		return nil
	case errors.As(err, &e):
		return e
	case errors.Is(err, fs.ErrNotExist):
		return syscall.ENOENT
	case errors.Is(err, fs.ErrPermission):
		return syscall.EACCES
	case errors.Is(err, errNotStarted):
		return syscall.EAGAIN
	}
	return syscall.EIO
}

// resolve finds the node at p: "" is the root, "<id>/proc/uptime" a file.
func (d *daemon) resolve(p string) (*node, error) {
	if p == "" {
		return &node{kind: kDir, mode: 0o755, list: d.listContainers}, nil
	}
	if p == pollFile {
		return &node{kind: kFile, mode: 0o444, read: func() ([]byte, error) { return []byte("sysbox-fs\n"), nil }}, nil
	}
	id, rel, _ := strings.Cut(p, "/")
	c := d.get(id)
	if c == nil {
		return nil, syscall.ENOENT
	}
	return d.resolveIn(c, rel)
}

func (d *daemon) listContainers() ([]dirent, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	out := make([]dirent, 0, len(d.containers)+1)
	out = append(out, dirent{name: pollFile, kind: kFile})
	for id := range d.containers {
		out = append(out, dirent{name: id, kind: kDir})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

func (d *daemon) resolveIn(c *container, rel string) (*node, error) {
	switch {
	case rel == "proc/sys" || strings.HasPrefix(rel, "proc/sys/"):
		return d.procSys(c, strings.TrimPrefix(strings.TrimPrefix(rel, "proc/sys"), "/"))
	case rel == "sys/kernel" || strings.HasPrefix(rel, "sys/kernel/"):
		sub := strings.TrimPrefix(strings.TrimPrefix(rel, "sys/kernel"), "/")
		first, rest, _ := strings.Cut(sub, "/")
		if sysKernelEmpty[first] {
			if rest != "" {
				return nil, syscall.ENOENT
			}
			n, err := mirror(d.host.sysPath("kernel/"+first), "")
			if err != nil {
				return nil, err
			}
			n.list = func() ([]dirent, error) { return nil, nil }
			return n, nil
		}
		n, err := mirror(d.host.sysPath("kernel"), sub)
		if err == nil && sub == "" && n.kind == kDir {
			n.list = d.listHostDir(d.host.sysPath("kernel"), nil)
		}
		return n, err
	case rel == "sys/devices/system/cpu" || strings.HasPrefix(rel, "sys/devices/system/cpu/"):
		return d.cpuDir(c, strings.TrimPrefix(strings.TrimPrefix(rel, "sys/devices/system/cpu"), "/"))
	}
	if kids, ok := fixedDirs[rel]; ok {
		if rel == "sys/module" || strings.HasPrefix(rel, "sys/module/") {
			if !d.hasFile(d.host.sysPath(hashsizeRel)) {
				return nil, syscall.ENOENT
			}
		}
		return &node{kind: kDir, mode: 0o555, uid: c.uid, gid: c.gid, list: func() ([]dirent, error) {
			out := make([]dirent, 0, len(kids))
			for _, k := range kids {
				child := strings.TrimPrefix(rel+"/"+k, "/")
				kind := kFile
				if _, ok := fixedDirs[child]; ok || subtrees[child] {
					kind = kDir
				}
				if child == "sys/module" && !d.hasFile(d.host.sysPath(hashsizeRel)) {
					continue
				}
				out = append(out, dirent{name: k, kind: kind})
			}
			return out, nil
		}}, nil
	}
	file := func(mode os.FileMode, read func() ([]byte, error)) *node {
		return &node{kind: kFile, mode: mode, uid: c.uid, gid: c.gid, read: read}
	}
	// /proc's resource views: stored files.
	view := func(read func() ([]byte, error)) *node {
		n := file(0o444, read)
		n.stored = true
		return n
	}
	switch rel {
	case "proc/uptime":
		return view(func() ([]byte, error) { return d.uptime(c), nil }), nil
	case "proc/meminfo":
		return view(func() ([]byte, error) { return d.meminfo(c) }), nil
	case "proc/swaps":
		return view(func() ([]byte, error) { return d.swaps(c) }), nil
	case "proc/cpuinfo":
		return view(func() ([]byte, error) { return d.cpuinfo(c) }), nil
	case "proc/stat":
		return view(func() ([]byte, error) { return d.stat(c) }), nil
	case "proc/loadavg":
		return view(func() ([]byte, error) { return d.loadavg(c) }), nil
	case "proc/diskstats":
		return view(func() ([]byte, error) { return d.diskstats(c) }), nil
	case "sys/devices/virtual/dmi/id/product_uuid":
		// Root-only, as the host's is: it identifies the machine.
		return file(0o400, func() ([]byte, error) { return []byte(c.uuid + "\n"), nil }), nil
	case "sys/" + hashsizeRel:
		return d.hashsize(c)
	}
	return nil, syscall.ENOENT
}

func (d *daemon) hasFile(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// mirror resolves sub under a host dir, read-only, with the host's owners
// and modes (a container's root sees them as nobody's, as on its own sysfs).
func mirror(root, sub string) (*node, error) {
	p := root
	if sub != "" {
		p = filepath.Join(root, sub)
	}
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return nil, err
	}
	n := &node{mode: os.FileMode(st.Mode & 0o7777), uid: st.Uid, gid: st.Gid}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		n.kind = kDir
		n.list = func() ([]dirent, error) { return readDirents(p, nil) }
	case unix.S_IFLNK:
		n.kind = kLink
		t, err := os.Readlink(p)
		if err != nil {
			return nil, err
		}
		n.target = t
	default:
		n.kind = kFile
		n.read = func() ([]byte, error) { return cgview.ReadFile(p) }
	}
	return n, nil
}

// readDirents lists a real dir; keep, if set, filters and renames entries.
func readDirents(p string, keep func(string) (string, bool)) ([]dirent, error) {
	ents, err := os.ReadDir(p)
	if err != nil {
		return nil, err
	}
	out := make([]dirent, 0, len(ents))
	for _, e := range ents {
		name := e.Name()
		if keep != nil {
			var ok bool
			if name, ok = keep(name); !ok {
				continue
			}
		}
		k := kFile
		switch {
		case e.IsDir():
			k = kDir
		case e.Type()&fs.ModeSymlink != 0:
			k = kLink
		}
		out = append(out, dirent{name: name, kind: k})
	}
	return out, nil
}

func (d *daemon) listHostDir(p string, keep func(string) (string, bool)) func() ([]dirent, error) {
	return func() ([]dirent, error) { return readDirents(p, keep) }
}

// cpuDir is /sys/devices/system/cpu with only the visible CPUs, numbered
// from 0 like /proc/cpuinfo numbers them.
func (d *daemon) cpuDir(c *container, sub string) (*node, error) {
	root := d.host.sysPath("devices/system/cpu")
	vis := c.visibleCPUs(d.host)
	gen := func(b []byte) *node {
		return &node{kind: kFile, mode: 0o444, uid: c.uid, gid: c.gid, read: func() ([]byte, error) { return b, nil }}
	}
	first, rest, _ := strings.Cut(sub, "/")
	switch {
	case sub == "":
		n, err := mirror(root, "")
		if err != nil {
			return nil, err
		}
		n.list = func() ([]dirent, error) {
			ents, err := readDirents(root, func(name string) (string, bool) {
				_, isCPU := cpuIndex(name)
				return name, !isCPU
			})
			for i := range vis {
				ents = append(ents, dirent{name: "cpu" + strconv.Itoa(i), kind: kDir})
			}
			return ents, err
		}
		return n, nil
	case rest == "" && (first == "online" || first == "possible" || first == "present"):
		return gen(cpuRange(len(vis))), nil
	case rest == "" && first == "offline":
		return gen([]byte("\n")), nil
	}
	if i, ok := cpuIndex(first); ok {
		if i >= len(vis) {
			return nil, syscall.ENOENT
		}
		return mirror(filepath.Join(root, "cpu"+strconv.Itoa(vis[i])), rest)
	}
	return mirror(root, sub)
}

// cpuIndex parses "cpu12".
func cpuIndex(name string) (int, bool) {
	s, ok := strings.CutPrefix(name, "cpu")
	if !ok || s == "" {
		return 0, false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

// hashsize is nf_conntrack's hash table size: per container (the kernel
// lets only the init netns set it), seeded from the host's.
func (d *daemon) hashsize(c *container) (*node, error) {
	hostPath := d.host.sysPath(hashsizeRel)
	if !d.hasFile(hostPath) {
		return nil, syscall.ENOENT
	}
	spec := sysctlSpec{min: 1, max: intMax, ints: 1}
	seed := func() (string, error) {
		b, err := cgview.ReadFile(hostPath)
		return normSeed(b), err
	}
	return &node{
		kind: kFile, mode: 0o644, uid: c.uid, gid: c.gid,
		read: func() ([]byte, error) {
			v, err := c.stored("/sys/"+hashsizeRel, seed)
			return []byte(v + "\n"), err
		},
		write: func(off int64, data []byte) error {
			if off > 0 {
				return nil
			}
			_, err := c.store("/sys/"+hashsizeRel, spec, string(data), seed)
			return err
		},
	}, nil
}

// stored returns a per-container value, seeding it on first use.
func (c *container) stored(key string, seed func() (string, error)) (string, error) {
	c.mu.Lock()
	v, ok := c.sysctl[key]
	c.mu.Unlock()
	if ok {
		return v, nil
	}
	s, err := seed()
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.sysctl[key]; ok {
		return v, nil
	}
	c.sysctl[key] = s
	return s, nil
}

// store validates and keeps a write; it returns the new value.
func (c *container) store(key string, spec sysctlSpec, in string, seed func() (string, error)) (string, error) {
	if _, err := c.stored(key, seed); err != nil {
		return "", err
	}
	c.mu.Lock()
	v, err := setSysctl(spec, c.sysctl[key], in)
	if err != nil {
		c.mu.Unlock()
		return "", err
	}
	c.sysctl[key] = v
	changed := c.changed
	c.mu.Unlock()
	if changed != nil {
		changed()
	}
	return v, nil
}

// procSys resolves rel under the container's /proc/sys.
func (d *daemon) procSys(c *container, rel string) (*node, error) {
	hostPath := d.host.procPath("sys")
	if rel != "" {
		hostPath = filepath.Join(hostPath, rel)
	}
	if rel == "kernel/random/uuid" {
		return &node{kind: kFile, mode: 0o444, uid: c.uid, gid: c.gid, read: randomUUID}, nil
	}
	if spec, key, ok := sysctlFor(rel); ok && (!spec.netns || !d.netNamespaced(c, rel)) {
		return d.storedSysctl(c, rel, key, spec)
	}
	k := nsOf(rel)
	if k == nsHost || !c.hasNS(k) {
		if k == nsUTS {
			return d.utsBeforeStart(c, rel), nil
		}
		n, err := mirror(hostPath, "")
		if err != nil {
			return nil, err
		}
		if n.kind == kDir {
			n.uid, n.gid = c.uid, c.gid
			n.list = d.listSysctlDir(c, rel, hostPath, k)
		}
		return n, nil
	}
	n, err := d.nsSysctl(c, rel, k)
	if errors.Is(err, syscall.ENOENT) && isSysctlDir(rel) {
		// A dir the netns hides (IPVS, the neighbour defaults) but that holds
		// per-container sysctls: list those.
		if n, err = mirror(hostPath, ""); err == nil && n.kind == kDir {
			n.uid, n.gid = c.uid, c.gid
			n.list = d.listSysctlDir(c, rel, hostPath, k)
		}
	}
	return n, err
}

// listSysctlDir lists a /proc/sys dir: the host's, and in net/ the
// container's netns's with the per-container sysctls its netns lacks.
func (d *daemon) listSysctlDir(c *container, rel, hostPath string, k nsKind) func() ([]dirent, error) {
	return func() ([]dirent, error) {
		if rel != "" && k != nsNet {
			return readDirents(hostPath, nil)
		}
		var own []dirent
		var err error
		if rel == "" || !c.hasNS(nsNet) {
			own, err = readDirents(hostPath, nil)
		} else {
			err = d.inContainerNS(c, nsNet, func() error {
				var lerr error
				own, lerr = readDirents(filepath.Join(d.nsProc, "sys", rel), nil)
				return lerr
			})
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		if rel == "" {
			return own, nil
		}
		// Add what the view emulates that the netns does not show.
		have := make(map[string]bool, len(own))
		for _, e := range own {
			have[e.name] = true
		}
		extra, _ := readDirents(hostPath, func(name string) (string, bool) {
			if have[name] {
				return "", false
			}
			child := rel + "/" + name
			if _, _, ok := sysctlFor(child); ok || isSysctlDir(child) {
				return name, true
			}
			return "", false
		})
		return append(own, extra...), nil
	}
}

// netNamespaced reports whether the container's netns has its own writable
// rel: then the kernel keeps it per container and the view passes through.
// The answer is cached per container (it only changes with modules).
func (d *daemon) netNamespaced(c *container, rel string) bool {
	if !c.hasNS(nsNet) {
		return false
	}
	c.mu.Lock()
	emulated, ok := c.netClass[rel]
	c.mu.Unlock()
	if ok {
		return !emulated
	}
	var st unix.Stat_t
	err := d.inContainerNS(c, nsNet, func() error {
		return unix.Stat(filepath.Join(d.nsProc, "sys", rel), &st)
	})
	own := err == nil && st.Mode&0o200 != 0
	if err != nil && !errors.Is(err, syscall.ENOENT) {
		return false // not cached: try again next time
	}
	c.mu.Lock()
	c.netClass[rel] = !own
	c.mu.Unlock()
	return own
}

// storedSysctl is a per-container sysctl kept by the daemon.
func (d *daemon) storedSysctl(c *container, rel, key string, spec sysctlSpec) (*node, error) {
	hostPath := d.host.procPath("sys/" + key)
	var st unix.Stat_t
	if err := unix.Stat(hostPath, &st); err != nil {
		// Nothing to seed from: the host lacks it too (a module not loaded).
		return nil, err
	}
	seed := func() (string, error) {
		b, err := cgview.ReadFile(hostPath)
		return normSeed(b), err
	}
	mode := os.FileMode(st.Mode & 0o777)
	n := &node{kind: kFile, mode: mode, uid: c.uid, gid: c.gid, read: func() ([]byte, error) {
		v, err := c.stored(key, seed)
		return []byte(v + "\n"), err
	}}
	if st.Mode&0o200 == 0 {
		return n, nil
	}
	n.write = func(off int64, data []byte) error {
		if off > 0 {
			// As the kernel's strict mode: a numeric value is written whole
			// at offset 0; continuations are ignored.
			return nil
		}
		v, err := c.store(key, spec, string(data), seed)
		if err != nil {
			return err
		}
		if spec.raiseHost {
			d.raiseHost(key, v)
		}
		return nil
	}
	return n, nil
}

// raiseHost applies a sysctl's "largest any container asked for" policy:
// the host's value goes up to v, never down.
func (d *daemon) raiseHost(key, v string) {
	want, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return
	}
	p := d.host.procPath("sys/" + key)
	b, err := cgview.ReadFile(p)
	if err != nil {
		return
	}
	cur, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || want <= cur {
		return
	}
	if err := os.WriteFile(p, []byte(v), 0); err != nil {
		slog.Warn("raise host sysctl", "path", key, "value", v, "err", err)
		return
	}
	slog.Info("raised host sysctl for a container", "path", key, "from", cur, "to", want)
}

// inContainerNS runs fn in the container's namespace of kind k. The
// container's lock is held only to fetch the namespace file; nsMu keeps it
// open until fn is done.
func (d *daemon) inContainerNS(c *container, k nsKind, fn func() error) error {
	c.nsMu.RLock()
	defer c.nsMu.RUnlock()
	c.mu.Lock()
	target := c.ns[k]
	c.mu.Unlock()
	return inNS(k, target, d.self[k], fn)
}

// nsSysctl passes rel through to the container's own namespace: reads and
// writes reach the kernel's per-namespace value; owner and mode are what
// the kernel shows there (the container's root for what it may change).
func (d *daemon) nsSysctl(c *container, rel string, k nsKind) (*node, error) {
	p := filepath.Join(d.nsProc, "sys", rel)
	var st unix.Stat_t
	if err := d.inContainerNS(c, k, func() error { return unix.Stat(p, &st) }); err != nil {
		return nil, err
	}
	n := &node{mode: os.FileMode(st.Mode & 0o777), uid: st.Uid, gid: st.Gid}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		n.kind = kDir
		n.uid, n.gid = c.uid, c.gid
		n.list = d.listSysctlDir(c, rel, d.host.procPath("sys/"+rel), k)
		return n, nil
	}
	n.kind = kFile
	if k == nsUTS {
		// procfs shows the UTS files as global root's even in a user
		// namespace, yet the container's root may set both names with
		// sethostname(2) and setdomainname(2): let it write them here too.
		n.uid, n.gid = c.uid, c.gid
	}
	n.read = func() ([]byte, error) {
		var b []byte
		err := d.inContainerNS(c, k, func() error {
			var rerr error
			b, rerr = cgview.ReadFile(p)
			return rerr
		})
		return b, err
	}
	if st.Mode&0o222 != 0 {
		n.write = func(off int64, data []byte) error {
			return d.inContainerNS(c, k, func() error {
				fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CLOEXEC, 0)
				if err != nil {
					return err
				}
				defer unix.Close(fd)
				_, err = unix.Pwrite(fd, data, off)
				return err
			})
		}
	}
	return n, nil
}

// utsBeforeStart serves kernel.hostname and domainname before the
// container's UTS namespace exists: what the spec asked for.
func (d *daemon) utsBeforeStart(c *container, rel string) *node {
	return &node{kind: kFile, mode: 0o644, uid: c.uid, gid: c.gid, read: func() ([]byte, error) {
		if rel == "kernel/domainname" {
			return []byte("(none)\n"), nil
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		return []byte(c.hostname + "\n"), nil
	}}
}

// randomUUID is kernel.random.uuid: a new version 4 UUID on every read.
func randomUUID() ([]byte, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Appendf(nil, "%x-%x-%x-%x-%x\n", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}
