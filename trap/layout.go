package trap

import (
	"path"
	"slices"
	"strings"

	"github.com/sysbox-dev/sysbox/internal/mountinfo"
)

// mountEntry is one line of /proc/<pid>/mountinfo (proc(5)).
type mountEntry struct {
	id, parent int
	dev        string // major:minor of the superblock
	root       string // path inside the filesystem mounted here
	point      string // mount point, relative to the process's root
	opts       string // per-mount options
	fstype     string
	source     string
}

func (m mountEntry) readOnly() bool { return hasOpt(m.opts, "ro") }

func (m mountEntry) key() mountKey { return mountKey{m.dev, m.root, m.point} }

func hasOpt(opts, o string) bool {
	for _, x := range strings.Split(opts, ",") {
		if x == o {
			return true
		}
	}
	return false
}

// mountKey names a mount by what it shows and where, so a copy of a mount in
// another mount namespace (unshare -m) matches its original.
type mountKey struct{ dev, root, point string }

func parseMountinfo(b []byte) ([]mountEntry, error) {
	es, err := mountinfo.Parse(b)
	if err != nil {
		return nil, err
	}
	out := make([]mountEntry, len(es))
	for i, e := range es {
		out[i] = mountEntry{
			id: e.ID, parent: e.Parent, dev: e.Dev, root: e.Root, point: e.Point,
			opts: e.Options, fstype: e.FSType, source: e.Source,
		}
	}
	return out, nil
}

// coverKind is what the runtime put over a path of the container's /proc
// or /sys.
type coverKind int

const (
	coverMaskFile coverKind = iota // /dev/null bound over a file
	coverMaskDir                   // an empty read-only tmpfs over a dir
	coverReadOnly                  // the path bound over itself, read-only
)

func (k coverKind) String() string {
	return [...]string{"mask-file", "mask-dir", "read-only"}[k]
}

// cover is one masked or read-only path, relative to the filesystem's
// root ("kcore", "bus").
type cover struct {
	kind coverKind
	rel  string
}

// layout is a container's mounts as it started: what a new procfs or sysfs
// must get to look like the container's own, and what may not be unmounted
// or made writable. Built once per container from its init's mountinfo,
// before the container runs anything of its own.
type layout struct {
	// procCovers and sysCovers are the masked and read-only paths of the
	// container's /proc and /sys, parents before children. The FUSE views
	// come from Views, which knows their sources.
	procCovers, sysCovers []cover

	// protected: /proc, /sys and what the runtime mounted on them.
	protected map[mountKey]bool
	// readOnlyRoots: for each filesystem a mount that started read-only
	// is on, the roots those mounts show.
	readOnlyRoots map[string][]string
	// The filesystems the protected mounts are on: a path on any other
	// cannot be one of them, which spares reading the caller's mountinfo
	// (readOnlyDev does the same for the read-only ones).
	protectedDevs map[string]bool
}

// isProtected matches by key, so the copies in another mount namespace
// (unshare -m) are the originals too, while the same views mounted
// elsewhere (a new procfs at /tmp/p) are not.
func (l *layout) isProtected(m mountEntry) bool { return l != nil && l.protected[m.key()] }

// isReadOnly: m shows what a mount that started read-only shows, or part
// of it. Not only the original and its copies in other mount namespaces:
// a bind of it anywhere (mount --bind /ro /tmp/x, which the kernel makes
// read-only too), that could otherwise be made writable in its place.
func (l *layout) isReadOnly(m mountEntry) bool {
	if l == nil {
		return false
	}
	for _, r := range l.readOnlyRoots[m.dev] {
		if underRoot(m.root, r) {
			return true
		}
	}
	return false
}

// underRoot: p is root or below it (paths inside one filesystem).
func underRoot(p, root string) bool {
	return root == "/" || p == root || strings.HasPrefix(p, root+"/")
}

func (l *layout) protectedDev(dev string) bool { return l != nil && l.protectedDevs[dev] }

func (l *layout) readOnlyDev(dev string) bool { return l != nil && len(l.readOnlyRoots[dev]) > 0 }

// hasReadOnly: some mount started read-only.
func (l *layout) hasReadOnly() bool { return l != nil && len(l.readOnlyRoots) > 0 }

// buildLayout reads a container's layout out of its init's mountinfo.
// views are the container paths of its views (Views.Mounts).
func buildLayout(ms []mountEntry, views map[string]bool) *layout {
	l := &layout{
		protected: map[mountKey]bool{}, readOnlyRoots: map[string][]string{},
		protectedDevs: map[string]bool{},
	}
	for _, m := range ms {
		if m.readOnly() {
			l.readOnlyRoots[m.dev] = append(l.readOnlyRoots[m.dev], m.root)
		}
	}
	l.procCovers = l.walk(ms, "/proc", "proc", views)
	l.sysCovers = l.walk(ms, "/sys", "sysfs", views)
	return l
}

// walk finds the topmost fstype mount at top and records what is mounted
// over it: views, masks, read-only binds. Other mounts below (cgroupfs
// under /sys/fs/cgroup, binfmt_misc) are the container's own business and
// neither copied nor protected.
func (l *layout) walk(ms []mountEntry, top, fstype string, views map[string]bool) []cover {
	base := -1
	for i, m := range ms {
		if m.point == top && m.fstype == fstype && m.root == "/" {
			base = i
		}
	}
	if base < 0 {
		return nil
	}
	l.protect(ms[base])
	in := map[int]bool{ms[base].id: true}
	var covers []cover
	for _, m := range ms[base+1:] {
		if !in[m.parent] {
			continue
		}
		rel, ok := strings.CutPrefix(m.point, top+"/")
		if !ok {
			continue
		}
		var kind coverKind
		switch {
		case views[m.point] || strings.HasPrefix(m.fstype, "fuse"):
			// A view: its source comes from Views.
			l.protect(m)
			in[m.id] = true
			continue
		case m.fstype == fstype && m.root != "/" && m.readOnly():
			kind = coverReadOnly
		case m.fstype == "tmpfs" && m.root == "/" && m.readOnly():
			kind = coverMaskDir
		case path.Base(m.root) == "null" && (m.fstype == "devtmpfs" || m.fstype == "tmpfs"):
			kind = coverMaskFile
		default:
			continue
		}
		l.protect(m)
		in[m.id] = true
		covers = append(covers, cover{kind: kind, rel: rel})
	}
	slices.SortStableFunc(covers, func(a, b cover) int { return depth(a.rel) - depth(b.rel) })
	return covers
}

func (l *layout) protect(m mountEntry) {
	l.protected[m.key()] = true
	l.protectedDevs[m.dev] = true
}

func depth(p string) int { return strings.Count(p, "/") }

// findMount returns the entry with mount id id.
func findMount(ms []mountEntry, id int) (mountEntry, bool) {
	for _, m := range ms {
		if m.id == id {
			return m, true
		}
	}
	return mountEntry{}, false
}
