package cgview

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// Threads lists the thread ids (host pids) of every task in the cgroup and
// its descendants: the tasks a container's load is made of.
func (c *Cgroup) Threads() ([]int, error) {
	d, file := c.unified, "cgroup.threads"
	if !c.V2() {
		file = "tasks"
		// Any v1 hierarchy holds every task; pids is the one meant for it.
		for _, ctrl := range []string{"pids", "cpu", "cpuacct", "memory", "cpuset", "blkio"} {
			if d = c.dir(ctrl); d != "" {
				break
			}
		}
	}
	if d == "" {
		return nil, ErrNoController
	}
	var out []int
	err := filepath.WalkDir(d, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			// A sub-cgroup removed while we walk is not an error.
			if errors.Is(err, os.ErrNotExist) && path != d {
				return nil
			}
			return err
		}
		if !e.IsDir() {
			return nil
		}
		b, err := ReadFile(filepath.Join(path, file))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) && path != d {
				return fs.SkipDir
			}
			return err
		}
		out = appendPids(out, b)
		return nil
	})
	return out, err
}

func appendPids(out []int, b []byte) []int {
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		if n, err := strconv.Atoi(string(bytes.TrimSpace(line))); err == nil {
			out = append(out, n)
		}
	}
	return out
}
