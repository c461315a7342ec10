package fs

import (
	"math"
	"strconv"
	"strings"
	"syscall"
)

// sysctlSpec says how one per-container sysctl is checked and stored. Paths
// are relative to /proc/sys.
//
// These are the sysctls system software writes (systemd, dockerd, kubelet,
// kube-proxy) that the kernel keeps global: writing the host's would change
// every container and the host, and a container's root may not anyway. Each
// container gets its own value, seeded from the host's, which nothing but
// the container's own reads sees.
type sysctlSpec struct {
	min, max int64
	// ints is how many numbers the value holds (kernel.printk: 4); 0 infers
	// it from the seed, and a seed that is not numbers makes it a string.
	ints int
	// lockAt: once set to this value it cannot change (yama's ptrace_scope 3).
	lockAt *int64
	// raiseHost: the host's value becomes the largest any container asked
	// for. Only for limits where a container's workload really needs the
	// host's capacity (conntrack table size for kube-proxy), and raising
	// never hurts the others.
	raiseHost bool
	// netns: emulated only where the kernel does not give the container's
	// network namespace its own writable copy (it does for somaxconn and the
	// conntrack timeouts on current kernels; it hides the neighbour table
	// thresholds and IPVS from user-namespaced netns, and makes
	// nf_conntrack_max read-only there).
	netns bool
}

const (
	intMin = math.MinInt32
	intMax = math.MaxInt32
	lngMax = math.MaxInt64
)

var three = int64(3)

// sysctls lists the per-container sysctls by exact path.
var sysctls = map[string]sysctlSpec{
	"kernel/pid_max":                            {min: 301, max: 4194304, ints: 1}, // PID_MAX_LIMIT on 64-bit
	"kernel/panic":                              {min: intMin, max: intMax, ints: 1},
	"kernel/panic_on_oops":                      {min: 0, max: 1, ints: 1},
	"kernel/printk":                             {min: intMin, max: intMax, ints: 4},
	"kernel/sysrq":                              {min: 0, max: intMax, ints: 1},
	"kernel/kptr_restrict":                      {min: 0, max: 2, ints: 1},
	"kernel/dmesg_restrict":                     {min: 0, max: 1, ints: 1},
	"kernel/yama/ptrace_scope":                  {min: 0, max: 3, ints: 1, lockAt: &three},
	"kernel/keys/root_maxkeys":                  {min: 1, max: intMax, ints: 1}, // kubelet sets these
	"kernel/keys/root_maxbytes":                 {min: 1, max: intMax, ints: 1},
	"fs/file-max":                               {min: 0, max: lngMax, ints: 1},
	"fs/nr_open":                                {min: 64, max: 2147483584, ints: 1},
	"fs/protected_hardlinks":                    {min: 0, max: 1, ints: 1},
	"fs/protected_symlinks":                     {min: 0, max: 1, ints: 1},
	"fs/protected_fifos":                        {min: 0, max: 2, ints: 1},
	"fs/protected_regular":                      {min: 0, max: 2, ints: 1},
	"vm/overcommit_memory":                      {min: 0, max: 2, ints: 1},
	"vm/mmap_min_addr":                          {min: 0, max: lngMax, ints: 1},
	"vm/panic_on_oom":                           {min: 0, max: 2, ints: 1}, // kubelet
	"net/netfilter/nf_conntrack_max":            {min: 0, max: intMax, ints: 1, raiseHost: true, netns: true},
	"net/netfilter/nf_conntrack_tcp_be_liberal": {min: 0, max: 1, ints: 1, netns: true},
	"net/core/somaxconn":                        {min: 0, max: intMax, ints: 1, netns: true},
	"net/unix/max_dgram_qlen":                   {min: 0, max: intMax, ints: 1, netns: true},
	"net/ipv4/neigh/default/gc_thresh1":         {min: 0, max: intMax, ints: 1, netns: true},
	"net/ipv4/neigh/default/gc_thresh2":         {min: 0, max: intMax, ints: 1, netns: true},
	"net/ipv4/neigh/default/gc_thresh3":         {min: 0, max: intMax, ints: 1, netns: true},
}

// sysctlAliases are other names of the same value: the init netns also shows
// nf_conntrack_max at the top of net/.
var sysctlAliases = map[string]string{
	"net/nf_conntrack_max": "net/netfilter/nf_conntrack_max",
}

// sysctlFor returns the spec of a per-container sysctl and the key its value
// is stored under.
func sysctlFor(rel string) (sysctlSpec, string, bool) {
	if a, ok := sysctlAliases[rel]; ok {
		rel = a
	}
	if s, ok := sysctls[rel]; ok {
		return s, rel, true
	}
	dir, name := splitLast(rel)
	switch {
	case dir == "net/netfilter" && strings.HasPrefix(name, "nf_conntrack_") && strings.Contains(name, "timeout"):
		return sysctlSpec{min: 0, max: intMax, ints: 1, netns: true}, rel, true
	case dir == "net/ipv4/vs" || strings.HasPrefix(dir, "net/ipv4/vs/"):
		return sysctlSpec{min: intMin, max: intMax, netns: true}, rel, true
	}
	return sysctlSpec{}, "", false
}

// isSysctlDir reports whether dir (relative to /proc/sys) holds per-container
// netns sysctls, so a listing keeps it even where the container's netns
// lacks it.
func isSysctlDir(dir string) bool {
	switch dir {
	case "net", "net/netfilter", "net/core", "net/unix", "net/ipv4", "net/ipv4/neigh", "net/ipv4/neigh/default":
		return true
	}
	return dir == "net/ipv4/vs" || strings.HasPrefix(dir, "net/ipv4/vs/")
}

func splitLast(p string) (dir, name string) {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "", p
	}
	return p[:i], p[i+1:]
}

// nsOf says which namespace the kernel keeps a sysctl in. nsHost means
// global: not per container unless sysctlFor says so.
func nsOf(rel string) nsKind {
	switch {
	case rel == "net" || strings.HasPrefix(rel, "net/"):
		return nsNet
	case rel == "kernel/hostname" || rel == "kernel/domainname":
		return nsUTS
	case rel == "fs/mqueue" || strings.HasPrefix(rel, "fs/mqueue/"):
		return nsIPC
	}
	switch rel {
	case "kernel/shmmax", "kernel/shmall", "kernel/shmmni", "kernel/shm_rmid_forced",
		"kernel/msgmax", "kernel/msgmni", "kernel/msgmnb", "kernel/sem",
		"kernel/auto_msgmni", "kernel/msg_next_id", "kernel/sem_next_id", "kernel/shm_next_id":
		return nsIPC
	}
	return nsHost
}

// setSysctl validates a write of in to a sysctl whose value is cur and
// returns the value to store. Like the kernel: a write of nothing but
// whitespace changes nothing; fewer numbers than the value holds replace
// the first ones; anything unparsable or out of range is EINVAL.
func setSysctl(spec sysctlSpec, cur, in string) (string, error) {
	fields := strings.Fields(in)
	if len(fields) == 0 {
		return cur, nil
	}
	n := spec.ints
	if n == 0 {
		n = countInts(cur)
	}
	if n == 0 {
		// A string value (a few IPVS knobs): one line, as the kernel keeps it.
		line, _, _ := strings.Cut(in, "\n")
		if len(line) > 4096 {
			return "", syscall.EINVAL
		}
		return line, nil
	}
	if len(fields) > n {
		return "", syscall.EINVAL
	}
	vals := strings.Fields(cur)
	for len(vals) < n {
		vals = append(vals, "0")
	}
	vals = vals[:n]
	for i, f := range fields {
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil || v < spec.min || v > spec.max {
			return "", syscall.EINVAL
		}
		if spec.lockAt != nil && i == 0 && vals[0] == strconv.FormatInt(*spec.lockAt, 10) && v != *spec.lockAt {
			return "", syscall.EINVAL
		}
		vals[i] = strconv.FormatInt(v, 10)
	}
	return strings.Join(vals, "\t"), nil
}

// countInts returns how many integers s holds, 0 if any field is not one.
func countInts(s string) int {
	f := strings.Fields(s)
	for _, x := range f {
		if _, err := strconv.ParseInt(x, 10, 64); err != nil {
			return 0
		}
	}
	return len(f)
}

// normSeed turns a host file's text into a stored value.
func normSeed(b []byte) string {
	s := strings.TrimRight(string(b), "\n")
	if n := countInts(s); n > 1 {
		return strings.Join(strings.Fields(s), "\t")
	}
	return strings.TrimSpace(s)
}
