package runc

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/opencontainers/runc/libcontainer/capabilities"
	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/opencontainers/runc/libcontainer/seccomp"
	"github.com/opencontainers/runc/libcontainer/specconv"
	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"

	"github.com/sysbox-dev/sysbox/internal/version"
)

type featuresCmd struct{}

func (c *featuresCmd) Run(g *Globals) error {
	t, f := true, false
	feat := features.Features{
		OCIVersionMin: "1.0.0",
		OCIVersionMax: specs.Version,
		Annotations: map[string]string{
			"org.opencontainers.runc.version":            version.Version,
			"org.opencontainers.runc.commit":             version.Commit,
			"org.opencontainers.runc.checkpoint.enabled": "false",
		},
		Hooks:        configs.KnownHookNames(),
		MountOptions: specconv.KnownMountOptions(),
		Linux: &features.Linux{
			Namespaces:      specconv.KnownNamespaces(),
			Capabilities:    capabilities.KnownCapabilities(),
			Cgroup:          &features.Cgroup{V1: &t, V2: &t, Systemd: &f, SystemdUser: &f},
			Apparmor:        &features.Apparmor{Enabled: &t},
			Selinux:         &features.Selinux{Enabled: &t},
			MountExtensions: &features.MountExtensions{IDMap: &features.IDMap{Enabled: &t}},
		},
	}
	if seccomp.Enabled {
		feat.Linux.Seccomp = &features.Seccomp{
			Enabled: &t, Actions: seccomp.KnownActions(), Operators: seccomp.KnownOperators(),
			Archs: seccomp.KnownArchs(), KnownFlags: seccomp.KnownFlags(), SupportedFlags: seccomp.SupportedFlags(),
		}
		a, b, c := seccomp.Version()
		feat.Annotations["io.github.seccomp.libseccomp.version"] = fmt.Sprintf("%d.%d.%d", a, b, c)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "    ")
	return g.report(enc.Encode(feat))
}

type specCmd struct {
	Bundle string `short:"b" default:"." help:"Bundle dir to write config.json into."`
	Init   bool   `help:"Run /sbin/init instead of sh (a VM-like box)."`
}

// SpecTemplate is a system-container config.json: runc's template with its
// own user and cgroup namespaces (sysbox-runc fills in the id range).
func SpecTemplate(init bool) *specs.Spec {
	s := specconv.Example()
	s.Linux.Namespaces = append(s.Linux.Namespaces,
		specs.LinuxNamespace{Type: specs.UserNamespace},
		specs.LinuxNamespace{Type: specs.CgroupNamespace})
	if init {
		s.Process.Args = []string{"/sbin/init"}
		s.Process.Terminal = false
	}
	return s
}

func (c *specCmd) Run(g *Globals) error {
	path := filepath.Join(c.Bundle, "config.json")
	if _, err := os.Stat(path); err == nil {
		return g.report(fmt.Errorf("%s already exists: remove it first", path))
	} else if !errors.Is(err, os.ErrNotExist) {
		return g.report(err)
	}
	b, err := json.MarshalIndent(SpecTemplate(c.Init), "", "\t")
	if err != nil {
		return g.report(err)
	}
	return g.report(os.WriteFile(path, append(b, '\n'), 0o666))
}
