package commitment

import (
	"bytes"
	"errors"
	"fmt"

	"sync/atomic"

	"github.com/cockroachdb/pebble"
	ics23 "github.com/cosmos/ics23/go"

	"github.com/nomtstore/nomtstore/commitment/bitbox"
	"github.com/nomtstore/nomtstore/commitment/trie"
)

// Version is the last committed version (0 before the first commit).
func (db *DB) Version() uint64 {
	db.mu.RLock()
	defer db.mu.RUnlock()
	return db.record.version
}

// Roots returns every tree's committed root.
func (db *DB) Roots() map[string]trie.Hash {
	db.mu.RLock()
	defer db.mu.RUnlock()
	roots := make(map[string]trie.Hash, len(db.trees))
	for name, t := range db.trees {
		roots[name] = db.record.roots[t.store]
	}
	return roots
}

// Root returns a tree's committed root.
func (db *DB) Root(treeName string) (trie.Hash, error) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	t, err := db.treeLocked(treeName)
	if err != nil {
		return trie.Hash{}, err
	}
	return db.record.roots[t.store], nil
}

// reader pins the committed version's snapshot for one read.
func (db *DB) reader(treeName string) (*tree, *snapshot, error) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.closed {
		return nil, nil, ErrClosed
	}
	t, err := db.treeLocked(treeName)
	if err != nil {
		return nil, nil, err
	}
	db.snap.acquire()
	return t, db.snap, nil
}

// Get returns a key's committed value, or nil when it is absent.
func (db *DB) Get(treeName string, key []byte) ([]byte, error) {
	if err := validateKey(key); err != nil {
		return nil, err
	}
	// Held for the read: Close waits for it instead of closing Pebble
	// under it.
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.closed {
		return nil, ErrClosed
	}
	t, err := db.treeLocked(treeName)
	if err != nil {
		return nil, err
	}
	v, closer, err := db.snap.snap.Get(valueKey(t.store, key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("commitment: get: %w", err)
	}
	defer func() { _ = closer.Close() }()
	return bytes.Clone(v), nil
}

// Has reports whether a key is committed.
func (db *DB) Has(treeName string, key []byte) (bool, error) {
	v, err := db.Get(treeName, key)
	return v != nil, err
}

// Iterator walks a tree's committed keys in [start, end) (nil = unbounded)
// in raw-key order, forward or reverse. It reads the version committed when
// it was made, and must be closed.
type Iterator struct {
	it      *pebble.Iterator
	snap    *snapshot
	reverse bool
	strip   int
	valid   bool
	open    *atomic.Int64 // the DB's count of open iterators
}

// NewIterator returns an iterator over [start, end) of a tree.
func (db *DB) NewIterator(treeName string, start, end []byte, reverse bool) (*Iterator, error) {
	t, snap, err := db.reader(treeName)
	if err != nil {
		return nil, err
	}
	opts := &pebble.IterOptions{LowerBound: valueKey(t.store, start), UpperBound: storeUpperBound(prefixValue, t.store)}
	if end != nil {
		opts.UpperBound = valueKey(t.store, end)
	}
	it, err := snap.snap.NewIter(opts)
	if err != nil {
		snap.release()
		return nil, fmt.Errorf("commitment: iterator: %w", err)
	}
	i := &Iterator{it: it, snap: snap, reverse: reverse, strip: 5, open: &db.iterators}
	db.iterators.Add(1)
	if reverse {
		i.valid = it.Last()
	} else {
		i.valid = it.First()
	}
	return i, nil
}

// Valid reports whether the iterator is at a key.
func (i *Iterator) Valid() bool { return i.valid }

// Next moves to the next key in the iterator's direction.
func (i *Iterator) Next() {
	if i.reverse {
		i.valid = i.it.Prev()
	} else {
		i.valid = i.it.Next()
	}
}

// Key returns the current raw key; it is valid until the next move.
func (i *Iterator) Key() []byte { return i.it.Key()[i.strip:] }

// Value returns the current value; it is valid until the next move.
func (i *Iterator) Value() []byte { return i.it.Value() }

// Error returns the iteration error, if any.
func (i *Iterator) Error() error { return i.it.Error() }

// Close releases the iterator.
func (i *Iterator) Close() error {
	if i.snap == nil {
		return nil
	}
	err := i.it.Close()
	i.snap.release()
	i.open.Add(-1)
	i.snap, i.valid = nil, false
	return err
}

// Prove returns an ICS23 proof (SmtSpec) for key at the committed version of
// a tree: existence when the key is present, non-existence otherwise.
func (db *DB) Prove(treeName string, key []byte) (*ics23.CommitmentProof, bool, error) {
	if err := validateKey(key); err != nil {
		return nil, false, err
	}
	// The pages and the snapshot must be of one version: hold mu for the walk.
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.closed {
		return nil, false, ErrClosed
	}
	t, err := db.treeLocked(treeName)
	if err != nil {
		return nil, false, err
	}
	tr, leaves := db.committedTree(t, nil)
	return tr.Prove(db.record.roots[t.store], key, leaves)
}

// Check verifies every tree's committed pages against its root and leaf
// index (trie.Tree.Check) and returns the violations found, per tree.
func (db *DB) Check() (map[string][]trie.Violation, error) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.closed {
		return nil, ErrClosed
	}
	out := map[string][]trie.Violation{}
	for name, t := range db.trees {
		tr, _ := db.committedTree(t, nil)
		rep, err := tr.Check(db.record.roots[t.store])
		if err != nil {
			return nil, fmt.Errorf("commitment: checking tree %q: %w", name, err)
		}
		if len(rep.Violations) > 0 {
			out[name] = rep.Violations
		}
	}
	return out, nil
}

// Stats describe the engine.
type Stats struct {
	Version      uint64
	Table        bitbox.Stats
	Commits      uint64 // since open
	PagesWritten uint64 // since open
	WALBytes     uint64 // since open
}

// Stats returns the engine's current figures.
func (db *DB) Stats() Stats {
	db.mu.RLock()
	s := Stats{Version: db.record.version, Table: db.table.Stats()}
	db.mu.RUnlock()
	s.Commits, s.PagesWritten, s.WALBytes = db.stats.commits.Load(), db.stats.pagesWritten.Load(), db.stats.walBytes.Load()
	return s
}
