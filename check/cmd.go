// Package check is `sysbox check`: the host-readiness report a user runs
// before anything else. The probes themselves live in internal/probe; this
// package runs them and prints the report for people or, with --json, for
// machines.
package check

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/sysbox-dev/sysbox/internal/probe"
)

// Cmd is `sysbox check`.
type Cmd struct {
	JSON     bool   `name:"json" help:"Print the report as a JSON array of {name,status,detail,remedy} objects."`
	DataRoot string `name:"data-root" default:"/var/lib/sysbox" placeholder:"DIR" help:"Sysbox's state directory; the id-mapped mount probe runs on its filesystem, or on its nearest existing parent's (default: ${default})."`
}

// Run probes the host, prints the report and fails if any probe failed.
func (c *Cmd) Run() error {
	results := probe.All(probe.Options{DataRoot: c.DataRoot})
	var err error
	if c.JSON {
		err = writeJSON(os.Stdout, results)
	} else {
		err = writeText(os.Stdout, results)
	}
	if err != nil {
		return err
	}
	if n := count(results, probe.Fail); n > 0 {
		return failedError{n}
	}
	return nil
}

// failedError makes main exit 1 without printing anything more: the report
// already said what failed.
type failedError struct{ n int }

func (e failedError) Error() string { return fmt.Sprintf("%d host check(s) failed", e.n) }
func (e failedError) ExitCode() int { return 1 }
func count(rs []probe.Result, s probe.Status) int {
	n := 0
	for _, r := range rs {
		if r.Status == s {
			n++
		}
	}
	return n
}

// writeText prints one aligned line per probe, the remedy at its end, and a
// summary.
func writeText(w io.Writer, rs []probe.Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range rs {
		line := r.Detail
		if r.Remedy != "" && r.Status != probe.OK {
			line += " -> fix: " + r.Remedy
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Status, r.Name, oneLine(line))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d checks: %d OK, %d WARN, %d FAIL\n",
		len(rs), count(rs, probe.OK), count(rs, probe.Warn), count(rs, probe.Fail))
	return err
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func writeJSON(w io.Writer, rs []probe.Result) error {
	if rs == nil {
		rs = []probe.Result{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rs)
}
