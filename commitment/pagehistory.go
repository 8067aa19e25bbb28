package commitment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/cespare/xxhash/v2"
	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/sstable"
	"github.com/cockroachdb/pebble/vfs"

	"github.com/nomtstore/nomtstore/commitment/trie"
)

// Superseded pages. When version o rewrites or clears a page, the page as it
// was is kept in one of three forms (the first byte; these bytes are
// format), the first alone in the page's 'p' entry for o, the others in
// its 'h' entry for o (keys.go):
//
//	0  created: no page existed before o
//	1  whole:   1 | the page as it was [4096] (checksum bytes zero)
//	2  delta:   2 | history byte | leaf map [16] | changed-slot map [16] | changed nodes [32 each, slot order]
//	            the page as it was, as what differs from the page o wrote
//
// A delta is about 1/20 of a page (a block changes a few nodes per page),
// but reading it needs the page as o left it, which is the next entry's
// page or, after the last entry, the page table's: reading a page at a
// version walks forward from the first entry after it to a whole copy (or
// the table) and applies the deltas back. The page's history byte
// (trie.HistoryOffset) bounds that walk: it counts the deltas stored since
// the page's last whole copy, and the change that would make it
// maxDeltaChain stores a whole copy instead. A cleared page is always kept
// whole (there is no page to take a delta from).
//
// A page's first count does not start at 0 but at historyStart, a number
// below maxDeltaChain drawn from its store and ID: the pages a block (or a
// bulk load) creates together would otherwise reach the bound in the same
// blocks, every maxDeltaChain changes, and those blocks would write several
// times the usual bytes of history (at 1M keys, 715 whole copies in one
// block against ~185 on average, the block's commit twice the median).
// Staggered, each page's whole copies come every maxDeltaChain changes at
// its own phase. Pruning deletes the oldest
// entries, never one that a retained version's walk passes through: those
// are all newer than the version read.
const (
	pageCreated = 0
	pageWhole   = 1
	pageDelta   = 2

	// maxDeltaChain bounds the deltas a past read applies (and, with the
	// whole copy every maxDeltaChain changes, sets the history's size: a
	// 4 KiB copy plus 15 deltas of ~200 bytes per 16 changes of a page).
	maxDeltaChain = 16

	slotMapSize = 16 // bits for the 126 slots
)

// supersededPage returns the 'p' entry of a page change and sets the new
// page's history byte to match. Calling it again for the same change gives
// the same entry (a commit retried after a failure before its commit point
// encodes its working set again).
func supersededPage(store trie.StoreID, pc trie.PageChange) []byte {
	switch {
	case pc.Prior == nil:
		if pc.Page != nil {
			pc.Page[trie.HistoryOffset] = historyStart(store, pc.ID)
		}
		return []byte{pageCreated}
	case pc.Page == nil || pc.Prior[trie.HistoryOffset]+1 >= maxDeltaChain:
		if pc.Page != nil {
			pc.Page[trie.HistoryOffset] = 0
		}
		return append([]byte{pageWhole}, pc.Prior[:]...)
	}
	pc.Page[trie.HistoryOffset] = pc.Prior[trie.HistoryOffset] + 1
	return appendPageDelta([]byte{pageDelta}, pc.Prior, pc.Page)
}

// historyStart is the history byte of a new page (see above), drawn from
// the page's identity as its history keys spell it.
func historyStart(store trie.StoreID, id trie.PageID) byte {
	return byte(xxhash.Sum64(oldPageEntity(store, id)) % maxDeltaChain)
}

// appendPageDelta appends what prior differs in from page: its history
// byte, its leaf map and the node hashes that differ.
func appendPageDelta(dst []byte, prior, page *trie.Page) []byte {
	dst = append(dst, prior[trie.HistoryOffset])
	dst = append(dst, prior[trie.PageNodes*32:trie.PageNodes*32+slotMapSize]...)
	mapAt := len(dst)
	dst = append(dst, make([]byte, slotMapSize)...)
	for s := range trie.PageNodes {
		if !bytes.Equal(prior[s*32:s*32+32], page[s*32:s*32+32]) {
			dst[mapAt+s/8] |= 1 << uint(s%8)
			dst = append(dst, prior[s*32:s*32+32]...)
		}
	}
	return dst
}

// applyPageDelta returns the page a delta entry describes, given the page
// its version wrote.
func applyPageDelta(entry []byte, page *trie.Page) (*trie.Page, error) {
	const fixed = 1 + 1 + slotMapSize + slotMapSize
	if len(entry) < fixed || entry[0] != pageDelta {
		return nil, fmt.Errorf("delta of %d bytes", len(entry))
	}
	out := page.Clone()
	out[trie.HistoryOffset] = entry[1]
	copy(out[trie.PageNodes*32:trie.PageNodes*32+slotMapSize], entry[2:2+slotMapSize])
	slots, nodes := entry[2+slotMapSize:fixed], entry[fixed:]
	for s := range trie.PageNodes {
		if slots[s/8]>>uint(s%8)&1 == 0 {
			continue
		}
		if len(nodes) < 32 {
			return nil, fmt.Errorf("delta is %d bytes short of its slot map", 32-len(nodes))
		}
		copy(out[s*32:s*32+32], nodes[:32])
		nodes = nodes[32:]
	}
	if len(nodes) != 0 {
		return nil, fmt.Errorf("%d bytes after the delta's nodes", len(nodes))
	}
	return out, nil
}

// pageBefore is the page as it was before version o, given o's entry and,
// for a delta, what supplies the page o wrote. Rollback puts pages back
// with it; pageAt walks chains with it.
func pageBefore(entry []byte, after func() (*trie.Page, error)) (*trie.Page, error) {
	if len(entry) == 0 {
		return nil, fmt.Errorf("empty entry")
	}
	switch entry[0] {
	case pageCreated:
		if len(entry) != 1 {
			return nil, fmt.Errorf("created entry of %d bytes", len(entry))
		}
		return nil, nil
	case pageWhole:
		if len(entry) != 1+trie.PageSize {
			return nil, fmt.Errorf("whole page of %d bytes", len(entry)-1)
		}
		page := new(trie.Page)
		copy(page[:], entry[1:])
		return page, nil
	case pageDelta:
		page, err := after()
		if err != nil {
			return nil, err
		}
		if page == nil {
			return nil, fmt.Errorf("a delta from a page that does not exist")
		}
		return applyPageDelta(entry, page)
	}
	return nil, fmt.Errorf("unknown kind %d", entry[0])
}

// pageAt reads a page at a past version: the first change after the
// version found it as its entry says, walking forward through deltas to a
// whole copy or, past the last change, to the page table's page
// (current). ok is false when no change after version touched the page.
func pageAt(snap, history *pebble.Snapshot, store trie.StoreID, id trie.PageID, version uint64, current func() (*trie.Page, error)) (page *trie.Page, ok bool, err error) {
	entity := oldPageEntity(store, id)
	lower := binary.BigEndian.AppendUint64(bytes.Clone(entity), version+1)
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: afterEntity(entity)})
	if err != nil {
		return nil, false, err
	}
	defer func() { _ = it.Close() }()
	corrupt := func(orphan uint64, format string, args ...any) error {
		return fmt.Errorf("%w: page %s of store %d as version %d found it: %s", ErrCorrupt, id, store, orphan, fmt.Sprintf(format, args...))
	}
	// The deltas met on the way, oldest first, and what the last applies to.
	var deltas [][]byte
	var orphans []uint64
	base := current
	for valid := it.First(); valid; valid = it.Next() {
		key, kind := it.Key(), it.Value()
		if !isEntryOf(key, entity) || len(kind) != 1 {
			return nil, false, fmt.Errorf("%w: page change entry %x", ErrCorrupt, key)
		}
		orphan := binary.BigEndian.Uint64(key[len(entity):])
		if kind[0] == pageCreated {
			if len(deltas) > 0 {
				return nil, false, corrupt(orphans[len(deltas)-1], "a delta from a page that did not exist")
			}
			return nil, true, nil
		}
		entry, found, err := getEntry(history, oldPageKey(orphan, store, id))
		if err != nil {
			return nil, false, err
		}
		if !found || len(entry) == 0 || entry[0] != kind[0] {
			return nil, false, corrupt(orphan, "the superseded page is missing or not of the kind its change says (%d)", kind[0])
		}
		if entry[0] == pageDelta {
			if len(deltas) == maxDeltaChain {
				return nil, false, corrupt(orphan, "more than %d deltas in a row", maxDeltaChain)
			}
			deltas, orphans = append(deltas, entry), append(orphans, orphan)
			continue
		}
		stored, err := pageBefore(entry, nil)
		if err != nil {
			return nil, false, corrupt(orphan, "%v", err)
		}
		if len(deltas) == 0 {
			return stored, true, checkLabel(stored, store, id, orphan, nil)
		}
		base = func() (*trie.Page, error) { return stored, nil }
		break
	}
	if err := it.Error(); err != nil {
		return nil, false, err
	}
	if len(deltas) == 0 {
		return nil, false, nil
	}
	page, err = base()
	for i := len(deltas) - 1; i >= 0 && err == nil; i-- {
		if page, err = pageBefore(deltas[i], func() (*trie.Page, error) { return page, nil }); err != nil {
			err = corrupt(orphans[i], "%v", err)
		}
	}
	return page, true, checkLabel(page, store, id, orphans[0], err)
}

// checkLabel refuses a reconstructed page that is not the page asked for.
func checkLabel(page *trie.Page, store trie.StoreID, id trie.PageID, orphan uint64, err error) error {
	if err != nil || page == nil {
		return err
	}
	if s, pid, lerr := page.Label(); lerr != nil || s != store || pid != id {
		return fmt.Errorf("%w: superseded page %s of store %d (orphaned at %d) is labelled store %d page %s", ErrCorrupt, id, store, orphan, s, pid)
	}
	return nil
}

// historyWrite is a version's writeHistory running on its own goroutine.
type historyWrite struct {
	done   chan error
	err    error
	waited bool
}

// startHistory starts writeHistory for a version.
func startHistory(history *pebble.DB, w *workingSet, entries [][][]byte, version uint64, maxBatch int) *historyWrite {
	h := &historyWrite{done: make(chan error, 1)}
	go func() { h.done <- writeHistory(history, w, entries, version, maxBatch) }()
	return h
}

// wait returns writeHistory's outcome once it is done; nil for none (a
// rollback's undo, which supersedes no page). Only the committing
// goroutine calls it.
func (h *historyWrite) wait() error {
	if h == nil {
		return nil
	}
	if !h.waited {
		h.err, h.waited = <-h.done, true
	}
	return h.err
}

// writeHistory writes a version's superseded pages into the page history's
// Pebble and syncs its log. The commit frame that makes the version
// committed is written after it returns, so every committed version has its
// history; a version that then fails to commit leaves entries that no page
// change entry names, which nothing reads and open drops (dropStrayHistory).
// A large version goes in batches of up to maxBatch bytes, the last synced.
func writeHistory(history *pebble.DB, w *workingSet, entries [][][]byte, version uint64, maxBatch int) error {
	batch := history.NewBatch()
	defer func() { _ = batch.Close() }()
	wrote := false
	for ui, u := range w.updates {
		for pi, pc := range u.result.Pages {
			entry := entries[ui][pi]
			if entry[0] == pageCreated {
				continue
			}
			if err := batch.Set(oldPageKey(version, u.tree.store, pc.ID), entry, nil); err != nil {
				return err
			}
			if batch.Len() >= maxBatch {
				if err := batch.Commit(pebble.NoSync); err != nil {
					return err
				}
				_ = batch.Close()
				batch, wrote = history.NewBatch(), true
			}
		}
	}
	switch {
	case !batch.Empty():
		return batch.Commit(pebble.Sync)
	case wrote:
		return history.LogData(nil, pebble.Sync)
	}
	return nil
}

// historyStore is the page history's Pebble, and how versions leave it:
// a table holding only the range deletion, ingested. Written into the
// memtable, a deletion would share a flush with the versions committed
// beside it, and the table holding both would span the history and overlap
// every table below, which Pebble would then rewrite (under pruning it
// wrote the history three times over). Ingested, the deletion's table
// spans only the versions it deletes, and Pebble drops the tables it covers
// whole.
type historyStore struct {
	*pebble.DB
	fs     vfs.FS
	tmp    string // the deletion's table on its way in
	writer sstable.WriterOptions
	mu     sync.Mutex // one deletion at a time: pruning, checkpoints, rollback
}

func openHistory(dir string, opts *pebble.Options) (*historyStore, error) {
	db, err := pebble.Open(filepath.Join(dir, historyDir), opts)
	if err != nil {
		return nil, err
	}
	h := &historyStore{DB: db, fs: opts.FS, tmp: filepath.Join(dir, historyDeletionFile),
		writer: opts.MakeWriterOptions(len(opts.Levels)-1, db.FormatMajorVersion().MaxTableFormat())}
	// A deletion a crash cut before its ingestion did not happen.
	if err := h.fs.Remove(h.tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		_ = db.Close()
		return nil, err
	}
	return h, nil
}

// deleteRange deletes [start, end) durably.
func (h *historyStore) deleteRange(start, end []byte) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	f, err := h.fs.Create(h.tmp)
	if err != nil {
		return err
	}
	w := sstable.NewWriter(objstorageprovider.NewFileWritable(f), h.writer)
	if err := w.DeleteRange(start, end); err != nil {
		_ = w.Close()
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	if err := h.Ingest([]string{h.tmp}); err != nil {
		return err
	}
	// Ingest links the table in; the name outside is left to remove.
	if err := h.fs.Remove(h.tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// dropStray deletes, at open, the page history of versions no longer
// retained (pruning deletes it once its batch is durable, and a crash may
// come first) and of versions after the latest (written before a commit
// frame that never became durable, or left by a rollback).
func (h *historyStore) dropStray(earliest, latest uint64) error {
	if err := h.dropBefore(earliest); err != nil {
		return err
	}
	it, err := h.NewIter(&pebble.IterOptions{LowerBound: versionKey(prefixOldPage, latest+1), UpperBound: []byte{prefixOldPage + 1}})
	if err != nil {
		return err
	}
	var last []byte
	if it.Last() {
		last = bytes.Clone(it.Key())
	}
	if err := it.Close(); err != nil || last == nil {
		return err
	}
	return h.deleteRange(versionKey(prefixOldPage, latest+1), append(last, 0))
}

// dropBefore deletes the superseded pages no version from earliest on
// reads (those of versions up to earliest), from the first there is:
// nothing when there are none.
func (h *historyStore) dropBefore(earliest uint64) error {
	if earliest == 0 {
		return nil
	}
	end := versionKey(prefixOldPage, earliest+1)
	it, err := h.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixOldPage}, UpperBound: end})
	if err != nil {
		return err
	}
	var first []byte
	if it.First() {
		first = bytes.Clone(it.Key())
	}
	if err := it.Close(); err != nil || first == nil {
		return err
	}
	return h.deleteRange(first, end)
}

// readEarliest reads the earliest retained version Pebble holds: 0 before
// the first commit.
func readEarliest(pdb *pebble.DB) (uint64, error) {
	v, ok, err := getMeta(pdb, keyEarliest, "the earliest version")
	if err != nil || !ok {
		return 0, err
	}
	return decodeEarliest(v)
}

// decodeEarliest decodes the earliest version record.
func decodeEarliest(v []byte) (uint64, error) {
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: earliest version record of %d bytes", ErrCorrupt, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// readDurableEarliest reads the earliest retained version as Pebble's
// flushed tables hold it, which a crash cannot take back (Pebble keeps no
// log: its memtables are not durable).
func readDurableEarliest(pdb *pebble.DB) (uint64, error) {
	it, err := pdb.NewIter(&pebble.IterOptions{LowerBound: keyEarliest, UpperBound: append(bytes.Clone(keyEarliest), 0), OnlyReadGuaranteedDurable: true})
	if err != nil {
		return 0, err
	}
	var v []byte
	if it.First() {
		v = bytes.Clone(it.Value())
	}
	if err := it.Close(); err != nil || v == nil {
		return 0, err
	}
	return decodeEarliest(v)
}
