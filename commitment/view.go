package commitment

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble"
	ics23 "github.com/cosmos/ics23/go"

	"github.com/nomtstore/nomtstore/commitment/bitbox"
	"github.com/nomtstore/nomtstore/commitment/trie"
)

// Reads of one tree at one version: the view every read, proof, check and
// trie update goes through, and the page source it gives the trie.

// treePages is the trie.PageSource of one tree at the committed version.
// When buckets is set it records the bucket of every page it returns, so a
// commit knows where the pages it rewrites live.
type treePages struct {
	pages   *pageStore
	store   trie.StoreID
	mu      sync.Mutex
	buckets map[trie.PageID]uint64 // REQUIRES: mu
}

func (p *treePages) Page(id trie.PageID) (*trie.Page, error) {
	cp, found, err := p.pages.lookup(bitbox.PageKey{Store: p.store, ID: id})
	if err != nil || !found {
		return nil, err
	}
	if p.buckets != nil {
		p.mu.Lock()
		p.buckets[id] = cp.bucket
		p.mu.Unlock()
	}
	return cp.page, nil
}

// treeView is one tree at one retained version as every read sees it: its
// pages from the page store (and, at a past version, from history), its
// leaf index and values from one Pebble snapshot, and, at the latest
// version, the value and leaf caches.
//
// Invariants: a view is used while DB.mu is held (read), under which its
// snapshot, pages and caches are the committed state's and its version
// stays retained; version <= latest, and version 0 only for a read at the
// latest when nothing is committed yet. fill is false while a commit
// writes its entries through the caches (valuecache.go): a miss read then
// is not put back, since it could land after the commit's own entry.
type treeView struct {
	tree            *tree
	version, latest uint64
	snap            *snapshot
	pages           *pageStore
	values          *valueCache
	leaves          *leafCache
	fill            bool
	elideBelow      int
}

// trie returns the view's trie, with its leaf index, which also serves the
// tree's preimages. A non-nil buckets map records where each page read
// from the table lives.
func (v treeView) trie(buckets map[trie.PageID]uint64) (*trie.Tree, leavesAt) {
	leaves := leavesAt{snap: v.snap.snap, store: v.tree.store, version: v.version, latest: v.latest}
	if v.version == v.latest {
		leaves.cache, leaves.fill, leaves.elideBelow = v.leaves, v.fill, v.elideBelow
	}
	current := &treePages{pages: v.pages, store: v.tree.store, buckets: buckets}
	var pages trie.PageSource = current
	if v.version < v.latest {
		pages = pagesAt{latest: current, snap: v.snap.snap, history: v.snap.history, version: v.version}
	}
	return &trie.Tree{Store: v.tree.store, Pages: pages, Leaves: leaves, ElideBelow: v.elideBelow}, leaves
}

// currentEntry reads a key's current entry (the latest version's), through
// the value cache (cache false: a miss is not added). The entry is shared:
// callers must not change it.
func (v treeView) currentEntry(key []byte, cache bool) (recentRead, error) {
	store := v.tree.store
	if r, ok := v.values.get(store, key, v.version); ok {
		return r, nil
	}
	entry, found, err := getEntry(v.snap.snap, valueKey(store, key))
	if err != nil {
		return recentRead{}, fmt.Errorf("commitment: get: %w", err)
	}
	r := recentRead{entry: entry, found: found}
	if cache && v.fill {
		v.values.put(store, key, r, v.version)
	}
	return r, nil
}

// value returns a key's value at the view's version, or nil when it is
// absent; the caller's copy.
func (v treeView) value(key []byte) ([]byte, error) {
	if v.version == 0 {
		// Nothing is committed: whatever a bulk load has written so far
		// is not a version yet.
		return nil, nil
	}
	if v.version < v.latest {
		value, err := valueAt(v.snap.snap, v.tree.store, key, v.version, v.latest)
		if err != nil {
			return nil, fmt.Errorf("commitment: get: %w", err)
		}
		return value, nil
	}
	r, err := v.currentEntry(key, true)
	if err != nil || !r.found {
		return nil, err
	}
	_, value, err := splitBorn(r.entry)
	return bytes.Clone(value), err
}

// cursor returns a cursor over [start, end) of the view's keys in raw-key
// order (end nil: to the tree's last key).
func (v treeView) cursor(start, end []byte, reverse bool) (cursor, error) {
	store, snap := v.tree.store, v.snap.snap
	lower, upper := valueKey(store, start), storeUpperBound(prefixValue, store)
	if end != nil {
		upper = valueKey(store, end)
	}
	if v.version == 0 {
		upper = lower // nothing is committed (a bulk load's values are not yet)
	}
	if v.version == v.latest {
		current, err := newCurrentCursor(snap, lower, upper, v.version, false, reverse)
		if err != nil {
			return nil, fmt.Errorf("commitment: iterator: %w", err)
		}
		return current, nil
	}
	current, err := newPastValueCursor(snap, store, lower, upper, v.version, reverse)
	if err != nil {
		return nil, fmt.Errorf("commitment: iterator: %w", err)
	}
	dl, du := deletedEntity(store, start), storeUpperBound(prefixDeleted, store)
	if start == nil {
		dl = storePrefix(prefixDeleted, store)
	}
	if end != nil {
		du = deletedEntity(store, end)
	}
	deleted, err := newDeletedCursor(snap, store, dl, du, v.version, reverse)
	if err != nil {
		_ = current.Close()
		return nil, fmt.Errorf("commitment: iterator: %w", err)
	}
	return newSharedMergeCursor(current, deleted, reverse), nil
}

// prove proves key against root, the view's version's root of its tree.
func (v treeView) prove(key []byte, root trie.Hash) (*ics23.CommitmentProof, bool, error) {
	tr, leaves := v.trie(nil)
	return tr.Prove(root, key, leaves)
}

// check walks the view's pages against root, the view's version's root of
// its tree. The leaf index also gives the preimages, so it hashes every
// value too.
func (v treeView) check(root trie.Hash) ([]trie.Violation, error) {
	tr, _ := v.trie(nil)
	rep, err := tr.Check(root)
	if err != nil {
		return nil, fmt.Errorf("commitment: checking tree %q at version %d: %w", v.tree.name, v.version, err)
	}
	return rep.Violations, nil
}

// snapshot is a snapshot of one committed version in both Pebbles (the
// page history's taken with the other, at the swap: a version's history
// is written before its batch), shared by the readers of that version and
// released by the last of them.
type snapshot struct {
	snap    *pebble.Snapshot
	history *pebble.Snapshot
	refs    atomic.Int64
}

func newSnapshot(db, history *pebble.DB) *snapshot {
	s := &snapshot{snap: db.NewSnapshot(), history: history.NewSnapshot()}
	s.refs.Store(1)
	return s
}

func (s *snapshot) acquire() { s.refs.Add(1) }

func (s *snapshot) release() {
	if s.refs.Add(-1) == 0 {
		_ = s.snap.Close()
		_ = s.history.Close()
	}
}
