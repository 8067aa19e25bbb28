package commitment

import (
	"encoding/binary"
	"sync"
	"sync/atomic"

	"github.com/VictoriaMetrics/fastcache"

	"github.com/nomtstore/nomtstore/commitment/trie"
)

// Caches of the latest committed version, which serve a block's reads and
// its commit's trie update without Pebble lookups.
//
// Every entry carries the version it was read or written at (a value's
// born version, an absent key's or a subtree's tag), and a reader at
// version u takes only entries of versions <= u: a miss otherwise. What
// makes that enough: an entry of version <= u is current at u, because a
// commit writes every key and elided subtree it changes through the caches
// (or purges them) before readers move to its version, and readers fill
// them only at the latest version and never while a commit is writing
// (treeView.fill). So a commit writes its entries while its batch goes into
// the memtable, beside its frame's sync, with readers of the version
// before it reading alongside (commitProtocol.commitDurably), instead of
// after its commit point with every reader stopped.
//
// Both keep their entries in fastcache's byte arenas, outside the Go heap:
// a cache of millions of entries as Go maps and slices makes every garbage
// collection scan all of them (at 1M keys, a fifth of the CPU went to it).
// Eviction is by age of insertion within fastcache's buckets, bounded by the
// budget in bytes.

// recentRead is a key's current entry: born | value, or not found.
type recentRead struct {
	entry []byte // born u64 | value; nil when absent
	found bool
}

// maxCachedEntry is the largest entry the caches keep (fastcache's limit
// for one Set); a bigger value is read from Pebble each time.
const maxCachedEntry = 64<<10 - 256

// valueCache holds current entries by store and raw key: a 0 byte and the
// version it was found absent at (u64) for an absent key, or 1 followed by
// born | value.
type valueCache struct{ c *fastcache.Cache }

func newValueCache(budget int64) *valueCache {
	if budget <= 0 {
		return &valueCache{}
	}
	return &valueCache{fastcache.New(int(budget))}
}

func cacheKey(prefix byte, store trie.StoreID, rest []byte) []byte {
	k := make([]byte, 0, 5+len(rest))
	k = append(k, prefix)
	k = binary.BigEndian.AppendUint32(k, uint32(store))
	return append(k, rest...)
}

// get returns a key's current entry as of version, if the cache knows it.
func (c *valueCache) get(store trie.StoreID, key []byte, version uint64) (recentRead, bool) {
	if c.c == nil {
		return recentRead{}, false
	}
	v, ok := c.c.HasGet(nil, cacheKey(prefixValue, store, key))
	if !ok || len(v) < 1+bornSize {
		return recentRead{}, false
	}
	if binary.BigEndian.Uint64(v[1:]) > version {
		return recentRead{}, false // written by a commit its reader does not see yet
	}
	if v[0] == 0 {
		return recentRead{}, true
	}
	return recentRead{entry: v[1:], found: true}, true
}

// put records a key's current entry as of version (an entry found has its
// own, its born version).
func (c *valueCache) put(store trie.StoreID, key []byte, e recentRead, version uint64) {
	if c.c == nil {
		return
	}
	k := cacheKey(prefixValue, store, key)
	if len(k)+len(e.entry) > maxCachedEntry {
		c.c.Del(k) // an older, smaller entry must not outlive this one
		return
	}
	v := make([]byte, 0, 1+max(len(e.entry), bornSize))
	if e.found {
		v = append(append(v, 1), e.entry...)
	} else {
		v = binary.BigEndian.AppendUint64(append(v, 0), version)
	}
	c.c.Set(k, v)
}

func (c *valueCache) purge() {
	if c.c != nil {
		c.c.Reset()
	}
}

// leafCache holds the keys of elided subtrees (trie.Tree.ElideBelow), by
// store and the ID of the page they would have: what rebuilding the subtree
// needs, without a range scan of the leaf index. Only complete key lists of
// subtrees that are elided at the latest version are kept; a commit applies
// its trie updates' UpdateResult.Elided, which names every elided subtree
// whose keys it changed. An entry is the version it was read or written at
// (u64), whether the subtree's bucket nodes follow (u8: 0 or 1), those
// nodes if they do (trie.Buckets, 32 bytes each: the update that wrote
// them computed them over these leaves), then the leaves' paths and
// hashes, 64 bytes each.
type leafCache struct {
	c *fastcache.Cache
	// scans counts the subtrees read from the leaf index instead (misses
	// and fills alike): the warmer watches it.
	scans atomic.Uint64
}

func newLeafCache(budget int64) *leafCache {
	if budget <= 0 {
		return &leafCache{}
	}
	return &leafCache{c: fastcache.New(int(budget))}
}

func leafCacheKey(store trie.StoreID, id trie.PageID) []byte {
	return id.AppendEncoded(cacheKey(prefixLeaf, store, nil))
}

// get returns the keys of an elided subtree as of version, with its bucket
// nodes if they were kept, if the cache knows them.
func (c *leafCache) get(store trie.StoreID, id trie.PageID, version uint64) ([]trie.Leaf, *trie.Buckets, bool) {
	if c.c == nil {
		return nil, nil, false
	}
	buf := leafBuffers.Get().(*[]byte)
	defer leafBuffers.Put(buf)
	v, ok := c.c.HasGet((*buf)[:0], leafCacheKey(store, id))
	*buf = v
	if !ok || len(v) < leafEntryHeader || binary.BigEndian.Uint64(v) > version {
		return nil, nil, false
	}
	withBuckets := v[8] == 1
	v = v[leafEntryHeader:]
	var buckets *trie.Buckets
	if withBuckets {
		if len(v) < bucketsBytes {
			return nil, nil, false
		}
		buckets = new(trie.Buckets)
		for i := range buckets {
			copy(buckets[i][:], v[i*32:])
		}
		v = v[bucketsBytes:]
	}
	if len(v) < 64 || len(v)%64 != 0 {
		return nil, nil, false
	}
	leaves := make([]trie.Leaf, len(v)/64)
	for i := range leaves {
		copy(leaves[i].Path[:], v[i*64:])
		copy(leaves[i].Hash[:], v[i*64+32:])
	}
	return leaves, buckets, true
}

const (
	// leafEntryHeader is a leaf cache entry's version and bucket flag.
	leafEntryHeader = 8 + 1
	// bucketsBytes is an entry's bucket nodes, when it has them.
	bucketsBytes = len(trie.Buckets{}) * len(trie.Hash{})
)

// leafBuffers hold an entry of the leaf cache on its way in or out (the
// cache copies it): a commit reads and writes thousands of them, each up to
// ElideBelow × 64 bytes.
var leafBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// put records the keys of an elided subtree as of version, and its bucket
// nodes over them if buckets is not nil.
func (c *leafCache) put(store trie.StoreID, id trie.PageID, leaves []trie.Leaf, buckets *trie.Buckets, version uint64) {
	if c.c == nil {
		return
	}
	k := leafCacheKey(store, id)
	if leafEntryHeader+bucketsBytes+len(leaves)*64 > maxCachedEntry {
		c.c.Del(k)
		return
	}
	buf := leafBuffers.Get().(*[]byte)
	defer leafBuffers.Put(buf)
	v := binary.BigEndian.AppendUint64((*buf)[:0], version)
	if buckets == nil {
		v = append(v, 0)
	} else {
		v = append(v, 1)
		for i := range buckets {
			v = append(v, buckets[i][:]...)
		}
	}
	for i := range leaves {
		v = append(append(v, leaves[i].Path[:]...), leaves[i].Hash[:]...)
	}
	*buf = v
	c.c.Set(k, v)
}

// apply brings the cache to the version a tree update made.
func (c *leafCache) apply(store trie.StoreID, elided []trie.ElidedSubtree, version uint64) {
	if c.c == nil {
		return
	}
	for _, e := range elided {
		if e.Leaves == nil {
			c.c.Del(leafCacheKey(store, e.ID))
		} else {
			c.put(store, e.ID, e.Leaves, e.Buckets, version)
		}
	}
}

func (c *leafCache) purge() {
	if c.c != nil {
		c.c.Reset()
	}
}

// entryOverhead is what a cached entry costs beyond its key and value in
// fastcache (its 4-byte header, and the slack of its 64 KiB chunks).
const entryOverhead = 8
