package probe

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/sysbox-dev/sysbox/internal/mountinfo"
)

// mountFor returns the mount that holds path: the one with the longest mount
// point that is path or a parent of it, the later line winning when one
// mount is stacked over another. path must be absolute and clean.
func mountFor(ms []mountinfo.Entry, path string) (mountinfo.Entry, bool) {
	best, found := mountinfo.Entry{}, false
	for _, m := range ms {
		if !(m.Point == "/" || path == m.Point || strings.HasPrefix(path, m.Point+"/")) {
			continue
		}
		if !found || len(m.Point) >= len(best.Point) {
			best, found = m, true
		}
	}
	return best, found
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
