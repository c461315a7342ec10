package mgr

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sysbox-dev/sysbox/internal/ipc"
)

// startFdStore serves a store with a short grace on a temp socket.
func startFdStore(t *testing.T, grace time.Duration) (*fdStore, string) {
	t.Helper()
	s := newFdStore(grace)
	s.allow = func(uint32) bool { return true } // tests run as any user
	path := filepath.Join(t.TempDir(), "fdstore.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.serve(ctx, path) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		if n := s.count(); n != 0 {
			t.Errorf("%d fds still held after the store stopped", n)
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		var st unix.Stat_t
		if unix.Stat(path, &st) == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the store never listened")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return s, path
}

// dialStore connects as agent name.
func dialStore(t *testing.T, path, name string) int {
	t.Helper()
	c, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Connect(c, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	if err := ipc.SendFdMsg(c, ipc.FdMsg{Op: ipc.FdHello, Agent: name}, -1); err != nil {
		t.Fatal(err)
	}
	return c
}

func pipe(t *testing.T) (r, w int) {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	return p[0], p[1]
}

// take asks for the agent's fds and returns them by key (the caller
// closes them).
func take(t *testing.T, c int) map[string]int {
	t.Helper()
	if err := ipc.SendFdMsg(c, ipc.FdMsg{Op: ipc.FdTake}, -1); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for {
		m, fd, err := ipc.RecvFdMsg(c)
		if err != nil {
			t.Fatalf("take: %v", err)
		}
		if m.Op == ipc.FdEnd {
			return got
		}
		if m.Op != ipc.FdHeld || fd < 0 || string(m.State) != `{"k":"`+m.Key+`"}` {
			t.Fatalf("take: got %+v, fd %d", m, fd)
		}
		got[m.Key] = fd
	}
}

func keys(m map[string]int) []string {
	var out []string
	for k, fd := range m {
		out = append(out, k)
		unix.Close(fd)
	}
	slices.Sort(out)
	return out
}

func hold(t *testing.T, c int, key string, fd int) {
	t.Helper()
	if err := ipc.SendFdMsg(c, ipc.FdMsg{Op: ipc.FdHold, Key: key, State: []byte(`{"k":"` + key + `"}`)}, fd); err != nil {
		t.Fatal(err)
	}
}

// TestFdStore: an agent's fds come back to it (and not to another agent),
// ended ones go, a reconnect within the grace keeps them, and after the
// grace they are closed.
func TestFdStore(t *testing.T) {
	s, path := startFdStore(t, 300*time.Millisecond)
	a := dialStore(t, path, "/run/agent-a.sock")
	r1, w1 := pipe(t)
	r2, w2 := pipe(t)
	defer unix.Close(w1)
	hold(t, a, "c1/1", r1)
	hold(t, a, "c2/2", r2)
	unix.Close(r1)
	unix.Close(r2)

	got := take(t, a)
	// The fd that came back is the same pipe.
	if _, err := unix.Write(w1, []byte("x")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	if n, err := unix.Read(got["c1/1"], buf); n != 1 || err != nil {
		t.Errorf("read the returned fd: %d %v", n, err)
	}
	if k := keys(got); !slices.Equal(k, []string{"c1/1", "c2/2"}) {
		t.Errorf("took %v", k)
	}

	// An ended one (its writer gone: POLLHUP, as a listener whose filter
	// no task uses) is dropped.
	unix.Close(w2)
	if k := keys(take(t, a)); !slices.Equal(k, []string{"c1/1"}) {
		t.Errorf("after c2 ended, took %v", k)
	}

	// Another agent gets nothing of a's.
	b := dialStore(t, path, "/run/agent-b.sock")
	if k := keys(take(t, b)); len(k) != 0 {
		t.Errorf("agent b took %v", k)
	}
	unix.Close(b)

	// a goes and comes back within the grace: still held.
	unix.Close(a)
	time.Sleep(100 * time.Millisecond)
	a = dialStore(t, path, "/run/agent-a.sock")
	if k := keys(take(t, a)); !slices.Equal(k, []string{"c1/1"}) {
		t.Errorf("back within the grace, took %v", k)
	}
	// A hold under a known key replaces it.
	r3, w3 := pipe(t)
	defer unix.Close(w3)
	hold(t, a, "c1/1", r3)
	unix.Close(r3)
	if n := waitCount(s, 1); n != 1 {
		t.Errorf("%d held after a replacing hold, want 1", n)
	}
	// ...and what comes back under the key is the new pipe.
	got = take(t, a)
	if _, err := unix.Write(w3, []byte("y")); err != nil {
		t.Fatal(err)
	}
	_ = unix.SetNonblock(got["c1/1"], true)
	if n, err := unix.Read(got["c1/1"], buf); n != 1 || err != nil || buf[0] != 'y' {
		t.Errorf("after a replacing hold, the key gives back another fd: read %d %q %v", n, buf[:max(n, 0)], err)
	}
	unix.Close(got["c1/1"])

	// a goes for longer than the grace: closed.
	unix.Close(a)
	if n := waitCount(s, 0); n != 0 {
		t.Errorf("%d still held after the grace", n)
	}
	a = dialStore(t, path, "/run/agent-a.sock")
	if k := keys(take(t, a)); len(k) != 0 {
		t.Errorf("after the grace, took %v", k)
	}
	unix.Close(a)
}

// TestFdStoreBadPeers: a connection that does not say hello, or holds
// without an fd, is refused without harm to the store.
func TestFdStoreBadPeers(t *testing.T) {
	s, path := startFdStore(t, time.Second)
	c, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Connect(c, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	if err := ipc.SendFdMsg(c, ipc.FdMsg{Op: ipc.FdTake}, -1); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ipc.RecvFdMsg(c); err != ipc.ErrFdStoreEOF {
		t.Errorf("no hello: got %v, want the connection closed", err)
	}
	unix.Close(c)
	a := dialStore(t, path, "/run/agent-a.sock")
	if err := ipc.SendFdMsg(a, ipc.FdMsg{Op: ipc.FdHold, Key: "c1/1"}, -1); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.Write(a, []byte("not json")); err != nil {
		t.Fatal(err)
	}
	c2 := dialStore(t, path, "/run/agent-a.sock")
	if k := keys(take(t, c2)); len(k) != 0 || s.count() != 0 {
		t.Errorf("took %v after bad holds", k)
	}
	unix.Close(a)
	unix.Close(c2)
}

// waitCount waits up to 2 s for the store to hold want fds.
func waitCount(s *fdStore, want int) int {
	deadline := time.Now().Add(2 * time.Second)
	for {
		n := s.count()
		if n == want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFdStoreNotStolen: a second manager does not take over (or remove,
// when it stops) a store another one serves.
func TestFdStoreNotStolen(t *testing.T) {
	_, path := startFdStore(t, time.Second)
	other := newFdStore(time.Second)
	if err := other.serve(context.Background(), path); err == nil {
		t.Fatal("a second store served the same socket")
	}
	c := dialStore(t, path, "/run/agent-a.sock")
	if k := keys(take(t, c)); len(k) != 0 {
		t.Errorf("took %v", k)
	}
	unix.Close(c)
}
