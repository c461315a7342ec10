package mgr

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/sysbox-dev/sysbox/internal/ipc"
	"github.com/sysbox-dev/sysbox/internal/mountinfo"
)

func corruptRecord(path string) error {
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketContainers).Put([]byte("x"), []byte("{not json"))
	})
}

func TestParseMountinfo(t *testing.T) {
	in := `22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
100 22 0:50 / /var/lib/docker/overlay2/abc/merged rw,relatime - overlay overlay rw,lowerdir=/l1:/l2,upperdir=/var/lib/docker/overlay2/abc/diff,workdir=/var/lib/docker/overlay2/abc/work
101 22 0:51 / /run/with\040space rw - tmpfs tmpfs rw
102 22 0:52 / /odd rw shared:5 master:3 - overlay overlay rw,upperdir=/up\,comma,workdir=/w
`
	ms, err := mountinfo.Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	// What the manager uses of them.
	type used struct{ Point, FSType, Super string }
	got := make([]used, len(ms))
	for i, m := range ms {
		got[i] = used{m.Point, m.FSType, m.Super}
	}
	want := []used{
		{Point: "/", FSType: "ext4", Super: "rw"},
		{Point: "/var/lib/docker/overlay2/abc/merged", FSType: "overlay", Super: "rw,lowerdir=/l1:/l2,upperdir=/var/lib/docker/overlay2/abc/diff,workdir=/var/lib/docker/overlay2/abc/work"},
		{Point: "/run/with space", FSType: "tmpfs", Super: "rw"},
		{Point: "/odd", FSType: "overlay", Super: `rw,upperdir=/up\,comma,workdir=/w`},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v", got)
	}
	tests := []struct{ point, want string }{
		{"/var/lib/docker/overlay2/abc/merged", "/var/lib/docker/overlay2/abc/diff"},
		{"/odd", "/up,comma"},
		{"/run/with space", ""},
		{"/nope", ""},
	}
	for _, tt := range tests {
		if got := overlayUpper(ms, tt.point); got != tt.want {
			t.Errorf("overlayUpper(%s) = %q, want %q", tt.point, got, tt.want)
		}
	}
	if got := mountsUnder(append(ms, mountinfo.Entry{Point: "/run/with space/a/b"}), "/run/with space"); !reflect.DeepEqual(got, []string{"/run/with space/a/b", "/run/with space"}) {
		t.Errorf("mountsUnder = %v", got)
	}
}

func TestUserMounted(t *testing.T) {
	tests := []struct {
		dest    string
		mounted []string
		want    bool
	}{
		{"/var/lib/docker", nil, false},
		{"/var/lib/docker", []string{"/proc", "/sys", "/etc/hosts"}, false},
		{"/var/lib/docker", []string{"/var/lib/docker"}, true},
		{"/var/lib/docker", []string{"/var/lib/docker/"}, true},
		{"/var/lib/docker", []string{"/var/lib"}, true},
		{"/var/lib/docker", []string{"/var/lib/docker/volumes"}, false},
		{"/var/lib/docker", []string{"/var/lib/dock"}, false},
		{"/var/lib/rancher/k3s", []string{"/var/lib/rancher"}, true},
	}
	for _, tt := range tests {
		if got := userMounted(tt.dest, tt.mounted); got != tt.want {
			t.Errorf("userMounted(%s, %v) = %v", tt.dest, tt.mounted, got)
		}
	}
}

func TestValidateID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"4f3c2a1b0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b", true},
		{"my-ctr_1.2", true},
		{"", false},
		{"a/b", false},
		{"..", false},
		{".hidden", false},
		{"nul\x00", false},
		{"tab\there", false},
		{string(make([]byte, 256)), false},
	}
	for _, tt := range tests {
		if err := validateID(tt.id); (err == nil) != tt.ok {
			t.Errorf("validateID(%q) = %v", tt.id, err)
		}
	}
}

func TestKernelMounts(t *testing.T) {
	root := t.TempDir()
	const rel = "6.1.0-18-amd64"
	for _, d := range []string{
		"usr/lib/modules/" + rel,
		"usr/src/linux-headers-" + rel,
		"usr/src/linux-headers-6.1.0-18-common/include",
	} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Merged /usr, and Debian's arch headers linking into -common.
	mustRun(t, func() error { return os.Symlink("usr/lib", filepath.Join(root, "lib")) })
	mustRun(t, func() error {
		return os.Symlink("../linux-headers-6.1.0-18-common/include", filepath.Join(root, "usr/src/linux-headers-"+rel, "include"))
	})
	got := kernelMountsIn(root, rel)
	want := []ipc.MgrMount{
		{Source: filepath.Join(root, "usr/lib/modules", rel), Dest: "/lib/modules/" + rel, ReadOnly: true},
		{Source: filepath.Join(root, "usr/src/linux-headers-"+rel), Dest: "/usr/src/linux-headers-" + rel, ReadOnly: true},
		{Source: filepath.Join(root, "usr/src/linux-headers-6.1.0-18-common"), Dest: "/usr/src/linux-headers-6.1.0-18-common", ReadOnly: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	if got := kernelMountsIn(t.TempDir(), rel); len(got) != 0 {
		t.Fatalf("nothing on the host, got %+v", got)
	}
}
