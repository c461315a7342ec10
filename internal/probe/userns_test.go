package probe

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

func TestUsernsResult(t *testing.T) {
	ok := usernsFacts{max: 96365, unprivClone: -1, apparmorRestrict: -1, created: "uid_map 0 1000000 65536"}
	with := func(f func(*usernsFacts)) usernsFacts { u := ok; f(&u); return u }
	tests := []struct {
		name      string
		f         usernsFacts
		want      Status
		detailHas string
		remedyHas string
	}{
		{"this machine: mainline kernel", ok, OK, "user.max_user_namespaces=96365; created one (uid_map 0 1000000 65536)", ""},
		{"Debian sysctl on", with(func(u *usernsFacts) { u.unprivClone = 1 }), OK, "kernel.unprivileged_userns_clone=1", ""},
		{"Debian sysctl off", with(func(u *usernsFacts) { u.unprivClone = 0 }), Warn, "nested user namespaces", "unprivileged_userns_clone=1"},
		{"Ubuntu AppArmor restriction", with(func(u *usernsFacts) { u.apparmorRestrict = 1 }), Warn, "AppArmor", "apparmor_restrict_unprivileged_userns=0"},
		{"disabled", with(func(u *usernsFacts) { u.max, u.created = 0, "" }), Fail, "disabled", "max_user_namespaces"},
		{"no CONFIG_USER_NS", with(func(u *usernsFacts) { u.maxErr = os.ErrNotExist }), Fail, "no user namespace support", "CONFIG_USER_NS"},
		{"creation refused", with(func(u *usernsFacts) { u.createErr = errors.New("operation not permitted") }), Fail, "creating one failed", "LSM"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := usernsResult(tt.f)
			checkResult(t, r, "userns", tt.want)
			if !strings.Contains(r.Detail, tt.detailHas) {
				t.Errorf("detail %q lacks %q", r.Detail, tt.detailHas)
			}
			if !strings.Contains(r.Remedy, tt.remedyHas) {
				t.Errorf("remedy %q lacks %q", r.Remedy, tt.remedyHas)
			}
		})
	}
}

// newUserns works without root too: the caller's own ids map to root.
func TestNewUserns(t *testing.T) {
	root := os.Geteuid() == 0
	uids, gids := probeMaps(root)
	u, err := newUserns(uids, gids)
	if err != nil {
		if max, _ := readIntFile("/proc/sys/user/max_user_namespaces"); max == 0 || !root {
			t.Skipf("this host does not let this user create user namespaces: %v", err)
		}
		t.Fatal(err)
	}
	pid := u.cmd.Process.Pid
	m, err := u.uidMap()
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("0 %d %d", uids[0].HostID, uids[0].Size)
	if m != want {
		t.Errorf("uid_map = %q, want %q", m, want)
	}
	self, err := os.Readlink("/proc/self/ns/user")
	if err != nil {
		t.Fatal(err)
	}
	child, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/user", pid))
	if err != nil {
		t.Fatal(err)
	}
	if self == child {
		t.Errorf("child shares our user namespace %s", self)
	}
	u.Close()
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
		t.Errorf("process %d still exists after Close", pid)
	}
}
