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

// versionedEntry returns what an entity held at version: the superseded
// entry live at it or the current one. It returns the entry without its born
// version, or nil when the entity was absent at version.
func versionedEntry(snap *pebble.Snapshot, oldEntity, currentKey []byte, version, latest uint64) ([]byte, error) {
	entry, found := []byte(nil), false
	var err error
	if version < latest {
		if _, entry, found, err = seekEntry(snap, oldEntity, version+1); err != nil {
			return nil, err
		}
	}
	if !found {
		if entry, found, err = getEntry(snap, currentKey); err != nil || !found {
			return nil, err
		}
	}
	born, rest, err := splitBorn(entry)
	if err != nil || born > version {
		return nil, err
	}
	return rest, nil
}

// valueAt is a key's value at version, nil when absent.
func valueAt(snap *pebble.Snapshot, store trie.StoreID, key []byte, version, latest uint64) ([]byte, error) {
	return versionedEntry(snap, oldValueEntity(store, key), valueKey(store, key), version, latest)
}

// pagesAt is the trie.PageSource of one tree at a past version: the page
// as the first change after the version found it (a superseded copy, or no
// page if that change created it), or, if the page has not changed since,
// the latest version's page.
type pagesAt struct {
	latest  *treePages
	snap    *pebble.Snapshot
	version uint64
}

func (p pagesAt) Page(id trie.PageID) (*trie.Page, error) {
	page, found, err := pageAt(p.snap, p.latest.store, id, p.version, func() (*trie.Page, error) { return p.latest.Page(id) })
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
}

func decodeLeafEntry(path, entry []byte) (trie.Leaf, []byte, error) {
	if len(path) != 32 || len(entry) < 33 {
		return trie.Leaf{}, nil, fmt.Errorf("%w: leaf entry of %x is %d bytes", ErrCorrupt, path, len(entry))
	}
	return trie.Leaf{Path: trie.KeyPath(path), ValueHash: trie.Hash(entry[:32])}, entry[32:], nil
}

// first returns the first leaf in [lower, upper) of key paths, or the last
// one when reverse, as of the index's version.
func (l leavesAt) first(lower, upper *trie.KeyPath, reverse bool) (trie.Leaf, bool, error) {
	cl, cu := storePrefix(prefixLeaf, l.store), storeUpperBound(prefixLeaf, l.store)
	hl, hu := storePrefix(prefixOldLeaf, l.store), storeUpperBound(prefixOldLeaf, l.store)
	if lower != nil {
		cl, hl = leafKey(l.store, *lower), oldLeafEntity(l.store, *lower)
	}
	if upper != nil {
		cu, hu = append(leafKey(l.store, *upper), 0), afterEntity(oldLeafEntity(l.store, *upper))
	}
	var c cursor
	current, err := newCurrentCursor(l.snap, cl, cu, l.version, l.version < l.latest, reverse)
	if err != nil {
		return trie.Leaf{}, false, err
	}
	c = current
	if l.version < l.latest {
		old, err := newHistoryCursor(l.snap, hl, hu, l.version, reverse, func(b []byte) ([]byte, error) { return b, nil })
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

// Leaf implements trie.LeafGetter: a point lookup, which Pebble's bloom
// filters make cheaper than a seek.
func (l leavesAt) Leaf(path trie.KeyPath) (trie.Leaf, bool, error) {
	entry, err := versionedEntry(l.snap, oldLeafEntity(l.store, path), leafKey(l.store, path), l.version, l.latest)
	if err != nil || entry == nil {
		return trie.Leaf{}, false, err
	}
	leaf, _, err := decodeLeafEntry(path[:], entry)
	return leaf, err == nil, err
}

// Preimage implements trie.Preimages from the leaf index and the values.
func (l leavesAt) Preimage(path trie.KeyPath) ([]byte, []byte, error) {
	entry, err := versionedEntry(l.snap, oldLeafEntity(l.store, path), leafKey(l.store, path), l.version, l.latest)
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
