package mgr

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
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
)

const storeVersion = "1"

// store persists records in bbolt. Writes from concurrent callers are grouped
// into one transaction (one pair of fsyncs) by a single committer goroutine.
type store struct {
	db   *bolt.DB
	path string
	ops  chan *storeOp
	done chan struct{}

	closeOnce sync.Once
	closeErr  error
}

type storeOp struct {
	put *record
	del string
	err chan error
}

// ErrDamaged marks a database that cannot be read.
var ErrDamaged = errors.New("database is damaged")

// openStore opens (or creates) the database and reads every record. A file
// that bbolt cannot read is never touched: the error says so and names it.
func openStore(path string) (s *store, recs []record, created bool, err error) {
	_, statErr := os.Stat(path)
	created = errors.Is(statErr, os.ErrNotExist)
	damaged := func(cause any) error {
		return fmt.Errorf("%w: %s: %v; it was left as it is: move it aside (the manager then starts empty and containers re-register at their next start) or restore a copy", ErrDamaged, path, cause)
	}
	defer func() {
		// bbolt trusts its pages; a corrupt one can make it panic.
		if r := recover(); r != nil {
			if s != nil {
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
			recs = append(recs, r)
			return nil
		})
	})
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
			_, err = tx.CreateBucketIfNotExists(bucketContainers)
			return err
		})
	}
	if err != nil {
		db.Close()
		return nil, nil, false, err
	}
	s.ops = make(chan *storeOp, 256)
	s.done = make(chan struct{})
	go s.commitLoop()
	return s, recs, created, nil
}

// commitLoop applies queued writes. It does not wait for company (bbolt's
// Batch waits MaxBatchDelay first): a lone write commits at once, and the
// writes that arrive during a commit share the next one.
func (s *store) commitLoop() {
	defer close(s.done)
	for op := range s.ops {
		batch := []*storeOp{op}
	drain:
		for len(batch) < 1000 {
			select {
			case o, ok := <-s.ops:
				if !ok {
					break drain
				}
				batch = append(batch, o)
			default:
				break drain
			}
		}
		err := s.db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketContainers)
			for _, o := range batch {
				if o.put != nil {
					v, err := json.Marshal(o.put)
					if err != nil {
						return err
					}
					if err := b.Put([]byte(o.put.ID), v); err != nil {
						return err
					}
				} else if err := b.Delete([]byte(o.del)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			err = fmt.Errorf("write %s: %w", s.path, err)
		}
		for _, o := range batch {
			o.err <- err
		}
	}
}

func (s *store) do(op *storeOp) error {
	op.err = make(chan error, 1)
	s.ops <- op
	return <-op.err
}

// put writes r durably (fsynced) before returning.
func (s *store) put(r record) error { return s.do(&storeOp{put: &r}) }

// del removes id's record durably.
func (s *store) del(id string) error { return s.do(&storeOp{del: id}) }

// close waits for queued writes, then closes the database. No put or del may
// be called after.
func (s *store) close() error {
	s.closeOnce.Do(func() {
		close(s.ops)
		<-s.done
		s.closeErr = s.db.Close()
	})
	return s.closeErr
}
