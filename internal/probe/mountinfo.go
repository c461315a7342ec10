package probe

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/sysbox-dev/sysbox/internal/mountinfo"
)

// mount is one line of /proc/PID/mountinfo (see proc(5)).
type mount struct {
	id, parent   int
	root, point  string
	options      string // per-mount options
	fstype       string
	source       string
	superOptions string // per-superblock options; cgroup v1 lists its controllers here
}

// parseMountinfo reads mountinfo text (internal/mountinfo parses it).
func parseMountinfo(r io.Reader) ([]mount, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	es, err := mountinfo.Parse(b)
	if err != nil {
		return nil, err
	}
	ms := make([]mount, len(es))
	for i, e := range es {
		ms[i] = mount{
			id: e.ID, parent: e.Parent, root: e.Root, point: e.Point, options: e.Options,
			fstype: e.FSType, source: e.Source, superOptions: e.Super,
		}
	}
	return ms, nil
}

// mountFor returns the mount that holds path: the one with the longest mount
// point that is path or a parent of it, the later line winning when one
// mount is stacked over another. path must be absolute and clean.
func mountFor(ms []mount, path string) (mount, bool) {
	best, found := mount{}, false
	for _, m := range ms {
		if !(m.point == "/" || path == m.point || strings.HasPrefix(path, m.point+"/")) {
			continue
		}
		if !found || len(m.point) >= len(best.point) {
			best, found = m, true
		}
	}
	return best, found
}

func readMountinfo() ([]mount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseMountinfo(f)
}

// nearestExisting walks up from path to the first directory that exists, so
// the probes can run on the filesystem a not-yet-created data root will use.
func nearestExisting(path string) (string, error) {
	p := filepath.Clean(path)
	for {
		fi, err := os.Stat(p)
		if err == nil {
			if !fi.IsDir() {
				return "", fmt.Errorf("%s is not a directory", p)
			}
			return filepath.EvalSymlinks(p)
		}
		parent := filepath.Dir(p)
		if parent == p {
			return "", err
		}
		p = parent
	}
}
