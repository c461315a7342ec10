package mgr

// The journal is why the manager can answer a registration before bbolt has
// fsynced it, without weakening what the answer promises.
//
// What an answer promises. Once register (or stopped, or remove) returns,
// its change survives a kill -9 of the manager: a restarted manager must
// never hand the same ids to another container while the first still runs,
// or the two could reach each other's files. Each change is therefore one
// record appended to the journal with a single write(2) before the call
// returns. write(2) puts the bytes in the kernel's page cache, which belongs
// to the kernel, not to the process: a process killed at any point loses
// nothing written before, and a restart reads the record back.
//
// What a power loss may take. The page cache dies with the machine, so the
// records of the last moments (until the committer below has fsynced them:
// a few milliseconds, more on a busy disk) can be lost. That is harmless:
// every container died with the machine too; at their next start they
// register again and may get other ranges, and since their files are
// reached through id-mapped mounts (rootfs layers and special dirs alike)
// a new range changes nothing they can see. Two consequences, both bounded:
//   - Special dirs made in those moments may outlive their lost record.
//     They are orphans (findOrphans): kept, listed by status, and handed
//     back to their container when it registers again.
//   - Where the data root takes no id-mapped mounts, special dirs are
//     chowned to the range, and a new range would not own them. There,
//     ensureDirs waits (flush) until the range is in bbolt before it makes
//     them: the one place a call waits for an fsync.
//
// What a power loss must not do is corrupt the state: the database stays
// intact (bbolt is only ever written in normal, fsynced transactions; never
// NoSync), and the journal is read back only as far as it is whole, so the
// state after a restart is always one the manager really had: the
// database's, plus an unbroken run of the records that followed it.
//
// Group commit. A committer goroutine applies the records appended since its
// last pass to bbolt in one transaction (two fsyncs, however many records),
// and records the sequence number of the last one in the same transaction.
// Records that arrive while it commits go into the next pass, so a burst of
// registrations costs a few commits, not one each.
//
// Files. Two journal files, mgr.db.journal.0 and .1, take turns: appends go
// to the current one; a pass switches appends to the other (when it is
// empty), commits, then empties the one it switched from, whose records are
// all in bbolt now. Neither the truncation nor the appends are fsynced: a
// stale record that reappears after a power loss has a sequence number the
// database already holds and is skipped.
//
// Replay, at start. Both files are read; each as far as its records are
// whole and their CRC matches (a torn or damaged tail is logged and
// ignored: it is what a crash mid-write or a power loss leaves). The records
// after the database's sequence number are applied in order, up to the first
// gap: one missing record ends the run, since a later record may depend on
// it (a range is reused only after its release). Replaying is idempotent:
// a record applied twice leaves what it left the first time, and a record
// the database already holds is skipped by its sequence number. The result
// is committed and both files are emptied and fsynced before the manager
// takes calls, so no leftover of this run can be mistaken for a record of
// the next one. A record that is whole and intact but cannot be decoded
// stops the manager with ErrDamaged, like a damaged database, and is kept.

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
)

// A journal record on disk is
//
//	magic "sbj1" | length uint32 | crc32c uint32 | payload (length bytes)
//
// little-endian, the CRC over the length and the payload. The payload is
//
//	seq uint64 | op byte | body
//
// with op 'P' (body: the record as JSON) or 'D' (body: the container ID).
// The format changes only with storeVersion.
const (
	journalMagic  = "sbj1"
	journalHeader = 12
	journalPrefix = 9 // seq and op, before the body
	journalMaxLen = 1 << 20
	opPut         = 'P'
	opDel         = 'D'
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// jrec is one change: put rec (its JSON in val) or delete id.
type jrec struct {
	seq uint64
	del bool
	id  string // for a put read back from disk, set once val is decoded
	val []byte
	// from is the journal file a record was read from (for messages).
	from string
}

// newFrame lays out a record for body with room for its header; seal fills
// in the sequence number and the checksum.
func newFrame(op byte, body []byte) []byte {
	b := make([]byte, journalHeader+journalPrefix+len(body))
	copy(b, journalMagic)
	binary.LittleEndian.PutUint32(b[4:], uint32(journalPrefix+len(body)))
	b[journalHeader+8] = op
	copy(b[journalHeader+journalPrefix:], body)
	return b
}

func sealFrame(b []byte, seq uint64) {
	binary.LittleEndian.PutUint64(b[journalHeader:], seq)
	binary.LittleEndian.PutUint32(b[8:], frameCRC(b[4:8], b[journalHeader:]))
}

func frameCRC(length, payload []byte) uint32 {
	return crc32.Update(crc32.Checksum(length, castagnoli), castagnoli, payload)
}

// parseJournal reads records from the start of data up to its end or to the
// first one that is not whole and intact, and says where it stopped.
func parseJournal(data []byte) (recs []jrec, end int) {
	for {
		rest := data[end:]
		if len(rest) < journalHeader || string(rest[:4]) != journalMagic {
			return recs, end
		}
		n := int(binary.LittleEndian.Uint32(rest[4:]))
		if n < journalPrefix || n > journalMaxLen || len(rest) < journalHeader+n {
			return recs, end
		}
		payload := rest[journalHeader : journalHeader+n]
		if frameCRC(rest[4:8], payload) != binary.LittleEndian.Uint32(rest[8:]) {
			return recs, end
		}
		r := jrec{seq: binary.LittleEndian.Uint64(payload), val: payload[journalPrefix:]}
		switch payload[8] {
		case opPut:
		case opDel:
			r.del, r.id, r.val = true, string(r.val), nil
		default:
			return recs, end
		}
		if r.seq == 0 {
			return recs, end
		}
		recs = append(recs, r)
		end += journalHeader + n
	}
}

// journalRun picks what to replay over a database that holds every change up
// to seq applied: the records after it, in order, up to the first gap.
// dropped counts the records past the gap. A record read twice (the same
// change under the same number) counts once.
func journalRun(recs []jrec, applied uint64) (run []jrec, dropped int) {
	recs = slices.Clone(recs)
	slices.SortStableFunc(recs, func(a, b jrec) int { return cmp.Compare(a.seq, b.seq) })
	for i, r := range recs {
		switch {
		case r.seq <= applied:
		case len(run) > 0 && sameChange(r, run[len(run)-1]):
		case r.seq == applied+uint64(len(run))+1:
			run = append(run, r)
		default:
			// A gap, or two changes under one number.
			return run, len(recs) - i
		}
	}
	return run, 0
}

func sameChange(a, b jrec) bool {
	return a.seq == b.seq && a.del == b.del && a.id == b.id && string(a.val) == string(b.val)
}

var errStoreClosed = errors.New("database is closed")

// errJournalDamaged is a record whose frame is intact but whose content is
// not a change the manager could have written.
func errJournalDamaged(path string, seq uint64, cause error) error {
	return fmt.Errorf("%w: journal %s, record %d: %v; it was left as it is, with the database: move both aside (the manager then starts empty and containers re-register at their next start) or restore a copy",
		ErrDamaged, path, seq, cause)
}
