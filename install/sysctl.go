package install

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
)

const sysctlDropIn = "/etc/sysctl.d/99-sysbox.conf"

// sysctls are the host limits system containers run into. The kernel
// counts these per host user, and a system container's root is a host
// user, which runs systemd, Docker and their watchers inside.
var sysctls = []struct {
	key   string
	value int64
	why   string
}{
	{"fs.inotify.max_user_watches", 1048576, "systemd, Docker and IDEs inside containers watch many files"},
	{"fs.inotify.max_user_instances", 8192, "every systemd service in a container opens inotify instances"},
	{"kernel.keys.maxkeys", 20000, "each container's root is an unprivileged host user with its own key quota"},
	{"kernel.keys.maxbytes", 1400000, "room for maxkeys keys of about 70 bytes"},
	{"kernel.pid_max", 4194304, "many containers, each with a full process tree"},
}

func sysctlPath(key string) string { return "/proc/sys/" + strings.ReplaceAll(key, ".", "/") }

func readSysctl(key string) (int64, error) {
	b, err := os.ReadFile(sysctlPath(key))
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// setupSysctls writes the drop-in (read at boot) and raises the running
// values now. A value only ever goes up: a host that has more keeps it, and
// its key is left out of the drop-in so a later boot does not lower it.
func (in *installer) setupSysctls() error {
	if in.st.Sysctl == nil {
		in.st.Sysctl = map[string]sysctlRaise{}
	}
	var b strings.Builder
	b.WriteString("# Written by `sysbox install`; `sysbox uninstall` removes it.\n")
	b.WriteString("# Only limits below what system containers need are here: install never lowers one.\n")
	n := 0
	for _, s := range sysctls {
		cur, err := readSysctl(s.key)
		if err != nil {
			in.h.note("cannot read %s (%v): left as it is", s.key, err)
			continue
		}
		raise, ours := in.st.Sysctl[s.key]
		if !ours && cur >= s.value {
			continue // the host has enough
		}
		fmt.Fprintf(&b, "# %s\n%s = %d\n", s.why, s.key, s.value)
		n++
		if cur >= s.value {
			continue
		}
		in.h.say("raise %s from %d to %d", s.key, cur, s.value)
		if !ours {
			raise = sysctlRaise{Old: cur, New: s.value}
		}
		if !in.h.dry {
			if err := os.WriteFile(sysctlPath(s.key), []byte(strconv.FormatInt(s.value, 10)), 0o644); err != nil {
				// Read-only /proc/sys inside a container: the drop-in
				// still applies at the next boot.
				in.h.note("cannot raise %s now (%v); it applies at the next boot", s.key, err)
				continue
			}
		}
		in.st.Sysctl[s.key] = raise
	}
	if n == 0 {
		// Nothing to raise: no drop-in (and none left from before).
		if in.st.Files[sysctlDropIn] != nil {
			if err := in.restoreFile(sysctlDropIn); err != nil {
				return err
			}
		}
		return in.saveState(false)
	}
	if _, err := in.editFile(sysctlDropIn, 0o644, wholeFile([]byte(b.String()))); err != nil {
		return err
	}
	return in.saveState(false)
}

// restoreSysctls removes the drop-in and puts back the values install
// raised, where they still are what install set.
func (in *installer) restoreSysctls() error {
	if err := in.restoreFile(sysctlDropIn); err != nil {
		return err
	}
	for _, key := range slices.Sorted(maps.Keys(in.st.Sysctl)) {
		r := in.st.Sysctl[key]
		cur, err := readSysctl(key)
		if err != nil || cur != r.New {
			continue // changed since: the admin's value
		}
		in.h.say("restore %s from %d to %d", key, cur, r.Old)
		if !in.h.dry {
			if err := os.WriteFile(sysctlPath(key), []byte(strconv.FormatInt(r.Old, 10)), 0o644); err != nil {
				in.h.note("cannot restore %s (%v)", key, err)
			}
		}
	}
	in.st.Sysctl = nil
	return in.saveState(false)
}
