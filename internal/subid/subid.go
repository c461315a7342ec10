// Package subid reads /etc/subuid and /etc/subgid and finds, or creates, the
// subordinate id range sysbox carves its containers' ranges from. The parsing
// and hole-finding are pure functions; Ensure is the one place that writes,
// and it only ever appends a line, atomically.
package subid

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Default paths and values of shadow-utils.
const (
	SubUIDFile    = "/etc/subuid"
	SubGIDFile    = "/etc/subgid"
	LoginDefsFile = "/etc/login.defs"

	// DefaultMin is SUB_UID_MIN / SUB_GID_MIN when login.defs says nothing.
	DefaultMin = 100000
	// Limit is one past the highest usable id: (uid_t)-1 is never valid.
	Limit = 1<<32 - 1
)

// Entry is one name:start:count line.
type Entry struct {
	Name  string
	Start uint64
	Count uint64
	Line  int // 1-based line number in its file; 0 for an entry not yet written
}

// End is one past the entry's last id.
func (e Entry) End() uint64 { return e.Start + e.Count }

func (e Entry) overlaps(start, count uint64) bool {
	return e.Start < start+count && start < e.End()
}

// Parse reads a subuid or subgid file. Blank lines and lines starting with #
// are skipped; anything else must be name:start:count, or the error names
// the file (as given in name) and the line.
func Parse(r io.Reader, name string) ([]Entry, error) {
	var out []Entry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		e, err := parseLine(line)
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w (got %q, want name:start:count)", name, n, err, line)
		}
		e.Line = n
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return out, nil
}

func parseLine(line string) (Entry, error) {
	f := strings.Split(line, ":")
	if len(f) != 3 {
		return Entry{}, fmt.Errorf("%d fields", len(f))
	}
	if f[0] == "" {
		return Entry{}, errors.New("empty name")
	}
	start, err := strconv.ParseUint(f[1], 10, 32)
	if err != nil {
		return Entry{}, fmt.Errorf("bad start %q", f[1])
	}
	count, err := strconv.ParseUint(f[2], 10, 32)
	if err != nil {
		return Entry{}, fmt.Errorf("bad count %q", f[2])
	}
	if count == 0 {
		return Entry{}, errors.New("count is 0")
	}
	if start+count > Limit {
		return Entry{}, fmt.Errorf("range %d+%d goes past the last id %d", start, count, uint64(Limit-1))
	}
	return Entry{Name: f[0], Start: start, Count: count}, nil
}

// Find returns the first entry for name.
func Find(entries []Entry, name string) (Entry, bool) {
	for _, e := range entries {
		if e.Name == name {
			return e, true
		}
	}
	return Entry{}, false
}

// FindHole returns the lowest start >= min such that [start, start+count)
// stays below limit and overlaps no entry of any of the lists. Passing both
// files' entries gives a range free as uids and as gids.
func FindHole(lists [][]Entry, min, limit, count uint64) (uint64, bool) {
	var all []Entry
	for _, l := range lists {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Start < all[j].Start })
	cand := min
	for _, e := range all {
		if e.End() <= cand {
			continue
		}
		if e.Start >= cand+count {
			break
		}
		cand = e.End()
	}
	if cand+count > limit {
		return 0, false
	}
	return cand, true
}

// LoginDefs holds the keys of login.defs this package reads.
type LoginDefs struct {
	UIDMin, GIDMin uint64
}

// ParseLoginDefs reads SUB_UID_MIN and SUB_GID_MIN ("KEY value" lines),
// keeping DefaultMin for a key that is missing or unreadable.
func ParseLoginDefs(r io.Reader) LoginDefs {
	d := LoginDefs{UIDMin: DefaultMin, GIDMin: DefaultMin}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		v, err := strconv.ParseUint(f[1], 0, 32)
		if err != nil {
			continue
		}
		switch f[0] {
		case "SUB_UID_MIN":
			d.UIDMin = v
		case "SUB_GID_MIN":
			d.GIDMin = v
		}
	}
	return d
}

// Files names the files Ensure reads and writes.
type Files struct {
	SubUID, SubGID, LoginDefs string
}

// DefaultFiles are the host's files.
var DefaultFiles = Files{SubUID: SubUIDFile, SubGID: SubGIDFile, LoginDefs: LoginDefsFile}

// Plan decides, from both files' entries, the range name can use for ids that
// are the same as uids and gids, and which lines to append (a zero Entry: none).
// count is the size of an entry created when a file has none.
func Plan(uids, gids []Entry, defs LoginDefs, name string, count uint64) (use, addUID, addGID Entry, err error) {
	u, hasU := Find(uids, name)
	g, hasG := Find(gids, name)
	switch {
	case hasU && hasG:
		start := max(u.Start, g.Start)
		end := min(u.End(), g.End())
		if end <= start {
			return Entry{}, Entry{}, Entry{}, fmt.Errorf("the %s entries of subuid (%d:%d) and subgid (%d:%d) share no ids; a container's uid base must equal its gid base: make them the same range",
				name, u.Start, u.Count, g.Start, g.Count)
		}
		return Entry{Name: name, Start: start, Count: end - start}, Entry{}, Entry{}, nil
	case hasU:
		if o, clash := firstOverlap(gids, u.Start, u.Count); clash {
			return Entry{}, Entry{}, Entry{}, fmt.Errorf("subgid has no %s entry and its ids %d:%d are taken there by %s (line %d)", name, u.Start, u.Count, o.Name, o.Line)
		}
		add := Entry{Name: name, Start: u.Start, Count: u.Count}
		return add, Entry{}, add, nil
	case hasG:
		if o, clash := firstOverlap(uids, g.Start, g.Count); clash {
			return Entry{}, Entry{}, Entry{}, fmt.Errorf("subuid has no %s entry and its ids %d:%d are taken there by %s (line %d)", name, g.Start, g.Count, o.Name, o.Line)
		}
		add := Entry{Name: name, Start: g.Start, Count: g.Count}
		return add, add, Entry{}, nil
	}
	start, ok := FindHole([][]Entry{uids, gids}, max(defs.UIDMin, defs.GIDMin), Limit, count)
	if !ok {
		return Entry{}, Entry{}, Entry{}, fmt.Errorf("no free range of %d ids in subuid and subgid above %d", count, max(defs.UIDMin, defs.GIDMin))
	}
	add := Entry{Name: name, Start: start, Count: count}
	return add, add, add, nil
}

func firstOverlap(entries []Entry, start, count uint64) (Entry, bool) {
	for _, e := range entries {
		if e.overlaps(start, count) {
			return e, true
		}
	}
	return Entry{}, false
}

// Ensure returns the range name owns in both files, adding an entry of count
// ids where one is missing. A missing file counts as empty.
func Ensure(f Files, name string, count uint64) (Entry, error) {
	unlockU, err := lockFile(f.SubUID)
	if err != nil {
		return Entry{}, err
	}
	defer unlockU()
	unlockG, err := lockFile(f.SubGID)
	if err != nil {
		return Entry{}, err
	}
	defer unlockG()

	uids, err := readEntries(f.SubUID)
	if err != nil {
		return Entry{}, err
	}
	gids, err := readEntries(f.SubGID)
	if err != nil {
		return Entry{}, err
	}
	defs := LoginDefs{UIDMin: DefaultMin, GIDMin: DefaultMin}
	if b, err := os.ReadFile(f.LoginDefs); err == nil {
		defs = ParseLoginDefs(bytes.NewReader(b))
	}
	use, addU, addG, err := Plan(uids, gids, defs, name, count)
	if err != nil {
		return Entry{}, err
	}
	// uid file first: if we die between the two, the next run finds the uid
	// entry and adds the same range to the gid file.
	if addU.Count > 0 {
		if err := appendLine(f.SubUID, format(addU)); err != nil {
			return Entry{}, err
		}
	}
	if addG.Count > 0 {
		if err := appendLine(f.SubGID, format(addG)); err != nil {
			return Entry{}, err
		}
	}
	return use, nil
}

func format(e Entry) string { return fmt.Sprintf("%s:%d:%d\n", e.Name, e.Start, e.Count) }

func readEntries(path string) ([]Entry, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return Parse(bytes.NewReader(b), path)
}

// appendLine rewrites path with line added, through a temporary file and a
// rename, so a reader never sees half a file; mode and owner are kept.
func appendLine(path, line string) error {
	old, err := os.ReadFile(path)
	mode := os.FileMode(0o644)
	uid, gid := -1, -1
	switch {
	case err == nil:
		st, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("stat %s: %w", path, err)
		}
		mode = st.Mode().Perm()
		if s, ok := st.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(s.Uid), int(s.Gid)
		}
	case errors.Is(err, fs.ErrNotExist):
	default:
		return fmt.Errorf("read %s: %w", path, err)
	}
	if len(old) > 0 && old[len(old)-1] != '\n' {
		old = append(old, '\n')
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".sysbox-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(append(old, line...)); err != nil {
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Chmod(mode); err != nil {
		return fmt.Errorf("chmod %s: %w", tmp.Name(), err)
	}
	if uid >= 0 {
		if err := tmp.Chown(uid, gid); err != nil && !errors.Is(err, fs.ErrPermission) {
			return fmt.Errorf("chown %s: %w", tmp.Name(), err)
		}
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename %s: %w", tmp.Name(), err)
	}
	done = true
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// lockFile takes shadow-utils' lock on path (path.lock, created exclusively
// and holding the owner's pid), so useradd and we never write the file at
// the same time. A lock whose pid is gone is stale and taken over.
func lockFile(path string) (func(), error) {
	lock := path + ".lock"
	deadline := time.Now().Add(5 * time.Second)
	for {
		f, err := os.OpenFile(lock, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_CLOEXEC, 0o600)
		if err == nil {
			_, werr := fmt.Fprintf(f, "%d", os.Getpid())
			cerr := f.Close()
			if werr != nil || cerr != nil {
				os.Remove(lock)
				return nil, fmt.Errorf("write lock %s: %w", lock, errors.Join(werr, cerr))
			}
			return func() { os.Remove(lock) }, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("lock %s: directory %s does not exist", path, filepath.Dir(path))
			}
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if staleLock(lock) {
			os.Remove(lock)
			continue
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s is locked by another program (remove %s if nothing is editing it)", path, lock)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func staleLock(lock string) bool {
	b, err := os.ReadFile(lock)
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		// shadow-utils writes the pid before linking the lock into place, so
		// an unreadable pid is garbage left behind.
		return true
	}
	return errors.Is(unix.Kill(pid, 0), unix.ESRCH)
}
