package probe

import (
	"errors"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestSeccompResults(t *testing.T) {
	ok := seccompFacts{libVersion: "2.5.4", libAPI: 6, addfdErr: unix.ENOENT}
	with := func(f func(*seccompFacts)) seccompFacts { s := ok; f(&s); return s }
	tests := []struct {
		name                  string
		f                     seccompFacts
		notify, addfd, wakeup Status
	}{
		{"this machine", ok, OK, OK, OK},
		{"kernel 5.19..6.5", with(func(s *seccompFacts) { s.syncWakeErr = unix.EINVAL }), OK, OK, Warn},
		{"kernel before 5.9", with(func(s *seccompFacts) { s.addfdErr, s.syncWakeErr = unix.EINVAL, unix.EINVAL }), OK, Fail, Warn},
		{"old libseccomp", with(func(s *seccompFacts) { s.libVersion, s.libAPI = "2.4.4", 3 }), Fail, OK, OK},
		{"no libseccomp", with(func(s *seccompFacts) { s.libErr = errors.New("built without libseccomp") }), Fail, OK, OK},
		{"no notification at all", with(func(s *seccompFacts) { s.notifyErr, s.listenerErr = unix.EOPNOTSUPP, unix.EOPNOTSUPP }), Fail, Warn, Warn},
		{"listener taken (inside a sandbox)", with(func(s *seccompFacts) { s.listenerErr = unix.EBUSY }), OK, Warn, Warn},
		{"odd addfd answer", with(func(s *seccompFacts) { s.addfdErr = unix.EPERM }), OK, Warn, OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := seccompResults(tt.f)
			if len(rs) != 3 {
				t.Fatalf("got %d results, want 3", len(rs))
			}
			checkResult(t, rs[0], "seccomp-notify", tt.notify)
			checkResult(t, rs[1], "seccomp-addfd", tt.addfd)
			checkResult(t, rs[2], "seccomp-wakeup", tt.wakeup)
		})
	}
}

// The listener probe runs on a throwaway thread and needs no root; after it
// this process must carry no filter.
func TestProbeListener(t *testing.T) {
	listener, addfd, sync := probeListener()
	if errors.Is(listener, unix.EBUSY) || errors.Is(listener, unix.EINVAL) {
		t.Skipf("no seccomp listener here (running in a sandbox?): %v", listener)
	}
	if listener != nil {
		t.Fatalf("listener: %v", listener)
	}
	if !errors.Is(addfd, unix.ENOENT) && !errors.Is(addfd, unix.EINVAL) {
		t.Errorf("ADDFD answered %v, want ENOENT (supported) or EINVAL (not)", addfd)
	}
	h := readHost()
	if h.kerr == nil && h.kernel.AtLeast(6, 6) && sync != nil {
		t.Errorf("kernel %s but SYNC_WAKE_UP answered %v", h.kernel, sync)
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(status)) {
		if strings.HasPrefix(line, "Seccomp:") && strings.TrimSpace(strings.TrimPrefix(line, "Seccomp:")) != "0" {
			// The main thread must be untouched (it reports for the process).
			t.Errorf("main thread carries a seccomp filter: %s", line)
		}
	}
}

func TestLibseccompInfo(t *testing.T) {
	v, api, err := libseccompInfo()
	if err != nil {
		t.Skipf("built without libseccomp: %v", err)
	}
	if v == "" || v == "0.0.0" || api == 0 {
		t.Errorf("libseccomp %q API level %d", v, api)
	}
}
