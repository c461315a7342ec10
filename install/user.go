package install

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"

	"github.com/sysbox-dev/sysbox/internal/subid"
)

const (
	userName = "sysbox"
	// subidCount is the sysbox range: 4096 containers of 65536 ids, or
	// fewer with bigger ranges for nesting.
	subidCount = 4096 * 65536
)

// userExists reads /etc/passwd itself (not NSS): the user install creates
// is a local one, and this also works under a test root.
func (in *installer) userExists() (bool, error) {
	b, _, err := in.h.readFile("/etc/passwd")
	if err != nil {
		return false, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, userName+":") {
			return true, nil
		}
	}
	return false, nil
}

// ensureUser creates the system user sysbox (no home, no login), which owns
// the subordinate id range.
func (in *installer) ensureUser() error {
	ok, err := in.userExists()
	if err != nil || ok {
		return err
	}
	shell := "/usr/sbin/nologin"
	if !in.h.exists(shell) {
		shell = "/sbin/nologin"
	}
	args := []string{"useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", shell, "--user-group", userName}
	if _, err := exec.LookPath("useradd"); err != nil {
		// busybox (Alpine): -S system, -D no password, -H no home.
		args = []string{"adduser", "-S", "-D", "-H", "-h", "/nonexistent", "-s", shell, userName}
	}
	in.h.say("create system user %s: %s", userName, strings.Join(args, " "))
	if in.h.dry {
		return nil
	}
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		return fmt.Errorf("create user %s: %s: %w: %s", userName, args[0], err, strings.TrimSpace(string(out)))
	}
	in.st.UserCreated = true
	return in.saveState(false)
}

func (in *installer) removeUser() error {
	if !in.st.UserCreated {
		return nil
	}
	args := []string{"userdel", userName}
	if _, err := exec.LookPath("userdel"); err != nil {
		args = []string{"deluser", userName}
	}
	in.h.say("remove system user %s: %s", userName, strings.Join(args, " "))
	if !in.h.dry {
		if ok, _ := in.userExists(); ok {
			if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
				return fmt.Errorf("remove user %s: %w: %s", userName, err, strings.TrimSpace(string(out)))
			}
		}
	}
	in.st.UserCreated = false
	return in.saveState(false)
}

// ensureSubIDs gives sysbox its range in /etc/subuid and /etc/subgid, the
// same ids in both and overlapping no other entry (internal/subid decides),
// appending only the lines missing. The manager makes the same entry if it
// finds none; whichever comes first wins, and neither touches the other's.
func (in *installer) ensureSubIDs() error {
	read := func(p string) ([]subid.Entry, error) {
		b, _, err := in.h.readFile(p)
		if err != nil {
			return nil, err
		}
		return subid.Parse(bytes.NewReader(b), p)
	}
	uids, err := read(subid.SubUIDFile)
	if err != nil {
		return err
	}
	gids, err := read(subid.SubGIDFile)
	if err != nil {
		return err
	}
	defs := subid.LoginDefs{UIDMin: subid.DefaultMin, GIDMin: subid.DefaultMin}
	if b, ok, _ := in.h.readFile(subid.LoginDefsFile); ok {
		defs = subid.ParseLoginDefs(bytes.NewReader(b))
	}
	// An earlier install's lines count as missing (editFile takes them out
	// first), so plan on the files without them.
	uids = dropOurs(uids, in.st.Files[subid.SubUIDFile])
	gids = dropOurs(gids, in.st.Files[subid.SubGIDFile])
	_, addU, addG, err := subid.Plan(uids, gids, defs, userName, subidCount)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		path string
		add  subid.Entry
	}{{subid.SubUIDFile, addU}, {subid.SubGIDFile, addG}} {
		if _, err := in.editFile(f.path, 0o644, appendLine(f.add)); err != nil {
			return err
		}
	}
	return nil
}

func dropOurs(entries []subid.Entry, rec *fileRecord) []subid.Entry {
	if rec == nil {
		return entries
	}
	var out []subid.Entry
	for _, e := range entries {
		if !contains(rec.Lines, fmt.Sprintf("%s:%d:%d", e.Name, e.Start, e.Count)) {
			out = append(out, e)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

// appendLine is the merger adding one name:start:count line (none for a
// zero entry).
func appendLine(e subid.Entry) merger {
	return func(base []byte, _ bool) ([]byte, *fileRecord, error) {
		if e.Count == 0 {
			return base, nil, nil
		}
		line := fmt.Sprintf("%s:%d:%d", e.Name, e.Start, e.Count)
		out := append([]byte{}, base...)
		if len(out) > 0 && out[len(out)-1] != '\n' {
			out = append(out, '\n')
		}
		out = append(out, line+"\n"...)
		return out, &fileRecord{Kind: kindLines, Lines: []string{line}}, nil
	}
}
