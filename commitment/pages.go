package commitment

import (
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble"
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/nomtstore/nomtstore/commitment/bitbox"
	"github.com/nomtstore/nomtstore/commitment/trie"
)

// pinnedPageDepth: pages this shallow (the root page and its 64 children,
// per tree) are never evicted; every lookup passes through them.
const pinnedPageDepth = 1

// cachedPage is a committed page and the bucket holding it.
type cachedPage struct {
	page   *trie.Page
	bucket uint64
}

// pageCache holds committed pages: the top levels pinned, the rest in an
// LRU of bounded size. Entries are added by readers and the writer under
// DB.mu (read), and replaced by a commit under DB.mu (write), so a reader
// never caches a page older than the version it reads.
type pageCache struct {
	mu     sync.Mutex
	pinned map[bitbox.PageKey]cachedPage // REQUIRES: mu
	lru    *lru.Cache[bitbox.PageKey, cachedPage]
}

func newPageCache(size int) *pageCache {
	c, _ := lru.New[bitbox.PageKey, cachedPage](size) // size > 0 by Options
	return &pageCache{pinned: map[bitbox.PageKey]cachedPage{}, lru: c}
}

func (c *pageCache) get(key bitbox.PageKey) (cachedPage, bool) {
	if key.ID.Depth() <= pinnedPageDepth {
		c.mu.Lock()
		defer c.mu.Unlock()
		cp, ok := c.pinned[key]
		return cp, ok
	}
	return c.lru.Get(key)
}

func (c *pageCache) add(key bitbox.PageKey, cp cachedPage) {
	if key.ID.Depth() <= pinnedPageDepth {
		c.mu.Lock()
		c.pinned[key] = cp
		c.mu.Unlock()
		return
	}
	c.lru.Add(key, cp)
}

func (c *pageCache) remove(key bitbox.PageKey) {
	c.mu.Lock()
	delete(c.pinned, key)
	c.mu.Unlock()
	c.lru.Remove(key)
}

func (c *pageCache) purge() {
	c.mu.Lock()
	clear(c.pinned)
	c.mu.Unlock()
	c.lru.Purge()
}

// treePages is the trie.PageSource of one tree at the committed version.
// When buckets is set it records the bucket of every page it returns, so a
// commit knows where the pages it rewrites live.
type treePages struct {
	cache   *pageCache
	table   *bitbox.Table
	store   trie.StoreID
	mu      sync.Mutex
	buckets map[trie.PageID]uint64 // REQUIRES: mu
}

func (p *treePages) Page(id trie.PageID) (*trie.Page, error) {
	key := bitbox.PageKey{Store: p.store, ID: id}
	cp, ok := p.cache.get(key)
	if !ok {
		page, bucket, found, err := p.table.Lookup(key)
		if err != nil || !found {
			return nil, err
		}
		cp = cachedPage{page: page, bucket: bucket}
		p.cache.add(key, cp)
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
	current := &treePages{cache: db.cache, table: db.table, store: t.store, buckets: buckets}
	var pages trie.PageSource = current
	if version < latest {
		pages = pagesAt{latest: current, snap: db.snap.snap, version: version}
	}
	return &trie.Tree{Store: t.store, Pages: pages, Leaves: leaves}, leaves
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
