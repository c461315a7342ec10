package mgr

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"golang.org/x/sys/unix"
)

// record is what the manager keeps per container.
type record struct {
	ID      string   `json:"id"`
	Bundle  string   `json:"bundle"`
	Rootfs  string   `json:"rootfs"`
	Anchors []anchor `json:"anchors,omitempty"`
	Base    uint32   `json:"base"`
	Size    uint32   `json:"size"`
	Dirs    []dir    `json:"dirs,omitempty"`
	Running bool     `json:"running"`
	// Removing is set before the dirs are deleted, so a crash in the middle
	// is finished at the next start.
	Removing bool      `json:"removing,omitempty"`
	Created  time.Time `json:"created"`
}

// anchor is a path whose existence keeps the container alive in the
// manager's eyes: its bundle, its rootfs, the upper dir of its overlay.
type anchor struct {
	Path string `json:"path"`
	// Mount is the mount point that held the path's parent at registration.
	// A missing path only counts as gone while that mount is still there, so
	// a filesystem mounted late at boot does not look like "docker rm".
	Mount string `json:"mount,omitempty"`
}

// dir is a host-backed special dir.
type dir struct {
	Kind  string `json:"kind"`
	Dest  string `json:"dest"`
	Path  string `json:"path"`
	Idmap bool   `json:"idmap"`
	// Ready: the image's content is copied in (a crash before that starts
	// the copy over).
	Ready bool `json:"ready"`
}

var (
	bucketContainers = []byte("containers")
	bucketMeta       = []byte("meta")
	keyVersion       = []byte("version")
	// keyJournalSeq is the sequence number of the last journal record the
	// database holds (journal.go).
	keyJournalSeq = []byte("journal-seq")
)

const storeVersion = "1"

// store keeps the records: a change is appended to the journal (write(2),
// no fsync: it survives kill -9) before put or del returns, and a committer
// goroutine applies the journal to bbolt in batched, fsynced transactions.
// journal.go says why that is enough.
type store struct {
	db   *bolt.DB
	path string

	mu      sync.Mutex
	files   [2]*journalFile
	cur     int    // the file appends go to
	next    uint64 // sequence number of the next record
	pending []jrec // in the journal, not yet in bbolt
	broken  error  // the journal cannot take appends any more
	closed  bool
	// applied is the last record in bbolt; commitErr the committer's last
	// failure, nil once it commits again. flush waits on committed.
	applied   uint64
	commitErr error
	committed *sync.Cond

	kick chan struct{}
	quit chan struct{}
	done chan struct{}

	commits atomic.Uint64 // bbolt transactions, for the benchmarks

	closeOnce sync.Once
	closeErr  error
}

type journalFile struct {
	f    *os.File
	path string
	size int64
	last uint64 // sequence number of its last record; 0 when empty
}

// ErrDamaged marks a database that cannot be read.
var ErrDamaged = errors.New("database is damaged")

func journalPath(db string, i int) string { return fmt.Sprintf("%s.journal.%d", db, i) }

// openStore opens (or creates) the database, replays the journal over it and
// reads every record. A file that cannot be read is never touched: the
// error says so and names it.
func openStore(path string) (s *store, recs []record, created bool, err error) {
	_, statErr := os.Stat(path)
	created = errors.Is(statErr, os.ErrNotExist)
	damaged := func(cause any) error {
		return fmt.Errorf("%w: %s: %v; it was left as it is: move it aside with its journal files %s.journal.* (the manager then starts empty and containers re-register at their next start) or restore a copy", ErrDamaged, path, cause, path)
	}
	defer func() {
		// bbolt trusts its pages; a corrupt one can make it panic.
		if r := recover(); r != nil {
			if s != nil {
				s.closeFiles()
				s.db.Close()
			}
			s, recs, err = nil, nil, damaged(r)
		}
	}()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		switch {
		case errors.Is(err, berrors.ErrTimeout):
			return nil, nil, false, fmt.Errorf("%s is locked by another process", path)
		case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch):
			return nil, nil, false, damaged(err)
		}
		var pe *os.PathError
		if errors.As(err, &pe) {
			return nil, nil, false, fmt.Errorf("open database: %w", err)
		}
		return nil, nil, false, damaged(err)
	}
	s = &store{db: db, path: path}
	byID := map[string]record{}
	var applied uint64
	err = db.View(func(tx *bolt.Tx) error {
		var errs []error
		// Drain the whole channel: the checker goroutine reads the tx.
		for e := range tx.Check() {
			if len(errs) < 5 {
				errs = append(errs, e)
			}
		}
		if len(errs) > 0 {
			return damaged(errors.Join(errs...))
		}
		if m := tx.Bucket(bucketMeta); m != nil {
			if v := m.Get(keyVersion); v != nil && string(v) != storeVersion {
				return fmt.Errorf("%s has format version %s, this sysbox knows %s: use the sysbox that wrote it", path, v, storeVersion)
			}
			if v := m.Get(keyJournalSeq); v != nil {
				if len(v) != 8 {
					return damaged(fmt.Errorf("journal sequence number is %d bytes long", len(v)))
				}
				applied = binary.BigEndian.Uint64(v)
			}
		}
		b := tx.Bucket(bucketContainers)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var r record
			if err := json.Unmarshal(v, &r); err != nil {
				return damaged(fmt.Errorf("container %q: %w", k, err))
			}
			if r.ID != string(k) {
				return damaged(fmt.Errorf("container %q holds the record of %q", k, r.ID))
			}
			byID[r.ID] = r
			return nil
		})
	})
	var run []jrec
	if err == nil {
		run, err = s.openJournal(applied, byID)
	}
	if err == nil {
		err = db.Update(func(tx *bolt.Tx) error {
			m, err := tx.CreateBucketIfNotExists(bucketMeta)
			if err != nil {
				return err
			}
			if m.Get(keyVersion) == nil {
				if err := m.Put(keyVersion, []byte(storeVersion)); err != nil {
					return err
				}
			}
			if _, err := tx.CreateBucketIfNotExists(bucketContainers); err != nil {
				return err
			}
			if len(run) == 0 {
				return nil
			}
			return applyTx(tx, run)
		})
		if err != nil {
			err = fmt.Errorf("write %s: %w", path, err)
		}
	}
	if err == nil {
		if len(run) > 0 {
			applied = run[len(run)-1].seq
			slog.Info("journal replayed", "path", path, "records", len(run), "seq", applied)
		}
		err = s.emptyJournal(true)
	}
	if err != nil {
		s.closeFiles()
		db.Close()
		return nil, nil, false, err
	}
	recs = make([]record, 0, len(byID))
	for _, r := range byID {
		recs = append(recs, r)
	}
	slices.SortFunc(recs, func(a, b record) int { return strings.Compare(a.ID, b.ID) })
	s.next, s.applied = applied+1, applied
	s.committed = sync.NewCond(&s.mu)
	s.kick = make(chan struct{}, 1)
	s.quit = make(chan struct{})
	s.done = make(chan struct{})
	go s.commitLoop()
	return s, recs, created, nil
}

// openJournal opens both journal files and reads them; it returns the run of
// records to replay (see journalRun), applied to byID, and changes nothing
// on disk.
func (s *store) openJournal(applied uint64, byID map[string]record) ([]jrec, error) {
	var all []jrec
	for i := range s.files {
		p := journalPath(s.path, i)
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_APPEND|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return nil, fmt.Errorf("open journal: %w", err)
		}
		s.files[i] = &journalFile{f: f, path: p}
		data, err := io.ReadAll(f)
		if err != nil {
			return nil, fmt.Errorf("read journal: %w", err)
		}
		recs, end := parseJournal(data)
		if end < len(data) {
			// What a crash mid-write or a power loss leaves; these records
			// were never answered, or the machine died with their callers.
			slog.Warn("journal: a torn or damaged tail is ignored", "path", p, "offset", end, "bytes", len(data)-end)
		}
		for j := range recs {
			recs[j].from = p
		}
		all = append(all, recs...)
	}
	run, dropped := journalRun(all, applied)
	if dropped > 0 {
		next := applied + uint64(len(run)) + 1
		slog.Warn("journal: records after a missing one are ignored (a power loss took it, or the database was replaced)",
			"path", s.path, "missing_seq", next, "ignored", dropped)
	}
	for i := range run {
		r := &run[i]
		if r.del {
			if validateID(r.id) != nil {
				return nil, errJournalDamaged(r.from, r.seq, fmt.Errorf("removal of %q", r.id))
			}
			delete(byID, r.id)
			continue
		}
		var rec record
		if err := json.Unmarshal(r.val, &rec); err != nil {
			return nil, errJournalDamaged(r.from, r.seq, err)
		}
		if err := validateID(rec.ID); err != nil {
			return nil, errJournalDamaged(r.from, r.seq, err)
		}
		r.id = rec.ID
		byID[rec.ID] = rec
	}
	return run, nil
}

// emptyJournal truncates both journal files, once the database holds their
// records. At start it also fsyncs them (and their dir): a record of this run
// must never sit next to a leftover of the last one with a later number.
func (s *store) emptyJournal(sync bool) error {
	for _, jf := range s.files {
		if err := jf.f.Truncate(0); err != nil {
			return fmt.Errorf("empty journal: %w", err)
		}
		if sync {
			if err := jf.f.Sync(); err != nil {
				return fmt.Errorf("empty journal: %w", err)
			}
		}
		jf.size, jf.last = 0, 0
	}
	if !sync {
		return nil
	}
	d, err := os.Open(filepath.Dir(s.path))
	if err != nil {
		return fmt.Errorf("sync %s: %w", filepath.Dir(s.path), err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", filepath.Dir(s.path), err)
	}
	return nil
}

func (s *store) closeFiles() {
	for _, jf := range s.files {
		if jf != nil {
			jf.f.Close()
		}
	}
}

// applyTx writes a run of records and its last sequence number.
func applyTx(tx *bolt.Tx, run []jrec) error {
	b := tx.Bucket(bucketContainers)
	for _, r := range run {
		if r.del {
			if err := b.Delete([]byte(r.id)); err != nil {
				return err
			}
		} else if err := b.Put([]byte(r.id), r.val); err != nil {
			return err
		}
	}
	var seq [8]byte
	binary.BigEndian.PutUint64(seq[:], run[len(run)-1].seq)
	return tx.Bucket(bucketMeta).Put(keyJournalSeq, seq[:])
}

// append writes one change to the journal: when it returns nil, the change
// survives kill -9. Changes are numbered in the order they are written.
func (s *store) append(r jrec, frame []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errStoreClosed
	}
	if s.broken != nil {
		return s.broken
	}
	jf := s.files[s.cur]
	r.seq = s.next
	sealFrame(frame, r.seq)
	if n, err := jf.f.Write(frame); err != nil {
		// A short write (ENOSPC) leaves part of a record: cut it off, or
		// no later record could be read back.
		if n > 0 {
			if terr := jf.f.Truncate(jf.size); terr != nil {
				s.broken = fmt.Errorf("journal %s is unusable after a failed write (%v): %w", jf.path, err, terr)
				slog.Error("journal", "err", s.broken)
			}
		}
		return fmt.Errorf("write journal %s: %w", jf.path, err)
	}
	jf.size += int64(len(frame))
	jf.last = r.seq
	s.next++
	s.pending = append(s.pending, r)
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return nil
}

// put records r; once it returns, r survives kill -9.
func (s *store) put(r record) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	frame := newFrame(opPut, v)
	return s.append(jrec{id: r.ID, val: frame[journalHeader+journalPrefix:]}, frame)
}

// del removes id's record; once it returns, the removal survives kill -9.
func (s *store) del(id string) error {
	return s.append(jrec{del: true, id: id}, newFrame(opDel, []byte(id)))
}

// commitLoop applies the journal to bbolt. It does not wait for company: a
// lone record commits at once, and the records that arrive during a commit
// share the next one. A batch bbolt refuses (a full disk) stays in the
// journal and is retried, with everything after it.
func (s *store) commitLoop() {
	defer close(s.done)
	var failed []jrec
	var backoff time.Duration
	lastErr := ""
	for {
		final := false
		if failed == nil {
			select {
			case <-s.kick:
			case <-s.quit:
				final = true
			}
		} else {
			select {
			case <-time.After(backoff):
			case <-s.quit:
				final = true
			}
		}
		var err error
		failed, err = s.commit(failed)
		switch {
		case err != nil && err.Error() != lastErr:
			slog.Error("database commit failed; the journal keeps the changes and it is retried", "err", err)
			lastErr = err.Error()
		case err == nil && lastErr != "":
			slog.Info("database commit works again", "path", s.path)
			lastErr = ""
		}
		if err != nil {
			backoff = min(2*backoff+100*time.Millisecond, 5*time.Second)
		} else {
			backoff = 0
		}
		if final {
			return
		}
	}
}

// commit applies failed (a batch that failed before) and what is pending to
// bbolt, then empties the journal file whose records it now holds. It
// returns the batch again if bbolt refused it.
func (s *store) commit(failed []jrec) ([]jrec, error) {
	s.mu.Lock()
	batch := append(failed, s.pending...)
	s.pending = nil
	// Later appends go to the other file, if it is empty, so that this one
	// can be emptied once its records are in bbolt.
	if other := 1 - s.cur; s.files[other].last == 0 && s.files[s.cur].last != 0 {
		s.cur = other
	}
	cur := s.cur
	s.mu.Unlock()
	if len(batch) == 0 {
		return nil, nil
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return applyTx(tx, batch) }); err != nil {
		err = fmt.Errorf("write %s: %w", s.path, err)
		s.mu.Lock()
		s.commitErr = err
		s.committed.Broadcast()
		s.mu.Unlock()
		return batch, err
	}
	s.commits.Add(1)
	applied := batch[len(batch)-1].seq
	// Only this goroutine switches files: the other one takes no appends.
	other := s.files[1-cur]
	s.mu.Lock()
	s.applied, s.commitErr = applied, nil
	s.committed.Broadcast()
	last := other.last
	s.mu.Unlock()
	if last != 0 && last <= applied {
		if err := other.f.Truncate(0); err != nil {
			// Kept: no switch until it can be emptied.
			slog.Warn("empty journal; retried at the next commit", "path", other.path, "err", err)
			return nil, nil
		}
		s.mu.Lock()
		other.size, other.last = 0, 0
		s.mu.Unlock()
	}
	return nil, nil
}

// flush waits until bbolt holds (fsynced) every change appended so far. It
// fails at once while the committer is failing.
func (s *store) flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for want := s.next - 1; s.applied < want; {
		switch {
		case s.commitErr != nil:
			return s.commitErr
		case s.closed:
			return errStoreClosed
		}
		s.committed.Wait()
	}
	return nil
}

// close commits what the journal holds, empties it and closes the database.
// Calls to put or del after it fail.
func (s *store) close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.quit)
		<-s.done
		s.mu.Lock()
		s.committed.Broadcast() // flush callers see closed
		// The committer's last pass: its error, if it failed.
		err := s.commitErr
		s.mu.Unlock()
		if err == nil {
			err = s.emptyJournal(false)
		}
		s.closeFiles()
		s.closeErr = errors.Join(err, s.db.Close())
	})
	return s.closeErr
}
