package subid

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []Entry
		wantErr string
	}{
		{name: "empty", in: "", want: nil},
		{
			name: "entries, comments and blanks",
			in:   "# users\nalice:100000:65536\n\n  bob:165536:65536  \n1001:231072:10\n",
			want: []Entry{
				{Name: "alice", Start: 100000, Count: 65536, Line: 2},
				{Name: "bob", Start: 165536, Count: 65536, Line: 4},
				{Name: "1001", Start: 231072, Count: 10, Line: 5},
			},
		},
		{name: "no final newline", in: "a:1:2", want: []Entry{{Name: "a", Start: 1, Count: 2, Line: 1}}},
		{name: "two fields", in: "a:1:2\nb:100000\n", wantErr: "f line 2: 2 fields"},
		{name: "four fields", in: "a:1:2:3\n", wantErr: "f line 1: 4 fields"},
		{name: "bad start", in: "\n\nsysbox:x:2\n", wantErr: `f line 3: bad start "x"`},
		{name: "negative count", in: "sysbox:1:-2\n", wantErr: `f line 1: bad count "-2"`},
		{name: "zero count", in: "sysbox:1:0\n", wantErr: "f line 1: count is 0"},
		{name: "empty name", in: ":1:2\n", wantErr: "f line 1: empty name"},
		{name: "past the last id", in: "a:4294967295:1\n", wantErr: "f line 1: range"},
		{name: "too big for 32 bits", in: "a:4294967296:1\n", wantErr: "f line 1: bad start"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tt.in), "f")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestFindHole(t *testing.T) {
	e := func(start, count uint64) Entry { return Entry{Name: "x", Start: start, Count: count} }
	tests := []struct {
		name   string
		lists  [][]Entry
		min    uint64
		limit  uint64
		count  uint64
		want   uint64
		wantOK bool
	}{
		{name: "empty files", min: 100000, limit: Limit, count: 1000, want: 100000, wantOK: true},
		{name: "below min ignored", lists: [][]Entry{{e(0, 100000)}}, min: 100000, limit: Limit, count: 10, want: 100000, wantOK: true},
		{name: "after an entry", lists: [][]Entry{{e(100000, 65536)}}, min: 100000, limit: Limit, count: 10, want: 165536, wantOK: true},
		{name: "hole between entries fits exactly", lists: [][]Entry{{e(100000, 10), e(120, 5), e(100020, 10)}}, min: 100000, limit: Limit, count: 10, want: 100010, wantOK: true},
		{name: "hole too small", lists: [][]Entry{{e(100000, 10), e(100015, 10)}}, min: 100000, limit: Limit, count: 10, want: 100025, wantOK: true},
		{name: "free in both files", lists: [][]Entry{{e(100000, 10)}, {e(100010, 10)}}, min: 100000, limit: Limit, count: 5, want: 100020, wantOK: true},
		{name: "unsorted and overlapping", lists: [][]Entry{{e(100050, 50), e(100000, 80)}, {e(100090, 20)}}, min: 100000, limit: Limit, count: 5, want: 100110, wantOK: true},
		{name: "entry straddling min", lists: [][]Entry{{e(99990, 20)}}, min: 100000, limit: Limit, count: 5, want: 100010, wantOK: true},
		{name: "no room below limit", lists: [][]Entry{{e(100000, 100)}}, min: 100000, limit: 100150, count: 51, wantOK: false},
		{name: "just fits below limit", lists: [][]Entry{{e(100000, 100)}}, min: 100000, limit: 100150, count: 50, want: 100100, wantOK: true},
		{name: "huge range", lists: [][]Entry{{e(100000, 65536)}}, min: 100000, limit: Limit, count: 268435456, want: 165536, wantOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := FindHole(tt.lists, tt.min, tt.limit, tt.count)
			if ok != tt.wantOK || (ok && got != tt.want) {
				t.Fatalf("got %d, %v; want %d, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestParseLoginDefs(t *testing.T) {
	tests := []struct {
		in   string
		want LoginDefs
	}{
		{"", LoginDefs{DefaultMin, DefaultMin}},
		{"SUB_UID_MIN 200000\nSUB_GID_MIN\t\t300000\n", LoginDefs{200000, 300000}},
		{"# SUB_UID_MIN 5\nSUB_UID_MIN junk\nUID_MIN 1000\n", LoginDefs{DefaultMin, DefaultMin}},
	}
	for _, tt := range tests {
		if got := ParseLoginDefs(strings.NewReader(tt.in)); got != tt.want {
			t.Errorf("ParseLoginDefs(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestPlan(t *testing.T) {
	defs := LoginDefs{UIDMin: 100000, GIDMin: 100000}
	ent := func(name string, start, count uint64) Entry { return Entry{Name: name, Start: start, Count: count} }
	tests := []struct {
		name                string
		uids, gids          []Entry
		wantUse, wantU, wGE Entry
		wantErr             string
	}{
		{
			name:    "both present and equal",
			uids:    []Entry{ent("sysbox", 200000, 1000)},
			gids:    []Entry{ent("sysbox", 200000, 1000)},
			wantUse: ent("sysbox", 200000, 1000),
		},
		{
			name:    "both present, overlap is used",
			uids:    []Entry{ent("sysbox", 200000, 1000)},
			gids:    []Entry{ent("sysbox", 200500, 1000)},
			wantUse: ent("sysbox", 200500, 500),
		},
		{
			name:    "both present, disjoint",
			uids:    []Entry{ent("sysbox", 200000, 1000)},
			gids:    []Entry{ent("sysbox", 300000, 1000)},
			wantErr: "share no ids",
		},
		{
			name:    "uid only: same range added to gid",
			uids:    []Entry{ent("sysbox", 200000, 1000)},
			gids:    []Entry{ent("alice", 100000, 65536)},
			wantUse: ent("sysbox", 200000, 1000),
			wGE:     ent("sysbox", 200000, 1000),
		},
		{
			name:    "uid only, taken in gid",
			uids:    []Entry{ent("sysbox", 200000, 1000)},
			gids:    []Entry{ent("alice", 200500, 10)},
			wantErr: "taken there by alice",
		},
		{
			name:    "gid only: same range added to uid",
			gids:    []Entry{ent("sysbox", 200000, 1000)},
			wantUse: ent("sysbox", 200000, 1000),
			wantU:   ent("sysbox", 200000, 1000),
		},
		{
			name:    "none: hole free in both",
			uids:    []Entry{ent("alice", 100000, 65536)},
			gids:    []Entry{ent("bob", 165536, 65536)},
			wantUse: ent("sysbox", 231072, 5000),
			wantU:   ent("sysbox", 231072, 5000),
			wGE:     ent("sysbox", 231072, 5000),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			use, addU, addG, err := Plan(tt.uids, tt.gids, defs, "sysbox", 5000)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if use != tt.wantUse || addU != tt.wantU || addG != tt.wGE {
				t.Fatalf("got use %+v addU %+v addG %+v; want %+v %+v %+v", use, addU, addG, tt.wantUse, tt.wantU, tt.wGE)
			}
		})
	}
}

func TestEnsure(t *testing.T) {
	dir := t.TempDir()
	f := Files{
		SubUID:    filepath.Join(dir, "subuid"),
		SubGID:    filepath.Join(dir, "subgid"),
		LoginDefs: filepath.Join(dir, "login.defs"),
	}
	write := func(p, s string, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	write(f.SubUID, "alice:100000:65536", 0o640) // no final newline
	write(f.SubGID, "alice:100000:65536\nbob:165536:65536\n", 0o644)
	write(f.LoginDefs, "SUB_UID_MIN 100000\nSUB_GID_MIN 100000\n", 0o644)

	got, err := Ensure(f, "sysbox", 268435456)
	if err != nil {
		t.Fatal(err)
	}
	want := Entry{Name: "sysbox", Start: 231072, Count: 268435456}
	if got != want {
		t.Fatalf("Ensure = %+v, want %+v", got, want)
	}
	for p, content := range map[string]string{
		f.SubUID: "alice:100000:65536\nsysbox:231072:268435456\n",
		f.SubGID: "alice:100000:65536\nbob:165536:65536\nsysbox:231072:268435456\n",
	} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != content {
			t.Errorf("%s = %q, want %q", p, b, content)
		}
	}
	if st, _ := os.Stat(f.SubUID); st.Mode().Perm() != 0o640 {
		t.Errorf("subuid mode %v, want 0640 kept", st.Mode().Perm())
	}
	// A second call finds the entries and writes nothing.
	again, err := Ensure(f, "sysbox", 65536)
	if err != nil || again != want {
		t.Fatalf("second Ensure = %+v, %v", again, err)
	}
	if b, _ := os.ReadFile(f.SubUID); strings.Count(string(b), "sysbox") != 1 {
		t.Fatalf("entry added twice: %q", b)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, ".sub*")); len(m) != 0 {
		t.Fatalf("temporary files left: %v", m)
	}
	if _, err := os.Stat(f.SubUID + ".lock"); err == nil {
		t.Fatal("lock file left behind")
	}
}

func TestEnsureMissingFilesAndBadLine(t *testing.T) {
	dir := t.TempDir()
	f := Files{SubUID: filepath.Join(dir, "subuid"), SubGID: filepath.Join(dir, "subgid"), LoginDefs: filepath.Join(dir, "nope")}
	got, err := Ensure(f, "sysbox", 65536)
	if err != nil {
		t.Fatal(err)
	}
	if got.Start != DefaultMin || got.Count != 65536 {
		t.Fatalf("got %+v", got)
	}
	if err := os.WriteFile(f.SubGID, []byte("sysbox:100000:65536\nbroken line\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Ensure(f, "sysbox", 65536)
	if err == nil || !strings.Contains(err.Error(), f.SubGID+" line 2") {
		t.Fatalf("err = %v, want the file and line 2", err)
	}
}

func TestStaleLock(t *testing.T) {
	dir := t.TempDir()
	f := Files{SubUID: filepath.Join(dir, "subuid"), SubGID: filepath.Join(dir, "subgid")}
	// pid 0 is never a live owner: the lock is stale and taken over.
	if err := os.WriteFile(f.SubUID+".lock", []byte("0"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Ensure(f, "sysbox", 65536); err != nil {
		t.Fatal(err)
	}
}
