// Package fs is the fs daemon: per-container FUSE views of /proc and /sys.
package fs

import "errors"

// Cmd is `sysbox fs` / `sysbox-fs`.
type Cmd struct{}

func (c *Cmd) Run() error { return errors.New("sysbox-fs: not built yet") }
