// Package mountinfo parses /proc/<pid>/mountinfo (proc(5)) for every role:
// one parser, one unescaping of the kernel's octal escapes.
package mountinfo

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Entry is one line:
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//
// The optional fields between the options and "-" vary in number.
type Entry struct {
	ID, Parent int
	Dev        string // major:minor of the superblock
	Root       string // path inside the filesystem mounted here
	Point      string // mount point
	Options    string // per-mount options
	FSType     string
	Source     string
	Super      string // per-superblock options (overlay's lowerdir=…, cgroup v1's controllers)
}

// Self reads and parses the calling process's mountinfo.
func Self() ([]Entry, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	return Parse(b)
}

// Top is the topmost mount at point (the last listed: later mounts are on
// top), and whether there is one.
func Top(es []Entry, point string) (Entry, bool) {
	var top Entry
	found := false
	for _, e := range es {
		if e.Point == point {
			top, found = e, true
		}
	}
	return top, found
}

// Parse reads mountinfo text; blank lines are skipped, a malformed line is
// an error that names it.
func Parse(b []byte) ([]Entry, error) {
	var out []Entry
	for n := 1; len(b) > 0; n++ {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		e, err := parseLine(string(line))
		if err != nil {
			return nil, fmt.Errorf("mountinfo line %d: %w", n, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// parseLine parses one mountinfo line.
func parseLine(line string) (Entry, error) {
	f := strings.Fields(line)
	sep := -1
	for i := 6; i < len(f); i++ {
		if f[i] == "-" {
			sep = i
			break
		}
	}
	if sep < 0 || len(f) < sep+3 {
		return Entry{}, fmt.Errorf("malformed: %q", line)
	}
	id, err1 := strconv.Atoi(f[0])
	parent, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		return Entry{}, fmt.Errorf("bad mount ids: %q", line)
	}
	e := Entry{
		ID: id, Parent: parent, Dev: f[2],
		Root: unescape(f[3]), Point: unescape(f[4]), Options: f[5],
		FSType: f[sep+1], Source: unescape(f[sep+2]),
	}
	if len(f) > sep+3 {
		e.Super = f[sep+3]
	}
	return e, nil
}

// unescape undoes the kernel's octal escapes (\040 for a space, \011 tab,
// \012 newline, \134 backslash).
func unescape(s string) string {
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

// SplitOptions splits superblock options on the commas overlayfs did not
// escape with a backslash (a lowerdir may hold a comma), unescaping them.
func SplitOptions(s string) []string {
	var out []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s):
			cur.WriteByte(s[i+1])
			i++
		case s[i] == ',':
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(s[i])
		}
	}
	return append(out, cur.String())
}
