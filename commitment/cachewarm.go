package commitment

import (
	"bytes"
	"encoding/binary"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/nomtstore/nomtstore/commitment/trie"
)

// warmCaches fills the value cache and the leaf cache from the latest
// version at open, reading the values and the leaf index in order, until
// each cache is four fifths full: the first blocks after a start then read
// and update from memory as later ones do, instead of paying a random
// value-store lookup for each key until the caches warm by themselves. It
// costs one sequential read of what fits in the caches. Errors only end
// the warm-up early: the caches are an optimization.
func (db *DB) warmCaches() {
	start := time.Now()
	values := warmValueCache(db.committed.snap.snap, db.committed.values, db.opts.ValueCacheBytes/10*8)
	subtrees := 0
	if db.committed.elideBelow >= 3 {
		budget := db.opts.LeafCacheBytes / 10 * 8 / int64(max(1, len(db.committed.trees)))
		for _, t := range db.committed.trees {
			subtrees += warmLeafCache(db.committed.view(t, db.committed.record.version), db.committed.record.roots[t.store], budget)
		}
	}
	db.opts.Logger.Info("nomtstore caches warmed", "values", values, "elided_subtrees", subtrees, "took", time.Since(start).Round(time.Millisecond))
}

// warmValueCache puts current values into the value cache, in key order,
// until it holds budget bytes.
func warmValueCache(snap *pebble.Snapshot, cache *valueCache, budget int64) int {
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixValue}, UpperBound: []byte{prefixValue + 1}})
	if err != nil {
		return 0
	}
	defer func() { _ = it.Close() }()
	n, used := 0, int64(0)
	for valid := it.First(); valid && used < budget; valid = it.Next() {
		key := it.Key()
		if len(key) < 6 {
			break
		}
		store := trie.StoreID(binary.BigEndian.Uint32(key[1:]))
		cache.put(store, bytes.Clone(key[5:]), recentRead{entry: bytes.Clone(it.Value()), found: true}, 0)
		used += int64(len(key) + len(it.Value()) + entryOverhead)
		n++
	}
	return n
}

// warmLeafCache puts the keys of the elided subtrees of a tree at the
// latest version (its view and root) into the leaf cache, until they take
// budget bytes: the leaf index in path order holds each subtree's keys in
// a run.
func warmLeafCache(latest treeView, root trie.Hash, budget int64) int {
	if root.IsEmpty() {
		return 0
	}
	t := latest.tree
	tr, _ := latest.trie(nil)
	lower, upper := storePrefix(prefixLeaf, t.store), storeUpperBound(prefixLeaf, t.store)
	it, err := latest.snap.snap.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return 0
	}
	defer func() { _ = it.Close() }()
	var (
		cur      trie.PageID
		inside   bool // the leaves of cur are being gathered
		leaves   []trie.Leaf
		n        int
		used     int64
		curPath  trie.KeyPath
		curDepth int
	)
	flush := func() {
		if inside && len(leaves) >= 2 && len(leaves) < latest.elideBelow {
			latest.leaves.put(t.store, cur, leaves, nil, latest.version)
			used += int64(len(leaves)*64 + 2*entryOverhead)
			n++
		}
		inside, leaves = false, nil
	}
	for valid := it.First(); valid && used < budget; valid = it.Next() {
		_, rest, err := splitBorn(it.Value())
		if err != nil {
			break
		}
		leaf, _, err := decodeLeafEntry(it.Key()[5:], rest)
		if err != nil {
			break
		}
		if inside && leaf.Path.HasPrefix(&curPath, curDepth) {
			leaves = append(leaves, leaf)
			continue
		}
		flush()
		id, ok, err := tr.ElidedOn(root, leaf.Path)
		if err != nil {
			break
		}
		if ok {
			cur, inside, curPath, curDepth = id, true, id.Path(), id.Depth()*trie.PageLevels
			leaves = []trie.Leaf{leaf}
		}
	}
	flush()
	return n
}
