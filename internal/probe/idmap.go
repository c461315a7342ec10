package probe

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/sysbox-dev/sysbox/internal/mountinfo"
)

// probeFileID is the owner given to the probe file on disk; through the
// probe mapping it must show as probeIDBase+probeFileID.
const probeFileID = 1000

// idmapFacts is what the id-mapped mount probe found.
type idmapFacts struct {
	dataRoot   string
	probed     string // the existing directory the probe ran in
	fstype     string // of the filesystem holding probed
	setupErr   error  // before any id-mapped mount was tried
	idmapErr   error
	idmapUID   int // owner of the probe file through the id-mapped mount
	overlayErr error
	overlayUID int // owner of the probe file in the overlay
	cleanupErr error
}

func idmapResults(f idmapFacts) []Result {
	want := probeIDBase + probeFileID
	where := fmt.Sprintf("%s on %s", f.fstype, f.dataRoot)
	if f.probed != f.dataRoot {
		where = fmt.Sprintf("%s on %s (data root absent, probed %s)", f.fstype, f.dataRoot, f.probed)
	}
	idm := Result{Name: "idmap"}
	ovl := Result{Name: "overlay"}
	switch {
	case f.setupErr != nil:
		idm.Status, idm.Detail = Fail, fmt.Sprintf("%s: could not set up the probe: %v", where, f.setupErr)
		idm.Remedy = "check that the data root (--data-root) is writable by root and that user namespaces work (see userns)"
		ovl.Status, ovl.Detail = Fail, "not probed: the id-mapped mount probe could not start"
		ovl.Remedy = idm.Remedy
	case f.idmapErr != nil:
		idm.Status, idm.Detail = Fail, fmt.Sprintf("%s: id-mapped mount failed: %v", where, f.idmapErr)
		idm.Remedy = "put the data root (--data-root) on a filesystem that supports id-mapped mounts (ext4, xfs, btrfs; tmpfs from 6.3) and use Linux 5.19 or later"
		ovl.Status, ovl.Detail = Fail, "not probed: no id-mapped layer to stack"
		ovl.Remedy = idm.Remedy
	case f.idmapUID != want:
		idm.Status, idm.Detail = Fail, fmt.Sprintf("%s: the id-mapped mount shows uid %d as %d, want %d", where, probeFileID, f.idmapUID, want)
		idm.Remedy = "report this kernel (uname -r) and filesystem: its id-mapped mounts do not shift ownership"
		ovl.Status, ovl.Detail, ovl.Remedy = Fail, "not probed: id-mapped mounts do not shift ownership", idm.Remedy
	default:
		idm.Status, idm.Detail = OK, fmt.Sprintf("%s: uid %d shows as %d through an id-mapped mount", where, probeFileID, f.idmapUID)
		switch {
		case f.overlayErr != nil:
			ovl.Status, ovl.Detail = Fail, fmt.Sprintf("overlayfs over an id-mapped lower layer failed: %v", f.overlayErr)
			ovl.Remedy = "use Linux 5.19 or later with overlayfs (CONFIG_OVERLAY_FS)"
		case f.overlayUID != want:
			ovl.Status, ovl.Detail = Fail, fmt.Sprintf("overlayfs over an id-mapped lower layer shows uid %d as %d, want %d", probeFileID, f.overlayUID, want)
			ovl.Remedy = "use Linux 5.19 or later: older overlayfs ignores the layers' id mappings"
		default:
			ovl.Status, ovl.Detail = OK, fmt.Sprintf("overlayfs over an id-mapped lower layer works: uid %d shows as %d in the merged view", probeFileID, f.overlayUID)
		}
	}
	if f.cleanupErr != nil {
		idm.Status = Fail
		idm.Detail += fmt.Sprintf("; cleanup failed: %v", f.cleanupErr)
		idm.Remedy = "remove the leftover directory named above by hand (unmount it first)"
	}
	return []Result{idm, ovl}
}

func probeIDMap(h host, dataRoot string) []Result {
	if !h.root {
		return []Result{needsRoot("idmap"), needsRoot("overlay")}
	}
	f := idmapFacts{dataRoot: filepath.Clean(dataRoot), idmapUID: -1, overlayUID: -1, fstype: "unknown filesystem"}
	f.probed, f.setupErr = nearestExisting(f.dataRoot)
	if f.setupErr != nil {
		f.probed = f.dataRoot
		return idmapResults(f)
	}
	if ms, err := mountinfo.Self(); err == nil {
		if m, ok := mountFor(ms, f.probed); ok {
			f.fstype = m.FSType
		}
	}
	err := inPrivateMountNS(func() error {
		s, err := newScratch(f.probed, ".sysbox-check-")
		if err != nil {
			f.setupErr = err
			return nil
		}
		defer func() { f.cleanupErr = s.Close() }()
		runIDMapProbe(s, &f)
		return nil
	})
	if err != nil && f.setupErr == nil {
		f.setupErr = err
	}
	return idmapResults(f)
}

// runIDMapProbe makes lower/upper/work, clones lower as an id-mapped mount
// (container root = host probeIDBase) and stacks overlayfs over it.
func runIDMapProbe(s *scratch, f *idmapFacts) {
	d := func(name string) string { return filepath.Join(s.dir, name) }
	for _, name := range []string{"lower", "lower-idmapped", "upper", "work", "merged"} {
		if err := os.Mkdir(d(name), 0o700); err != nil {
			f.setupErr = err
			return
		}
	}
	file := filepath.Join(d("lower"), "probe")
	if err := os.WriteFile(file, []byte("sysbox check\n"), 0o644); err != nil {
		f.setupErr = err
		return
	}
	if err := os.Chown(file, probeFileID, probeFileID); err != nil {
		f.setupErr = err
		return
	}
	uids, gids := probeMaps(true)
	ns, err := newUserns(uids, gids)
	if err != nil {
		f.setupErr = err
		return
	}
	defer ns.Close()

	if f.idmapErr = idmapMount(d("lower"), d("lower-idmapped"), ns.fd); f.idmapErr != nil {
		return
	}
	s.mounted(d("lower-idmapped"))
	if f.idmapUID, f.idmapErr = ownerOf(filepath.Join(d("lower-idmapped"), "probe")); f.idmapErr != nil {
		return
	}

	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", d("lower-idmapped"), d("upper"), d("work"))
	if err := unix.Mount("overlay", d("merged"), "overlay", 0, opts); err != nil {
		f.overlayErr = fmt.Errorf("mount overlay: %w", err)
		return
	}
	s.mounted(d("merged"))
	f.overlayUID, f.overlayErr = ownerOf(filepath.Join(d("merged"), "probe"))
}

// idmapMount attaches an id-mapped clone of src at dst.
func idmapMount(src, dst string, usernsFD int) error {
	fd, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.O_CLOEXEC)
	if err != nil {
		return fmt.Errorf("open_tree %s: %w", src, err)
	}
	defer unix.Close(fd)
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(usernsFD)}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &attr); err != nil {
		return fmt.Errorf("mount_setattr MOUNT_ATTR_IDMAP: %w", err)
	}
	if err := unix.MoveMount(fd, "", unix.AT_FDCWD, dst, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount to %s: %w", dst, err)
	}
	return nil
}

func ownerOf(path string) (int, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return -1, err
	}
	if st.Uid != st.Gid {
		return -1, fmt.Errorf("%s: uid %d and gid %d differ, the mapping shifts them alike", path, st.Uid, st.Gid)
	}
	return int(st.Uid), nil
}
