package commitment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble"

	"github.com/nomtstore/nomtstore/commitment/trie"
)

// Reading versions older than the latest: the superseded entries of keys.go
// laid over the current state. Every reader here works on one Pebble
// snapshot of the latest committed version, which holds every superseded
// entry a retained version needs; the page table holds that latest
// version's pages.

// seekEntry returns the first entry of entity orphaned at or after version
// from: its orphan version and (a copy of) its value.
func seekEntry(snap *pebble.Snapshot, entity []byte, from uint64) (uint64, []byte, bool, error) {
	lower := binary.BigEndian.AppendUint64(bytes.Clone(entity), from)
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: afterEntity(entity)})
	if err != nil {
		return 0, nil, false, err
	}
	defer func() { _ = it.Close() }()
	if !it.First() {
		return 0, nil, false, it.Error()
	}
	key := it.Key()
	if !isEntryOf(key, entity) {
		return 0, nil, false, fmt.Errorf("%w: superseded entry key %x", ErrCorrupt, key)
	}
	return binary.BigEndian.Uint64(key[len(entity):]), bytes.Clone(it.Value()), true, nil
}

// getEntry reads one entry, cloned; found is false when it is absent.
func getEntry(snap *pebble.Snapshot, key []byte) ([]byte, bool, error) {
	v, closer, err := snap.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer func() { _ = closer.Close() }()
	return bytes.Clone(v), true, nil
}

// entryAt returns what a key path held at version: the superseded entry
// live at it ('x', as old: key length | key | value) or the current one (the
// entry at currentKey, of 'v' or 'l', as cur), each without its born
// version; neither when the path was absent at version.
func entryAt(snap *pebble.Snapshot, store trie.StoreID, path trie.KeyPath, currentKey []byte, version, latest uint64) (old, cur []byte, err error) {
	entry, found := []byte(nil), false
	if version < latest {
		if _, entry, found, err = seekEntry(snap, oldEntryEntity(store, path), version+1); err != nil {
			return nil, nil, err
		}
		if found {
			born, rest, err := splitBorn(entry)
			if err != nil || born > version {
				return nil, nil, err
			}
			return rest, nil, nil
		}
	}
	if entry, found, err = getEntry(snap, currentKey); err != nil || !found {
		return nil, nil, err
	}
	born, rest, err := splitBorn(entry)
	if err != nil || born > version {
		return nil, nil, err
	}
	return nil, rest, nil
}

// valueAt is a key's value at version, nil when absent.
func valueAt(snap *pebble.Snapshot, store trie.StoreID, key []byte, version, latest uint64) ([]byte, error) {
	old, cur, err := entryAt(snap, store, trie.PathOf(key), valueKey(store, key), version, latest)
	if err != nil || old == nil {
		return cur, err
	}
	k, value, err := splitSuperseded(old)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(k, key) {
		return nil, fmt.Errorf("%w: superseded entry of key %x holds key %x", ErrCorrupt, key, k)
	}
	return value, nil
}

// oldLeafEntry turns a superseded entry (without born) into a leaf entry
// (without born): leaf hash | raw key.
func oldLeafEntry(path trie.KeyPath, old []byte) ([]byte, error) {
	key, value, err := splitSuperseded(old)
	if err != nil {
		return nil, err
	}
	h := trie.LeafHash(path, trie.ValueHash(value))
	return append(h[:], key...), nil
}

// pagesAt is the trie.PageSource of one tree at a past version: the page
// as the first change after the version found it (a superseded copy, or no
// page if that change created it), or, if the page has not changed since,
// the latest version's page.
type pagesAt struct {
	latest  *treePages
	snap    *pebble.Snapshot
	history *pebble.Snapshot
	version uint64
}

func (p pagesAt) Page(id trie.PageID) (*trie.Page, error) {
	page, found, err := pageAt(p.snap, p.history, p.latest.store, id, p.version, func() (*trie.Page, error) { return p.latest.Page(id) })
	if err != nil || found {
		return page, err
	}
	return p.latest.Page(id)
}

// leavesAt is the trie.LeafIndex (and trie.Preimages) of one tree at a
// version, past or latest.
type leavesAt struct {
	snap            *pebble.Snapshot
	store           trie.StoreID
	version, latest uint64
	// cache, at the latest version only, holds elided subtrees' keys:
	// Under asks for those with limit elideBelow at a page boundary, and
	// puts back what it read when fill (treeView.fill).
	cache      *leafCache
	fill       bool
	elideBelow int
}

// decodeLeafEntry splits a leaf entry, without its born version, into the
// leaf and the raw key.
func decodeLeafEntry(path, entry []byte) (trie.Leaf, []byte, error) {
	if len(path) != 32 || len(entry) < 33 {
		return trie.Leaf{}, nil, fmt.Errorf("%w: leaf entry of %x is %d bytes", ErrCorrupt, path, len(entry))
	}
	return trie.Leaf{Path: trie.KeyPath(path), Hash: trie.Hash(entry[:32])}, entry[32:], nil
}

// pathRange is the range of leaf-index keys (of prefix p) whose paths share
// the first depth bits of path.
func pathRange(p byte, store trie.StoreID, path trie.KeyPath, depth int) (lower, upper []byte) {
	lo := path.Prefix(depth)
	hi := lo
	for d := depth; d < trie.MaxDepth; d++ {
		hi[d>>3] |= 0x80 >> uint(d&7)
	}
	lower = append(storePrefix(p, store), lo[:]...)
	upper = append(append(storePrefix(p, store), hi[:]...), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	return lower, upper
}

// Under implements trie.LeafIndex: the leaves of the index's version whose
// paths share the first depth bits of prefix, in order, at most limit.
func (l leavesAt) Under(prefix trie.KeyPath, depth, limit int) ([]trie.Leaf, error) {
	leaves, _, err := l.UnderElided(prefix, depth, limit)
	return leaves, err
}

// UnderElided is Under with the bucket nodes the leaf cache keeps for an
// elided subtree (trie.ElidedHashes).
func (l leavesAt) UnderElided(prefix trie.KeyPath, depth, limit int) ([]trie.Leaf, *trie.Buckets, error) {
	elided := l.cache != nil && limit == l.elideBelow && depth%trie.PageLevels == 0
	var id trie.PageID
	if elided {
		id = trie.PageIDOf(&prefix, depth/trie.PageLevels)
		if leaves, buckets, ok := l.cache.get(l.store, id, l.version); ok {
			return leaves, buckets, nil
		}
		l.cache.scans.Add(1)
	}
	leaves, err := l.under(prefix, depth, limit)
	if err == nil && elided && l.fill && len(leaves) >= 2 && len(leaves) < limit {
		l.cache.put(l.store, id, leaves, nil, l.version)
	}
	return leaves, nil, err
}

// under is Under without the cache.
func (l leavesAt) under(prefix trie.KeyPath, depth, limit int) ([]trie.Leaf, error) {
	lower, upper := pathRange(prefixLeaf, l.store, prefix, depth)
	var c cursor
	current, err := newCurrentCursor(l.snap, lower, upper, l.version, l.version < l.latest, false)
	if err != nil {
		return nil, err
	}
	c = current
	if l.version < l.latest {
		hl, hu := pathRange(prefixOldEntry, l.store, prefix, depth)
		old, err := newHistoryCursor(l.snap, hl, hu, l.version, false, oldLeaves)
		if err != nil {
			_ = current.Close()
			return nil, err
		}
		c = newMergeCursor(current, old, false)
	}
	defer func() { _ = c.Close() }()
	var out []trie.Leaf
	for ; c.Valid() && len(out) < limit; c.Next() {
		leaf, _, err := decodeLeafEntry(c.Key(), c.Value())
		if err != nil {
			return nil, err
		}
		out = append(out, leaf)
	}
	return out, c.Error()
}

// first returns the first leaf in [lower, upper) of key paths, or the last
// one when reverse, as of the index's version.
func (l leavesAt) first(lower, upper *trie.KeyPath, reverse bool) (trie.Leaf, bool, error) {
	cl, cu := storePrefix(prefixLeaf, l.store), storeUpperBound(prefixLeaf, l.store)
	hl, hu := storePrefix(prefixOldEntry, l.store), storeUpperBound(prefixOldEntry, l.store)
	if lower != nil {
		cl, hl = leafKey(l.store, *lower), oldEntryEntity(l.store, *lower)
	}
	if upper != nil {
		cu, hu = append(leafKey(l.store, *upper), 0), afterEntity(oldEntryEntity(l.store, *upper))
	}
	var c cursor
	current, err := newCurrentCursor(l.snap, cl, cu, l.version, l.version < l.latest, reverse)
	if err != nil {
		return trie.Leaf{}, false, err
	}
	c = current
	if l.version < l.latest {
		old, err := newHistoryCursor(l.snap, hl, hu, l.version, reverse, oldLeaves)
		if err != nil {
			_ = current.Close()
			return trie.Leaf{}, false, err
		}
		c = newMergeCursor(current, old, reverse)
	}
	defer func() { _ = c.Close() }()
	if !c.Valid() {
		return trie.Leaf{}, false, c.Error()
	}
	leaf, _, err := decodeLeafEntry(c.Key(), c.Value())
	return leaf, err == nil, err
}

func (l leavesAt) Ceil(path trie.KeyPath) (trie.Leaf, bool, error) { return l.first(&path, nil, false) }

func (l leavesAt) Floor(path trie.KeyPath) (trie.Leaf, bool, error) { return l.first(nil, &path, true) }

// oldLeaves is how a history cursor over superseded entries reads them as
// leaf-index entries.
var oldLeaves = historyDecoder{
	key: func(entity []byte) ([]byte, error) { return entity, nil },
	value: func(entity, old []byte) ([]byte, error) {
		if len(entity) != 32 {
			return nil, fmt.Errorf("%w: superseded entry of path %x", ErrCorrupt, entity)
		}
		return oldLeafEntry(trie.KeyPath(entity), old)
	},
}

// leafAt returns the leaf-index entry (without born) of path at the
// index's version, nil when absent.
func (l leavesAt) leafAt(path trie.KeyPath) ([]byte, error) {
	old, cur, err := entryAt(l.snap, l.store, path, leafKey(l.store, path), l.version, l.latest)
	if err != nil || old == nil {
		return cur, err
	}
	return oldLeafEntry(path, old)
}

// Leaf implements trie.LeafGetter: a point lookup, which Pebble's bloom
// filters make cheaper than a seek.
func (l leavesAt) Leaf(path trie.KeyPath) (trie.Leaf, bool, error) {
	entry, err := l.leafAt(path)
	if err != nil || entry == nil {
		return trie.Leaf{}, false, err
	}
	leaf, _, err := decodeLeafEntry(path[:], entry)
	return leaf, err == nil, err
}

// Preimage implements trie.Preimages from the leaf index and the values.
func (l leavesAt) Preimage(path trie.KeyPath) ([]byte, []byte, error) {
	entry, err := l.leafAt(path)
	if err != nil {
		return nil, nil, fmt.Errorf("leaf index entry of %s: %w", path, err)
	}
	if entry == nil {
		return nil, nil, fmt.Errorf("%w: no leaf index entry for %s at version %d", ErrCorrupt, path, l.version)
	}
	_, key, err := decodeLeafEntry(path[:], entry)
	if err != nil {
		return nil, nil, err
	}
	value, err := valueAt(l.snap, l.store, key, l.version, l.latest)
	if err != nil {
		return nil, nil, err
	}
	if value == nil {
		return nil, nil, fmt.Errorf("%w: key %x is in the leaf index but has no value at version %d", ErrCorrupt, key, l.version)
	}
	return bytes.Clone(key), value, nil
}
