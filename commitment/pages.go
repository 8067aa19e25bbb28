package commitment

import (
	"bytes"
	"errors"
	"fmt"
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

// committedTree returns the trie of one tree at the committed version, with
// its leaf index (which also serves the tree's preimages). A non-nil buckets
// map records where each page read lives. REQUIRES: mu held (read).
func (db *DB) committedTree(t *tree, buckets map[trie.PageID]uint64) (*trie.Tree, leafIndex) {
	leaves := leafIndex{snap: db.snap.snap, store: t.store}
	pages := &treePages{cache: db.cache, table: db.table, store: t.store, buckets: buckets}
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

// leafIndex is the trie.LeafIndex of one tree in a snapshot.
type leafIndex struct {
	snap  *pebble.Snapshot
	store trie.StoreID
}

func (l leafIndex) seek(lower, upper []byte, last bool) (trie.Leaf, bool, error) {
	it, err := l.snap.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return trie.Leaf{}, false, err
	}
	defer func() { _ = it.Close() }()
	ok := it.First()
	if last {
		ok = it.Last()
	}
	if !ok {
		return trie.Leaf{}, false, it.Error()
	}
	return decodeLeaf(it.Key(), it.Value())
}

func decodeLeaf(key, value []byte) (trie.Leaf, bool, error) {
	if len(key) != 5+32 || len(value) < 33 {
		return trie.Leaf{}, false, fmt.Errorf("%w: leaf index entry %x", ErrCorrupt, key)
	}
	return trie.Leaf{Path: trie.KeyPath(key[5:]), ValueHash: trie.Hash(value[:32])}, true, nil
}

// Leaf implements trie.LeafGetter: a point lookup, which Pebble's bloom
// filters make cheaper than creating an iterator to seek.
func (l leafIndex) Leaf(path trie.KeyPath) (trie.Leaf, bool, error) {
	key := leafKey(l.store, path)
	value, closer, err := l.snap.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return trie.Leaf{}, false, nil
	}
	if err != nil {
		return trie.Leaf{}, false, err
	}
	defer func() { _ = closer.Close() }()
	return decodeLeaf(key, value)
}

func (l leafIndex) Ceil(path trie.KeyPath) (trie.Leaf, bool, error) {
	return l.seek(leafKey(l.store, path), storeUpperBound(prefixLeaf, l.store), false)
}

func (l leafIndex) Floor(path trie.KeyPath) (trie.Leaf, bool, error) {
	return l.seek(storePrefix(prefixLeaf, l.store), append(leafKey(l.store, path), 0), true)
}

// Preimage implements trie.Preimages from the leaf index and the values.
func (l leafIndex) Preimage(path trie.KeyPath) ([]byte, []byte, error) {
	entry, closer, err := l.snap.Get(leafKey(l.store, path))
	if err != nil {
		return nil, nil, fmt.Errorf("leaf index entry of %s: %w", path, err)
	}
	if len(entry) < 33 {
		_ = closer.Close()
		return nil, nil, fmt.Errorf("%w: leaf index entry of %s is %d bytes", ErrCorrupt, path, len(entry))
	}
	key := bytes.Clone(entry[32:])
	_ = closer.Close()
	value, closer, err := l.snap.Get(valueKey(l.store, key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil, fmt.Errorf("%w: key %x is in the leaf index but has no value", ErrCorrupt, key)
	}
	if err != nil {
		return nil, nil, err
	}
	defer func() { _ = closer.Close() }()
	return key, bytes.Clone(value), nil
}
