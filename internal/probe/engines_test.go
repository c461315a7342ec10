package probe

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func TestDockerConfigRuntimes(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr bool
	}{
		{
			"registered", `{"runtimes": {"sysbox-runc": {"path": "/usr/bin/sysbox-runc"}, "runsc": {"path": "/usr/bin/runsc"}}, "log-level": "info"}`,
			[]string{"runsc", "sysbox-runc"},
			false,
		},
		{"other keys only", `{"data-root": "/srv/docker"}`, []string{}, false},
		{"empty file", "  \n", nil, false},
		{"broken", `{"runtimes": `, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := dockerConfigRuntimes([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, wantErr %v", err, tt.wantErr)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestContainerdRegistered(t *testing.T) {
	tests := []struct {
		name string
		text string
		want bool
	}{
		{"v2 config", `version = 2
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.sysbox-runc]
  runtime_type = "io.containerd.runc.v2"
`, true},
		{"v3 config, quoted", `version = 3
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes."sysbox-runc"]
  runtime_type = 'io.containerd.runc.v2'
`, true},
		{"options table only counts with its runtime", `[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.sysbox-runc.options]
  BinaryName = "/usr/bin/sysbox-runc"
`, false},
		{"commented out", `#[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.sysbox-runc]`, false},
		{"this machine", `version = 2

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
`, false},
		{"runc only", `[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]`, false},
		{"a different runtime with a longer name", `[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.sysbox-runc-old]`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := containerdRegistered(tt.text); got != tt.want {
				t.Errorf("containerdRegistered = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPodmanRegistered(t *testing.T) {
	tests := []struct {
		name string
		text string
		want bool
	}{
		{"registered", `[engine]
runtime = "crun"

[engine.runtimes]
crun = ["/usr/bin/crun"]
sysbox-runc = ["/usr/bin/sysbox-runc"]
`, true},
		{"quoted key", "[engine.runtimes]\n\"sysbox-runc\" = [\"/usr/local/bin/sysbox-runc\"]\n", true},
		{"commented, as shipped", `[engine.runtimes]
#crun = [
#  "/usr/bin/crun",
#]
#sysbox-runc = ["/usr/bin/sysbox-runc"]
`, false},
		{"in another table", `[engine.runtimes]
crun = ["/usr/bin/crun"]

[network]
sysbox-runc = "x"
`, false},
		{"no runtimes table", "[engine]\nsysbox-runc = 1\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := podmanRegistered(tt.text); got != tt.want {
				t.Errorf("podmanRegistered = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestEngineResult(t *testing.T) {
	docker := engineFacts{
		name: "docker", binaries: []string{"/usr/bin/docker", "/usr/sbin/dockerd"},
		socket: "/var/run/docker.sock", where: "/etc/docker/daemon.json", installFlag: "--docker",
	}
	with := func(f func(*engineFacts)) engineFacts { e := docker; f(&e); return e }
	tests := []struct {
		name      string
		f         engineFacts
		want      Status
		detailHas string
		remedyHas string
	}{
		{"not installed", engineFacts{name: "docker", socket: "/var/run/docker.sock"}, OK, "not installed", ""},
		{"installed, stopped, not registered", docker, Warn, "daemon not running", "sysbox install --docker"},
		{"no daemon.json", with(func(e *engineFacts) { e.whereAbsent = "does not exist" }), Warn, "not registered in /etc/docker/daemon.json (does not exist)", "sysbox install --docker"},
		{"installed, stopped, registered", with(func(e *engineFacts) { e.registered = true }), OK, "registered in /etc/docker/daemon.json", ""},
		{"running, lists it", with(func(e *engineFacts) { e.reachable, e.liveChecked, e.live, e.registered = true, true, true, true }), OK, "listed by the daemon", ""},
		{"running with --add-runtime", with(func(e *engineFacts) { e.reachable, e.liveChecked, e.live = true, true, true }), OK, "given on its command line", ""},
		{"registered, not restarted", with(func(e *engineFacts) { e.reachable, e.liveChecked, e.registered = true, true, true }), Warn, "does not list it", "systemctl restart docker"},
		{"socket not ours", with(func(e *engineFacts) { e.socketErr = syscall.EACCES }), Warn, "not accessible", "sysbox install --docker"},
		{"bad config", with(func(e *engineFacts) { e.configErr = errors.New("invalid character") }), Warn, "invalid character", "fix the config"},
		{"socket but no binary", engineFacts{name: "docker", socket: "/s", reachable: true, where: "x", installFlag: "--docker"}, Warn, "no binary in PATH", "sysbox install"},
		{"podman, daemonless", engineFacts{name: "podman", binaries: []string{"/usr/bin/podman"}, where: "[engine.runtimes]", installFlag: "--podman"}, Warn, "not registered in [engine.runtimes]", "sysbox install --podman"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := engineResult(tt.f)
			checkResult(t, r, tt.f.name, tt.want)
			if !strings.Contains(r.Detail, tt.detailHas) {
				t.Errorf("detail %q lacks %q", r.Detail, tt.detailHas)
			}
			if !strings.Contains(r.Remedy, tt.remedyHas) {
				t.Errorf("remedy %q lacks %q", r.Remedy, tt.remedyHas)
			}
		})
	}
}

// The Docker API answers over a unix socket; a stand-in daemon shows the
// client and the /info parsing fit together.
func TestDockerInfoOverUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/info" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, `{"ID":"x","Runtimes":{"runc":{"path":"runc"},"sysbox-runc":{"path":"/usr/bin/sysbox-runc"}},"DefaultRuntime":"runc"}`)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })

	resp, err := unixClient(sock).Get("http://docker/info")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	rts, err := dockerInfoRuntimes(body)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"runc", "sysbox-runc"}; !slices.Equal(rts, want) {
		t.Errorf("runtimes = %v, want %v", rts, want)
	}
	if err := dialSocket(sock); err != nil {
		t.Errorf("dialSocket(%s) = %v", sock, err)
	}
	if err := dialSocket(filepath.Join(t.TempDir(), "none.sock")); err == nil {
		t.Error("dialSocket on a missing socket succeeded")
	}
}

func TestLookBinary(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "fake-engine")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "not-exec"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	if got := lookBinary("fake-engine", "not-exec", "no-such-engine-xyz"); !slices.Equal(got, []string{exe}) {
		t.Errorf("lookBinary = %v, want [%s]", got, exe)
	}
}
