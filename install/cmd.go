// Package install sets up and tears down a host for sysbox.
package install

import "errors"

// InstallCmd is `sysbox install`.
type InstallCmd struct{}

func (c *InstallCmd) Run() error { return errors.New("sysbox install: not built yet") }

// UninstallCmd is `sysbox uninstall`.
type UninstallCmd struct{}

func (c *UninstallCmd) Run() error { return errors.New("sysbox uninstall: not built yet") }
