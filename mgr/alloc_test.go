package mgr

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
)

func TestAllocator(t *testing.T) {
	const B = BlockSize
	type step struct {
		op   string // "alloc", "free"
		id   string
		size uint64
		want uint64 // base for alloc
		err  string
	}
	tests := []struct {
		name  string
		start uint64
		count uint64
		steps []step
	}{
		{
			name: "sequential", start: 100000, count: 4 * B,
			steps: []step{
				{op: "alloc", id: "a", size: B, want: 100000},
				{op: "alloc", id: "b", size: 2 * B, want: 100000 + B},
				{op: "alloc", id: "a", size: B, want: 100000}, // same ID, same range
				{op: "alloc", id: "c", size: B, want: 100000 + 3*B},
				{op: "alloc", id: "d", size: B, err: "no free id range"},
			},
		},
		{
			name: "freed range is reused last", start: 0, count: 4 * B,
			steps: []step{
				{op: "alloc", id: "a", size: B, want: 0},
				{op: "alloc", id: "b", size: B, want: B},
				{op: "free", id: "a"},
				{op: "alloc", id: "c", size: B, want: 2 * B},
				{op: "alloc", id: "d", size: B, want: 3 * B},
				{op: "alloc", id: "e", size: B, want: 0}, // wraps around to the hole
				{op: "alloc", id: "f", size: B, err: "no free id range"},
			},
		},
		{
			name: "large range needs a large hole", start: 0, count: 5 * B,
			steps: []step{
				{op: "alloc", id: "a", size: B, want: 0},
				{op: "alloc", id: "b", size: B, want: B},
				{op: "alloc", id: "c", size: B, want: 2 * B},
				{op: "free", id: "b"},
				{op: "alloc", id: "big", size: 2 * B, want: 3 * B},
				{op: "alloc", id: "big2", size: 2 * B, err: "no free id range"},
				{op: "alloc", id: "small", size: B, want: B},
			},
		},
		{
			name: "size must be whole blocks", start: 0, count: 4 * B,
			steps: []step{
				{op: "alloc", id: "a", size: 1000, err: "not a multiple"},
				{op: "alloc", id: "a", size: 0, err: "not a multiple"},
			},
		},
		{
			name: "unaligned pool start", start: 100001, count: 3 * B,
			steps: []step{
				{op: "alloc", id: "a", size: B, want: 100001},
				{op: "alloc", id: "b", size: B, want: 100001 + B},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAllocator(tt.start, tt.count)
			for i, s := range tt.steps {
				switch s.op {
				case "free":
					a.free(s.id)
				case "alloc":
					got, err := a.alloc(s.id, s.size)
					if s.err != "" {
						if err == nil || !strings.Contains(err.Error(), s.err) {
							t.Fatalf("step %d: err = %v, want %q", i, err, s.err)
						}
						continue
					}
					if err != nil {
						t.Fatalf("step %d: %v", i, err)
					}
					if got != s.want {
						t.Fatalf("step %d: alloc(%s) = %d, want %d", i, s.id, got, s.want)
					}
				}
				checkDisjoint(t, a)
			}
		})
	}
}

func TestAllocatorAddOverlap(t *testing.T) {
	a := newAllocator(0, 10*BlockSize)
	if err := a.add("a", BlockSize, BlockSize); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ base, size uint64 }{{0, BlockSize + 1}, {BlockSize, 1}, {2*BlockSize - 1, 5}} {
		if err := a.add("x", c.base, c.size); err == nil {
			t.Errorf("add(%d+%d) overlapping a: no error", c.base, c.size)
		}
	}
	if err := a.add("b", 2*BlockSize, BlockSize); err != nil {
		t.Fatal(err)
	}
	// A loaded range moves the search past it.
	if got, _ := a.alloc("c", BlockSize); got != 3*BlockSize {
		t.Fatalf("alloc after loaded ranges = %d", got)
	}
}

func checkDisjoint(t *testing.T, a *allocator) {
	t.Helper()
	for i := 1; i < len(a.spans); i++ {
		if a.spans[i-1].end() > a.spans[i].base {
			t.Fatalf("overlap: %+v and %+v", a.spans[i-1], a.spans[i])
		}
	}
	if len(a.spans) != len(a.byID) {
		t.Fatalf("%d spans, %d ids", len(a.spans), len(a.byID))
	}
}

// newTestManager is a manager over a real bbolt file, without a daemon.
func newTestManager(t testing.TB, dbPath string, blocks uint64) *manager {
	t.Helper()
	m, err := openTestManager(dbPath, blocks)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.st.close() })
	return m
}

// openTestManager is newTestManager for a process with no testing.T (the
// child TestCrashMidway kills).
func openTestManager(dbPath string, blocks uint64) (*manager, error) {
	st, recs, _, err := openStore(dbPath)
	if err != nil {
		return nil, err
	}
	m, err := newManager(config{DataRoot: filepath.Dir(dbPath), RangeSize: BlockSize, PoolStart: 100000, PoolSize: blocks * BlockSize}, st, recs)
	if err != nil {
		st.close()
		return nil, err
	}
	return m, nil
}

func TestConcurrentAllocations(t *testing.T) {
	db := filepath.Join(t.TempDir(), "mgr.db")
	m := newTestManager(t, db, 4096)
	const n = 1000
	bases := make([]uint32, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			size := uint64(BlockSize)
			if i%10 == 0 {
				size = 4 * BlockSize // some ask for more
			}
			r, _, err := m.allocate(record{ID: fmt.Sprintf("c%04d", i)}, size)
			if err != nil {
				errs <- err
				return
			}
			bases[i] = r.Base
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	recs := m.snapshot()
	if len(recs) != n {
		t.Fatalf("%d records, want %d", len(recs), n)
	}
	assertDisjoint(t, recs)

	// Same ID, same range, even concurrently with others.
	r, created, err := m.allocate(record{ID: "c0007"}, BlockSize)
	if err != nil || created || r.Base != bases[7] {
		t.Fatalf("again: base %d created %v err %v, want base %d", r.Base, created, err, bases[7])
	}

	// Everything is on disk: a second open sees the same ranges.
	m.st.close()
	st, loaded, _, err := openStore(db)
	if err != nil {
		t.Fatal(err)
	}
	m.st = st // closed by the cleanup
	if len(loaded) != n {
		t.Fatalf("reopened: %d records, want %d", len(loaded), n)
	}
	for _, r := range loaded {
		var i int
		fmt.Sscanf(r.ID, "c%04d", &i)
		if r.Base != bases[i] {
			t.Fatalf("%s: base %d on disk, %d handed out", r.ID, r.Base, bases[i])
		}
	}
}

func TestExhaustion(t *testing.T) {
	m := newTestManager(t, filepath.Join(t.TempDir(), "mgr.db"), 10)
	for i := range 10 {
		if _, _, err := m.allocate(record{ID: fmt.Sprint(i)}, BlockSize); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err := m.allocate(record{ID: "one-too-many"}, BlockSize)
	if !errors.Is(err, ErrExhausted) {
		t.Fatalf("err = %v, want ErrExhausted", err)
	}
	t.Log(err)
	if _, ok := m.get("one-too-many"); ok {
		t.Fatal("failed allocation left a record")
	}
	if _, err := m.rangeSize(11 * BlockSize); err == nil {
		t.Fatal("a size beyond the pool was accepted")
	}
}

func assertDisjoint(t *testing.T, recs []record) {
	t.Helper()
	sort.Slice(recs, func(i, j int) bool { return recs[i].Base < recs[j].Base })
	for i := 1; i < len(recs); i++ {
		prev := recs[i-1]
		if uint64(prev.Base)+uint64(prev.Size) > uint64(recs[i].Base) {
			t.Fatalf("ranges overlap: %s %d+%d and %s %d+%d", prev.ID, prev.Base, prev.Size, recs[i].ID, recs[i].Base, recs[i].Size)
		}
	}
}
