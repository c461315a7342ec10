package probe

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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

// parseMountinfo reads mountinfo text:
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//
// The optional fields between the options and "-" vary in number.
func parseMountinfo(r io.Reader) ([]mount, error) {
	var ms []mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Fields(line)
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if len(f) < 6 || sep < 0 || len(f) < sep+3 {
			return nil, fmt.Errorf("mountinfo line %d: malformed: %q", n, line)
		}
		id, err1 := strconv.Atoi(f[0])
		parent, err2 := strconv.Atoi(f[1])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("mountinfo line %d: bad mount ids: %q", n, line)
		}
		m := mount{
			id: id, parent: parent,
			root: unescapeMountinfo(f[3]), point: unescapeMountinfo(f[4]),
			options: f[5],
			fstype:  f[sep+1], source: unescapeMountinfo(f[sep+2]),
		}
		if len(f) > sep+3 {
			m.superOptions = f[sep+3]
		}
		ms = append(ms, m)
	}
	return ms, sc.Err()
}

// unescapeMountinfo undoes the kernel's octal escapes (\040 for a space,
// \011 tab, \012 newline, \134 backslash).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
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
