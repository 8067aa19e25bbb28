package commitment

import (
	"bytes"
	"cmp"
	"crypto/rand"
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

	"github.com/cespare/xxhash/v2"
	"github.com/cockroachdb/pebble"

	"github.com/nomtstore/nomtstore/commitment/bitbox"
	"github.com/nomtstore/nomtstore/commitment/vfs"
)

// walDir holds the log of page changes, beside the page table and Pebble.
const walDir = "wal"

// The log: every commit's page changes and its Pebble batch, appended to
// segment files outside Pebble, which runs without a log of its own
// (Pebble keeps what a commit wrote in memtables until a flush; the log
// holds it until then). Pebble's own log wrote the same batches once more,
// kept four preallocated files of a memtable's size each, and took a
// second fsync per commit.
// Layout (format):
//
//	dir/wal/<segment number, 16 hex digits>.log
//	a segment starts with its header:
//	     0  8  magic "NOMTSEG\x01"
//	     8  8  salt: random, bound into its commit frames' header checksums
//	then a sequence of frames:
//	     0  4  length n (big-endian)
//	     4  n  a page-change record (bitbox/wal.go), which checks itself, or
//	           a commit frame:
//	           0  8  magic "NOMTBAT\x01"
//	           8  8  sequence number
//	          16  8  length m of the batch
//	          24  8  xxhash64 of bytes 0-24 and the segment's salt
//	          32  m  the commit's Pebble batch (Pebble's representation)
//	        32+m  8  xxhash64 of the batch
//
// One sequence of numbers runs through both kinds: a version's page-change
// records take the next numbers, its commit frame the one after them.
//
// Invariants:
//   - A commit's page-change records are appended (and synced) before its
//     commit frame; the commit frame's sync is the commit point. Its batch
//     holds the commit record, which names the frame's sequence number.
//   - Pebble holds, at open, every batch up to the commit record it reads
//     (a prefix: memtables flush in order); recovery applies the commit
//     frames after it, in sequence order, up to the first number missing
//     from the log. A page-change record past the last commit frame
//     belongs to a commit that never happened.
//   - A segment is written by one process, from its creation until it is
//     sealed (at the start of a checkpoint, or after a failed write, whose
//     bytes may lie anywhere past the last good frame); it is never written
//     after a reopen. A scan stops at its first bad frame: its torn tail.
//     A bad frame followed by a commit frame is damage, not a torn tail
//     (commitFrameAfter).
//   - A sequence number appears more than once only when a commit failed
//     before its commit point and the next attempt reused it: the last
//     occurrence, in segment order and within a segment, is the one that
//     counts.
//   - A segment is removed only once a checkpoint covers every number it
//     holds: the table file holds its pages and a Pebble flush (after the
//     checkpoint record) its batches.
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
	// appended counts every byte ever appended. REQUIRES: DB.writeMu.
	appended int64
}

type walSegment struct {
	num    uint64
	path   string
	salt   uint64   // from its header; read by scan for a found segment
	f      vfs.File // nil once sealed
	size   int64
	maxSeq uint64 // of every frame written to it, whether it committed or not
	// badTail is the offset of the first frame a scan could not read, -1
	// if it read to the end: a torn tail, or damage.
	badTail int64
	// records and bytes are its share of the log's counters.
	records, bytes int64
}

// walLocation is where a frame lies in the log.
type walLocation struct {
	segment *walSegment
	offset  int64 // of the frame's contents, past its length
	length  int64
	commit  bool // a commit frame, not a page-change record
}

// Segment headers and commit frames (see the layout above).
var (
	segmentMagic     = [8]byte{'N', 'O', 'M', 'T', 'S', 'E', 'G', 1}
	commitFrameMagic = [8]byte{'N', 'O', 'M', 'T', 'B', 'A', 'T', 1}
)

const (
	segmentHeader      = 16
	commitFrameHeader  = 32
	commitFrameTrailer = 8
	// minFrame is the smallest frame of either kind: a scan reads this
	// much of each to learn its kind and number.
	minFrame = max(bitbox.WALHeaderSize, commitFrameHeader+commitFrameTrailer)
)

func commitFrameHead(seq uint64, batchLen int, salt uint64) []byte {
	h := make([]byte, 0, commitFrameHeader)
	h = append(h, commitFrameMagic[:]...)
	h = binary.BigEndian.AppendUint64(h, seq)
	h = binary.BigEndian.AppendUint64(h, uint64(batchLen))
	return binary.BigEndian.AppendUint64(h, commitHeadSum(h[:24], salt))
}

// commitHeadSum is a commit frame header's checksum. The salt makes a
// header that an application value carries inside a batch fail it: the
// damage check (commitFrameAfter) searches batches too.
func commitHeadSum(head []byte, salt uint64) uint64 {
	d := xxhash.New()
	_, _ = d.Write(head)
	_, _ = d.Write(binary.BigEndian.AppendUint64(nil, salt))
	return d.Sum64()
}

// frameSeq checks the head of a frame of n bytes (its first minFrame bytes)
// in a segment of salt and returns its kind and sequence number.
func frameSeq(name string, head []byte, n int64, salt uint64) (seq uint64, commit bool, err error) {
	if [8]byte(head[:8]) != commitFrameMagic {
		seq, err = bitbox.WALSeq(name, head)
		return seq, false, err
	}
	if commitHeadSum(head[:24], salt) != binary.BigEndian.Uint64(head[24:]) {
		return 0, true, fmt.Errorf("%w: %s: commit frame header checksum mismatch", ErrCorrupt, name)
	}
	if m := binary.BigEndian.Uint64(head[16:]); m != uint64(n-commitFrameHeader-commitFrameTrailer) {
		return 0, true, fmt.Errorf("%w: %s: commit frame of %d bytes says its batch has %d", ErrCorrupt, name, n, m)
	}
	return binary.BigEndian.Uint64(head[8:]), true, nil
}

// decodeCommitFrame checks a commit frame read whole and returns its batch.
func decodeCommitFrame(name string, data []byte, salt uint64) (uint64, []byte, error) {
	if int64(len(data)) < commitFrameHeader+commitFrameTrailer {
		return 0, nil, fmt.Errorf("%w: %s: commit frame of %d bytes", ErrCorrupt, name, len(data))
	}
	seq, commit, err := frameSeq(name, data, int64(len(data)), salt)
	if err != nil {
		return 0, nil, err
	}
	if !commit {
		return 0, nil, fmt.Errorf("%w: %s is not a commit frame", ErrCorrupt, name)
	}
	batch := data[commitFrameHeader : len(data)-commitFrameTrailer]
	if xxhash.Sum64(batch) != binary.BigEndian.Uint64(data[len(data)-commitFrameTrailer:]) {
		return 0, nil, fmt.Errorf("%w: %s: the batch of commit frame %d fails its checksum", ErrCorrupt, name, seq)
	}
	return seq, batch, nil
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

// index finds, in segments, the last occurrence of every frame with a
// sequence number past after.
func (l *walLog) index(segments []*walSegment, after uint64) (map[uint64]walLocation, error) {
	at := map[uint64]walLocation{}
	for _, s := range segments {
		if err := s.scan(l.fs, func(seq uint64, loc walLocation) {
			if seq > after {
				at[seq] = loc
			}
		}); err != nil {
			return nil, err
		}
	}
	return at, nil
}

// scan calls fn for each frame of the segment up to its first bad frame.
// A bad frame that a commit frame follows is damage: ErrCorrupt.
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
	// A header a cut tore leaves nothing of the segment readable: it was
	// synced with the first frame.
	var header [segmentHeader]byte
	if size < segmentHeader {
		s.badTail = 0
		if size == 0 {
			s.badTail = -1
		}
		return nil
	}
	if _, err := f.ReadAt(header[:], 0); err != nil {
		return fmt.Errorf("commitment: reading %s: %w", s.path, err)
	}
	if [8]byte(header[:8]) != segmentMagic {
		s.badTail = 0
		return nil
	}
	s.salt = binary.BigEndian.Uint64(header[8:])
	head := make([]byte, 4+minFrame)
	off, lastSeq := int64(segmentHeader), uint64(0)
	for ; off+int64(len(head)) <= size; off += 4 + int64(binary.BigEndian.Uint32(head)) {
		if _, err := f.ReadAt(head, off); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("commitment: reading %s at %d: %w", s.path, off, err)
		}
		n := int64(binary.BigEndian.Uint32(head))
		if n < minFrame || off+4+n > size {
			break
		}
		seq, commit, err := frameSeq(s.path, head[4:], n, s.salt)
		if err != nil {
			break
		}
		if commit {
			// A commit frame whose batch a cut tore is where the log
			// ends: its version never committed.
			if whole, err := commitFrameWhole(f, s.path, off+4, n); err != nil {
				return err
			} else if !whole {
				break
			}
		}
		fn(seq, walLocation{segment: s, offset: off + 4, length: n, commit: commit})
		lastSeq = seq
	}
	s.badTail = -1
	if off < size {
		s.badTail = off
		if at, err := commitFrameAfter(f, s, off, size, lastSeq); err != nil {
			return err
		} else if at >= 0 {
			return fmt.Errorf("%w: WAL segment %s is damaged at byte %d: a commit frame follows at byte %d, so frames synced before it were lost", ErrCorrupt, s.path, off, at)
		}
	}
	return nil
}

// commitFrameWhole reports whether the batch of the commit frame of n
// bytes at off passes its checksum, reading it in pieces.
func commitFrameWhole(f vfs.File, path string, off, n int64) (bool, error) {
	h := xxhash.New()
	buf := make([]byte, min(n, 1<<20))
	body, end := off+commitFrameHeader, off+n-commitFrameTrailer
	for at := body; at < end; {
		piece := buf[:min(int64(len(buf)), end-at)]
		if _, err := f.ReadAt(piece, at); err != nil {
			return false, fmt.Errorf("commitment: reading %s at %d: %w", path, at, err)
		}
		_, _ = h.Write(piece)
		at += int64(len(piece))
	}
	var sum [8]byte
	if _, err := f.ReadAt(sum[:], end); err != nil {
		return false, fmt.Errorf("commitment: reading %s at %d: %w", path, end, err)
	}
	return h.Sum64() == binary.BigEndian.Uint64(sum[:]), nil
}

// commitFrameAfter looks, past a bad frame at off, for the start of a
// commit frame of this segment (its header checks with the segment's salt)
// numbered after the last good frame's, and returns its offset, or -1. A
// cut in the middle of an append tears any of the frames it wrote since
// the last sync, and page-change records later in it may survive whole;
// but a commit frame is written only after the records before it were
// synced, so one past a bad frame means that frame was durable once:
// damage. It reads the rest of the segment a window at a time.
func commitFrameAfter(f vfs.File, s *walSegment, off, size int64, lastSeq uint64) (int64, error) {
	const window = 1 << 20
	buf := make([]byte, window+4+minFrame)
	// Windows overlap by a frame's length and head, so that no candidate
	// straddles two unseen; the first candidate is past the bad frame's
	// own header.
	for start := off + 1; start+4+minFrame <= size; start += window {
		piece := buf[:min(int64(len(buf)), size-start)]
		if _, err := f.ReadAt(piece, start); err != nil && !errors.Is(err, io.EOF) {
			return 0, fmt.Errorf("commitment: reading %s at %d: %w", s.path, start, err)
		}
		for i := 4; i+minFrame <= len(piece) && i < window+4; i++ {
			if [8]byte(piece[i:i+8]) != commitFrameMagic {
				continue
			}
			n := int64(binary.BigEndian.Uint32(piece[i-4:]))
			if n < minFrame {
				continue
			}
			if seq, _, err := frameSeq(s.path, piece[i:i+minFrame], n, s.salt); err == nil && seq > lastSeq {
				return start + int64(i) - 4, nil
			}
		}
	}
	return -1, nil
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

// read returns the frame at loc.
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
		l.appended += 4 + int64(len(rec))
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

// writeCommit writes the commit frame of batch under seq to the active
// segment, unsynced: its sync (syncActive) is the commit point. It returns
// the bytes written. REQUIRES: DB.writeMu.
func (l *walLog) writeCommit(seq uint64, batch []byte) (int, error) {
	if l.active == nil {
		if err := l.startSegment(); err != nil {
			return 0, err
		}
	}
	s := l.active
	s.maxSeq = max(s.maxSeq, seq)
	n := commitFrameHeader + len(batch) + commitFrameTrailer
	head := binary.BigEndian.AppendUint32(make([]byte, 0, 4+commitFrameHeader), uint32(n))
	head = append(head, commitFrameHead(seq, len(batch), s.salt)...)
	trailer := binary.BigEndian.AppendUint64(nil, xxhash.Sum64(batch))
	at := s.size
	for _, part := range [][]byte{head, batch, trailer} {
		if err := writeFull(s.f, part, at); err != nil {
			return 0, l.failActive(err)
		}
		at += int64(len(part))
	}
	l.appended += at - s.size
	s.size = at
	s.records++
	s.bytes += int64(4 + n)
	l.records.Add(1)
	l.bytes.Add(int64(4 + n))
	return n, nil
}

// syncActive syncs the active segment. It may run on another goroutine
// while the writer holds DB.writeMu and makes no other call on the log;
// the writer calls failActive with a failure.
func (l *walLog) syncActive() error { return l.active.f.Sync() }

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
	var salt [8]byte
	_, _ = rand.Read(salt[:])
	s := &walSegment{num: num, path: path, f: f, salt: binary.BigEndian.Uint64(salt[:]), size: segmentHeader}
	if err := writeFull(f, append(segmentMagic[:], salt[:]...), 0); err != nil {
		_ = f.Close()
		_ = l.fs.Remove(path)
		return fmt.Errorf("commitment: creating WAL segment %s: %w", path, err)
	}
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

// removeThrough removes the sealed segments whose frames are all at or
// below seq, which a durable checkpoint covers. A segment that
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
// checkpoint covers every frame they hold that counts; the rest belong to
// commits that never happened. Removal need not be durable: a
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

// replayCommits applies to Pebble, in order, the batches of the commit
// frames after durable, the sequence number of the commit record Pebble
// holds, up to the first number missing from the log: the commits whose
// frames were synced but whose batches had not reached a flush. It returns
// the number of the last frame applied (durable if none) and how many were.
func replayCommits(pdb *pebble.DB, log *walLog, at map[uint64]walLocation, durable uint64, found []*walSegment) (uint64, int, error) {
	last, applied := durable, 0
	seq := durable + 1
	for ; ; seq++ {
		loc, ok := at[seq]
		if !ok {
			break
		}
		if !loc.commit {
			continue
		}
		name := fmt.Sprintf("commit frame %d", seq)
		data, err := log.read(loc)
		if err != nil {
			return 0, 0, err
		}
		_, repr, err := decodeCommitFrame(fmt.Sprintf("%s (%s, byte %d)", name, loc.segment.path, loc.offset), data, loc.segment.salt)
		if err != nil {
			return 0, 0, err
		}
		pending, err := applyCommitBatch(pdb, name, repr, seq)
		if err != nil {
			return 0, 0, err
		}
		if pending {
			// Its chunks before the next frame, which may set their keys.
			if _, err := finishPending(pdb); err != nil {
				return 0, 0, fmt.Errorf("commitment: finishing the chunks of %s: %w", name, err)
			}
		}
		last = seq
		applied++
	}
	// A commit frame is written only after every number before it: one
	// past a gap means frames of committed versions were lost.
	for s, loc := range at {
		if loc.commit && s > seq {
			return 0, 0, fmt.Errorf("%w: the log holds commit frame %d (%s) but not frame %d before it (%d segments; %s)",
				ErrCorrupt, s, loc.segment.path, seq, len(found), describeTails(found))
		}
	}
	return last, applied, nil
}

// applyCommitBatch applies a commit frame's batch and checks that it holds
// the commit record naming the frame. It reports whether the batch names
// the chunks of a large commit (the pending record).
func applyCommitBatch(pdb *pebble.DB, name string, repr []byte, seq uint64) (pending bool, err error) {
	r, count := pebble.ReadBatch(repr)
	var record *commitRecord
	for range count {
		kind, key, value, ok, err := r.Next()
		if err != nil {
			return false, fmt.Errorf("%w: the batch of %s does not read: %w", ErrCorrupt, name, err)
		}
		if !ok {
			return false, fmt.Errorf("%w: the batch of %s ends before its %d entries", ErrCorrupt, name, count)
		}
		if kind == pebble.InternalKeyKindSet && bytes.Equal(key, keyCommit) {
			if record, err = decodeCommitRecord(value); err != nil {
				return false, fmt.Errorf("the batch of %s: %w", name, err)
			}
		}
		if kind == pebble.InternalKeyKindSet && bytes.Equal(key, keyPending) {
			pending = true
		}
	}
	if record == nil {
		return false, fmt.Errorf("%w: the batch of %s holds no commit record", ErrCorrupt, name)
	}
	if record.lastSeq != seq {
		return false, fmt.Errorf("%w: the commit record in %s names sequence number %d", ErrCorrupt, name, record.lastSeq)
	}
	b := pdb.NewBatch()
	defer func() { _ = b.Close() }()
	// repr was read for this alone: the batch may own it.
	if err := b.SetRepr(repr); err != nil {
		return false, fmt.Errorf("%w: the batch of %s: %w", ErrCorrupt, name, err)
	}
	if err := pdb.Apply(b, pebble.NoSync); err != nil {
		return false, fmt.Errorf("commitment: applying %s: %w", name, err)
	}
	return pending, nil
}
