package install

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// silentWrite as writeFile's quiet says nothing about a real write.
const silentWrite = "\x00"

// host is the machine install works on. Every file goes through it: root
// moves the whole host under a directory (tests), and dry turns every change
// into a diff or a "would:" line on out and writes nothing.
type host struct {
	root string
	dry  bool
	out  io.Writer
}

func (h *host) path(p string) string {
	if h.root == "" {
		return p
	}
	return filepath.Join(h.root, p)
}

// say reports a step: done in a real run, would-be in a dry run.
func (h *host) say(format string, args ...any) {
	if h.dry {
		fmt.Fprintf(h.out, "would: "+format+"\n", args...)
		return
	}
	fmt.Fprintf(h.out, format+"\n", args...)
}

// info reports a fact, dry run or not.
func (h *host) info(format string, args ...any) {
	fmt.Fprintf(h.out, format+"\n", args...)
}

// note tells the user something they should know, dry run or not.
func (h *host) note(format string, args ...any) {
	fmt.Fprintf(h.out, "note: "+format+"\n", args...)
}

// readFile returns p's content; a missing file is (nil, false, nil).
func (h *host) readFile(p string) ([]byte, bool, error) {
	b, err := os.ReadFile(h.path(p))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", p, err)
	}
	return b, true, nil
}

func (h *host) exists(p string) bool {
	_, err := os.Lstat(h.path(p))
	return err == nil
}

// writeFile gives p this content, atomically (a temp file renamed over it),
// so a crash leaves either the old or the new file, never half of one. A new
// file gets mode; an existing one keeps its mode and owner. quiet names the
// change in one line instead of a diff in a dry run. It reports whether
// anything changed.
func (h *host) writeFile(p string, data []byte, mode fs.FileMode, quiet string) (bool, error) {
	cur, exists, err := h.readFile(p)
	if err != nil {
		return false, err
	}
	if exists && bytes.Equal(cur, data) {
		return false, nil
	}
	if h.dry {
		if quiet != "" {
			h.say("%s", quiet)
		} else {
			fmt.Fprint(h.out, unifiedDiff(p, cur, exists, data, true))
		}
		return true, nil
	}
	full := h.path(p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return false, fmt.Errorf("create %s: %w", filepath.Dir(p), err)
	}
	uid, gid := -1, -1
	if fi, err := os.Stat(full); err == nil {
		mode = fi.Mode().Perm()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(st.Uid), int(st.Gid)
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(full), "."+filepath.Base(full)+".sysbox-*")
	if err != nil {
		return false, fmt.Errorf("write %s: %w", p, err)
	}
	defer os.Remove(tmp.Name()) // gone after the rename; cleans up after a failure
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(mode)
	}
	if err == nil && uid >= 0 {
		err = tmp.Chown(uid, gid)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), full)
	}
	if err != nil {
		return false, fmt.Errorf("write %s: %w", p, err)
	}
	switch quiet {
	case silentWrite:
	case "":
		h.say("write %s", p)
	default:
		h.say("%s", quiet)
	}
	return true, nil
}

// removeFile removes p if it is there (in a dry run: shows it going).
func (h *host) removeFile(p string) error {
	fi, err := os.Lstat(h.path(p))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove %s: %w", p, err)
	}
	if h.dry {
		if fi.Mode().IsRegular() && fi.Size() < 1<<20 && !isBinary(h.path(p)) {
			cur, _, _ := h.readFile(p)
			fmt.Fprint(h.out, unifiedDiff(p, cur, true, nil, false))
		} else {
			h.say("remove %s", p)
		}
		return nil
	}
	if err := os.Remove(h.path(p)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", p, err)
	}
	h.say("remove %s", p)
	return nil
}

// removeEmptyDir removes a directory that holds nothing; one that holds
// something stays, silently.
func (h *host) removeEmptyDir(p string) {
	if h.dry {
		return
	}
	if err := os.Remove(h.path(p)); err == nil {
		h.say("remove %s", p)
	}
}

func (h *host) mkdir(p string, mode fs.FileMode) (created bool, err error) {
	if fi, err := os.Stat(h.path(p)); err == nil {
		if !fi.IsDir() {
			return false, fmt.Errorf("%s exists and is not a directory", p)
		}
		return false, nil
	}
	h.say("create %s", p)
	if h.dry {
		return true, nil
	}
	if err := os.MkdirAll(h.path(p), mode); err != nil {
		return false, fmt.Errorf("create %s: %w", p, err)
	}
	return true, nil
}

func isBinary(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	buf := make([]byte, 512)
	n, _ := f.Read(buf)
	return bytes.IndexByte(buf[:n], 0) >= 0
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
