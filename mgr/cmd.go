// Package mgr is the manager daemon: id ranges, host-backed dirs, registry.
package mgr

import "errors"

// Cmd is `sysbox mgr` / `sysbox-mgr`.
type Cmd struct{}

func (c *Cmd) Run() error { return errors.New("sysbox-mgr: not built yet") }
