package probe

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The probes map container root to this host uid range; nothing is ever
// written with these ids, the mapping only lives as long as the probe.
const (
	probeIDBase  = 1000000
	probeIDCount = 65536
)

// userns is a user namespace held open by a process stopped before it runs
// a single instruction of its own.
type userns struct {
	fd  int // /proc/PID/ns/user, O_CLOEXEC
	cmd *exec.Cmd
}

// newUserns creates a user namespace with the given id maps.
//
// A multithreaded process can't unshare(CLONE_NEWUSER), so a child is cloned
// into one. It is /proc/self/exe under ptrace, which stops it at its execve:
// it never runs, so there is no role, flag or helper binary to agree on. The
// caller's goroutine stays locked to its thread (the tracer) until Close.
func newUserns(uidMap, gidMap []syscall.SysProcIDMap) (*userns, error) {
	runtime.LockOSThread()
	cmd := exec.Command("/proc/self/exe")
	cmd.Args = []string{"sysbox-check-userns"}
	cmd.Env = []string{}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: uidMap,
		GidMappings: gidMap,
		Ptrace:      true,
		Pdeathsig:   syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("start a process in a new user namespace: %w", err)
	}
	u := &userns{fd: -1, cmd: cmd}
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/user", cmd.Process.Pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		u.Close()
		return nil, fmt.Errorf("open the new user namespace: %w", err)
	}
	u.fd = fd
	return u, nil
}

// uidMap returns the child's uid_map as the kernel shows it.
func (u *userns) uidMap() (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", u.cmd.Process.Pid))
	return strings.Join(strings.Fields(string(b)), " "), err
}

// Close kills and reaps the child. It reaps with wait4 itself: a traced
// child also reports its ptrace stop, which os.Process.Wait would take for
// the end.
func (u *userns) Close() {
	if u.fd >= 0 {
		unix.Close(u.fd)
		u.fd = -1
	}
	pid := u.cmd.Process.Pid
	_ = u.cmd.Process.Kill()
	for {
		var ws unix.WaitStatus
		_, err := unix.Wait4(pid, &ws, unix.WALL, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || ws.Exited() || ws.Signaled() {
			break
		}
	}
	_ = u.cmd.Process.Release()
	runtime.UnlockOSThread()
}

// probeMaps is the id map a probe namespace gets: a 65536-id range for
// root, the caller's own id as root inside for anyone else.
func probeMaps(root bool) (uids, gids []syscall.SysProcIDMap) {
	if root {
		m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: probeIDBase, Size: probeIDCount}}
		return m, m
	}
	return []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}},
		[]syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}}
}

// usernsFacts is what the user namespace probe found. Sysctls read as -1
// are absent on this kernel.
type usernsFacts struct {
	max              int
	maxErr           error
	unprivClone      int // Debian/Ubuntu kernel.unprivileged_userns_clone
	apparmorRestrict int // Ubuntu kernel.apparmor_restrict_unprivileged_userns
	created          string
	createErr        error
}

func usernsResult(f usernsFacts) Result {
	r := Result{Name: "userns"}
	var parts []string
	if f.maxErr == nil {
		parts = append(parts, fmt.Sprintf("user.max_user_namespaces=%d", f.max))
	}
	if f.unprivClone >= 0 {
		parts = append(parts, fmt.Sprintf("kernel.unprivileged_userns_clone=%d", f.unprivClone))
	}
	if f.apparmorRestrict >= 0 {
		parts = append(parts, fmt.Sprintf("kernel.apparmor_restrict_unprivileged_userns=%d", f.apparmorRestrict))
	}
	switch {
	case f.maxErr != nil:
		r.Status, r.Remedy = Fail, "use a kernel built with CONFIG_USER_NS"
		parts = append(parts, fmt.Sprintf("no user namespace support: %v", f.maxErr))
	case f.max == 0:
		r.Status, r.Remedy = Fail, "sysctl -w user.max_user_namespaces=65536, and persist it in /etc/sysctl.d/"
		parts = append(parts, "user namespaces are disabled")
	case f.createErr != nil:
		r.Status, r.Remedy = Fail, "check the sysctls above and any LSM policy (AppArmor, SELinux) that forbids user namespaces"
		parts = append(parts, fmt.Sprintf("creating one failed: %v", f.createErr))
	case f.unprivClone == 0:
		r.Status, r.Remedy = Warn, "sysctl -w kernel.unprivileged_userns_clone=1, and persist it in /etc/sysctl.d/"
		parts = append(parts, "created one; but nested user namespaces inside containers (rootless Docker, Podman, buildkit) are blocked")
	case f.apparmorRestrict == 1:
		r.Status, r.Remedy = Warn, "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or give the inner tools an AppArmor profile that allows userns"
		parts = append(parts, "created one; but AppArmor restricts nested user namespaces inside containers")
	default:
		r.Status = OK
		parts = append(parts, "created one ("+f.created+")")
	}
	r.Detail = strings.Join(parts, "; ")
	return r
}

// readIntFile reads a sysctl-style file holding one integer.
func readIntFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

func optionalSysctl(path string) int {
	v, err := readIntFile(path)
	if err != nil {
		return -1
	}
	return v
}

func probeUserns(h host) Result {
	f := usernsFacts{
		unprivClone:      optionalSysctl("/proc/sys/kernel/unprivileged_userns_clone"),
		apparmorRestrict: optionalSysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"),
	}
	f.max, f.maxErr = readIntFile("/proc/sys/user/max_user_namespaces")
	if f.maxErr == nil && f.max > 0 {
		uids, gids := probeMaps(h.root)
		u, err := newUserns(uids, gids)
		if err != nil {
			f.createErr = err
		} else {
			m, err := u.uidMap()
			u.Close()
			switch {
			case err != nil:
				f.createErr = fmt.Errorf("read its uid_map: %w", err)
			case m == "":
				f.createErr = errors.New("its uid_map stayed empty")
			default:
				f.created = "uid_map " + m
			}
		}
	}
	return usernsResult(f)
}
