package probe

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseMountinfo(t *testing.T) {
	const text = `26 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 shared:7 - ext3 /dev/root rw,errors=continue
40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
41 26 0:40 / /mnt/with\040space rw - tmpfs my\134src rw,size=4k
42 26 0:41 / /mnt/nosuper rw - fuse.sshfs host:
`
	ms, err := parseMountinfo(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 5 {
		t.Fatalf("got %d mounts, want 5", len(ms))
	}
	want := []mount{
		{id: 26, parent: 1, root: "/", point: "/", options: "rw,relatime", fstype: "ext4", source: "/dev/vda", superOptions: "rw,discard"},
		{id: 36, parent: 35, root: "/mnt1", point: "/mnt2", options: "rw,noatime", fstype: "ext3", source: "/dev/root", superOptions: "rw,errors=continue"},
		{id: 40, parent: 30, root: "/", point: "/sys/fs/cgroup/unified", options: "rw,relatime", fstype: "cgroup2", source: "cgroup2", superOptions: "rw"},
		{id: 41, parent: 26, root: "/", point: "/mnt/with space", options: "rw", fstype: "tmpfs", source: `my\src`, superOptions: "rw,size=4k"},
		{id: 42, parent: 26, root: "/", point: "/mnt/nosuper", options: "rw", fstype: "fuse.sshfs", source: "host:"},
	}
	for i := range want {
		if ms[i] != want[i] {
			t.Errorf("mount %d:\n got %+v\nwant %+v", i, ms[i], want[i])
		}
	}
}

func TestParseMountinfoMalformed(t *testing.T) {
	for _, text := range []string{
		"26 1 254:0 / / rw,relatime ext4 /dev/vda rw\n", // no separator
		"26 1 254:0 / /\n",                                 // short
		"x 1 254:0 / / rw - ext4 /dev/vda rw\n",            // bad id
		"26 1 254:0 / / rw - ext4\n",                       // nothing after the type
		"26 1 254:0 / / rw - ext4 /dev/vda rw\n26 1 2 3\n", // second line short
	} {
		if _, err := parseMountinfo(strings.NewReader(text)); err == nil {
			t.Errorf("parseMountinfo(%q) succeeded, want an error", text)
		}
	}
}

func TestMountFor(t *testing.T) {
	ms := []mount{
		{id: 1, point: "/", fstype: "ext4"},
		{id: 2, point: "/var", fstype: "xfs"},
		{id: 3, point: "/var/lib/docker", fstype: "ext4"},
		{id: 4, point: "/var/lib/sysbox", fstype: "btrfs"},
		{id: 5, point: "/var/lib/sysbox", fstype: "tmpfs"}, // stacked over 4
	}
	tests := []struct {
		path string
		want int
	}{
		{"/", 1},
		{"/etc", 1},
		{"/var", 2},
		{"/var/lib", 2},
		{"/variable", 1},
		{"/var/lib/docker2", 2},
		{"/var/lib/docker/overlay2", 3},
		{"/var/lib/sysbox", 5},
		{"/var/lib/sysbox/x", 5},
	}
	for _, tt := range tests {
		m, ok := mountFor(ms, tt.path)
		if !ok || m.id != tt.want {
			t.Errorf("mountFor(%q) = %d (found %v), want %d", tt.path, m.id, ok, tt.want)
		}
	}
	if _, ok := mountFor(nil, "/x"); ok {
		t.Error("mountFor(nil) found a mount")
	}
}

func TestNearestExisting(t *testing.T) {
	dir := t.TempDir()
	dir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path, want string
		wantErr    bool
	}{
		{filepath.Join(dir, "a"), filepath.Join(dir, "a"), false},
		{filepath.Join(dir, "a", "b", "c"), filepath.Join(dir, "a"), false},
		{filepath.Join(dir, "nope"), dir, false},
		{filepath.Join(dir, "file"), "", true},
	}
	for _, tt := range tests {
		got, err := nearestExisting(tt.path)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("nearestExisting(%q) = %q, %v; want %q (error %v)", tt.path, got, err, tt.want, tt.wantErr)
		}
	}
}
