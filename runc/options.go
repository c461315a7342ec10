package runc

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Options are the per-container choices a user makes with SYSBOX_*
// environment variables in the spec (docker run -e SYSBOX_…=…).
type Options struct {
	// IDSize is the number of uids and gids the container gets
	// (SYSBOX_ID_SIZE; 0: the manager's default). Nested user namespaces
	// inside need more than 65536.
	IDSize uint32
	// HonorCaps keeps the engine's capabilities instead of giving root
	// every capability (SYSBOX_HONOR_CAPS).
	HonorCaps bool
	// NoSpecialDirs skips the manager's host-backed dirs
	// (SYSBOX_NO_SPECIAL_DIRS).
	NoSpecialDirs bool
	// NoFS skips the fs daemon's /proc and /sys views (SYSBOX_NO_FS).
	NoFS bool
}

type optionDef struct {
	help string
	set  func(*Options, string) error
}

var optionDefs = map[string]optionDef{
	"SYSBOX_ID_SIZE": {"ids for the container, a multiple of 65536 from 65536 to 16777216", func(o *Options, v string) error {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n < 65536 || n > 1<<24 || n%65536 != 0 {
			return fmt.Errorf("want a multiple of 65536 between 65536 and 16777216")
		}
		o.IDSize = uint32(n)
		return nil
	}},
	"SYSBOX_HONOR_CAPS":      {"true to keep the engine's capabilities", boolOpt(func(o *Options) *bool { return &o.HonorCaps })},
	"SYSBOX_NO_SPECIAL_DIRS": {"true to skip host-backed /var/lib/docker and friends", boolOpt(func(o *Options) *bool { return &o.NoSpecialDirs })},
	"SYSBOX_NO_FS":           {"true to skip the emulated /proc and /sys files", boolOpt(func(o *Options) *bool { return &o.NoFS })},
}

func boolOpt(field func(*Options) *bool) func(*Options, string) error {
	return func(o *Options, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("want true or false")
		}
		*field(o) = b
		return nil
	}
}

// ParseOptions reads the SYSBOX_* variables of env. An unknown name or a
// bad value is an error that names the variable.
func ParseOptions(env []string) (Options, error) {
	var o Options
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, "SYSBOX_") {
			continue
		}
		def, ok := optionDefs[k]
		if !ok {
			return o, fmt.Errorf("unknown option %s in the container's environment: known options are %s", k, strings.Join(optionNames(), ", "))
		}
		if err := def.set(&o, v); err != nil {
			return o, fmt.Errorf("%s=%q: %v (%s)", k, v, err, def.help)
		}
	}
	return o, nil
}

func optionNames() []string {
	var names []string
	for k := range optionDefs {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}
