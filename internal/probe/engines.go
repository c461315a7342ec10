package probe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// runtimeName is what sysbox registers itself as with every engine.
const runtimeName = "sysbox-runc"

// engineFacts is what was found about one container engine.
type engineFacts struct {
	name        string   // "docker"
	binaries    []string // paths found, empty if none
	socket      string   // daemon socket, "" for daemonless engines
	reachable   bool     // the socket answered
	socketErr   error    // why it did not
	configs     []string // config files read
	where       string   // where registration would live, for the message
	whereAbsent string   // why that place does not exist, "" if it does
	registered  bool     // a config file registers sysbox-runc
	configErr   error
	liveChecked bool // the daemon was asked for its runtimes
	live        bool // and listed sysbox-runc
	installFlag string
}

func engineResult(f engineFacts) Result {
	r := Result{Name: f.name}
	if len(f.binaries) == 0 && !f.reachable {
		r.Status, r.Detail = OK, "not installed"
		return r
	}
	var parts []string
	if len(f.binaries) > 0 {
		parts = append(parts, "installed ("+strings.Join(f.binaries, ", ")+")")
	} else {
		parts = append(parts, "no binary in PATH")
	}
	if f.socket != "" {
		switch {
		case f.reachable:
			parts = append(parts, "daemon answering on "+f.socket)
		case errors.Is(f.socketErr, fs.ErrPermission):
			parts = append(parts, "daemon state unknown: "+f.socket+" is not accessible to this user")
		default:
			parts = append(parts, "daemon not running (no answer on "+f.socket+")")
		}
	}
	install := fmt.Sprintf("run `sysbox install %s`", f.installFlag)
	where := f.where
	if f.whereAbsent != "" {
		where += " (" + f.whereAbsent + ")"
	}
	switch {
	case f.configErr != nil:
		r.Status = Warn
		parts = append(parts, fmt.Sprintf("can't read its config: %v", f.configErr))
		r.Remedy = "fix the config file, then " + install
	case f.liveChecked && f.live:
		r.Status = OK
		if f.registered {
			parts = append(parts, runtimeName+" registered in "+f.where+" and listed by the daemon")
		} else {
			parts = append(parts, runtimeName+" listed by the daemon (given on its command line; not in "+where+")")
		}
	case f.registered && f.liveChecked:
		r.Status = Warn
		parts = append(parts, runtimeName+" is in "+where+" but the running daemon does not list it")
		r.Remedy = fmt.Sprintf("restart %s (e.g. `systemctl restart %s`) so it reads its config", f.name, f.name)
	case f.registered:
		r.Status = OK
		parts = append(parts, runtimeName+" registered in "+where)
	default:
		r.Status = Warn
		parts = append(parts, runtimeName+" not registered in "+where)
		r.Remedy = install
	}
	r.Detail = strings.Join(parts, "; ")
	return r
}

// dockerConfigRuntimes lists the runtimes in a daemon.json.
func dockerConfigRuntimes(b []byte) ([]string, error) {
	var cfg struct {
		Runtimes map[string]json.RawMessage `json:"runtimes"`
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil, nil // dockerd accepts an empty file
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, err
	}
	return sortedKeys(cfg.Runtimes), nil
}

// dockerInfoRuntimes lists the runtimes in the answer to GET /info.
func dockerInfoRuntimes(b []byte) ([]string, error) {
	var info struct {
		Runtimes map[string]json.RawMessage `json:"Runtimes"`
	}
	if err := json.Unmarshal(b, &info); err != nil {
		return nil, err
	}
	return sortedKeys(info.Runtimes), nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// A containerd runtime is a table named ...runtimes.NAME or ...runtimes."NAME"
// (config versions 2 and 3 differ only in the plugin id before it).
var containerdRuntimeTable = regexp.MustCompile(`^\s*\[[^\]#]*\.runtimes\.(?:"sysbox-runc"|'sysbox-runc'|sysbox-runc)\s*\]`)

func containerdRegistered(text string) bool {
	for line := range strings.Lines(text) {
		if containerdRuntimeTable.MatchString(line) {
			return true
		}
	}
	return false
}

// podmanRegistered reports whether containers.conf text has a sysbox-runc
// key in its [engine.runtimes] table.
func podmanRegistered(text string) bool {
	in := false
	for line := range strings.Lines(text) {
		l := strings.TrimSpace(line)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if strings.HasPrefix(l, "[") {
			in = strings.ReplaceAll(strings.SplitN(l, "#", 2)[0], " ", "") == "[engine.runtimes]"
			continue
		}
		if !in {
			continue
		}
		key, _, ok := strings.Cut(l, "=")
		if ok && strings.Trim(strings.TrimSpace(key), `"'`) == runtimeName {
			return true
		}
	}
	return false
}

// lookBinary finds the first of names in PATH or in the usual system
// directories (sudo and cron often run with a short PATH).
func lookBinary(names ...string) []string {
	var found []string
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			found = append(found, p)
			continue
		}
		for _, dir := range []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"} {
			p := filepath.Join(dir, n)
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
				found = append(found, p)
				break
			}
		}
	}
	return found
}

func unixClient(socket string) *http.Client {
	return &http.Client{
		Timeout: 3 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", socket)
			},
		},
	}
}

func dialSocket(socket string) error {
	c, err := net.DialTimeout("unix", socket, 2*time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}

func dockerSocket() string {
	if h, ok := strings.CutPrefix(os.Getenv("DOCKER_HOST"), "unix://"); ok && h != "" {
		return h
	}
	return "/var/run/docker.sock"
}

func probeDocker() engineFacts {
	const cfg = "/etc/docker/daemon.json"
	f := engineFacts{
		name: "docker", binaries: lookBinary("docker", "dockerd"), socket: dockerSocket(),
		where: cfg, installFlag: "--docker",
	}
	b, err := os.ReadFile(cfg)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		f.whereAbsent = "does not exist"
	case err != nil:
		f.configErr = err
	default:
		f.configs = append(f.configs, cfg)
		rts, err := dockerConfigRuntimes(b)
		if err != nil {
			f.configErr = fmt.Errorf("%s: %w", cfg, err)
		}
		f.registered = slices.Contains(rts, runtimeName)
	}
	resp, err := unixClient(f.socket).Get("http://docker/info")
	if err != nil {
		f.socketErr = err
		return f
	}
	defer resp.Body.Close()
	f.reachable = true
	if resp.StatusCode == http.StatusOK {
		body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		if err == nil {
			if rts, err := dockerInfoRuntimes(body); err == nil {
				f.liveChecked, f.live = true, slices.Contains(rts, runtimeName)
			}
		}
	}
	return f
}

func probeContainerd() engineFacts {
	const cfg = "/etc/containerd/config.toml"
	f := engineFacts{
		name: "containerd", binaries: lookBinary("containerd"), socket: "/run/containerd/containerd.sock",
		where: cfg, installFlag: "--containerd",
	}
	f.socketErr = dialSocket(f.socket)
	f.reachable = f.socketErr == nil
	b, err := os.ReadFile(cfg)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		f.whereAbsent = "does not exist: containerd runs with its defaults"
	case err != nil:
		f.configErr = err
	default:
		f.configs = append(f.configs, cfg)
		f.registered = containerdRegistered(string(b))
	}
	return f
}

func probePodman() engineFacts {
	f := engineFacts{name: "podman", binaries: lookBinary("podman"), installFlag: "--podman"}
	// Podman merges these in order; a runtime registered in any of them counts.
	files := []string{"/usr/share/containers/containers.conf", "/etc/containers/containers.conf"}
	dropins, _ := filepath.Glob("/etc/containers/containers.conf.d/*.conf")
	files = append(files, dropins...)
	for _, p := range files {
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			f.configErr = err
			continue
		}
		f.configs = append(f.configs, p)
		if podmanRegistered(string(b)) {
			f.registered = true
		}
	}
	if len(f.configs) == 0 {
		f.where, f.whereAbsent = "[engine.runtimes]", "no containers.conf found"
	} else {
		f.where = "[engine.runtimes] of " + strings.Join(f.configs, ", ")
	}
	return f
}

func probeEngines() []Result {
	return []Result{
		engineResult(probeDocker()),
		engineResult(probeContainerd()),
		engineResult(probePodman()),
	}
}
