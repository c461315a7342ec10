package main

import (
	"os"

	"github.com/opencontainers/runc/libcontainer/seccomp"

	"github.com/sysbox-dev/sysbox/internal/version"
)

type versionCmd struct{}

func (versionCmd) Run() error {
	version.Print(os.Stdout, "sysbox", seccomp.Version)
	return nil
}
