package trap

import (
	"bytes"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Capability bits the handlers check (linux/capability.h).
const (
	capChown       = 0
	capDacOverride = 1
	capMknod       = 27
	capSysAdmin    = 21
)

// creds are a calling thread's credentials as the host sees them: ids are
// host ids, capabilities count in the caller's own user namespace.
type creds struct {
	uid, euid, fsuid uint32
	gid, egid, fsgid uint32
	groups           []uint32
	capEff           uint64
	umask            uint32
	hasUmask         bool
}

func (c creds) has(cap uint) bool { return c.capEff&(1<<cap) != 0 }

// readCreds reads /proc/<tid>/status. The kernel translates the ids into
// the reader's user namespace: the agent, on the host, sees host ids.
func readCreds(tid int) (creds, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", tid))
	if err != nil {
		return creds{}, err
	}
	return parseStatus(b)
}

// readCaps reads only tid's effective capabilities, with capget(2): a
// syscall, where /proc/<tid>/status makes the kernel write out the whole
// file (tens of microseconds). Enough for the mount checks; ids, groups and
// umask stay zero.
func readCaps(tid int) (creds, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3, Pid: int32(tid)}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return creds{}, fmt.Errorf("capget %d: %w", tid, err)
	}
	return creds{capEff: uint64(data[1].Effective)<<32 | uint64(data[0].Effective)}, nil
}

func parseStatus(b []byte) (creds, error) {
	var c creds
	var seen int
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		k, v, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			continue
		}
		f := bytes.Fields(v)
		switch string(k) {
		case "Uid", "Gid":
			if len(f) != 4 {
				return creds{}, fmt.Errorf("status: bad %s line %q", k, line)
			}
			var ids [4]uint32
			for i := range ids {
				n, err := strconv.ParseUint(string(f[i]), 10, 32)
				if err != nil {
					return creds{}, fmt.Errorf("status: bad %s line %q", k, line)
				}
				ids[i] = uint32(n)
			}
			if k[0] == 'U' {
				c.uid, c.euid, c.fsuid = ids[0], ids[1], ids[3]
			} else {
				c.gid, c.egid, c.fsgid = ids[0], ids[1], ids[3]
			}
			seen++
		case "Groups":
			for _, g := range f {
				n, err := strconv.ParseUint(string(g), 10, 32)
				if err != nil {
					return creds{}, fmt.Errorf("status: bad Groups line %q", line)
				}
				c.groups = append(c.groups, uint32(n))
			}
		case "CapEff":
			if len(f) != 1 {
				return creds{}, fmt.Errorf("status: bad CapEff line %q", line)
			}
			n, err := strconv.ParseUint(string(f[0]), 16, 64)
			if err != nil {
				return creds{}, fmt.Errorf("status: bad CapEff line %q", line)
			}
			c.capEff = n
			seen++
		case "Umask":
			if len(f) == 1 {
				if n, err := strconv.ParseUint(string(f[0]), 8, 32); err == nil {
					c.umask, c.hasUmask = uint32(n), true
				}
			}
		}
	}
	if seen != 3 {
		return creds{}, fmt.Errorf("status: Uid, Gid or CapEff missing")
	}
	return c, nil
}

// nsFile opens one of tid's namespaces.
func nsFile(tid int, kind string) (int, error) {
	return unix.Open(fmt.Sprintf("/proc/%d/ns/%s", tid, kind), unix.O_RDONLY|unix.O_CLOEXEC, 0)
}

func nsIno(fd int) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// capableOver reports whether a caller in user namespace userNS with
// effective capability cap holds it over namespace nsFd, as the kernel's
// ns_capable() decides: a capability in a user namespace counts in every
// namespace that namespace or one of its descendants owns.
func capableOver(c creds, cap uint, userNS uint64, nsFd int) (bool, error) {
	if !c.has(cap) {
		return false, nil
	}
	owner, err := ioctlFd(nsFd, unix.NS_GET_USERNS)
	if err != nil {
		return false, err
	}
	for range 64 { // user namespaces nest 32 deep at most
		ino, err := nsIno(owner)
		if err != nil {
			unix.Close(owner)
			return false, err
		}
		if ino == userNS {
			unix.Close(owner)
			return true, nil
		}
		parent, err := ioctlFd(owner, unix.NS_GET_PARENT)
		unix.Close(owner)
		if err != nil {
			// EPERM: the walk left the agent's own user namespace
			// without meeting the caller's.
			return false, nil
		}
		owner = parent
	}
	unix.Close(owner)
	return false, nil
}

func ioctlFd(fd int, req uint) (int, error) {
	r, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}
