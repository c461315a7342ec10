package probe

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/sysbox-dev/sysbox/internal/mountinfo"
)

func TestParseMountinfo(t *testing.T) {
	const text = `26 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 shared:7 - ext3 /dev/root rw,errors=continue
40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
41 26 0:40 / /mnt/with\040space rw - tmpfs my\134src rw,size=4k
42 26 0:41 / /mnt/nosuper rw - fuse.sshfs host:
`
	ms, err := mountinfo.Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 5 {
		t.Fatalf("got %d mounts, want 5", len(ms))
	}
	want := []mountinfo.Entry{
		{ID: 26, Parent: 1, Dev: "254:0", Root: "/", Point: "/", Options: "rw,relatime", FSType: "ext4", Source: "/dev/vda", Super: "rw,discard"},
		{ID: 36, Parent: 35, Dev: "98:0", Root: "/mnt1", Point: "/mnt2", Options: "rw,noatime", FSType: "ext3", Source: "/dev/root", Super: "rw,errors=continue"},
		{ID: 40, Parent: 30, Dev: "0:37", Root: "/", Point: "/sys/fs/cgroup/unified", Options: "rw,relatime", FSType: "cgroup2", Source: "cgroup2", Super: "rw"},
		{ID: 41, Parent: 26, Dev: "0:40", Root: "/", Point: "/mnt/with space", Options: "rw", FSType: "tmpfs", Source: `my\src`, Super: "rw,size=4k"},
		{ID: 42, Parent: 26, Dev: "0:41", Root: "/", Point: "/mnt/nosuper", Options: "rw", FSType: "fuse.sshfs", Source: "host:"},
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
		if _, err := mountinfo.Parse([]byte(text)); err == nil {
			t.Errorf("mountinfo.Parse(%q) succeeded, want an error", text)
		}
	}
}

func TestMountFor(t *testing.T) {
	ms := []mountinfo.Entry{
		{ID: 1, Point: "/", FSType: "ext4"},
		{ID: 2, Point: "/var", FSType: "xfs"},
		{ID: 3, Point: "/var/lib/docker", FSType: "ext4"},
		{ID: 4, Point: "/var/lib/sysbox", FSType: "btrfs"},
		{ID: 5, Point: "/var/lib/sysbox", FSType: "tmpfs"}, // stacked over 4
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
		if !ok || m.ID != tt.want {
			t.Errorf("mountFor(%q) = %d (found %v), want %d", tt.path, m.ID, ok, tt.want)
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
