package install

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	dockerConfig = "/etc/docker/daemon.json"
	dockerSocket = "/var/run/docker.sock"
)

// dockerd is the running Docker daemon.
type dockerd struct {
	pid    int
	config string // the daemon.json it reads
	socket string
	args   []string
}

// dockerPidFiles are where dockerd writes its pid unless told otherwise.
var dockerPidFiles = []string{"/var/run/docker.pid", "/run/docker.pid"}

// findDockerd finds the running dockerd by its pid file, and makes sure the
// pid is dockerd's (a stale pid file can name any process). Not running:
// nil, nil.
func findDockerd(pidFile string) (*dockerd, error) {
	pidFiles := dockerPidFiles
	if pidFile != "" {
		pidFiles = []string{pidFile}
	}
	for _, pf := range pidFiles {
		b, err := os.ReadFile(pf)
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 {
			continue
		}
		if procComm(pid) != "dockerd" {
			continue
		}
		d := &dockerd{pid: pid, config: dockerConfig, socket: dockerSocket}
		if cl, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil {
			d.args = strings.Split(strings.TrimRight(string(cl), "\x00"), "\x00")
		}
		if v := flagValue(d.args, "--config-file"); v != "" {
			d.config = v
		}
		for _, h := range flagValues(d.args, "-H", "--host") {
			if s, ok := strings.CutPrefix(h, "unix://"); ok {
				d.socket = s
				break
			}
		}
		return d, nil
	}
	return nil, nil
}

func procComm(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// flagValue is the last value of a long flag given as "--f v" or "--f=v".
func flagValue(args []string, name string) string {
	vs := flagValues(args, name)
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

func flagValues(args []string, names ...string) []string {
	var out []string
	for i := 1; i < len(args); i++ {
		for _, n := range names {
			if args[i] == n && i+1 < len(args) {
				out = append(out, args[i+1])
			} else if v, ok := strings.CutPrefix(args[i], n+"="); ok {
				out = append(out, v)
			}
		}
	}
	return out
}

// checkDockerdFlags refuses what would stop dockerd from starting next
// time: the same setting as a flag and in daemon.json is a fatal conflict
// for dockerd.
// byFlag reports that dockerd's own flags already register the runtime as
// wanted: daemon.json must then stay out of it.
func checkDockerdFlags(d *dockerd, want dockerWant) (byFlag bool, err error) {
	if want.DefaultRuntime && len(flagValues(d.args, "--default-runtime")) > 0 {
		return false, fmt.Errorf("dockerd (pid %d) runs with --default-runtime: with default-runtime in daemon.json too, dockerd would refuse to start; drop --default-runtime from install or the flag from dockerd", d.pid)
	}
	for _, v := range flagValues(d.args, "--add-runtime") {
		path, ok := strings.CutPrefix(v, runtimeName+"=")
		if !ok {
			continue
		}
		if path == want.RuntimePath && !want.DefaultRuntime {
			return true, nil
		}
		return false, fmt.Errorf("dockerd (pid %d) runs with --add-runtime %s: with the runtime in daemon.json too, dockerd would refuse to start; remove the flag first", d.pid, v)
	}
	return false, nil
}

// dockerd finds the running dockerd (tests bring their own).
func (in *installer) dockerd(pidFile string) (*dockerd, error) {
	if in.fakeDockerd != nil {
		return in.fakeDockerd, nil
	}
	if in.skipEngines {
		return nil, nil
	}
	return findDockerd(pidFile)
}

// reloadDockerd has dockerd reread its config: SIGHUP.
func (in *installer) reloadDockerd(d *dockerd) error {
	if in.fakeReload != nil {
		return in.fakeReload()
	}
	return syscall.Kill(d.pid, syscall.SIGHUP)
}

// dockerClient speaks to the engine API over its unix socket.
func dockerClient(socket string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}}
}

func dockerGet(ctx context.Context, c *http.Client, path string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(b)))
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

type dockerInfo struct {
	Runtimes map[string]struct {
		Path string `json:"path"`
	} `json:"Runtimes"`
	DefaultRuntime string `json:"DefaultRuntime"`
}

// waitDockerInfo polls GET /info until ok says yes or the deadline passes.
func waitDockerInfo(ctx context.Context, socket string, timeout time.Duration, ok func(dockerInfo) bool) error {
	c := dockerClient(socket)
	deadline := time.Now().Add(timeout)
	var last error
	for {
		var info dockerInfo
		if last = dockerGet(ctx, c, "/info", &info); last == nil && ok(info) {
			return nil
		}
		if time.Now().After(deadline) {
			if last != nil {
				return last
			}
			return errors.New("timed out")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func dockerHasRuntime(path string, def bool) func(dockerInfo) bool {
	return func(info dockerInfo) bool {
		r, ok := info.Runtimes[runtimeName]
		return ok && r.Path == path && (!def || info.DefaultRuntime == runtimeName)
	}
}

// configureDocker merges the runtime into daemon.json and has dockerd
// reload it: SIGHUP rereads runtimes and the default runtime without a
// restart, so running containers are not touched.
func (in *installer) configureDocker(ctx context.Context) error {
	if in.dockerPidFile == "" {
		in.dockerPidFile = in.st.DockerPidFile // as the last install was told
	}
	d, err := in.dockerd(in.dockerPidFile)
	if err != nil {
		return err
	}
	cfg := dockerConfig
	want := dockerWant{RuntimePath: in.runcPath(), DefaultRuntime: in.defaultRuntime}
	if d != nil {
		cfg = d.config
		byFlag, err := checkDockerdFlags(d, want)
		if err != nil {
			return err
		}
		if byFlag && in.st.DockerConfig == "" {
			in.h.info("dockerd (pid %d) registers %s itself (--add-runtime): daemon.json left alone", d.pid, runtimeName)
			return nil
		}
	}
	if in.st.DockerConfig != "" && in.st.DockerConfig != cfg {
		// dockerd moved to another config file since: take ours out of the old.
		if err := in.restoreFile(in.st.DockerConfig); err != nil {
			return err
		}
	}
	_, err = in.editFile(cfg, 0o644, func(base []byte, _ bool) ([]byte, *fileRecord, error) {
		out, changes, err := mergeDaemonJSON(base, cfg, want)
		if err != nil || len(changes) == 0 {
			return base, nil, err
		}
		return out, &fileRecord{Kind: kindJSON, JSON: changes}, nil
	})
	if err != nil {
		return err
	}
	in.st.DockerConfig, in.st.DockerPidFile = "", ""
	if in.st.Files[cfg] != nil {
		in.st.DockerConfig, in.st.DockerPidFile = cfg, in.dockerPidFile
	}
	if err := in.saveState(false); err != nil {
		return err
	}
	if d == nil {
		in.h.note("dockerd is not running: it will load the %s runtime when it starts", runtimeName)
		return nil
	}
	registered := dockerHasRuntime(want.RuntimePath, want.DefaultRuntime)
	if waitDockerInfo(ctx, d.socket, 0, registered) == nil {
		in.h.info("docker already lists the %s runtime", runtimeName)
		return nil
	}
	in.h.say("reload dockerd (SIGHUP to pid %d; running containers are not touched)", d.pid)
	if in.h.dry {
		return nil
	}
	if err := in.reloadDockerd(d); err != nil {
		return fmt.Errorf("reload dockerd (pid %d): %w", d.pid, err)
	}
	if err := waitDockerInfo(ctx, d.socket, in.timeout, registered); err != nil {
		return fmt.Errorf("dockerd did not list the %s runtime within %s after reloading %s (%v): its log says why", runtimeName, in.timeout, cfg, err)
	}
	in.h.say("docker lists the %s runtime (%s)", runtimeName, want.RuntimePath)
	return nil
}

// unconfigureDocker takes the runtime out of daemon.json and has dockerd
// drop it. dockerd's reload only replaces "runtimes" and "default-runtime"
// when the file sets them: a file without the keys leaves the old values
// loaded. So when the file without sysbox lacks them, dockerd first reloads
// a view of it that sets them explicitly (no runtimes but its own, the stock
// default), and only then does the file become what it was, byte for byte.
func (in *installer) unconfigureDocker(ctx context.Context) error {
	cfg := in.st.DockerConfig
	rec := in.st.Files[cfg]
	if cfg == "" || rec == nil {
		in.st.DockerConfig = ""
		return nil
	}
	d, err := in.dockerd(in.st.DockerPidFile)
	if err != nil {
		return err
	}
	ours := in.runcPath()
	cur, exists, err := in.h.readFile(cfg)
	if err != nil {
		return err
	}
	base, baseExists, err := in.withoutUs(cfg, cur, exists, rec)
	if err != nil {
		return err
	}
	if d != nil {
		view, wantDefault, err := dockerReloadView(base, cfg, rec.JSON)
		if err != nil {
			return err
		}
		gone := func(info dockerInfo) bool {
			r, ok := info.Runtimes[runtimeName]
			return (!ok || r.Path != ours) && (wantDefault == "" || info.DefaultRuntime == wantDefault)
		}
		if waitDockerInfo(ctx, d.socket, 0, gone) != nil {
			if _, err := in.h.writeFile(cfg, view, 0o644, "write "+cfg+" without "+runtimeName+" for dockerd to reload"); err != nil {
				return err
			}
			in.h.say("reload dockerd (SIGHUP to pid %d)", d.pid)
			if !in.h.dry {
				if err := in.reloadDockerd(d); err != nil {
					return fmt.Errorf("reload dockerd (pid %d): %w", d.pid, err)
				}
				if err := waitDockerInfo(ctx, d.socket, in.timeout, gone); err != nil {
					return fmt.Errorf("dockerd still lists the %s runtime %s after reloading %s (%v): its log says why", runtimeName, in.timeout, cfg, err)
				}
				in.h.say("docker no longer lists the %s runtime", runtimeName)
			}
		}
	}
	if err := in.putBack(cfg, rec, base, baseExists, 0o644); err != nil {
		return err
	}
	in.st.DockerConfig, in.st.DockerPidFile = "", ""
	return in.saveState(false)
}

// dockerReloadView is daemon.json without sysbox (base) with the keys
// install changed set explicitly, for dockerd's reload to apply: an empty
// "runtimes" and the stock "default-runtime" where base has none.
// wantDefault is the default runtime dockerd should then report ("" when
// install did not change it).
func dockerReloadView(base []byte, name string, changes []jsonChange) (view []byte, wantDefault string, err error) {
	obj, err := parseJSONObject(base, name)
	if err != nil {
		return nil, "", err
	}
	for _, c := range changes {
		switch c.Path[0] {
		case "runtimes":
			if _, ok := obj.get("runtimes"); !ok {
				obj.set("runtimes", json.RawMessage("{}"))
			}
		case "default-runtime":
			raw, ok := obj.get("default-runtime")
			if !ok {
				raw = json.RawMessage(`"runc"`)
				obj.set("default-runtime", raw)
			}
			if err := json.Unmarshal(raw, &wantDefault); err != nil {
				return nil, "", fmt.Errorf("%s: default-runtime: %w", name, err)
			}
		}
	}
	return obj.marshal(), wantDefault, nil
}

type dockerContainer struct{ id, name string }

// dockerSysboxContainers lists running Docker containers on sysbox-runc.
func dockerSysboxContainers(ctx context.Context, socket string) ([]dockerContainer, error) {
	c := dockerClient(socket)
	var list []struct {
		ID    string   `json:"Id"`
		Names []string `json:"Names"`
	}
	if err := dockerGet(ctx, c, "/containers/json", &list); err != nil {
		return nil, err
	}
	var out []dockerContainer
	for _, ct := range list {
		var insp struct {
			HostConfig struct {
				Runtime string `json:"Runtime"`
			} `json:"HostConfig"`
		}
		if err := dockerGet(ctx, c, "/containers/"+ct.ID+"/json", &insp); err != nil {
			continue // gone meanwhile
		}
		if insp.HostConfig.Runtime == runtimeName {
			name := short(ct.ID)
			if len(ct.Names) > 0 {
				name = strings.TrimPrefix(ct.Names[0], "/")
			}
			out = append(out, dockerContainer{ct.ID, name})
		}
	}
	return out, nil
}
