package trap

import (
	"fmt"
	"regexp"
	"strconv"

	"golang.org/x/sys/unix"
)

// runc names mount targets (and some sources) by their fds:
// mount(src, "/proc/thread-self/fd/7", ...). Resolved on the agent's thread
// those magic links would name the agent's own fds, so the agent opens the
// caller's fd from the host's /proc instead and works on that.
var procFdRE = regexp.MustCompile(`^/proc/(?:self|thread-self|self/task/[0-9]+)/fd/([0-9]+)/*$`)

// procFdArg returns the fd number a /proc/self/fd/N path names.
func procFdArg(p string) (int, bool) {
	m := procFdRE.FindStringSubmatch(p)
	if m == nil {
		return 0, false
	}
	n, err := strconv.Atoi(m[1])
	if err != nil || n > 1<<20 {
		return 0, false
	}
	return n, true
}

// pathArg is a path argument of the caller's, ready for the entered thread:
// the path itself, or the file a /proc/self/fd/N path names.
type pathArg struct {
	path string
	fd   int // -1: use path
}

// openPathArg checks a /proc/self/fd/N path the way the kernel would see it
// for the caller: its /proc must be a procfs, or the path means nothing.
func openPathArg(tid int, p string) (pathArg, error) {
	n, ok := procFdArg(p)
	if !ok {
		return pathArg{path: p, fd: -1}, nil
	}
	_, fs, err := lookupFast(tid, unix.AT_FDCWD, "/proc", true, true)
	if err != nil || fs.Type != procMagic {
		return pathArg{path: p, fd: -1}, nil // the kernel gives its own answer
	}
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/fd/%d", tid, n), unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return pathArg{path: p, fd: -1}, err
	}
	return pathArg{path: p, fd: fd}, nil
}

func (a pathArg) close() {
	if a.fd >= 0 {
		unix.Close(a.fd)
	}
}

// at returns the (dirfd, path) pair and the *_EMPTY_PATH flag to use it
// with a *at call; plain paths resolve from the thread's cwd.
func (a pathArg) at(empty int) (int, string, int) {
	if a.fd >= 0 {
		return a.fd, "", empty
	}
	return unix.AT_FDCWD, a.path, 0
}
