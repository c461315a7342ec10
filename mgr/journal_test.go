package mgr

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sysbox-dev/sysbox/internal/ipc"
)

// change is one journal record as a test writes it.
type change struct {
	put *record
	del string
}

func put(id string, base uint32) change {
	return change{put: &record{ID: id, Base: base, Size: BlockSize, Running: true}}
}

func del(id string) change { return change{del: id} }

// frame is c as the store writes it, numbered seq.
func frame(seq uint64, c change) []byte {
	var f []byte
	if c.put != nil {
		v, err := json.Marshal(c.put)
		if err != nil {
			panic(err)
		}
		f = newFrame(opPut, v)
	} else {
		f = newFrame(opDel, []byte(c.del))
	}
	sealFrame(f, seq)
	return f
}

// frames numbers changes from first on.
func frames(first uint64, cs ...change) [][]byte {
	var out [][]byte
	for i, c := range cs {
		out = append(out, frame(first+uint64(i), c))
	}
	return out
}

func writeJournal(t testing.TB, db string, i int, data []byte) {
	t.Helper()
	mustRun(t, func() error { return os.WriteFile(journalPath(db, i), data, 0o600) })
}

// newDB makes a database that holds cs (numbered from 1) and an empty journal.
func newDB(t testing.TB, cs ...change) string {
	t.Helper()
	db := filepath.Join(t.TempDir(), "mgr.db")
	s, _, _, err := openStore(db)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.put != nil {
			err = s.put(*c.put)
		} else {
			err = s.del(c.del)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	mustRun(t, s.close)
	if got := dbSeq(t, db); got != uint64(len(cs)) {
		t.Fatalf("new database holds journal seq %d, want %d", got, len(cs))
	}
	return db
}

// copyDB copies a closed database (without its journal) to a new dir.
func copyDB(t testing.TB, db string) string {
	t.Helper()
	data, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "mgr.db")
	mustRun(t, func() error { return os.WriteFile(out, data, 0o600) })
	return out
}

func dbSeq(t testing.TB, db string) uint64 {
	t.Helper()
	bdb, err := bolt.Open(db, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	var seq uint64
	mustRun(t, func() error {
		return bdb.View(func(tx *bolt.Tx) error {
			if v := tx.Bucket(bucketMeta).Get(keyJournalSeq); len(v) == 8 {
				seq = binary.BigEndian.Uint64(v)
			}
			return nil
		})
	})
	return seq
}

// reopen opens db (replaying its journal), closes it and says what it held.
func reopen(t testing.TB, db string) map[string]record {
	t.Helper()
	s, recs, _, err := openStore(db)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if fi, err := os.Stat(journalPath(db, i)); err != nil || fi.Size() != 0 {
			t.Errorf("journal %d after the replay: %v, %d bytes; want it empty", i, err, fi.Size())
		}
	}
	mustRun(t, s.close)
	out := map[string]record{}
	for _, r := range recs {
		out[r.ID] = r
	}
	return out
}

// ranges is a state as "id=base" words, sorted: what the tests compare.
func ranges(m map[string]record) string {
	var out []string
	for id, r := range m {
		out = append(out, fmt.Sprintf("%s=%d", id, r.Base))
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

// captureLog sends slog's output to a buffer until the test ends.
func captureLog(t testing.TB) *syncBuffer {
	t.Helper()
	old := slog.Default()
	buf := &syncBuffer{}
	slog.SetDefault(slog.New(slog.NewTextHandler(buf, nil)))
	t.Cleanup(func() { slog.SetDefault(old) })
	return buf
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestParseJournal(t *testing.T) {
	fs := frames(1, put("a", 100000), del("b"), put("c", 200000))
	data := bytes.Join(fs, nil)
	recs, end := parseJournal(data)
	if len(recs) != 3 || end != len(data) {
		t.Fatalf("whole journal: %d records, end %d of %d", len(recs), end, len(data))
	}
	if recs[0].seq != 1 || recs[0].del || !strings.Contains(string(recs[0].val), `"id":"a"`) ||
		recs[1].seq != 2 || !recs[1].del || recs[1].id != "b" || recs[2].seq != 3 {
		t.Fatalf("records: %+v", recs)
	}
	// Torn: the last record cut anywhere.
	last := len(data) - len(fs[2])
	for cut := last; cut < len(data); cut++ {
		if recs, end := parseJournal(data[:cut]); len(recs) != 2 || end != last {
			t.Fatalf("cut at %d: %d records, end %d", cut, len(recs), end)
		}
	}
	// Damaged: any byte of the second record changed.
	for i := len(fs[0]); i < len(fs[0])+len(fs[1]); i++ {
		d := slices.Clone(data)
		d[i] ^= 0x41
		if recs, end := parseJournal(d); len(recs) != 1 || end != len(fs[0]) {
			t.Fatalf("byte %d changed: %d records, end %d", i, len(recs), end)
		}
	}
	// Zeros where a power loss left unwritten blocks.
	if recs, end := parseJournal(append(slices.Clone(data), make([]byte, 4096)...)); len(recs) != 3 || end != len(data) {
		t.Fatalf("zero tail: %d records, end %d", len(recs), end)
	}
	// Sequence number 0 and unknown operations are not records.
	for _, bad := range [][]byte{frame(0, put("a", 1)), func() []byte {
		f := newFrame('X', []byte("a"))
		sealFrame(f, 1)
		return f
	}()} {
		if recs, end := parseJournal(bad); len(recs) != 0 || end != 0 {
			t.Fatalf("%q read as %+v", bad, recs)
		}
	}
}

// FuzzParseJournal: whatever the bytes, parsing does not panic, and what it
// returns is exactly the records it read, written back.
func FuzzParseJournal(f *testing.F) {
	f.Add(bytes.Join(frames(1, put("a", 100000), del("b")), nil))
	f.Add([]byte(journalMagic + "\xff\xff\xff\xff"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, end := parseJournal(data)
		if end < 0 || end > len(data) {
			t.Fatalf("end %d of %d", end, len(data))
		}
		var again []byte
		for _, r := range recs {
			var fr []byte
			if r.del {
				fr = newFrame(opDel, []byte(r.id))
			} else {
				fr = newFrame(opPut, r.val)
			}
			sealFrame(fr, r.seq)
			again = append(again, fr...)
		}
		if !bytes.Equal(again, data[:end]) {
			t.Fatalf("records %+v do not write back as the %d bytes read", recs, end)
		}
	})
}

func TestJournalRun(t *testing.T) {
	rec := func(seq uint64) jrec { return jrec{seq: seq, id: "x", val: []byte(strconv.FormatUint(seq, 10))} }
	tests := []struct {
		name    string
		applied uint64
		seqs    []uint64
		want    []uint64
		dropped int
	}{
		{"empty", 5, nil, nil, 0},
		{"in order", 0, []uint64{1, 2, 3}, []uint64{1, 2, 3}, 0},
		{"two files, any order", 2, []uint64{5, 6, 3, 4}, []uint64{3, 4, 5, 6}, 0},
		{"already in the database", 4, []uint64{1, 2, 3, 4, 5}, []uint64{5}, 0},
		{"all in the database", 9, []uint64{3, 4}, nil, 0},
		{"gap", 2, []uint64{3, 4, 6, 7}, []uint64{3, 4}, 2},
		{"first missing (another database's journal)", 0, []uint64{100, 101}, nil, 2},
		{"read twice", 0, []uint64{1, 2, 2, 3}, []uint64{1, 2, 3}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var in []jrec
			for _, s := range tt.seqs {
				in = append(in, rec(s))
			}
			run, dropped := journalRun(in, tt.applied)
			var got []uint64
			for _, r := range run {
				got = append(got, r.seq)
			}
			if !slices.Equal(got, tt.want) || dropped != tt.dropped {
				t.Fatalf("run %v dropped %d, want %v dropped %d", got, dropped, tt.want, tt.dropped)
			}
		})
	}
	// One number, two different changes: the run stops before the second.
	other := rec(2)
	other.val = []byte("other")
	if run, dropped := journalRun([]jrec{rec(1), rec(2), other, rec(3)}, 0); len(run) != 2 || dropped != 2 {
		t.Fatalf("conflicting records: run %+v dropped %d", run, dropped)
	}
}

func TestJournalReplay(t *testing.T) {
	db := newDB(t, put("a", 100000), put("b", 200000))
	b2 := put("b", 200000)
	b2.put.Running = false
	// File 1 still holds a record the database has (its emptying was lost);
	// file 0 took over after it.
	writeJournal(t, db, 1, bytes.Join(append(frames(2, put("b", 200000)), frames(3, put("c", 300000), del("a"))...), nil))
	writeJournal(t, db, 0, frame(5, b2))
	got := reopen(t, db)
	if ranges(got) != "b=200000 c=300000" || got["b"].Running {
		t.Fatalf("after replay: %+v", got)
	}
	if seq := dbSeq(t, db); seq != 5 {
		t.Fatalf("database holds seq %d, want 5", seq)
	}
	// And it is in bbolt now: a second open has no journal to read.
	if again := reopen(t, db); ranges(again) != ranges(got) {
		t.Fatalf("second open: %s, want %s", ranges(again), ranges(got))
	}
}

func TestJournalIdempotent(t *testing.T) {
	base := newDB(t, put("a", 100000), put("b", 200000))
	journal := bytes.Join(frames(3, put("c", 300000), del("a"), put("a", 400000), del("b")), nil)
	db := copyDB(t, base)
	writeJournal(t, db, 0, journal)
	want := reopen(t, db)
	if ranges(want) != "a=400000 c=300000" {
		t.Fatalf("after replay: %s", ranges(want))
	}
	// The emptying of the journal was lost (a power loss): read again, the
	// records are skipped by their number.
	writeJournal(t, db, 0, journal)
	if got := reopen(t, db); ranges(got) != ranges(want) {
		t.Fatalf("replayed twice: %s, want %s", ranges(got), ranges(want))
	}
	// Even applied again over their own effect, they leave the same state.
	bdb, err := bolt.Open(db, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustRun(t, func() error {
		return bdb.Update(func(tx *bolt.Tx) error {
			var seq [8]byte
			binary.BigEndian.PutUint64(seq[:], 2)
			return tx.Bucket(bucketMeta).Put(keyJournalSeq, seq[:])
		})
	})
	mustRun(t, bdb.Close)
	writeJournal(t, db, 1, journal)
	if got := reopen(t, db); ranges(got) != ranges(want) {
		t.Fatalf("applied over its own effect: %s, want %s", ranges(got), ranges(want))
	}
}

func TestJournalTornTail(t *testing.T) {
	logs := captureLog(t)
	base := newDB(t, put("a", 100000))
	fs := frames(2, put("b", 200000), del("a"), put("c", 100000))
	data := bytes.Join(fs, nil)
	last := len(data) - len(fs[2])
	for cut := last; cut < len(data); cut += 7 {
		db := copyDB(t, base)
		writeJournal(t, db, 0, data[:cut])
		if got := reopen(t, db); ranges(got) != "b=200000" {
			t.Fatalf("cut at %d: %s", cut, ranges(got))
		}
	}
	if !strings.Contains(logs.String(), "torn or damaged tail") {
		t.Fatalf("nothing logged:\n%s", logs)
	}
}

func TestJournalBadCRC(t *testing.T) {
	logs := captureLog(t)
	base := newDB(t, put("a", 100000))
	fs := frames(2, put("b", 200000), del("a"), put("c", 100000), put("d", 300000))
	// The release of a's range is damaged: c, which took that range, and
	// everything after must not be applied.
	fs[1][len(fs[1])-1] ^= 1
	db := copyDB(t, base)
	writeJournal(t, db, 0, bytes.Join(fs[:2], nil))
	writeJournal(t, db, 1, bytes.Join(fs[2:], nil))
	if got := reopen(t, db); ranges(got) != "a=100000 b=200000" {
		t.Fatalf("after a bad record: %s", ranges(got))
	}
	if l := logs.String(); !strings.Contains(l, "torn or damaged tail") || !strings.Contains(l, "missing_seq=3") {
		t.Fatalf("log:\n%s", l)
	}
}

// TestJournalOtherDatabase: the database was moved aside and a new one
// starts; the journal of the old one does not follow it and is not applied.
func TestJournalOtherDatabase(t *testing.T) {
	logs := captureLog(t)
	db := filepath.Join(t.TempDir(), "mgr.db")
	writeJournal(t, db, 0, bytes.Join(frames(500, put("a", 100000)), nil))
	if got := reopen(t, db); len(got) != 0 {
		t.Fatalf("a new database took %s from a journal it never had", ranges(got))
	}
	if !strings.Contains(logs.String(), "records after a missing one are ignored") {
		t.Fatalf("log:\n%s", logs)
	}
}

// TestJournalDamagedRecord: a record whose frame is intact but whose content
// is not a change stops the store, and nothing is written.
func TestJournalDamagedRecord(t *testing.T) {
	base := newDB(t, put("a", 100000))
	for name, fr := range map[string][]byte{
		"not json": func() []byte { f := newFrame(opPut, []byte("{not json")); sealFrame(f, 2); return f }(),
		"bad id":   frame(2, put("../etc", 200000)),
		"no id":    frame(2, del("")),
	} {
		t.Run(name, func(t *testing.T) {
			db := copyDB(t, base)
			writeJournal(t, db, 0, fr)
			sums := func() [2][32]byte {
				a, _ := os.ReadFile(db)
				b, _ := os.ReadFile(journalPath(db, 0))
				return [2][32]byte{sha256.Sum256(a), sha256.Sum256(b)}
			}
			before := sums()
			_, _, _, err := openStore(db)
			if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), journalPath(db, 0)) {
				t.Fatalf("err = %v, want ErrDamaged naming the journal", err)
			}
			t.Log(err)
			if sums() != before {
				t.Fatal("the database or the journal was changed")
			}
		})
	}
}

// TestJournalPowerLoss plays power losses over a history in which ranges
// are released and reused: the database holds some prefix of it, and the
// journal what followed, torn, holed or damaged anywhere. Every restart
// must give a state the manager really had, at or after the database's, and
// never two containers on one range.
func TestJournalPowerLoss(t *testing.T) {
	captureLog(t)
	rng := rand.New(rand.NewPCG(4, 2))
	a := newAllocator(100000, 6*BlockSize) // small: ranges get reused
	var hist []change
	states := []string{""} // states[i]: after the first i changes
	live := map[string]record{}
	var ids []string
	for i := 0; len(hist) < 60; i++ {
		if len(ids) > 0 && (len(ids) == 6 || rng.IntN(3) == 0) {
			j := rng.IntN(len(ids))
			id := ids[j]
			ids = slices.Delete(ids, j, j+1)
			a.free(id) // as removeLocked: the release is recorded first
			delete(live, id)
			hist = append(hist, del(id))
		} else {
			id := fmt.Sprint("p", i)
			base, err := a.alloc(id, BlockSize)
			if err != nil {
				t.Fatal(err)
			}
			c := put(id, uint32(base))
			live[id] = *c.put
			ids = append(ids, id)
			hist = append(hist, c)
		}
		states = append(states, ranges(live))
	}
	for trial := range 40 {
		k := rng.IntN(len(hist)) // what the database holds
		db := newDB(t, hist[:k]...)
		fs := frames(uint64(k+1), hist[k:]...)
		// Records of the last pass, already in the database, may linger
		// in the other file.
		stale := frames(uint64(max(k-2, 0)+1), hist[max(k-2, 0):k]...)
		split := rng.IntN(len(fs) + 1)
		files := [2][]byte{bytes.Join(append(stale, fs[:split]...), nil), bytes.Join(fs[split:], nil)}
		what := "intact"
		f := rng.IntN(2)
		if n := len(files[f]); n > 0 {
			switch rng.IntN(4) {
			case 0:
				cut := rng.IntN(n)
				files[f] = files[f][:cut]
				what = fmt.Sprintf("file %d cut at %d", f, cut)
			case 1:
				off := rng.IntN(n) / 512 * 512
				clear(files[f][off:min(off+512, n)])
				what = fmt.Sprintf("file %d zeroed at %d", f, off)
			case 2:
				i := rng.IntN(n)
				files[f][i] ^= byte(1 + rng.IntN(255))
				what = fmt.Sprintf("file %d byte %d changed", f, i)
			}
		}
		writeJournal(t, db, 0, files[0])
		writeJournal(t, db, 1, files[1])
		st, recs, _, err := openStore(db)
		if err != nil {
			t.Fatalf("trial %d (database at %d, %s): %v", trial, k, what, err)
		}
		if _, err := newManager(config{PoolStart: 100000, PoolSize: 6 * BlockSize}, st, recs); err != nil {
			t.Fatalf("trial %d (database at %d, %s): %v", trial, k, what, err)
		}
		mustRun(t, st.close)
		got := map[string]record{}
		for _, r := range recs {
			got[r.ID] = r
		}
		assertDisjoint(t, recs)
		if j := slices.Index(states[k:], ranges(got)); j < 0 {
			t.Fatalf("trial %d (database at %d, %s): state %q was never the manager's", trial, k, what, ranges(got))
		} else {
			t.Logf("trial %d: database at %d, %s: restarted at %d of %d", trial, k, what, k+j, len(hist))
		}
	}
}

// crashSpec is what the child of TestCrashMidway does.
type crashSpec struct {
	DB    string
	Round int
	N     int
}

const crashBlocks = 4096

func crashID(round, i int) string { return fmt.Sprintf("r%d-%04d", round, i) }

// crashSize: some containers ask for more ids.
func crashSize(i int) uint64 {
	if i%10 == 0 {
		return 4 * BlockSize
	}
	return BlockSize
}

// crashReleased: these release their range as soon as they have it.
func crashReleased(i int) bool { return i%4 == 0 }

// crashChild allocates N ranges from N goroutines started at once (each
// after a random delay of up to 300 ms, so the kill lands midway) and
// prints every answer when it has it: "A id base", and "R id" once a
// release is answered.
func crashChild(spec string) error {
	var c crashSpec
	if err := json.Unmarshal([]byte(spec), &c); err != nil {
		return err
	}
	m, err := openTestManager(c.DB, crashBlocks)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		_, _ = fmt.Fprintf(os.Stdout, format, args...)
	}
	var wg sync.WaitGroup
	errs := make(chan error, c.N)
	for i := range c.N {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(rand.N(300 * time.Millisecond))
			id := crashID(c.Round, i)
			r, _, err := m.allocate(record{ID: id}, crashSize(i))
			if err != nil {
				errs <- err
				return
			}
			say("A %s %d\n", id, r.Base)
			if crashReleased(i) {
				unlock := m.locks.lock(id)
				err := m.removeLocked(id, "test")
				unlock()
				if err != nil {
					errs <- err
					return
				}
				say("R %s\n", id)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	say("done\n")
	return m.st.close()
}

// TestCrashMidway: 1000 concurrent allocations (a quarter released again)
// in a child process, killed with SIGKILL after 300 answers, twice over the
// same database; each restart must hold every answered allocation with the
// range it was answered with, none of the answered releases, and no two
// containers on one range. Needs no root.
func TestCrashMidway(t *testing.T) {
	const n, killAt = 1000, 300
	logs := captureLog(t)
	db := filepath.Join(t.TempDir(), "mgr.db")
	answered := map[string]uint32{} // id: base, live
	released := map[string]bool{}
	for round := range 2 {
		js, _ := json.Marshal(crashSpec{DB: db, Round: round, N: n})
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "SYSBOX_MGR_TEST_CRASH="+string(js))
		var stderr syncBuffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		allocs, done, killed := 0, false, false
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			switch {
			case len(f) == 3 && f[0] == "A":
				base, err := strconv.ParseUint(f[2], 10, 32)
				if err != nil {
					t.Fatal(err)
				}
				answered[f[1]] = uint32(base)
				allocs++
			case len(f) == 2 && f[0] == "R":
				delete(answered, f[1])
				released[f[1]] = true
			case len(f) == 1 && f[0] == "done":
				done = true
			default:
				t.Fatalf("child said %q", sc.Text())
			}
			if allocs == killAt && !killed {
				mustRun(t, func() error { return cmd.Process.Signal(syscall.SIGKILL) })
				killed = true
			}
		}
		_, _ = io.Copy(io.Discard, out)
		err = cmd.Wait()
		if done || !killed {
			t.Fatalf("round %d: the child finished (%v) before it was killed; its log:\n%s", round, err, stderr.String())
		}
		var ws syscall.WaitStatus
		if st, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok {
			ws = st
		}
		if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: child ended with %v, not SIGKILL; its log:\n%s", round, err, stderr.String())
		}
		var jbytes int64
		for i := range 2 {
			if fi, err := os.Stat(journalPath(db, i)); err == nil {
				jbytes += fi.Size()
			}
		}

		logged := len(logs.String())
		m, err := openTestManager(db, crashBlocks)
		if err != nil {
			t.Fatalf("round %d: restart: %v", round, err)
		}
		replayed := "0"
		if m := regexp.MustCompile(`journal replayed.*records=(\d+)`).FindStringSubmatch(logs.String()[logged:]); m != nil {
			replayed = m[1]
		}
		recs := m.snapshot()
		assertDisjoint(t, recs)
		for id, base := range answered {
			r, ok := m.get(id)
			var i int
			fmt.Sscanf(id[strings.IndexByte(id, '-')+1:], "%d", &i)
			switch {
			case !ok && crashReleased(i) && strings.HasPrefix(id, fmt.Sprintf("r%d-", round)):
				// Its release was under way: either outcome is right.
				delete(answered, id)
			case !ok || r.Base != base:
				t.Fatalf("round %d: %s was answered with base %d; after kill -9: %+v (present %v)", round, id, base, r, ok)
			}
		}
		for id := range released {
			if _, ok := m.get(id); ok {
				t.Fatalf("round %d: %s was released, and is back after kill -9", round, id)
			}
		}
		t.Logf("round %d: killed after %d answered allocations; journal %d bytes, %s records not yet in bbolt replayed; restarted with %d containers",
			round, allocs, jbytes, replayed, len(recs))
		mustRun(t, m.st.close)
	}

	// The work finished after the restart: the answered keep their ranges.
	m := newTestManager(t, db, crashBlocks)
	want := 0
	for round := range 2 {
		for i := range n {
			id := crashID(round, i)
			if released[id] {
				continue
			}
			want++
			r, _, err := m.allocate(record{ID: id}, crashSize(i))
			if err != nil {
				t.Fatal(err)
			}
			if base, ok := answered[id]; ok && r.Base != base {
				t.Fatalf("%s: base %d before the kill, %d after", id, base, r.Base)
			}
		}
	}
	recs := m.snapshot()
	if len(recs) != want {
		t.Fatalf("%d containers, want %d", len(recs), want)
	}
	assertDisjoint(t, recs)
}

// inBolt reads id's record and the journal seq from the open store's bbolt.
func inBolt(t testing.TB, s *store, id string) (bool, uint64) {
	t.Helper()
	var ok bool
	var seq uint64
	mustRun(t, func() error {
		return s.db.View(func(tx *bolt.Tx) error {
			ok = tx.Bucket(bucketContainers).Get([]byte(id)) != nil
			if v := tx.Bucket(bucketMeta).Get(keyJournalSeq); len(v) == 8 {
				seq = binary.BigEndian.Uint64(v)
			}
			return nil
		})
	})
	return ok, seq
}

func TestStoreFlush(t *testing.T) {
	s, _, _, err := openStore(filepath.Join(t.TempDir(), "mgr.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.close() })
	for i := range 50 {
		mustRun(t, func() error { return s.put(*put(fmt.Sprint("f", i), uint32(100000+i*BlockSize)).put) })
	}
	mustRun(t, s.flush)
	if ok, seq := inBolt(t, s, "f49"); !ok || seq != 50 {
		t.Fatalf("after flush: f49 in bbolt %v, seq %d; want true, 50", ok, seq)
	}
}

// TestStoreCommitFailure: bbolt refuses the commits; the journal keeps the
// changes, flush says so, close fails without emptying the journal, and the
// next open applies it.
func TestStoreCommitFailure(t *testing.T) {
	logs := captureLog(t)
	db := newDB(t, put("a", 100000))
	s, _, _, err := openStore(db)
	if err != nil {
		t.Fatal(err)
	}
	mustRun(t, s.db.Close) // every commit fails from now on
	mustRun(t, func() error { return s.put(*put("b", 200000).put) })
	if err := s.flush(); err == nil {
		t.Fatal("flush succeeded with bbolt refusing commits")
	}
	if err := s.close(); err == nil {
		t.Fatal("close succeeded with the last commit refused")
	}
	if fi, err := os.Stat(journalPath(db, 0)); err != nil || fi.Size() == 0 {
		t.Fatalf("journal after a refused commit: %v, %d bytes", err, fi.Size())
	}
	if !strings.Contains(logs.String(), "database commit failed") {
		t.Fatalf("log:\n%s", logs)
	}
	if got := reopen(t, db); ranges(got) != "a=100000 b=200000" {
		t.Fatalf("after reopen: %s", ranges(got))
	}
}

// TestChownModeRegister: without id-mapped mounts the special dirs are
// chowned to the container's range, so the range is in bbolt (fsynced)
// before they are made: a power loss cannot give the container another
// range next to dirs owned by the old one.
func TestChownModeRegister(t *testing.T) {
	needRoot(t)
	m := newTestManager(t, filepath.Join(t.TempDir(), "mgr.db"), 16)
	m.cfg.Idmap = false
	b, r := bundle(t, "ch")
	reg, err := m.register(context.Background(), ipc.MgrRegister{ID: "ch", Bundle: b, Rootfs: r})
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := inBolt(t, m.st, "ch"); !ok {
		t.Fatal("chowned dirs made before the range was in bbolt")
	}
	for _, mt := range reg.Mounts {
		if mt.Idmap {
			t.Fatalf("id-mapped mount in chown mode: %+v", mt)
		}
	}
	if uid, gid, _ := owner(t, filepath.Join(m.cfg.DataRoot, "docker", "ch")); uid != reg.UIDBase || gid != reg.UIDBase {
		t.Fatalf("docker dir %d:%d, want the range base %d", uid, gid, reg.UIDBase)
	}
}
