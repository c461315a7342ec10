package mgr

import (
	"errors"
	"fmt"
	"sort"
)

// BlockSize is the granularity of container ranges: a container's range is a
// whole number of blocks, so nested user namespaces inside always get full
// 65536-id maps and the pool does not fragment into unusable slivers.
const BlockSize = 65536

// ErrExhausted means the sysbox subuid range has no room for another container.
var ErrExhausted = errors.New("no free id range")

type span struct {
	base, size uint64
	id         string
}

func (s span) end() uint64 { return s.base + s.size }

// allocator hands out disjoint id ranges from the pool [start, end). It is
// the in-memory index of what the store holds; the manager guards it.
type allocator struct {
	start, end uint64
	spans      []span // sorted by base
	byID       map[string]span
	// next is where the search for a hole begins: allocation walks forward
	// through the pool, so a range freed a moment ago is the last one reused.
	next uint64
}

func newAllocator(start, count uint64) *allocator {
	return &allocator{start: start, end: start + count, byID: map[string]span{}, next: start}
}

// add records a range allocated earlier (loaded from the store). It may lie
// outside the pool, if subuid changed since, but must not overlap another.
func (a *allocator) add(id string, base, size uint64) error {
	if _, ok := a.byID[id]; ok {
		return fmt.Errorf("%s already has a range", id)
	}
	s := span{base: base, size: size, id: id}
	i := sort.Search(len(a.spans), func(i int) bool { return a.spans[i].base >= base })
	if i > 0 && a.spans[i-1].end() > base {
		return fmt.Errorf("range %d+%d of %s overlaps %s", base, size, id, a.spans[i-1].id)
	}
	if i < len(a.spans) && a.spans[i].base < s.end() {
		return fmt.Errorf("range %d+%d of %s overlaps %s", base, size, id, a.spans[i].id)
	}
	a.spans = append(a.spans, span{})
	copy(a.spans[i+1:], a.spans[i:])
	a.spans[i] = s
	a.byID[id] = s
	if s.end() > a.next && s.end() <= a.end {
		a.next = s.end()
	}
	return nil
}

// alloc finds size free ids (a multiple of BlockSize) for id.
func (a *allocator) alloc(id string, size uint64) (uint64, error) {
	if size == 0 || size%BlockSize != 0 {
		return 0, fmt.Errorf("range size %d is not a multiple of %d", size, BlockSize)
	}
	if s, ok := a.byID[id]; ok {
		return s.base, nil
	}
	base, ok := a.hole(a.next, size)
	if !ok {
		base, ok = a.hole(a.start, size)
	}
	if !ok {
		return 0, fmt.Errorf("%w of %d ids: %d of %d ids in use by %d containers (raise the sysbox entry in /etc/subuid and /etc/subgid, or remove containers)",
			ErrExhausted, size, a.used(), a.end-a.start, len(a.spans))
	}
	if err := a.add(id, base, size); err != nil {
		return 0, err
	}
	a.next = base + size
	return base, nil
}

// hole is first fit at or after from, in block steps from the pool start.
func (a *allocator) hole(from, size uint64) (uint64, bool) {
	cand := a.align(from)
	i := sort.Search(len(a.spans), func(i int) bool { return a.spans[i].end() > cand })
	for ; i < len(a.spans); i++ {
		s := a.spans[i]
		if s.base >= cand+size {
			break
		}
		if s.end() > cand {
			cand = a.align(s.end())
		}
	}
	if cand+size > a.end {
		return 0, false
	}
	return cand, true
}

func (a *allocator) align(v uint64) uint64 {
	if v <= a.start {
		return a.start
	}
	off := v - a.start
	return a.start + (off+BlockSize-1)/BlockSize*BlockSize
}

func (a *allocator) free(id string) {
	s, ok := a.byID[id]
	if !ok {
		return
	}
	delete(a.byID, id)
	i := sort.Search(len(a.spans), func(i int) bool { return a.spans[i].base >= s.base })
	if i < len(a.spans) && a.spans[i].id == id {
		a.spans = append(a.spans[:i], a.spans[i+1:]...)
	}
}

func (a *allocator) used() uint64 {
	var n uint64
	for _, s := range a.spans {
		n += s.size
	}
	return n
}
