package probe

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// subIDName is the /etc/subuid and /etc/subgid owner the installer creates
// and the manager allocates container ranges from.
const subIDName = "sysbox"

// idsPerContainer is the default size of one container's id range.
const idsPerContainer = 65536

type subIDRange struct {
	name         string
	start, count uint64
}

// subIDFile is what one of /etc/subuid or /etc/subgid held.
type subIDFile struct {
	path     string
	missing  bool
	err      error // other than missing
	ranges   []subIDRange
	problems []string // "line N: why", for malformed lines
}

// parseSubID reads name:start:count lines. Blank lines and # comments are
// skipped; malformed lines are reported with their line number and left out.
func parseSubID(r io.Reader) (ranges []subIDRange, problems []string, err error) {
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) != 3 {
			problems = append(problems, fmt.Sprintf("line %d: want name:start:count, got %q", n, line))
			continue
		}
		if f[0] == "" {
			problems = append(problems, fmt.Sprintf("line %d: empty name", n))
			continue
		}
		start, err := strconv.ParseUint(f[1], 10, 32)
		if err != nil {
			problems = append(problems, fmt.Sprintf("line %d: bad start %q", n, f[1]))
			continue
		}
		count, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil || count == 0 {
			problems = append(problems, fmt.Sprintf("line %d: bad count %q", n, f[2]))
			continue
		}
		if start+count > 1<<32 {
			problems = append(problems, fmt.Sprintf("line %d: range %d+%d runs past the last id", n, start, count))
			continue
		}
		ranges = append(ranges, subIDRange{name: f[0], start: start, count: count})
	}
	return ranges, problems, sc.Err()
}

func readSubIDFile(path string) subIDFile {
	sf := subIDFile{path: path}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		sf.missing = true
		return sf
	}
	if err != nil {
		sf.err = err
		return sf
	}
	defer f.Close()
	sf.ranges, sf.problems, sf.err = parseSubID(f)
	return sf
}

// describe says what one file holds for sysbox, and whether that is enough.
func (sf subIDFile) describe() (text string, good bool) {
	if sf.missing {
		return sf.path + " does not exist", false
	}
	if sf.err != nil {
		return fmt.Sprintf("read %s: %v", sf.path, sf.err), false
	}
	var total uint64
	var spans []string
	for _, r := range sf.ranges {
		if r.name == subIDName {
			total += r.count
			spans = append(spans, fmt.Sprintf("%d-%d", r.start, r.start+r.count-1))
		}
	}
	if len(spans) == 0 {
		return fmt.Sprintf("no %q entry in %s", subIDName, sf.path), false
	}
	n := total / idsPerContainer
	plural := "s"
	if n == 1 {
		plural = ""
	}
	text = fmt.Sprintf("%s: %s (%d ids, room for %d container%s)", sf.path, strings.Join(spans, ","), total, n, plural)
	return text, total >= idsPerContainer
}

func subIDResult(uid, gid subIDFile) Result {
	r := Result{Name: "subid"}
	ut, uok := uid.describe()
	gt, gok := gid.describe()
	r.Detail = ut + "; " + gt
	var problems []string
	for _, sf := range []subIDFile{uid, gid} {
		for _, p := range sf.problems {
			problems = append(problems, sf.path+" "+p)
		}
	}
	switch {
	case uid.err != nil || gid.err != nil:
		r.Status, r.Remedy = Warn, "make /etc/subuid and /etc/subgid readable, then run `sysbox install`"
	case !uok || !gok:
		r.Status, r.Remedy = Warn, "run `sysbox install` (it adds a \"sysbox\" range of at least 65536 ids to /etc/subuid and /etc/subgid)"
	case len(problems) > 0:
		r.Status, r.Remedy = Warn, "fix or remove the malformed lines (name:start:count)"
	default:
		r.Status = OK
	}
	if len(problems) > 0 {
		r.Detail += "; malformed: " + strings.Join(problems, "; ")
	}
	return r
}

func probeSubID() Result {
	return subIDResult(readSubIDFile("/etc/subuid"), readSubIDFile("/etc/subgid"))
}
