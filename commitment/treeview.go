package commitment

import (
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble"

	"github.com/nomtstore/nomtstore/commitment/bitbox"
	"github.com/nomtstore/nomtstore/commitment/trie"
)

// A tree at one version, as the trie package reads it: its pages from the
// page store (and, at a past version, from history) and its leaf index and
// values from one Pebble snapshot.

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

// committedTree returns the trie of one tree at the committed version.
// REQUIRES: mu held (read).
func (db *DB) committedTree(t *tree, buckets map[trie.PageID]uint64) (*trie.Tree, leavesAt) {
	return db.treeAt(t, db.record.version, buckets)
}

// treeAt returns the trie of one tree at a retained version (which the
// caller has checked), with its leaf index, which also serves the tree's
// preimages. A non-nil buckets map records where each page read from the
// table lives. REQUIRES: mu held (read).
func (db *DB) treeAt(t *tree, version uint64, buckets map[trie.PageID]uint64) (*trie.Tree, leavesAt) {
	latest := db.record.version
	leaves := leavesAt{snap: db.snap.snap, store: t.store, version: version, latest: latest}
	if version == latest {
		leaves.cache, leaves.elideBelow = db.leaves, db.elideBelow
	}
	current := &treePages{pages: db.pages, store: t.store, buckets: buckets}
	var pages trie.PageSource = current
	if version < latest {
		pages = pagesAt{latest: current, snap: db.snap.snap, version: version}
	}
	return &trie.Tree{Store: t.store, Pages: pages, Leaves: leaves, ElideBelow: db.elideBelow}, leaves
}

// snapshot is a Pebble snapshot of one committed version, shared by the
// readers of that version and released by the last of them.
type snapshot struct {
	snap *pebble.Snapshot
	refs atomic.Int64
}

func newSnapshot(db *pebble.DB) *snapshot {
	s := &snapshot{snap: db.NewSnapshot()}
	s.refs.Store(1)
	return s
}

func (s *snapshot) acquire() { s.refs.Add(1) }

func (s *snapshot) release() {
	if s.refs.Add(-1) == 0 {
		_ = s.snap.Close()
	}
}
