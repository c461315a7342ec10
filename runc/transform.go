package runc

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Host is what the transform needs to know about the machine and the
// daemons' answers. Keeping it a plain value keeps Transform pure.
type Host struct {
	// Caps is what root inside gets: every capability the kernel knows
	// ("CAP_…"), held within the container's own user namespace.
	Caps []string
	// TimeNS: the kernel has time namespaces.
	TimeNS bool
	// OOMScoreAdj is the runtime's own oom_score_adj; lowering below it
	// needs CAP_SYS_RESOURCE, which not every host grants.
	OOMScoreAdj int
	// SysResource: the runtime holds CAP_SYS_RESOURCE, so it may lower
	// oom_score_adj and raise hard rlimits.
	SysResource bool
	// RlimitHard are the runtime's own hard limits ("RLIMIT_NOFILE"...).
	RlimitHard map[string]uint64
	// UIDBase, GIDBase and Size: the container's exclusive id range.
	UIDBase, GIDBase, Size uint32
	// Mounts from the manager (host-backed dirs) and the fs daemon (views).
	Extra []specs.Mount
	// ListenerPath routes the trapped syscalls to the agent ("" for none).
	ListenerPath string
	// Trapped are the syscalls sent to the agent.
	Trapped []string
}

// Warning is something the transform changed that the user should hear of.
type Warning string

// allowedSyscalls are what system software needs beyond an engine's
// default profile: mounts, namespaces, keyrings, hostnames.
var allowedSyscalls = []string{
	"mount", "umount", "umount2", "pivot_root", "unshare", "setns", "clone",
	"keyctl", "add_key", "request_key", "sethostname", "setdomainname",
	"fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr",
	"syslog", "reboot", "chroot", "ptrace", "personality", "quotactl", "name_to_handle_at",
	"mknod", "mknodat",
}

// initPaths are commands that make a container a machine-like box.
var initPaths = []string{"/sbin/init", "/usr/sbin/init", "/lib/systemd/systemd", "/usr/lib/systemd/systemd"}

// IsInit reports whether args start an init system.
func IsInit(args []string) bool {
	return len(args) > 0 && slices.Contains(initPaths, args[0])
}

// Validate refuses what a system container cannot be: sharing the host's
// namespaces, or a privileged spec. Errors name the flag to drop.
func Validate(s *specs.Spec) error {
	if s.Linux == nil {
		return errors.New("config.json has no linux section: only Linux containers are supported")
	}
	if s.Process == nil {
		return errors.New("config.json has no process section")
	}
	if isPrivileged(s) {
		return errors.New("--privileged is not supported: a system container is already root inside its own user namespace; drop --privileged (systemd, Docker and Kubernetes run without it)")
	}
	flags := map[specs.LinuxNamespaceType]string{
		specs.PIDNamespace:     "--pid=host is not supported: system containers need their own pid namespace",
		specs.NetworkNamespace: "--net=host is not supported: system containers need their own network namespace",
		specs.IPCNamespace:     "--ipc=host is not supported: system containers need their own ipc namespace",
		specs.UTSNamespace:     "--uts=host is not supported: system containers need their own uts namespace",
		specs.MountNamespace:   "sharing the host's mount namespace is not supported: system containers need their own",
	}
	for _, t := range []specs.LinuxNamespaceType{specs.PIDNamespace, specs.NetworkNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.MountNamespace} {
		ns, ok := namespace(s, t)
		if !ok || isHostNS(t, ns.Path) {
			return errors.New(flags[t])
		}
	}
	if ns, ok := namespace(s, specs.UserNamespace); ok && isHostNS(specs.UserNamespace, ns.Path) {
		return errors.New("--userns=host is not supported: every system container gets its own user namespace")
	}
	return nil
}

// isPrivileged recognises the specs engines write for --privileged: every
// device allowed and no masked or read-only paths.
func isPrivileged(s *specs.Spec) bool {
	if s.Linux.Resources != nil {
		for _, d := range s.Linux.Resources.Devices {
			if d.Allow && (d.Type == "" || d.Type == "a") && d.Major == nil && d.Minor == nil && strings.Contains(d.Access, "rwm") {
				return len(s.Linux.MaskedPaths) == 0 && len(s.Linux.ReadonlyPaths) == 0
			}
		}
	}
	return false
}

// isHostNS: path names one of the host's namespaces. Engines join the
// host's network namespace through a bind of it (Docker's
// /var/run/docker/netns/default), so the answer comes from comparing the
// namespace itself with init's, not from the path alone.
func isHostNS(t specs.LinuxNamespaceType, path string) bool {
	if path == "" {
		return false
	}
	p := filepath.Clean(path)
	if strings.HasPrefix(p, "/proc/1/ns/") {
		return true
	}
	// The engine's host is where init runs, or where this runtime runs
	// (the engine's own namespaces, which differ from init's when the
	// engine itself runs in a container).
	return sameNamespace(p, "/proc/1/ns/"+nsFile[t]) || sameNamespace(p, "/proc/self/ns/"+nsFile[t])
}

// nsFile is the /proc/PID/ns entry of each namespace type.
var nsFile = map[specs.LinuxNamespaceType]string{
	specs.PIDNamespace: "pid", specs.NetworkNamespace: "net", specs.IPCNamespace: "ipc",
	specs.UTSNamespace: "uts", specs.MountNamespace: "mnt", specs.UserNamespace: "user",
	specs.CgroupNamespace: "cgroup", specs.TimeNamespace: "time",
}

// sameNamespace compares two namespace files (a variable so the pure
// transform tests need no /proc).
var sameNamespace = func(a, b string) bool {
	var sa, sb unix.Stat_t
	if unix.Stat(a, &sa) != nil || unix.Stat(b, &sb) != nil {
		return false
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino
}

func namespace(s *specs.Spec, t specs.LinuxNamespaceType) (specs.LinuxNamespace, bool) {
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == t {
			return ns, true
		}
	}
	return specs.LinuxNamespace{}, false
}

// Transform turns an engine's OCI spec into the system-container spec that
// libcontainer runs. It changes s in place and returns what the user should
// be told. It is pure: everything it needs about the host comes in h.
func Transform(s *specs.Spec, opts Options, h Host) ([]Warning, error) {
	if err := Validate(s); err != nil {
		return nil, err
	}
	var warns []Warning

	// Namespaces: the user namespace is the point; cgroup and time make
	// the box look like a machine.
	addNS := []specs.LinuxNamespaceType{specs.UserNamespace, specs.CgroupNamespace}
	if h.TimeNS {
		addNS = append(addNS, specs.TimeNamespace)
	}
	for _, t := range addNS {
		if _, ok := namespace(s, t); !ok {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: t})
		}
	}

	if err := setIDMappings(s, h); err != nil {
		return nil, err
	}
	setCapabilities(s.Process, opts, h.Caps)
	if s.Linux.Seccomp != nil {
		allowSyscalls(s.Linux.Seccomp, allowedSyscalls)
		if h.ListenerPath != "" && len(h.Trapped) > 0 {
			trapSyscalls(s.Linux.Seccomp, h.Trapped, h.ListenerPath)
		}
	}
	transformMounts(s, h)
	clampPingRange(s)
	allowDevices(s)

	if s.Process.OOMScoreAdj != nil && *s.Process.OOMScoreAdj < h.OOMScoreAdj && !h.SysResource {
		warns = append(warns, Warning(fmt.Sprintf("oom_score_adj %d is below the runtime's %d and this host lets no process lower it: keeping %d", *s.Process.OOMScoreAdj, h.OOMScoreAdj, h.OOMScoreAdj)))
		v := h.OOMScoreAdj
		s.Process.OOMScoreAdj = &v
	}
	warns = append(warns, clampRlimits(s.Process, h)...)
	if IsInit(s.Process.Args) && !hasEnv(s.Process.Env, "container") {
		s.Process.Env = append(s.Process.Env, "container=private-users")
	}
	return warns, nil
}

// setIDMappings gives the container its exclusive range, or checks and
// keeps the mappings an engine already chose (userns-remap, hostUsers: false).
func setIDMappings(s *specs.Spec, h Host) error {
	if len(s.Linux.UIDMappings) > 0 || len(s.Linux.GIDMappings) > 0 {
		if err := checkMappings("uid", s.Linux.UIDMappings); err != nil {
			return err
		}
		return checkMappings("gid", s.Linux.GIDMappings)
	}
	if h.Size == 0 || h.UIDBase == 0 || h.GIDBase == 0 {
		return errors.New("no id range for this container: the manager gave none")
	}
	s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: h.UIDBase, Size: h.Size}}
	s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: h.GIDBase, Size: h.Size}}
	return nil
}

func checkMappings(kind string, m []specs.LinuxIDMapping) error {
	if len(m) == 0 {
		return fmt.Errorf("the spec maps %ss only partly: give both uidMappings and gidMappings", kind)
	}
	root := false
	for i, a := range m {
		if a.Size == 0 {
			return fmt.Errorf("%s mapping %d has size 0", kind, i)
		}
		if a.HostID == 0 {
			return fmt.Errorf("%s mapping %d maps to host id 0: a system container must not hold host root; use an unprivileged range", kind, i)
		}
		if a.ContainerID == 0 {
			root = true
		}
		for j, b := range m[:i] {
			if overlaps(a.ContainerID, a.Size, b.ContainerID, b.Size) || overlaps(a.HostID, a.Size, b.HostID, b.Size) {
				return fmt.Errorf("%s mappings %d and %d overlap", kind, j, i)
			}
		}
	}
	if !root {
		return fmt.Errorf("the %s mappings do not map id 0: the container needs a root", kind)
	}
	return nil
}

func overlaps(a, an, b, bn uint32) bool {
	return uint64(a) < uint64(b)+uint64(bn) && uint64(b) < uint64(a)+uint64(an)
}

// setCapabilities gives root inside every capability the runtime holds
// (they count only inside the container's user namespace) and other users
// none, as on a real host.
func setCapabilities(p *specs.Process, opts Options, all []string) {
	if opts.HonorCaps {
		return
	}
	if p.Capabilities == nil {
		p.Capabilities = &specs.LinuxCapabilities{}
	}
	c := p.Capabilities
	c.Bounding = slices.Clone(all)
	c.Inheritable = nil
	c.Ambient = nil
	if p.User.UID == 0 {
		c.Permitted = slices.Clone(all)
		c.Effective = slices.Clone(all)
	} else {
		c.Permitted = nil
		c.Effective = nil
	}
}

// allowSyscalls makes names unconditionally allowed: any rule already
// naming one of them (an errno, or an allow limited by argument) loses it.
func allowSyscalls(sc *specs.LinuxSeccomp, names []string) {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var rules []specs.LinuxSyscall
	for _, r := range sc.Syscalls {
		r.Names = slices.DeleteFunc(slices.Clone(r.Names), func(n string) bool { return want[n] })
		if len(r.Names) > 0 {
			rules = append(rules, r)
		}
	}
	sc.Syscalls = append(rules, specs.LinuxSyscall{Names: slices.Clone(names), Action: specs.ActAllow})
}

// trapSyscalls sends names to the seccomp agent at listener.
func trapSyscalls(sc *specs.LinuxSeccomp, names []string, listener string) {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	for i := range sc.Syscalls {
		sc.Syscalls[i].Names = slices.DeleteFunc(sc.Syscalls[i].Names, func(n string) bool { return want[n] })
	}
	sc.Syscalls = slices.DeleteFunc(sc.Syscalls, func(r specs.LinuxSyscall) bool { return len(r.Names) == 0 })
	sc.Syscalls = append(sc.Syscalls, specs.LinuxSyscall{Names: slices.Clone(names), Action: specs.ActNotify})
	sc.ListenerPath = listener
}

// transformMounts: /proc and /sys writable, cgroupfs writable, /dev/kmsg
// harmless, bind mounts id-mapped, the daemons' mounts added, tmpfs /run for
// an init system.
func transformMounts(s *specs.Spec, h Host) {
	var out []specs.Mount
	present := map[string]bool{}
	for _, m := range s.Mounts {
		present[filepath.Clean(m.Destination)] = true
	}
	for _, m := range s.Mounts {
		switch {
		case m.Type == "sysfs" || m.Type == "cgroup" || m.Type == "cgroup2" || m.Type == "proc":
			m.Options = dropOpt(m.Options, "ro")
		case isBind(m) && idmappable(m):
			if !hasOpt(m.Options, "idmap") && !hasOpt(m.Options, "ridmap") && len(m.UIDMappings) == 0 {
				m.Options = append(slices.Clone(m.Options), "idmap")
			}
		}
		out = append(out, m)
	}
	if !present["/dev/kmsg"] {
		out = append(out, specs.Mount{Destination: "/dev/kmsg", Type: "bind", Source: "/dev/null", Options: []string{"bind", "rw", "nosuid", "noexec"}})
	}
	for _, m := range h.Extra {
		if present[filepath.Clean(m.Destination)] {
			continue
		}
		out = append(out, m)
		present[filepath.Clean(m.Destination)] = true
	}
	if IsInit(s.Process.Args) {
		for _, d := range []string{"/run", "/run/lock"} {
			if !present[d] {
				out = append(out, specs.Mount{Destination: d, Type: "tmpfs", Source: "tmpfs", Options: []string{"rw", "nosuid", "nodev", "mode=755"}})
			}
		}
	}
	s.Mounts = out
	// /proc/sys holds namespaced sysctls the container owns (and, with the
	// fs daemon, emulated ones): it must stay writable.
	s.Linux.ReadonlyPaths = slices.DeleteFunc(s.Linux.ReadonlyPaths, func(p string) bool { return p == "/proc/sys" })
}

// idmappable: bind sources that live on filesystems which can be id-mapped.
// Device nodes, procfs, sysfs and the fs daemon's FUSE views cannot.
func idmappable(m specs.Mount) bool {
	src := filepath.Clean(m.Source)
	for _, p := range []string{"/dev", "/proc", "/sys", "/var/lib/sysboxfs", "/lib/modules", "/usr/src"} {
		if src == p || strings.HasPrefix(src, p+"/") {
			return false
		}
	}
	return true
}

func isBind(m specs.Mount) bool {
	return m.Type == "bind" || hasOpt(m.Options, "bind") || hasOpt(m.Options, "rbind")
}

func hasOpt(opts []string, o string) bool { return slices.Contains(opts, o) }

func dropOpt(opts []string, o string) []string {
	return slices.DeleteFunc(slices.Clone(opts), func(x string) bool { return x == o })
}

func hasEnv(env []string, key string) bool {
	for _, e := range env {
		if strings.HasPrefix(e, key+"=") {
			return true
		}
	}
	return false
}

// clampPingRange keeps net.ipv4.ping_group_range inside the container's
// gids: engines ask for "0 2147483647", which a user namespace refuses.
func clampPingRange(s *specs.Spec) {
	v, ok := s.Linux.Sysctl["net.ipv4.ping_group_range"]
	if !ok || len(s.Linux.GIDMappings) == 0 {
		return
	}
	var lo, hi uint64
	if _, err := fmt.Sscanf(v, "%d %d", &lo, &hi); err != nil {
		return
	}
	var maxGID uint64
	for _, m := range s.Linux.GIDMappings {
		if end := uint64(m.ContainerID) + uint64(m.Size) - 1; end > maxGID {
			maxGID = end
		}
	}
	if hi > maxGID {
		hi = maxGID
	}
	if lo > hi {
		lo = hi
	}
	s.Linux.Sysctl["net.ipv4.ping_group_range"] = fmt.Sprintf("%d %d", lo, hi)
}

// clampRlimits keeps hard limits at or below the runtime's own when it may
// not raise them (engines ask for RLIMIT_NOFILE 1048576 whatever the host
// allows): the container starts, with a warning, instead of failing.
func clampRlimits(p *specs.Process, h Host) []Warning {
	if h.SysResource {
		return nil
	}
	var warns []Warning
	for i, rl := range p.Rlimits {
		max, ok := h.RlimitHard[rl.Type]
		if !ok || rl.Hard <= max {
			continue
		}
		warns = append(warns, Warning(fmt.Sprintf("%s hard limit %d is above the runtime's %d and this host lets no process raise it: using %d", rl.Type, rl.Hard, max, max)))
		p.Rlimits[i].Hard = max
		if rl.Soft > max {
			p.Rlimits[i].Soft = max
		}
	}
	return warns
}

// systemDevices are the character devices system software creates and
// opens (the trap agent makes the nodes; the devices cgroup must let them
// be used): /dev/net/tun and /dev/fuse.
var systemDevices = []struct{ major, minor int64 }{{10, 200}, {10, 229}}

func allowDevices(s *specs.Spec) {
	if s.Linux.Resources == nil {
		s.Linux.Resources = &specs.LinuxResources{}
	}
	for _, d := range systemDevices {
		major, minor := d.major, d.minor
		s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: &major, Minor: &minor, Access: "rwm"})
	}
}
