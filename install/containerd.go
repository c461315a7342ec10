package install

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

const (
	containerdConfig = "/etc/containerd/config.toml"
	podmanConfig     = "/etc/containers/containers.conf"
	runcShim         = "io.containerd.runc.v2"
)

// containerdRuntimes is where a config of this version keeps the CRI
// plugin's runtimes.
func containerdRuntimes(version int64) ([]string, string, error) {
	switch version {
	case 1:
		return []string{"plugins", "cri", "containerd", "runtimes"}, "cri", nil
	case 2:
		return []string{"plugins", "io.containerd.grpc.v1.cri", "containerd", "runtimes"}, "io.containerd.grpc.v1.cri", nil
	case 3:
		return []string{"plugins", "io.containerd.cri.v1.runtime", "containerd", "runtimes"}, "io.containerd.cri.v1.runtime", nil
	}
	return nil, "", fmt.Errorf("config version %d: this sysbox knows versions 1 to 3", version)
}

// mergeContainerd adds the sysbox-runc runtime (the runc v2 shim running
// our binary) to containerd's config. A missing or blank file becomes one
// of newVersion. notes are things the admin should know.
func mergeContainerd(base []byte, exists bool, name, binary string, newVersion int64) (out []byte, rec *fileRecord, notes []string, err error) {
	src, created := string(base), ""
	if !exists || strings.TrimSpace(src) == "" {
		created = fmt.Sprintf("version = %d\n", newVersion)
		src = created
	}
	doc, err := parseTOMLDoc([]byte(src), name)
	if err != nil {
		return nil, nil, nil, err
	}
	version := int64(1) // what containerd assumes without a version key
	if v, ok := doc["version"]; ok {
		if version, ok = v.(int64); !ok {
			return nil, nil, nil, fmt.Errorf("%s: version is %v, not a number", name, v)
		}
	}
	runtimes, plugin, err := containerdRuntimes(version)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	if dis, ok := doc["disabled_plugins"].([]any); ok {
		if slices.Contains(dis, any("cri")) || slices.Contains(dis, any(plugin)) {
			notes = append(notes, fmt.Sprintf("%s disables the CRI plugin: Kubernetes cannot use %s until it is enabled", name, runtimeName))
		}
	}
	table := append(slices.Clone(runtimes), runtimeName)
	options := append(slices.Clone(table), "options")
	var edits []tomlTableEdit
	if v, _ := tomlGet(doc, append(slices.Clone(table), "runtime_type")...); v != runcShim {
		edits = append(edits, tomlTableEdit{table, []tomlKV{{"runtime_type", tomlQuote(runcShim)}}})
	}
	if v, _ := tomlGet(doc, append(slices.Clone(options), "BinaryName")...); v != binary {
		edits = append(edits, tomlTableEdit{options, []tomlKV{{"BinaryName", tomlQuote(binary)}}})
	}
	if len(edits) == 0 {
		return base, nil, notes, nil
	}
	text, tedits, err := setTOMLKeys(src, edits)
	if err == nil {
		err = checkTOML(text, name, func(doc map[string]any) bool {
			t, _ := tomlGet(doc, append(slices.Clone(table), "runtime_type")...)
			b, _ := tomlGet(doc, append(slices.Clone(options), "BinaryName")...)
			return t == runcShim && b == binary
		})
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w; add this to it by hand:\n%s\n  runtime_type = %s\n%s\n  BinaryName = %s",
			err, tomlHeaderText(table), tomlQuote(runcShim), tomlHeaderText(options), tomlQuote(binary))
	}
	return []byte(text), &fileRecord{Kind: kindTOML, TOML: tedits, Created: created}, notes, nil
}

// mergeContainersConf adds sysbox-runc to Podman's runtimes table.
func mergeContainersConf(base []byte, name, binary string) ([]byte, *fileRecord, error) {
	doc, err := parseTOMLDoc(base, name)
	if err != nil {
		return nil, nil, err
	}
	isOurs := func(doc map[string]any) bool {
		v, _ := tomlGet(doc, "engine", "runtimes", runtimeName)
		paths, ok := v.([]any)
		return ok && len(paths) == 1 && paths[0] == binary
	}
	if isOurs(doc) {
		return base, nil, nil
	}
	value := "[" + tomlQuote(binary) + "]"
	text, edits, err := setTOMLKeys(string(base), []tomlTableEdit{{[]string{"engine", "runtimes"}, []tomlKV{{runtimeName, value}}}})
	if err == nil {
		err = checkTOML(text, name, isOurs)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%w; add this to it by hand:\n[engine.runtimes]\n%s = %s", err, runtimeName, value)
	}
	return []byte(text), &fileRecord{Kind: kindTOML, TOML: edits}, nil
}

// checkTOML is the judge of an edit: the result parses and holds what was
// asked.
func checkTOML(text, name string, ok func(map[string]any) bool) error {
	doc, err := parseTOMLDoc([]byte(text), name+" (after the edit)")
	if err != nil {
		return fmt.Errorf("cannot edit %s safely: %w", name, err)
	}
	if !ok(doc) {
		return fmt.Errorf("cannot edit %s safely: its layout hides the new entry", name)
	}
	return nil
}

// containerdConfigVersion is the config version to write for the installed
// containerd: 3 for containerd 2, 2 before.
func containerdConfigVersion() int64 {
	out, err := exec.Command("containerd", "--version").Output()
	if err == nil && (strings.Contains(string(out), "containerd/v2 ") || strings.Contains(string(out), " v2.")) {
		return 3
	}
	return 2
}

// configureContainerd adds the runtime to containerd's CRI config.
// containerd reads its config only at start: restarting it leaves running
// containers alone (their shims live on), but it is the admin's call, so
// install does it only when asked.
func (in *installer) configureContainerd() error {
	var notes []string
	changed, err := in.editFile(containerdConfig, 0o644, func(base []byte, exists bool) ([]byte, *fileRecord, error) {
		out, rec, n, err := mergeContainerd(base, exists, containerdConfig, in.runcPath(), in.containerdVersion())
		notes = n
		if rec == nil {
			return base, nil, err
		}
		return out, rec, err
	})
	if err != nil {
		return err
	}
	for _, n := range notes {
		in.h.note("%s", n)
	}
	in.st.ContainerdConfig = ""
	if in.st.Files[containerdConfig] != nil {
		in.st.ContainerdConfig = containerdConfig
	}
	if err := in.saveState(false); err != nil {
		return err
	}
	if !changed || in.skipEngines {
		return nil
	}
	return in.containerdChanged("load the " + runtimeName + " runtime")
}

func (in *installer) unconfigureContainerd() error {
	if in.st.ContainerdConfig == "" {
		return nil
	}
	if err := in.restoreFile(in.st.ContainerdConfig); err != nil {
		return err
	}
	in.st.ContainerdConfig = ""
	if err := in.saveState(false); err != nil {
		return err
	}
	if in.skipEngines {
		return nil
	}
	return in.containerdChanged("drop the " + runtimeName + " runtime")
}

// containerdChanged restarts containerd when asked (through systemd, the
// only safe way to restart it), else says it needs one.
func (in *installer) containerdChanged(why string) error {
	if !containerdReads(containerdConfig) {
		return nil // none runs on this config: it is read at start
	}
	if !in.restartContainerd {
		in.h.note("containerd must restart to %s (systemctl restart containerd, or run sysbox install --restart-containerd); running containers are not affected", why)
		return nil
	}
	if !in.systemdRunning() {
		in.h.note("no systemd here to restart containerd: restart it yourself to %s", why)
		return nil
	}
	return in.systemctl("restart", "containerd.service")
}

// configurePodman adds the runtime to containers.conf. Podman reads it on
// every command: nothing to reload.
func (in *installer) configurePodman() error {
	_, err := in.editFile(podmanConfig, 0o644, func(base []byte, _ bool) ([]byte, *fileRecord, error) {
		out, rec, err := mergeContainersConf(base, podmanConfig, in.runcPath())
		if rec == nil {
			return base, nil, err
		}
		return out, rec, err
	})
	if err != nil {
		return err
	}
	in.st.PodmanConfig = ""
	if in.st.Files[podmanConfig] != nil {
		in.st.PodmanConfig = podmanConfig
	}
	return in.saveState(false)
}

func (in *installer) unconfigurePodman() error {
	if in.st.PodmanConfig == "" {
		return nil
	}
	if err := in.restoreFile(in.st.PodmanConfig); err != nil {
		return err
	}
	in.st.PodmanConfig = ""
	return in.saveState(false)
}

// containerdReads: a running containerd reads this config file. The one
// dockerd starts for itself runs with its own --config and does not.
func containerdReads(config string) bool {
	for _, pid := range findProcs("containerd") {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		c := flagValue(args, "--config")
		if c == "" {
			c = flagValue(args, "-c")
		}
		if c == "" || filepath.Clean(c) == config {
			return true
		}
	}
	return false
}
