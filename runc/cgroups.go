package runc

import (
	"errors"
	"os"
	"path/filepath"

	"github.com/opencontainers/runc/libcontainer"
)

// delegationFiles are what the container's root needs to own to manage
// its own sub-cgroups (cgroup v2's delegation contract; v1's equivalents).
// The limit files stay host-owned, so the container cannot raise its limits.
var delegationFiles = []string{"cgroup.procs", "tasks", "cgroup.threads", "cgroup.subtree_control", "cgroup.clone_children", "notify_on_release"}

// delegateCgroups hands the container's cgroups to its root.
func delegateCgroups(ct *libcontainer.Container, uid, gid uint32) error {
	st, err := ct.State()
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, dir := range st.CgroupPaths {
		if dir == "" || seen[dir] {
			continue
		}
		seen[dir] = true
		if err := os.Chown(dir, int(uid), int(gid)); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return err
		}
		for _, f := range delegationFiles {
			if err := os.Chown(filepath.Join(dir, f), int(uid), int(gid)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}
