package install

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
)

const backupSuffix = ".sysbox-backup"

// merger computes a file's content with sysbox's changes, from its content
// without them (exists false: no such file). A nil record means sysbox
// needs nothing in this file (the admin already has it as wanted).
type merger func(base []byte, exists bool) (out []byte, rec *fileRecord, err error)

// editFile brings a file to "as it would be without sysbox, plus sysbox's
// changes". Starting from the file without sysbox (undoing a previous
// install's changes first) is what makes install idempotent and lets a second
// install with other flags replace the first one's changes.
func (in *installer) editFile(p string, mode fs.FileMode, merge merger) (changed bool, err error) {
	cur, exists, err := in.h.readFile(p)
	if err != nil {
		return false, err
	}
	prev := in.st.Files[p]
	base, baseExists := cur, exists
	if prev != nil {
		if base, baseExists, err = in.withoutUs(p, cur, exists, prev); err != nil {
			return false, err
		}
	}
	out, rec, err := merge(base, baseExists)
	if err != nil {
		return false, err
	}
	if rec == nil {
		if prev == nil {
			return false, nil
		}
		// Ours is no longer needed here: back to the file without us.
		return true, in.putBack(p, prev, base, baseExists, mode)
	}
	rec.Existed = baseExists
	if baseExists && rec.Kind != kindLines {
		// The backup is the file without sysbox: byte-exact on the first
		// install, and refreshed when the admin edited it since.
		rec.Backup = p + backupSuffix
		bmode := mode
		if fi, err := os.Stat(in.h.path(p)); err == nil {
			bmode = fi.Mode().Perm()
		}
		if _, err := in.h.writeFile(rec.Backup, base, bmode, "back up "+p+" to "+rec.Backup); err != nil {
			return false, err
		}
	} else if prev != nil && prev.Backup != "" {
		if err := in.h.removeFile(prev.Backup); err != nil {
			return false, err
		}
	}
	changed, err = in.h.writeFile(p, out, mode, "")
	if err != nil {
		return false, err
	}
	rec.SHA256 = sha256Hex(out)
	in.st.Files[p] = rec
	return changed, in.saveState(false)
}

// restoreFile takes sysbox's changes out of a file (uninstall).
func (in *installer) restoreFile(p string) error {
	rec := in.st.Files[p]
	if rec == nil {
		return nil
	}
	cur, exists, err := in.h.readFile(p)
	if err != nil {
		return err
	}
	base, baseExists, err := in.withoutUs(p, cur, exists, rec)
	if err != nil {
		return err
	}
	if !exists {
		baseExists = false // the admin removed it: it stays removed
	}
	if err := in.putBack(p, rec, base, baseExists, 0o644); err != nil {
		return err
	}
	return in.saveState(false)
}

func (in *installer) putBack(p string, rec *fileRecord, base []byte, baseExists bool, mode fs.FileMode) error {
	if baseExists {
		if _, err := in.h.writeFile(p, base, mode, ""); err != nil {
			return err
		}
	} else if err := in.h.removeFile(p); err != nil {
		return err
	}
	if rec.Backup != "" {
		if err := in.h.removeFile(rec.Backup); err != nil {
			return err
		}
	}
	delete(in.st.Files, p)
	return nil
}

// withoutUs computes the file as it would be had sysbox never touched it:
// the backup when the file is untouched since install, else the current
// content with exactly sysbox's changes taken out.
func (in *installer) withoutUs(p string, cur []byte, exists bool, rec *fileRecord) ([]byte, bool, error) {
	if !exists {
		return nil, false, nil
	}
	// A file sysbox owns whole goes back to what was there before, edited
	// or not.
	if sha256Hex(cur) == rec.SHA256 || rec.Kind == kindWhole {
		if !rec.Existed {
			return nil, false, nil
		}
		if rec.Backup != "" {
			b, ok, err := in.h.readFile(rec.Backup)
			if err != nil {
				return nil, false, err
			}
			if ok {
				return b, true, nil
			}
		}
	}
	return unmergeFile(p, cur, rec)
}

// unmergeFile takes a record's changes out of a file's content.
func unmergeFile(p string, cur []byte, rec *fileRecord) ([]byte, bool, error) {
	switch rec.Kind {
	case kindJSON:
		out, empty, err := unmergeJSON(cur, p, rec.JSON)
		if err != nil {
			return nil, false, fmt.Errorf("%w (fix it, then run sysbox uninstall again)", err)
		}
		return out, rec.Existed || !empty, nil
	case kindTOML:
		out, err := unsetTOMLEdits(string(cur), rec.TOML)
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", p, err)
		}
		if rec.Created != "" && out == rec.Created {
			out = "" // what install wrote into a missing or blank file
		}
		if !rec.Existed && strings.TrimSpace(out) == "" {
			return nil, false, nil
		}
		return []byte(out), true, nil
	case kindLines:
		out := removeLines(cur, rec.Lines)
		return out, rec.Existed || len(bytes.TrimSpace(out)) > 0, nil
	case kindWhole:
		// The file is sysbox's: without sysbox it is what was there before.
		return nil, false, nil
	}
	return nil, false, fmt.Errorf("%s: unknown record kind %q", p, rec.Kind)
}

// removeLines drops the first occurrence of each line (given without its
// newline).
func removeLines(src []byte, lines []string) []byte {
	all := splitLines(string(src))
	for _, l := range lines {
		for i, a := range all {
			if strings.TrimRight(a, "\n") == l {
				all = slices.Delete(all, i, i+1)
				break
			}
		}
	}
	return []byte(strings.Join(all, ""))
}

// wholeFile is the merger of a file sysbox owns whole.
func wholeFile(content []byte) merger {
	return func([]byte, bool) ([]byte, *fileRecord, error) {
		return content, &fileRecord{Kind: kindWhole}, nil
	}
}
