// Package check is `sysbox check`: the host-readiness report.
package check

import "errors"

// Cmd is `sysbox check`.
type Cmd struct{}

func (c *Cmd) Run() error { return errors.New("sysbox check: not built yet") }
