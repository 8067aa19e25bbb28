package bitbox

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"

	"github.com/cespare/xxhash/v2"

	"github.com/nomtstore/nomtstore/commitment/trie"
	"github.com/nomtstore/nomtstore/commitment/vfs"
)

// Table file format (all integers big-endian; these constants are format):
//
//	offset 0: header block, 4096 bytes
//	     0  8  magic "NOMTHT\x00\x01"
//	     8  4  format version (TableFormatVersion)
//	    12  4  reserved, zero
//	    16  8  bucket count N
//	    24  8  hash seed
//	    32  8  generation: 0 at creation, +1 at each growth
//	    40  8  xxhash64 of bytes 0..40
//	offset 4096: meta map, N bytes padded to a multiple of 4096
//	    byte i: 0x00 empty, 0x01 tombstone, 0x80|tag full (tag = hash>>57)
//	offset 4096 + metaSize: N buckets of 4096 bytes, bucket i at dataOffset + 4096*i
//	    a bucket holds one trie page; bytes 4088..4096 are xxhash64 of 0..4088
//
// Changelog: version 1, the first.
const (
	TableFormatVersion = 1
	blockSize          = 4096
	headerSize         = 48

	metaEmpty     = 0x00
	metaTombstone = 0x01
	metaFull      = 0x80
)

var tableMagic = [8]byte{'N', 'O', 'M', 'T', 'H', 'T', 0, 1}

// MaxProbe bounds probing: every page sits within MaxProbe buckets of its
// home bucket (Assign and Grow refuse to place it farther), so a lookup
// scans at most MaxProbe meta bytes and reads only the buckets whose 7-bit
// tag matches. It is part of the format: a table written with a larger bound
// could hide pages from a reader using a smaller one.
const MaxProbe = 256

// maxBuckets bounds a table to 4 PiB of pages: a header claiming more is
// damage, and the bound keeps size arithmetic from overflowing.
const maxBuckets = 1 << 40

// PageKey names a page across all trees.
type PageKey struct {
	Store trie.StoreID
	ID    trie.PageID
}

func (k PageKey) String() string { return fmt.Sprintf("store %d page %s", k.Store, k.ID) }

// Table is the page hash table. Lookups may run concurrently with each
// other and with Apply/Flush of a commit.
type Table struct {
	fs   vfs.FS
	path string
	file vfs.File

	buckets    uint64 // N; fixed for the table's life
	seed       uint64
	generation uint64
	dataOffset int64

	mu sync.RWMutex
	// meta is the meta map as of the last applied commit. REQUIRES: mu.
	meta []byte
	// full and tombstones count meta bytes. REQUIRES: mu.
	full, tombstones uint64
	// pending holds pages applied but not yet written by a checkpoint, by
	// bucket: reads of those buckets are served from here. REQUIRES: mu.
	pending map[uint64]*trie.Page
	// dirtyMeta holds the meta blocks (by index) changed since they were
	// last written. REQUIRES: mu.
	dirtyMeta map[int64]bool
	// probes and lookups accumulate probe lengths for stats. REQUIRES: mu
	// (written under the read lock through atomics would be overkill here;
	// they are updated under statsMu).
	statsMu              sync.Mutex
	lookups, probes      uint64
	longestProbeObserved int
}

func metaSizeFor(buckets uint64) int64 {
	return (int64(buckets) + blockSize - 1) / blockSize * blockSize
}

// FileSize is the size of a table file with the given bucket count.
func FileSize(buckets uint64) int64 {
	return blockSize + metaSizeFor(buckets) + int64(buckets)*blockSize
}

// CreateTable writes an empty table with the given bucket count at path,
// atomically: it is built under a temporary name, synced, then renamed.
func CreateTable(fs vfs.FS, path string, buckets, seed uint64) (*Table, error) {
	if buckets == 0 || buckets > maxBuckets {
		return nil, fmt.Errorf("bitbox: a table has 1..%d buckets, not %d", uint64(maxBuckets), buckets)
	}
	tmp := path + ".tmp"
	if err := writeEmptyTable(fs, tmp, buckets, seed, 0); err != nil {
		return nil, err
	}
	if err := renameDurably(fs, tmp, path); err != nil {
		return nil, err
	}
	return OpenTable(fs, path)
}

func writeEmptyTable(fs vfs.FS, path string, buckets, seed, generation uint64) error {
	f, err := fs.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("bitbox: creating table: %w", err)
	}
	// Allocated, not sparse: a full disk fails here, before any commit
	// depends on the table, instead of in a commit's page flush, after its
	// commit point.
	err = f.Allocate(FileSize(buckets))
	if err == nil {
		_, err = f.WriteAt(encodeHeader(buckets, seed, generation), 0)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		// What a failed allocation took is given back now, not at the
		// next open.
		_ = fs.Remove(path)
		return fmt.Errorf("bitbox: writing table %s: %w", path, err)
	}
	return nil
}

func encodeHeader(buckets, seed, generation uint64) []byte {
	h := make([]byte, blockSize)
	copy(h, tableMagic[:])
	binary.BigEndian.PutUint32(h[8:], TableFormatVersion)
	binary.BigEndian.PutUint64(h[16:], buckets)
	binary.BigEndian.PutUint64(h[24:], seed)
	binary.BigEndian.PutUint64(h[32:], generation)
	binary.BigEndian.PutUint64(h[40:], xxhash.Sum64(h[:40]))
	return h
}

func renameDurably(fs vfs.FS, from, to string) error {
	if err := fs.Rename(from, to); err != nil {
		return fmt.Errorf("bitbox: renaming %s: %w", from, err)
	}
	if err := fs.SyncDir(dirOf(to)); err != nil {
		return fmt.Errorf("bitbox: syncing the directory of %s: %w", to, err)
	}
	return nil
}

func dirOf(path string) string {
	for i := len(path) - 1; i >= 0; i-- {
		if path[i] == '/' {
			return path[:i]
		}
	}
	return "."
}

// OpenTable opens a table file, checking its header and loading its meta map.
func OpenTable(fs vfs.FS, path string) (*Table, error) {
	f, err := fs.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("bitbox: opening table: %w", err)
	}
	t, err := loadTable(fs, path, f)
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return t, nil
}

func loadTable(fs vfs.FS, path string, f vfs.File) (*Table, error) {
	h := make([]byte, headerSize)
	if _, err := f.ReadAt(h, 0); err != nil {
		return nil, corruptAt(path, 0, "reading header: %v", err)
	}
	if [8]byte(h[:8]) != tableMagic {
		return nil, corruptAt(path, 0, "not a nomtstore page table (magic %q)", h[:8])
	}
	if sum := binary.BigEndian.Uint64(h[40:]); sum != xxhash.Sum64(h[:40]) {
		return nil, corruptAt(path, 40, "header checksum %016x does not match", sum)
	}
	if v := binary.BigEndian.Uint32(h[8:]); v != TableFormatVersion {
		return nil, fmt.Errorf("%w: %s is table format %d, this build reads %d", ErrFormat, path, v, TableFormatVersion)
	}
	t := &Table{
		fs: fs, path: path, file: f,
		buckets:    binary.BigEndian.Uint64(h[16:]),
		seed:       binary.BigEndian.Uint64(h[24:]),
		generation: binary.BigEndian.Uint64(h[32:]),
		pending:    map[uint64]*trie.Page{},
		dirtyMeta:  map[int64]bool{},
	}
	if t.buckets == 0 || t.buckets > maxBuckets {
		return nil, corruptAt(path, 16, "bucket count %d is outside 1..%d", t.buckets, uint64(maxBuckets))
	}
	t.dataOffset = blockSize + metaSizeFor(t.buckets)
	if st, err := f.Stat(); err != nil {
		return nil, fmt.Errorf("bitbox: %s: %w", path, err)
	} else if st.Size() != FileSize(t.buckets) {
		return nil, corruptAt(path, st.Size(), "file is %d bytes, a table of %d buckets is %d", st.Size(), t.buckets, FileSize(t.buckets))
	}
	t.meta = make([]byte, t.buckets)
	if _, err := f.ReadAt(t.meta, blockSize); err != nil {
		return nil, corruptAt(path, blockSize, "reading meta map: %v", err)
	}
	for i, m := range t.meta {
		switch {
		case m == metaEmpty:
		case m == metaTombstone:
			t.tombstones++
		case m&metaFull != 0:
			t.full++
		default:
			return nil, corruptAt(path, blockSize+int64(i), "meta byte %#x is neither empty, tombstone nor full", m)
		}
	}
	return t, nil
}

// Close closes the table file.
func (t *Table) Close() error { return t.file.Close() }

// Path is the table's file.
func (t *Table) Path() string { return t.path }

// Generation counts the growths the table has been through; a WAL records
// the generation it was planned against.
func (t *Table) Generation() uint64 { return t.generation }

func (t *Table) hash(key PageKey) uint64 {
	var buf [8 + 4 + trie.EncodedPageIDSize]byte
	binary.BigEndian.PutUint64(buf[:8], t.seed)
	binary.BigEndian.PutUint32(buf[8:12], uint32(key.Store))
	key.ID.AppendEncoded(buf[:12])
	return xxhash.Sum64(buf[:])
}

func fullMeta(h uint64) byte { return metaFull | byte(h>>57) }

// Lookup finds a page. It returns the page, its bucket, and false when no
// bucket holds it.
func (t *Table) Lookup(key PageKey) (*trie.Page, uint64, bool, error) {
	h := t.hash(key)
	want := fullMeta(h)
	t.mu.RLock()
	defer t.mu.RUnlock()
	for i := uint64(0); i < t.probeLimit(); i++ {
		b := (h + i) % t.buckets
		switch m := t.meta[b]; {
		case m == metaEmpty:
			t.noteProbe(int(i) + 1)
			return nil, 0, false, nil
		case m != want:
			continue
		}
		page, err := t.readLocked(b)
		if err != nil {
			return nil, 0, false, err
		}
		store, id, err := page.Label()
		if err != nil {
			return nil, 0, false, corruptAt(t.path, t.bucketOffset(b), "bucket %d: %v", b, err)
		}
		if store == key.Store && id == key.ID {
			t.noteProbe(int(i) + 1)
			return page, b, true, nil
		}
	}
	t.noteProbe(int(t.probeLimit()))
	return nil, 0, false, nil
}

// probeLimit is how many buckets a probe sequence spans.
func (t *Table) probeLimit() uint64 { return min(t.buckets, MaxProbe) }

func (t *Table) noteProbe(n int) {
	t.statsMu.Lock()
	t.lookups++
	t.probes += uint64(n)
	t.longestProbeObserved = max(t.longestProbeObserved, n)
	t.statsMu.Unlock()
}

func (t *Table) bucketOffset(b uint64) int64 { return t.dataOffset + int64(b)*blockSize }

// readLocked reads bucket b, from pending pages first. REQUIRES: mu held.
func (t *Table) readLocked(b uint64) (*trie.Page, error) {
	if p := t.pending[b]; p != nil {
		return p, nil
	}
	return t.ReadBucket(b)
}

// ReadBucket reads a bucket from the file and verifies its checksum.
func (t *Table) ReadBucket(b uint64) (*trie.Page, error) {
	page, err := t.readRaw(b)
	if err != nil {
		return nil, err
	}
	stored := binary.BigEndian.Uint64(page[trie.ChecksumOffset:])
	if sum := xxhash.Sum64(page[:trie.ChecksumOffset]); sum != stored {
		return nil, corruptAt(t.path, t.bucketOffset(b), "bucket %d checksum %016x, content hashes to %016x", b, stored, sum)
	}
	return page, nil
}

func (t *Table) readRaw(b uint64) (*trie.Page, error) {
	page := new(trie.Page)
	if _, err := t.file.ReadAt(page[:], t.bucketOffset(b)); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("bitbox: reading bucket %d of %s: %w", b, t.path, err)
	}
	return page, nil
}

// Change is one page a commit writes or clears.
type Change struct {
	Key PageKey
	// Page is the new content, nil when the page is cleared.
	Page *trie.Page
	// Prior is the committed content, nil when the page is new.
	Prior *trie.Page
	// Bucket holds the page. The caller sets it for pages that exist (it
	// found them there); Assign sets it for new pages.
	Bucket uint64
}

// Stats describe the table.
type Stats struct {
	Buckets, Full, Tombstones uint64
	LoadFactor                float64 // (full + tombstones) / buckets: what probing pays for
	Generation                uint64
	Lookups                   uint64
	MeanProbe                 float64
	LongestProbe              int
	FileBytes                 int64
}

// Stats returns the table's current figures.
func (t *Table) Stats() Stats {
	t.mu.RLock()
	s := Stats{Buckets: t.buckets, Full: t.full, Tombstones: t.tombstones, Generation: t.generation, FileBytes: FileSize(t.buckets)}
	t.mu.RUnlock()
	s.LoadFactor = float64(s.Full+s.Tombstones) / float64(s.Buckets)
	t.statsMu.Lock()
	s.Lookups, s.LongestProbe = t.lookups, t.longestProbeObserved
	if t.lookups > 0 {
		s.MeanProbe = float64(t.probes) / float64(t.lookups)
	}
	t.statsMu.Unlock()
	return s
}

// NeedsGrowth reports whether adding newPages pages would push the load
// factor past maxLoad, and if so the bucket count to grow to (the next
// power-of-two multiple keeping the live pages at half of maxLoad or less).
func (t *Table) NeedsGrowth(newPages uint64, maxLoad float64) (uint64, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if float64(t.full+t.tombstones+newPages) <= maxLoad*float64(t.buckets) {
		return 0, false
	}
	size := t.buckets
	for float64(t.full+newPages) > maxLoad/2*float64(size) {
		size *= 2
	}
	return size, true
}

// Assign picks buckets for the new pages among changes (Prior == nil,
// Page != nil): the first empty or tombstone bucket of each one's probe
// sequence not taken by another page of this commit. It does not change the
// table; Apply does, once the commit is durable.
func (t *Table) Assign(changes []Change) error {
	t.mu.RLock()
	defer t.mu.RUnlock()
	taken := map[uint64]bool{}
	for i := range changes {
		c := &changes[i]
		if c.Prior != nil || c.Page == nil {
			continue
		}
		h := t.hash(c.Key)
		found := false
		for j := uint64(0); j < t.probeLimit(); j++ {
			b := (h + j) % t.buckets
			if m := t.meta[b]; (m == metaEmpty || m == metaTombstone) && !taken[b] {
				c.Bucket, found = b, true
				taken[b] = true
				break
			}
		}
		if !found {
			return fmt.Errorf("%w: %s in %s (%d buckets)", ErrProbeLimit, c.Key, t.path, t.buckets)
		}
	}
	return nil
}

// Apply makes a committed commit's changes visible: the meta map marks new
// pages full and cleared ones tombstones, and the new pages are served from
// memory (they are dirty) until a Checkpoint has written them.
func (t *Table) Apply(changes []Change) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range changes {
		old := t.meta[c.Bucket]
		var now byte
		if c.Page == nil {
			now = metaTombstone
			delete(t.pending, c.Bucket)
		} else {
			now = fullMeta(t.hash(c.Key))
			t.pending[c.Bucket] = c.Page
		}
		t.countLocked(old, -1)
		t.countLocked(now, +1)
		t.meta[c.Bucket] = now
		t.dirtyMeta[int64(c.Bucket)/blockSize] = true
	}
}

func (t *Table) countLocked(m byte, delta int) {
	switch {
	case m == metaTombstone:
		t.tombstones = uint64(int64(t.tombstones) + int64(delta))
	case m&metaFull != 0:
		t.full = uint64(int64(t.full) + int64(delta))
	}
}

// checkpointSyncEvery is how many pages a checkpoint writes between two
// syncs of the table (4 MiB).
const checkpointSyncEvery = 1024

// Dirty is the number of pages applied but not yet written by a
// Checkpoint: what the table holds in memory beyond its file.
func (t *Table) Dirty() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.pending)
}

// Checkpoint writes every page applied so far, and the meta blocks they
// touched, to the file and syncs it; the pages are then read from the file
// again. Pages applied while it runs stay dirty for the next one. It may run
// concurrently with Apply and lookups, but not with another Checkpoint,
// Grow or Replay.
//
// A checkpoint that fails or is cut short by a crash leaves buckets of
// pages committed after the last complete one written, torn or not: the
// WAL records since that one are replayed over them (Replay), which
// rewrites every node they changed and leaves the others, which are the
// same before and after.
func (t *Table) Checkpoint() error {
	t.mu.RLock()
	pages := make(map[uint64]*trie.Page, len(t.pending))
	for b, p := range t.pending {
		pages[b] = p
	}
	blocks := make(map[int64][]byte, len(t.dirtyMeta))
	for blk := range t.dirtyMeta {
		start := blk * blockSize
		end := min(start+blockSize, int64(t.buckets))
		blocks[blk] = append([]byte(nil), t.meta[start:end]...)
	}
	t.mu.RUnlock()
	// Writing buckets in order lets the disk merge neighbouring ones.
	order := make([]uint64, 0, len(pages))
	for b := range pages {
		order = append(order, b)
	}
	slices.Sort(order)
	for i, b := range order {
		if err := t.writePage(b, pages[b]); err != nil {
			return err
		}
		// Sync as it goes: one fsync of every page at the end would make
		// the disk write them all at once, and the commits' own fsyncs
		// (the file system's journal) wait behind that burst.
		if i%checkpointSyncEvery == checkpointSyncEvery-1 {
			if err := t.file.Sync(); err != nil {
				return fmt.Errorf("bitbox: syncing %s: %w", t.path, err)
			}
		}
	}
	for blk, data := range blocks {
		if _, err := t.file.WriteAt(data, blockSize+blk*blockSize); err != nil {
			return fmt.Errorf("bitbox: writing meta map of %s: %w", t.path, err)
		}
	}
	if err := t.file.Sync(); err != nil {
		return fmt.Errorf("bitbox: syncing %s: %w", t.path, err)
	}
	t.mu.Lock()
	for b, p := range pages {
		if t.pending[b] == p {
			delete(t.pending, b)
		}
	}
	for blk, data := range blocks {
		start := blk * blockSize
		if bytes.Equal(t.meta[start:start+int64(len(data))], data) {
			delete(t.dirtyMeta, blk)
		}
	}
	t.mu.Unlock()
	return nil
}

func (t *Table) writePage(b uint64, page *trie.Page) error {
	buf := *page
	binary.BigEndian.PutUint64(buf[trie.ChecksumOffset:], xxhash.Sum64(buf[:trie.ChecksumOffset]))
	if _, err := t.file.WriteAt(buf[:], t.bucketOffset(b)); err != nil {
		return fmt.Errorf("bitbox: writing bucket %d of %s: %w", b, t.path, err)
	}
	return nil
}

// Grow rebuilds the table with the given bucket count into a new file and
// renames it over the old one, then returns the new table. The caller closes
// t once no reader uses it (its file is unlinked but still readable). Pages are streamed one at a time, so memory stays bounded by the
// meta map whatever the table's size, and lookups in t go on meanwhile. A
// crash before the rename leaves the old table whole (the temporary file is
// removed at the next open). ErrProbeLimit means the new size is too small
// to place every page within MaxProbe of its home: grow bigger. A failure
// after the rename is ErrGrowIncomplete: t stays open for reads, but its
// file is no longer the one at its path. Grow must not run while a commit's
// pages are dirty, nor concurrently with Apply or Checkpoint on t.
func (t *Table) Grow(buckets uint64) (*Table, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if len(t.pending) > 0 {
		return nil, errors.New("bitbox: cannot grow with dirty pages: checkpoint first")
	}
	tmp := t.path + ".grow"
	if err := writeEmptyTable(t.fs, tmp, buckets, t.seed, t.generation+1); err != nil {
		return nil, err
	}
	grown, err := OpenTable(t.fs, tmp)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Table, error) {
		_ = grown.Close()
		_ = t.fs.Remove(tmp)
		return nil, err
	}
	for b, m := range t.meta {
		if m&metaFull == 0 {
			continue
		}
		page, err := t.ReadBucket(uint64(b))
		if err != nil {
			return fail(err)
		}
		store, id, err := page.Label()
		if err != nil {
			return fail(corruptAt(t.path, t.bucketOffset(uint64(b)), "bucket %d: %v", b, err))
		}
		slot, err := grown.place(PageKey{Store: store, ID: id})
		if err != nil {
			return fail(err)
		}
		if err := grown.writePage(slot, page); err != nil {
			return fail(err)
		}
	}
	if _, err := grown.file.WriteAt(grown.meta, blockSize); err != nil {
		return fail(fmt.Errorf("bitbox: writing meta map of %s: %w", tmp, err))
	}
	if err := grown.file.Sync(); err != nil {
		return fail(fmt.Errorf("bitbox: syncing %s: %w", tmp, err))
	}
	if err := grown.Close(); err != nil {
		return fail(err)
	}
	if err := t.fs.Rename(tmp, t.path); err != nil {
		return fail(fmt.Errorf("bitbox: renaming %s: %w", tmp, err))
	}
	// The grown file is at t.path now and t's file is unlinked: t still
	// reads the same pages, but must never be written again.
	if err := t.fs.SyncDir(dirOf(t.path)); err != nil {
		return nil, fmt.Errorf("%w: syncing the directory of %s: %w", ErrGrowIncomplete, t.path, err)
	}
	next, err := OpenTable(t.fs, t.path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrGrowIncomplete, err)
	}
	return next, nil
}

// place marks the first free bucket of key's probe sequence full, for a
// table being built by Grow, and returns it.
func (t *Table) place(key PageKey) (uint64, error) {
	h := t.hash(key)
	t.mu.Lock()
	defer t.mu.Unlock()
	for j := uint64(0); j < t.probeLimit(); j++ {
		b := (h + j) % t.buckets
		if t.meta[b] == metaEmpty {
			t.meta[b] = fullMeta(h)
			t.full++
			return b, nil
		}
	}
	return 0, fmt.Errorf("%w: %s within %d buckets of %d", ErrProbeLimit, key, MaxProbe, t.buckets)
}

// RemoveLeftovers deletes what an interrupted CreateTable or Grow left.
func RemoveLeftovers(fs vfs.FS, path string) error {
	for _, p := range []string{path + ".tmp", path + ".grow"} {
		if err := fs.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("bitbox: removing %s: %w", p, err)
		}
	}
	return nil
}
