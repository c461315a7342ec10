package runc

import (
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// dockerSpec is the shape of what Docker 20.10 writes for `docker run IMG`.
func dockerSpec() *specs.Spec {
	zero := 0
	return &specs.Spec{
		Process: &specs.Process{
			Args: []string{"sh"}, Cwd: "/", Env: []string{"PATH=/bin"},
			Capabilities: &specs.LinuxCapabilities{Bounding: []string{"CAP_CHOWN"}, Effective: []string{"CAP_CHOWN"}, Permitted: []string{"CAP_CHOWN"}, Inheritable: []string{"CAP_CHOWN"}},
			OOMScoreAdj:  &zero,
		},
		Root: &specs.Root{Path: "/var/lib/docker/overlay2/x/merged"},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"ro", "nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755"}},
			{Destination: "/etc/hosts", Type: "bind", Source: "/var/lib/docker/containers/x/hosts", Options: []string{"rbind", "rprivate"}},
			{Destination: "/dev/shm", Type: "bind", Source: "/var/lib/docker/containers/x/mounts/shm", Options: []string{"rbind", "rprivate"}},
		},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{{Type: "mount"}, {Type: "network"}, {Type: "uts"}, {Type: "pid"}, {Type: "ipc"}},
			Resources:  &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}},
			Seccomp: &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"read", "write", "mount"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 1, Op: specs.OpEqualTo}}},
				{Names: []string{"clone"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 0x7e020000, Op: specs.OpMaskedEqual}}},
				{Names: []string{"clone3"}, Action: specs.ActErrno},
			}},
			MaskedPaths:   []string{"/proc/kcore"},
			ReadonlyPaths: []string{"/proc/bus", "/proc/sys"},
			Sysctl:        map[string]string{"net.ipv4.ping_group_range": "0 2147483647"},
		},
	}
}

var realSameNamespace = sameNamespace

var testHost = Host{
	Caps: []string{"CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_NET_ADMIN"}, TimeNS: true,
	OOMScoreAdj: 0, UIDBase: 165536, GIDBase: 165536, Size: 65536,
}

func TestTransformRefuses(t *testing.T) {
	sameNamespace = func(a, b string) bool { return a == "/var/run/docker/netns/default" && b == "/proc/1/ns/net" }
	t.Cleanup(func() { sameNamespace = realSameNamespace })
	tests := []struct {
		name   string
		modify func(*specs.Spec)
		want   string
	}{
		{"privileged", func(s *specs.Spec) {
			s.Linux.Resources.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
			s.Linux.MaskedPaths, s.Linux.ReadonlyPaths = nil, nil
		}, "--privileged"},
		{"pid host", func(s *specs.Spec) { s.Linux.Namespaces = dropNS(s, "pid") }, "--pid=host"},
		{"net host", func(s *specs.Spec) { s.Linux.Namespaces = dropNS(s, "network") }, "--net=host"},
		{"ipc host", func(s *specs.Spec) { s.Linux.Namespaces = dropNS(s, "ipc") }, "--ipc=host"},
		{"uts host", func(s *specs.Spec) { s.Linux.Namespaces = dropNS(s, "uts") }, "--uts=host"},
		{"mount host", func(s *specs.Spec) { s.Linux.Namespaces = dropNS(s, "mount") }, "mount namespace"},
		{"net through a bind of the host's", func(s *specs.Spec) {
			s.Linux.Namespaces = append(dropNS(s, "network"), specs.LinuxNamespace{Type: "network", Path: "/var/run/docker/netns/default"})
		}, "--net=host"},
		{"net of pid 1", func(s *specs.Spec) {
			s.Linux.Namespaces = append(dropNS(s, "network"), specs.LinuxNamespace{Type: "network", Path: "/proc/1/ns/net"})
		}, "--net=host"},
		{"userns host", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "user", Path: "/proc/1/ns/user"})
		}, "--userns=host"},
		{"maps host root", func(s *specs.Spec) {
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 0, Size: 65536}}
			s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
		}, "host id 0"},
		{"maps without root", func(s *specs.Spec) {
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 1, HostID: 100000, Size: 65535}}
			s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
		}, "do not map id 0"},
		{"overlapping maps", func(s *specs.Spec) {
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 100}, {ContainerID: 50, HostID: 300000, Size: 100}}
			s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
		}, "overlap"},
		{"half maps", func(s *specs.Spec) {
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
		}, "only partly"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := dockerSpec()
			tt.modify(s)
			_, err := Transform(s, Options{}, testHost)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Transform error = %v, want one naming %q", err, tt.want)
			}
		})
	}
}

func dropNS(s *specs.Spec, t string) []specs.LinuxNamespace {
	return slices.DeleteFunc(slices.Clone(s.Linux.Namespaces), func(n specs.LinuxNamespace) bool { return string(n.Type) == t })
}

func TestTransformDocker(t *testing.T) {
	s := dockerSpec()
	warns, err := Transform(s, Options{}, testHost)
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 0 {
		t.Errorf("warnings: %v", warns)
	}
	for _, ns := range []specs.LinuxNamespaceType{"user", "cgroup", "time"} {
		if _, ok := namespace(s, ns); !ok {
			t.Errorf("no %s namespace", ns)
		}
	}
	want := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 165536, Size: 65536}}
	if !slices.Equal(s.Linux.UIDMappings, want) || !slices.Equal(s.Linux.GIDMappings, want) {
		t.Errorf("mappings = %v %v, want %v", s.Linux.UIDMappings, s.Linux.GIDMappings, want)
	}
	c := s.Process.Capabilities
	if !slices.Equal(c.Effective, testHost.Caps) || !slices.Equal(c.Bounding, testHost.Caps) || !slices.Equal(c.Permitted, testHost.Caps) || len(c.Inheritable) != 0 {
		t.Errorf("root capabilities = %+v, want all of %v", c, testHost.Caps)
	}
	mounts := map[string]specs.Mount{}
	for _, m := range s.Mounts {
		mounts[m.Destination] = m
	}
	for _, d := range []string{"/sys", "/sys/fs/cgroup", "/proc"} {
		if hasOpt(mounts[d].Options, "ro") {
			t.Errorf("%s still read-only: %v", d, mounts[d].Options)
		}
	}
	if !hasOpt(mounts["/etc/hosts"].Options, "idmap") {
		t.Errorf("bind /etc/hosts not id-mapped: %v", mounts["/etc/hosts"].Options)
	}
	if m, ok := mounts["/dev/kmsg"]; !ok || m.Source != "/dev/null" {
		t.Errorf("/dev/kmsg = %+v, want a bind of /dev/null", m)
	}
	if _, ok := mounts["/run"]; ok {
		t.Error("/run tmpfs added for a command that is not an init")
	}
	if slices.Contains(s.Linux.ReadonlyPaths, "/proc/sys") {
		t.Error("/proc/sys still read-only")
	}
	tun := slices.ContainsFunc(s.Linux.Resources.Devices, func(d specs.LinuxDeviceCgroup) bool {
		return d.Allow && d.Type == "c" && d.Major != nil && *d.Major == 10 && d.Minor != nil && *d.Minor == 200
	})
	if !tun || s.Linux.Resources.Devices[0].Allow {
		t.Errorf("devices = %+v, want the engine's deny-all first and /dev/net/tun allowed", s.Linux.Resources.Devices)
	}
	if got := s.Linux.Sysctl["net.ipv4.ping_group_range"]; got != "0 65535" {
		t.Errorf("ping_group_range = %q, want clamped to 0 65535", got)
	}
	// seccomp: mount and clone unconditionally allowed, read keeps its rule.
	var allowAll specs.LinuxSyscall
	for _, r := range s.Linux.Seccomp.Syscalls {
		if slices.Contains(r.Names, "mount") {
			if len(r.Args) > 0 {
				t.Errorf("mount still has an argument filter: %+v", r)
			}
			allowAll = r
		}
		if slices.Contains(r.Names, "clone") && len(r.Args) > 0 {
			t.Errorf("clone still limited by flags: %+v", r)
		}
	}
	for _, n := range []string{"mount", "umount2", "pivot_root", "unshare", "setns", "keyctl", "add_key", "request_key", "sethostname", "setdomainname", "clone"} {
		if !slices.Contains(allowAll.Names, n) || allowAll.Action != specs.ActAllow {
			t.Errorf("%s not allowed: %+v", n, allowAll)
		}
	}
	if !slices.ContainsFunc(s.Linux.Seccomp.Syscalls, func(r specs.LinuxSyscall) bool { return slices.Contains(r.Names, "read") && len(r.Args) == 1 }) {
		t.Error("the engine's rule for read was lost")
	}
	if s.Linux.Seccomp.ListenerPath != "" {
		t.Error("listener set without a trap agent")
	}
}

func TestTransformUsers(t *testing.T) {
	t.Run("non-root gets no capabilities", func(t *testing.T) {
		s := dockerSpec()
		s.Process.User.UID = 1000
		if _, err := Transform(s, Options{}, testHost); err != nil {
			t.Fatal(err)
		}
		c := s.Process.Capabilities
		if len(c.Effective)+len(c.Permitted)+len(c.Inheritable)+len(c.Ambient) != 0 {
			t.Errorf("uid 1000 capabilities = %+v, want none", c)
		}
	})
	t.Run("honor caps keeps the engine's", func(t *testing.T) {
		s := dockerSpec()
		if _, err := Transform(s, Options{HonorCaps: true}, testHost); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(s.Process.Capabilities.Effective, []string{"CAP_CHOWN"}) {
			t.Errorf("capabilities = %v, want the engine's", s.Process.Capabilities.Effective)
		}
	})
	t.Run("engine mappings are kept", func(t *testing.T) {
		s := dockerSpec()
		m := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 300000, Size: 65536}}
		s.Linux.UIDMappings, s.Linux.GIDMappings = m, m
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "user"})
		if _, err := Transform(s, Options{}, testHost); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(s.Linux.UIDMappings, m) {
			t.Errorf("uid mappings = %v, want %v", s.Linux.UIDMappings, m)
		}
		if n := len(slices.DeleteFunc(slices.Clone(s.Linux.Namespaces), func(n specs.LinuxNamespace) bool { return n.Type != "user" })); n != 1 {
			t.Errorf("%d user namespaces", n)
		}
	})
	t.Run("no range", func(t *testing.T) {
		h := testHost
		h.Size = 0
		if _, err := Transform(dockerSpec(), Options{}, h); err == nil {
			t.Fatal("no error without an id range")
		}
	})
}

func TestTransformInitAndExtras(t *testing.T) {
	s := dockerSpec()
	s.Process.Args = []string{"/sbin/init"}
	s.Mounts = append(s.Mounts, specs.Mount{Destination: "/var/lib/docker", Type: "bind", Source: "/srv/vol", Options: []string{"rbind"}})
	h := testHost
	h.Extra = []specs.Mount{
		{Destination: "/var/lib/docker", Source: "/var/lib/sysbox/docker/x", Type: "bind", Options: []string{"rbind", "idmap"}},
		{Destination: "/var/lib/kubelet", Source: "/var/lib/sysbox/kubelet/x", Type: "bind", Options: []string{"rbind", "idmap"}},
		{Destination: "/proc/uptime", Source: "/var/lib/sysboxfs/x/proc/uptime", Type: "bind", Options: []string{"bind"}},
	}
	h.ListenerPath, h.Trapped = "/run/sysbox/seccomp.sock", []string{"mount", "umount2"}
	if _, err := Transform(s, Options{}, h); err != nil {
		t.Fatal(err)
	}
	got := map[string][]specs.Mount{}
	for _, m := range s.Mounts {
		got[m.Destination] = append(got[m.Destination], m)
	}
	if m := got["/var/lib/docker"]; len(m) != 1 || m[0].Source != "/srv/vol" {
		t.Errorf("/var/lib/docker = %+v, want only the user's volume", m)
	}
	if len(got["/var/lib/kubelet"]) != 1 {
		t.Error("manager's /var/lib/kubelet missing")
	}
	if m := got["/proc/uptime"]; len(m) != 1 || hasOpt(m[0].Options, "idmap") {
		t.Errorf("/proc/uptime = %+v, want one FUSE bind, not id-mapped", m)
	}
	for _, d := range []string{"/run", "/run/lock"} {
		if m := got[d]; len(m) != 1 || m[0].Type != "tmpfs" {
			t.Errorf("%s = %+v, want a tmpfs for an init", d, m)
		}
	}
	if !slices.Contains(s.Process.Env, "container=private-users") {
		t.Errorf("env %v lacks container=private-users", s.Process.Env)
	}
	sc := s.Linux.Seccomp
	if sc.ListenerPath != h.ListenerPath {
		t.Errorf("listener = %q", sc.ListenerPath)
	}
	for _, r := range sc.Syscalls {
		if slices.Contains(r.Names, "mount") && r.Action != specs.ActNotify {
			t.Errorf("mount in a %s rule, want only notify", r.Action)
		}
	}
}

func TestTransformOOM(t *testing.T) {
	s := dockerSpec()
	low := -500
	s.Process.OOMScoreAdj = &low
	warns, err := Transform(s, Options{}, testHost)
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 1 || *s.Process.OOMScoreAdj != 0 {
		t.Errorf("oom_score_adj = %d, warnings %v: want 0 and one warning", *s.Process.OOMScoreAdj, warns)
	}
	s = dockerSpec()
	s.Process.OOMScoreAdj = &low
	h := testHost
	h.SysResource = true
	if warns, _ := Transform(s, Options{}, h); len(warns) != 0 || *s.Process.OOMScoreAdj != -500 {
		t.Errorf("with CAP_SYS_RESOURCE: oom %d, warnings %v", *s.Process.OOMScoreAdj, warns)
	}
}

func TestTransformRlimits(t *testing.T) {
	s := dockerSpec()
	s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1048576, Soft: 1048576}, {Type: "RLIMIT_NPROC", Hard: 10, Soft: 10}}
	h := testHost
	h.RlimitHard = map[string]uint64{"RLIMIT_NOFILE": 20000, "RLIMIT_NPROC": 100}
	warns, err := Transform(s, Options{}, h)
	if err != nil {
		t.Fatal(err)
	}
	if rl := s.Process.Rlimits[0]; rl.Hard != 20000 || rl.Soft != 20000 || len(warns) != 1 {
		t.Errorf("NOFILE = %+v (warnings %v), want clamped to 20000 with a warning", rl, warns)
	}
	if rl := s.Process.Rlimits[1]; rl.Hard != 10 {
		t.Errorf("NPROC = %+v, want untouched", rl)
	}
}

func TestParseOptions(t *testing.T) {
	tests := []struct {
		env     []string
		want    Options
		wantErr string
	}{
		{[]string{"PATH=/bin", "SYSBOX_ID_SIZE=131072", "SYSBOX_HONOR_CAPS=true"}, Options{IDSize: 131072, HonorCaps: true}, ""},
		{[]string{"SYSBOX_NO_FS=1", "SYSBOX_NO_SPECIAL_DIRS=false"}, Options{NoFS: true}, ""},
		{[]string{"SYSBOX_ID_SIZE=1000"}, Options{}, "SYSBOX_ID_SIZE"},
		{[]string{"SYSBOX_ID_SIZE=abc"}, Options{}, "SYSBOX_ID_SIZE"},
		{[]string{"SYSBOX_HONOR_CAPS=maybe"}, Options{}, "SYSBOX_HONOR_CAPS"},
		{[]string{"SYSBOX_TYPO=1"}, Options{}, "unknown option SYSBOX_TYPO"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.env, " "), func(t *testing.T) {
			got, err := ParseOptions(tt.env)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseOptions = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestOverlayLayers(t *testing.T) {
	lower, upper, work, err := overlayLayers(`rw,lowerdir=l/AB:l/CD,upperdir=/d/x/diff,workdir=/d/x/work,index=off`, "/d")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(lower, []string{"/d/l/AB", "/d/l/CD"}) || upper != "/d/x/diff" || work != "/d/x/work" {
		t.Errorf("got %v %q %q", lower, upper, work)
	}
	if _, _, _, err := overlayLayers("rw,upperdir=/a", "/"); err == nil {
		t.Error("no error without lowerdir")
	}
	if got := carriedOverlayOpts("rw,lowerdir=/a,fsync=volatile,index=off,metacopy=on,userxattr"); !slices.Equal(got, []string{"metacopy=on", "userxattr"}) {
		t.Errorf("carriedOverlayOpts = %q", got)
	}
	if got := commonDir([]string{"/var/lib/docker/overlay2/a/diff", "/var/lib/docker/overlay2/b/diff", "/var/lib/docker/overlay2/c/work"}); got != "/var/lib/docker/overlay2" {
		t.Errorf("commonDir = %q", got)
	}
}

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]int{"9": 9, "KILL": 9, "sigterm": 15, "SIGUSR1": 10, "hup": 1} {
		if got, err := parseSignal(in); err != nil || int(got) != want {
			t.Errorf("parseSignal(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"NOPE", "0", "99"} {
		if _, err := parseSignal(bad); err == nil {
			t.Errorf("parseSignal(%q) gave no error", bad)
		}
	}
}
