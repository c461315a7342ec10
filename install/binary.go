package install

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// roleLinks are the names the binary is also started under (see main.go).
var roleLinks = []string{"sysbox-runc", "sysbox-fs", "sysbox-mgr"}

func (in *installer) binPath(name string) string { return filepath.Join(in.prefix, "bin", name) }

func (in *installer) runcPath() string { return in.binPath(runtimeName) }

// installBinary puts the running binary at PREFIX/bin/sysbox, unless it is
// that file already (install.sh put it there, or it runs from there), and
// links the role names to it.
func (in *installer) installBinary() error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the running binary: %w", err)
	}
	dst := in.binPath("sysbox")
	for _, dir := range []string{in.prefix, filepath.Dir(dst)} {
		if !in.h.exists(dir) && !contains(in.st.Dirs, dir) {
			in.st.Dirs = append(in.st.Dirs, dir)
		}
	}
	same, err := sameContent(self, in.h.path(dst))
	if err != nil {
		return err
	}
	if !same {
		in.h.say("copy %s to %s", self, dst)
		if !in.h.dry {
			if err := copyExecutable(self, in.h.path(dst)); err != nil {
				return err
			}
		}
		in.st.Binary = dst
		if err := in.saveState(false); err != nil {
			return err
		}
	}
	for _, name := range roleLinks {
		if err := in.link(name); err != nil {
			return err
		}
	}
	return nil
}

// link makes PREFIX/bin/NAME -> sysbox. Something else under that name is
// someone else's (another sysbox, a package): install refuses to replace it.
func (in *installer) link(name string) error {
	p := in.binPath(name)
	target, err := os.Readlink(in.h.path(p))
	switch {
	case err == nil && (target == "sysbox" || target == in.binPath("sysbox")):
		// Already there (make build makes them beside bin/sysbox): not
		// ours to remove at uninstall unless an earlier install made it.
		return nil
	case err == nil || !errors.Is(err, fs.ErrNotExist):
		what := "a file"
		if err == nil {
			what = "a link to " + target
		}
		return fmt.Errorf("%s is %s: not sysbox's to replace; remove it or install with another --prefix", p, what)
	default:
		in.h.say("link %s -> sysbox", p)
		if !in.h.dry {
			if err := os.MkdirAll(filepath.Dir(in.h.path(p)), 0o755); err != nil {
				return err
			}
			if err := os.Symlink("sysbox", in.h.path(p)); err != nil {
				return fmt.Errorf("link %s: %w", p, err)
			}
		}
	}
	if !contains(in.st.Links, p) {
		in.st.Links = append(in.st.Links, p)
	}
	return in.saveState(false)
}

// removeBinary removes the links (while they still point at sysbox) and the
// binary, if install copied it.
func (in *installer) removeBinary() error {
	for _, p := range in.st.Links {
		if t, err := os.Readlink(in.h.path(p)); err == nil && (t == "sysbox" || t == filepath.Join(filepath.Dir(p), "sysbox")) {
			if err := in.h.removeFile(p); err != nil {
				return err
			}
		}
	}
	in.st.Links = nil
	if in.st.Binary != "" {
		if err := in.h.removeFile(in.st.Binary); err != nil {
			return err
		}
		in.st.Binary = ""
	}
	for i := len(in.st.Dirs) - 1; i >= 0; i-- {
		in.h.removeEmptyDir(in.st.Dirs[i])
	}
	in.st.Dirs = nil
	return in.saveState(false)
}

// sameContent: b is a, by inode or by content.
func sameContent(a, b string) (bool, error) {
	fa, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	fb, err := os.Stat(b)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if os.SameFile(fa, fb) {
		return true, nil
	}
	if fa.Size() != fb.Size() {
		return false, nil
	}
	ha, err := fileSHA256(a)
	if err != nil {
		return false, err
	}
	hb, err := fileSHA256(b)
	if err != nil {
		return false, err
	}
	return ha == hb, nil
}

// copyExecutable copies src over dst through a temp file and a rename, so
// daemons running the old binary keep their inode and nothing sees half a
// file.
func copyExecutable(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".sysbox-*")
	if err != nil {
		return fmt.Errorf("copy to %s: %w", dst, err)
	}
	defer os.Remove(tmp.Name())
	_, err = io.Copy(tmp, in)
	if err == nil {
		err = tmp.Chmod(0o755)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		return fmt.Errorf("copy to %s: %w", dst, err)
	}
	return nil
}
