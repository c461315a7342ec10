package probe

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// KernelVersion is the numeric prefix of a kernel release string.
type KernelVersion struct{ Major, Minor, Patch int }

func (v KernelVersion) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// AtLeast reports whether v is major.minor or later.
func (v KernelVersion) AtLeast(major, minor int) bool {
	return v.Major > major || v.Major == major && v.Minor >= minor
}

// ParseKernelRelease reads the version out of a `uname -r` string such as
// "6.18.44-fc-v769", "5.15.0-91-generic" or "6.1.0-18-amd64": up to three
// dot-separated numbers, ended by anything that is not a digit or a dot.
// The patch level may be missing ("6.8-rc1").
func ParseKernelRelease(release string) (KernelVersion, error) {
	end := strings.IndexFunc(release, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if end < 0 {
		end = len(release)
	}
	parts := strings.Split(strings.TrimSuffix(release[:end], "."), ".")
	if len(parts) < 2 || len(parts) > 3 {
		return KernelVersion{}, fmt.Errorf("kernel release %q: want major.minor[.patch]", release)
	}
	var nums [3]int
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil {
			return KernelVersion{}, fmt.Errorf("kernel release %q: %w", release, err)
		}
		nums[i] = n
	}
	return KernelVersion{nums[0], nums[1], nums[2]}, nil
}

func kernelResult(release string, v KernelVersion, err error) Result {
	r := Result{Name: "kernel"}
	switch {
	case err != nil:
		r.Status, r.Detail = Fail, fmt.Sprintf("can't tell the kernel version: %v", err)
		r.Remedy = "check `uname -r`; sysbox needs Linux 5.19 or later"
	case !v.AtLeast(5, 19):
		r.Status, r.Detail = Fail, fmt.Sprintf("%s is older than 5.19, the first kernel with overlayfs over id-mapped layers", release)
		r.Remedy = "upgrade to a Linux 5.19 or later kernel (e.g. your distribution's backports or HWE kernel)"
	default:
		r.Status, r.Detail = OK, fmt.Sprintf("%s (5.19 or later: overlayfs over id-mapped layers)", release)
	}
	return r
}

// binfmt_misc got a per-user-namespace instance in 6.7; before that a
// container can't register interpreters without touching the host's.
func binfmtResult(v KernelVersion, kerr error, registered bool) Result {
	r := Result{Name: "binfmt_misc"}
	switch {
	case kerr != nil:
		r.Status, r.Detail = Warn, "kernel version unknown, so binfmt_misc inside containers is unknown"
		r.Remedy = "use Linux 6.7 or later for binfmt_misc inside containers"
	case !v.AtLeast(6, 7):
		r.Status, r.Detail = Warn, fmt.Sprintf("kernel %s: binfmt_misc can't be mounted inside a user namespace before 6.7 (qemu-user/multi-arch builds in containers won't work)", v)
		r.Remedy = "upgrade to Linux 6.7 or later if containers need binfmt_misc"
	case !registered:
		r.Status, r.Detail = Warn, fmt.Sprintf("kernel %s supports binfmt_misc in user namespaces, but binfmt_misc is not in /proc/filesystems", v)
		r.Remedy = "use a kernel built with CONFIG_BINFMT_MISC if containers need it"
	default:
		r.Status, r.Detail = OK, fmt.Sprintf("kernel %s: binfmt_misc can be mounted inside containers (6.7+)", v)
	}
	return r
}

// Neither is needed by sysbox itself, but workloads that load modules or use
// configfs (iSCSI/NVMe-oF targets, USB gadgets) depend on them, so say so.
func modulesResult(procModules, configfs bool) Result {
	r := Result{Name: "modules"}
	var missing []string
	if !procModules {
		missing = append(missing, "no loadable modules (/proc/modules absent)")
	}
	if !configfs {
		missing = append(missing, "no configfs (not in /proc/filesystems)")
	}
	if len(missing) == 0 {
		r.Status, r.Detail = OK, "loadable modules and configfs available"
		return r
	}
	r.Status = Warn
	r.Detail = strings.Join(missing, "; ") + ": only built-in kernel features are available; sysbox does not need them"
	r.Remedy = "nothing to do for sysbox; workloads that load modules or use configfs need a kernel with CONFIG_MODULES / CONFIG_CONFIGFS_FS"
	return r
}

// filesystemsHas reports whether /proc/filesystems text lists fstype.
func filesystemsHas(text, fstype string) bool {
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		if len(f) > 0 && f[len(f)-1] == fstype {
			return true
		}
	}
	return false
}

func hasFilesystem(fstype string) bool {
	b, err := os.ReadFile("/proc/filesystems")
	return err == nil && filesystemsHas(string(b), fstype)
}
