// Package probe holds the host-readiness probes behind `sysbox check`. Each
// probe looks at one kernel feature or piece of host setup and answers OK,
// WARN or FAIL with a detail and, when something is missing, a remedy a user
// can act on.
//
// The parsing and the verdicts are pure functions over what was read (tested
// with tables); the code that touches the kernel is kept thin around them.
// Probes that mount do so in a private mount namespace on a thread that dies
// afterwards, so a failed cleanup can never leave a mount on the host.
package probe

import (
	"os"

	"golang.org/x/sys/unix"
)

// Status is a probe's verdict.
type Status string

const (
	OK   Status = "OK"
	Warn Status = "WARN"
	Fail Status = "FAIL"
)

// Result is one line of the report.
type Result struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	Detail string `json:"detail"`
	Remedy string `json:"remedy"`
}

// Options steer the probes that depend on the host layout.
type Options struct {
	// DataRoot is where sysbox keeps its state; the id-mapped mount probe
	// runs on its filesystem (or that of its nearest existing parent).
	DataRoot string
}

// DefaultDataRoot is the manager's default state directory.
const DefaultDataRoot = "/var/lib/sysbox"

// host is what several probes need to know about the machine.
type host struct {
	release string // uname -r
	kernel  KernelVersion
	kerr    error // parsing release
	root    bool  // effective uid 0
}

func readHost() host {
	h := host{root: os.Geteuid() == 0}
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		h.kerr = err
		return h
	}
	h.release = unix.ByteSliceToString(u.Release[:])
	h.kernel, h.kerr = ParseKernelRelease(h.release)
	return h
}

// All runs every probe in report order.
func All(o Options) []Result {
	if o.DataRoot == "" {
		o.DataRoot = DefaultDataRoot
	}
	h := readHost()
	var rs []Result
	rs = append(rs, kernelResult(h.release, h.kernel, h.kerr))
	rs = append(rs, probeUserns(h))
	rs = append(rs, probeIDMap(h, o.DataRoot)...)
	rs = append(rs, probeFUSE(h))
	rs = append(rs, probeSeccomp(h)...)
	rs = append(rs, probeCgroups())
	rs = append(rs, binfmtResult(h.kernel, h.kerr, hasFilesystem("binfmt_misc")))
	rs = append(rs, modulesResult(exists("/proc/modules"), hasFilesystem("configfs")))
	rs = append(rs, probeSubID())
	rs = append(rs, probeEngines()...)
	return rs
}

// needsRoot is the answer of a probe that only root can run.
func needsRoot(name string) Result {
	return Result{
		Name:   name,
		Status: Warn,
		Detail: "not probed: this probe mounts and needs root",
		Remedy: "run `sudo sysbox check`",
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
