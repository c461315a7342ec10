// Package version holds the build stamp that the Makefile writes with -ldflags.
package version

import (
	"fmt"
	"io"
	"runtime"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// Stamped at build time: -X github.com/sysbox-dev/sysbox/internal/version.Version=...
var (
	Version = "dev"
	Commit  = "unknown"
)

// Print writes the version block in runc's layout (tools parse the
// "libseccomp: x.y.z" and "spec: x.y.z" lines).
func Print(w io.Writer, name string, seccompVersion func() (uint, uint, uint)) {
	fmt.Fprintf(w, "%s version %s\n", name, Version)
	fmt.Fprintf(w, "commit: %s\n", Commit)
	fmt.Fprintf(w, "spec: %s\n", specs.Version)
	fmt.Fprintf(w, "go: %s\n", runtime.Version())
	if seccompVersion != nil {
		if a, b, c := seccompVersion(); a+b+c > 0 {
			fmt.Fprintf(w, "libseccomp: %d.%d.%d\n", a, b, c)
		}
	}
}
