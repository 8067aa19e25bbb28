package commitment

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/nomtstore/nomtstore/commitment/bitbox"
	"github.com/nomtstore/nomtstore/commitment/vfs"
)

// walDir holds the log of page changes, beside the page table and Pebble.
const walDir = "wal"

// The page-change log: the WAL records of the commits since the last
// checkpoint (bitbox/wal.go), appended to segment files outside Pebble.
// In Pebble they were written to its log, flushed, compacted and deleted:
// a third of its compaction work for records that live a few blocks.
// Layout (format):
//
//	dir/wal/<segment number, 16 hex digits>.log
//	a segment is a sequence of frames:
//	     0  4  length n (big-endian)
//	     4  n  one WAL record, which checks itself (magic, checksums)
//
// Invariants:
//   - A commit's records are appended and synced before its commit point,
//     and its commit record names the last sequence number that counts: a
//     record with a larger one belongs to a commit that never happened.
//   - A segment is written by one process, from its creation until it is
//     sealed (at the start of a checkpoint, or after a failed write, whose
//     bytes may lie anywhere past the last good frame); it is never written
//     after a reopen. A scan stops at its first bad frame: its torn tail.
//   - A sequence number appears more than once only when a commit failed
//     before its commit point and the next attempt reused it: the last
//     occurrence, in segment order and within a segment, is the one a
//     commit record can name.
//   - A segment is removed only once a durable checkpoint record names a
//     sequence number at least the largest it holds: recovery never needs
//     it again.
//
// Locking: appends, seals and removals are the writer's (DB.writeMu); the
// counters are read by Stats from any goroutine.
type walLog struct {
	fs  vfs.FS
	dir string
	// next is the number of the next segment. REQUIRES: DB.writeMu.
	next uint64
	// active takes the appends; nil until the first append after a seal.
	// REQUIRES: DB.writeMu.
	active *walSegment
	// sealed segments wait for a checkpoint that covers them.
	// REQUIRES: DB.writeMu.
	sealed []*walSegment
	// records and bytes are what the live segments hold.
	records, bytes atomic.Int64
}

type walSegment struct {
	num    uint64
	path   string
	f      vfs.File // nil once sealed
	size   int64
	maxSeq uint64 // of every record written to it, whether it committed or not
	// badTail is the offset of the first frame a scan could not read, -1
	// if it read to the end: a torn tail, or damage.
	badTail int64
	// records and bytes are its share of the log's counters.
	records, bytes int64
}

// walLocation is where a record lies in the log.
type walLocation struct {
	segment *walSegment
	offset  int64 // of the record, past its length
	length  int64
}

// openWALLog opens the log directory, creating it if needed, and returns
// the segments it holds, in order.
func openWALLog(fs vfs.FS, dir string) (*walLog, []*walSegment, error) {
	path := filepath.Join(dir, walDir)
	if _, err := fs.Stat(path); errors.Is(err, os.ErrNotExist) {
		if err := fs.MkdirAll(path, 0o755); err != nil {
			return nil, nil, fmt.Errorf("commitment: creating %s: %w", path, err)
		}
		if err := fs.SyncDir(dir); err != nil {
			return nil, nil, fmt.Errorf("commitment: creating %s: %w", path, err)
		}
	} else if err != nil {
		return nil, nil, err
	}
	entries, err := fs.ReadDir(path)
	if err != nil {
		return nil, nil, fmt.Errorf("commitment: listing %s: %w", path, err)
	}
	l := &walLog{fs: fs, dir: path, next: 1}
	var found []*walSegment
	for _, e := range entries {
		num, ok := parseSegmentName(e.Name())
		if !ok {
			continue
		}
		found = append(found, &walSegment{num: num, path: filepath.Join(path, e.Name())})
		l.next = max(l.next, num+1)
	}
	slices.SortFunc(found, func(a, b *walSegment) int { return cmp.Compare(a.num, b.num) })
	return l, found, nil
}

func segmentName(num uint64) string { return fmt.Sprintf("%016x.log", num) }

func parseSegmentName(name string) (uint64, bool) {
	hex, ok := strings.CutSuffix(name, ".log")
	if !ok || len(hex) != 16 {
		return 0, false
	}
	num, err := strconv.ParseUint(hex, 16, 64)
	return num, err == nil
}

// index finds, in segments, the last occurrence of every record with a
// sequence number in (after, through].
func (l *walLog) index(segments []*walSegment, after, through uint64) (map[uint64]walLocation, error) {
	at := map[uint64]walLocation{}
	for _, s := range segments {
		if err := s.scan(l.fs, func(seq uint64, loc walLocation) {
			if seq > after && seq <= through {
				at[seq] = loc
			}
		}); err != nil {
			return nil, err
		}
	}
	return at, nil
}

// scan calls fn for each record of the segment up to its first bad frame.
func (s *walSegment) scan(fs vfs.FS, fn func(seq uint64, loc walLocation)) error {
	f, err := fs.OpenFile(s.path, os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("commitment: opening %s: %w", s.path, err)
	}
	defer func() { _ = f.Close() }()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	head := make([]byte, 4+bitbox.WALHeaderSize)
	off := int64(0)
	for ; off+int64(len(head)) <= size; off += 4 + int64(binary.BigEndian.Uint32(head)) {
		if _, err := f.ReadAt(head, off); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("commitment: reading %s at %d: %w", s.path, off, err)
		}
		n := int64(binary.BigEndian.Uint32(head))
		if n < bitbox.WALHeaderSize || off+4+n > size {
			break
		}
		seq, err := bitbox.WALSeq(s.path, head[4:])
		if err != nil {
			break
		}
		fn(seq, walLocation{segment: s, offset: off + 4, length: n})
	}
	s.badTail = -1
	if off < size {
		s.badTail = off
	}
	return nil
}

// describeTails names the segments whose scan stopped short of their end.
func describeTails(segments []*walSegment) string {
	var tails []string
	for _, s := range segments {
		if s.badTail >= 0 {
			tails = append(tails, fmt.Sprintf("%s is unreadable from byte %d", s.path, s.badTail))
		}
	}
	if len(tails) == 0 {
		return "every segment reads to its end"
	}
	return strings.Join(tails, "; ")
}

// read returns the record at loc.
func (l *walLog) read(loc walLocation) ([]byte, error) {
	f, err := l.fs.OpenFile(loc.segment.path, os.O_RDONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("commitment: opening %s: %w", loc.segment.path, err)
	}
	defer func() { _ = f.Close() }()
	data := make([]byte, loc.length)
	if _, err := f.ReadAt(data, loc.offset); err != nil {
		return nil, fmt.Errorf("commitment: reading %s at %d: %w", loc.segment.path, loc.offset, err)
	}
	return data, nil
}

// append writes count WAL records, record(i) under sequence number
// firstSeq+i, produced one at a time, to the active segment, starting one
// if none is, then syncs it. It returns the bytes written. A failed append
// seals the segment: its tail may hold part of a frame, past which no scan
// reads. REQUIRES: DB.writeMu.
func (l *walLog) append(firstSeq uint64, count int, record func(i int) []byte) (int, error) {
	if l.active == nil {
		if err := l.startSegment(); err != nil {
			return 0, err
		}
	}
	s := l.active
	written := 0
	var frame [4]byte
	for i := range count {
		rec := record(i)
		s.maxSeq = max(s.maxSeq, firstSeq+uint64(i))
		binary.BigEndian.PutUint32(frame[:], uint32(len(rec)))
		if err := writeFull(s.f, frame[:], s.size); err != nil {
			return 0, l.failActive(err)
		}
		if err := writeFull(s.f, rec, s.size+4); err != nil {
			return 0, l.failActive(err)
		}
		s.size += 4 + int64(len(rec))
		s.records++
		s.bytes += int64(4 + len(rec))
		l.records.Add(1)
		l.bytes.Add(int64(4 + len(rec)))
		written += len(rec)
	}
	if err := s.f.Sync(); err != nil {
		return 0, l.failActive(err)
	}
	return written, nil
}

func writeFull(f vfs.File, b []byte, off int64) error {
	n, err := f.WriteAt(b, off)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	return err
}

// startSegment creates the next segment and makes its name durable.
func (l *walLog) startSegment() error {
	num := l.next
	path := filepath.Join(l.dir, segmentName(num))
	f, err := l.fs.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("commitment: creating WAL segment %s: %w", path, err)
	}
	l.next++
	s := &walSegment{num: num, path: path, f: f}
	if err := l.fs.SyncDir(l.dir); err != nil {
		l.sealed = append(l.sealed, s)
		_ = f.Close()
		s.f = nil
		return fmt.Errorf("commitment: creating WAL segment %s: %w", path, err)
	}
	l.active = s
	return nil
}

func (l *walLog) failActive(err error) error {
	path := l.active.path
	l.seal()
	return fmt.Errorf("commitment: appending to WAL segment %s: %w", path, err)
}

// seal closes the active segment to appends: the next append starts a new
// one. REQUIRES: DB.writeMu.
func (l *walLog) seal() {
	s := l.active
	if s == nil {
		return
	}
	l.active = nil
	_ = s.f.Close()
	s.f = nil
	l.sealed = append(l.sealed, s)
}

// removeThrough removes the sealed segments whose records are all at or
// below seq, which a durable checkpoint record covers. A segment that
// cannot be removed is tried again after the next checkpoint.
// REQUIRES: DB.writeMu.
func (l *walLog) removeThrough(seq uint64) error {
	var errs []error
	l.sealed = slices.DeleteFunc(l.sealed, func(s *walSegment) bool {
		if s.maxSeq > seq {
			return false
		}
		if err := l.fs.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
			return false
		}
		l.records.Add(-s.records)
		l.bytes.Add(-s.bytes)
		return true
	})
	return errors.Join(errs...)
}

// removeFound removes segments left by an earlier process, once a durable
// checkpoint record covers every record they hold that counts; the rest
// belong to commits that never happened. Removal need not be durable: a
// segment that comes back holds nothing recovery would replay, and the
// creation of the next segment, which syncs the directory, makes it so
// before any record could reuse their sequence numbers. A segment that
// cannot be removed stays, harmless, until the next open.
// REQUIRES: DB.writeMu.
func (l *walLog) removeFound(found []*walSegment) error {
	var errs []error
	for _, s := range found {
		if err := l.fs.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// close seals the active segment. REQUIRES: DB.writeMu.
func (l *walLog) close() { l.seal() }
