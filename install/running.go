package install

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sysbox-dev/sysbox/internal/ipc"
)

// containerdTasks are where containerd's v2 shims keep their bundles, one
// per live task: NAMESPACE/ID; the system containerd's and the one dockerd
// starts itself. A shim told to run another binary records it in the
// bundle's options.json.
var containerdTasks = []string{
	"/run/containerd/io.containerd.runtime.v2.task",
	"/run/docker/containerd/daemon/io.containerd.runtime.v2.task",
}

// runningContainers asks every witness what sysbox containers run: the
// manager (which registers every container of every engine), Docker, and
// containerd's task bundles (Kubernetes, nerdctl). Each answers for itself;
// one that is down or errs says nothing.
func (in *installer) runningContainers(ctx context.Context) []string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	seen := map[string]bool{}
	var out []string
	add := func(id, what string) {
		if !seen[id] {
			seen[id] = true
			out = append(out, what)
		}
	}
	if st, err := ipc.Call[ipc.Empty, ipc.MgrStatus](ctx, ipc.MgrSocket, ipc.MgrStatusMethod, ipc.Empty{}); err == nil {
		for _, c := range st.Containers {
			if c.Running {
				add(c.ID, "container "+short(c.ID))
			}
		}
	}
	if d, _ := in.dockerd(in.st.DockerPidFile); d != nil {
		if list, err := dockerSysboxContainers(ctx, d.socket); err == nil {
			for _, c := range list {
				add(c.id, "docker container "+c.name)
			}
		}
	}
	var opts []string
	for _, dir := range containerdTasks {
		m, _ := filepath.Glob(dir + "/*/*/options.json")
		opts = append(opts, m...)
	}
	for _, p := range opts {
		b, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(b), runtimeName) {
			continue
		}
		dir := filepath.Dir(p)
		id, ns := filepath.Base(dir), filepath.Base(filepath.Dir(dir))
		add(id, "containerd task "+ns+"/"+short(id))
	}
	return out
}

func short(id string) string { return id[:min(12, len(id))] }
