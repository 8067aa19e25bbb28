package commitment

import (
	"errors"
	"fmt"

	ics23 "github.com/cosmos/ics23/go"

	"github.com/nomtstore/nomtstore/commitment/bitbox"
	"github.com/nomtstore/nomtstore/commitment/trie"
)

// Errors of reads at a version. Test with errors.Is.
var (
	// ErrVersionPruned: the version is older than the earliest retained one.
	ErrVersionPruned = errors.New("commitment: version pruned")
	// ErrVersionFuture: the version is not committed (yet).
	ErrVersionFuture = errors.New("commitment: version not committed")
)

// Version is the last committed version (0 before the first commit).
func (db *DB) Version() uint64 {
	db.mu.RLock()
	defer db.mu.RUnlock()
	return db.committed.record.version
}

// EarliestVersion is the oldest version still readable (0 before the first
// commit). Pruning moves it up.
func (db *DB) EarliestVersion() uint64 {
	return db.committed.earliest.Load()
}

// Roots returns every tree's committed root.
func (db *DB) Roots() map[string]trie.Hash {
	db.mu.RLock()
	defer db.mu.RUnlock()
	return db.committed.namedRoots(db.committed.record.roots)
}

// Root returns a tree's committed root.
func (db *DB) Root(treeName string) (trie.Hash, error) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	t, err := db.committed.lookupTree(treeName)
	if err != nil {
		return trie.Hash{}, err
	}
	return db.committed.record.roots[t.store], nil
}

// RootsAt returns every tree's root at a retained version.
func (db *DB) RootsAt(version uint64) (map[string]trie.Hash, error) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	roots, err := db.committed.rootsAt(version)
	if err != nil {
		return nil, err
	}
	return db.committed.namedRoots(roots), nil
}

// VersionRecord returns the application's record of a retained version
// (SetVersionRecord), or nil if it stored none.
func (db *DB) VersionRecord(version uint64) ([]byte, error) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if err := db.committed.checkVersion(version); err != nil {
		return nil, err
	}
	raw, _, err := getMeta(db.pebble, versionKey(prefixAppVersion, version), "a version record")
	return raw, err
}

// Get returns a key's committed value, or nil when it is absent.
func (db *DB) Get(treeName string, key []byte) ([]byte, error) {
	return db.get(treeName, key, 0, true)
}

// GetAt returns a key's value at a retained version, or nil when it was
// absent then.
func (db *DB) GetAt(treeName string, key []byte, version uint64) ([]byte, error) {
	return db.get(treeName, key, version, false)
}

func (db *DB) get(treeName string, key []byte, version uint64, latest bool) ([]byte, error) {
	if err := validateKey(key); err != nil {
		return nil, err
	}
	// Held for the read: Close waits for it instead of closing Pebble
	// under it.
	db.mu.RLock()
	defer db.mu.RUnlock()
	v, err := db.committed.readView(treeName, version, latest)
	if err != nil {
		return nil, err
	}
	if latest && v.version > 0 {
		// A block reads most keys it then writes, and writes reach the
		// engine only when the block ends (baseapp writes its cache back
		// at the working hash): warming what is read leaves the update
		// the pages and subtrees of the block's writes in the caches.
		db.warm.warmLater(v.tree, key)
	}
	return v.value(key)
}

// Has reports whether a key is committed.
func (db *DB) Has(treeName string, key []byte) (bool, error) {
	v, err := db.Get(treeName, key)
	return v != nil, err
}

// NewIterator returns an iterator over [start, end) of a tree at the
// latest version.
func (db *DB) NewIterator(treeName string, start, end []byte, reverse bool) (*Iterator, error) {
	return db.newIterator(treeName, start, end, reverse, 0, true)
}

// NewIteratorAt returns an iterator over [start, end) of a tree at a
// retained version.
func (db *DB) NewIteratorAt(treeName string, start, end []byte, reverse bool, version uint64) (*Iterator, error) {
	return db.newIterator(treeName, start, end, reverse, version, false)
}

func (db *DB) newIterator(treeName string, start, end []byte, reverse bool, version uint64, latest bool) (*Iterator, error) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	v, err := db.committed.readView(treeName, version, latest)
	if err != nil {
		return nil, err
	}
	cur, err := v.cursor(start, end, reverse)
	if err != nil {
		return nil, err
	}
	v.snap.acquire()
	db.iterators.Add(1)
	return &Iterator{cur: cur, snap: v.snap, open: &db.iterators}, nil
}

// Prove returns an ICS23 proof (SmtSpec) for key at the committed version of
// a tree: existence when the key is present, non-existence otherwise.
func (db *DB) Prove(treeName string, key []byte) (*ics23.CommitmentProof, bool, error) {
	return db.prove(treeName, key, 0, true)
}

// ProveAt returns an ICS23 proof for key at a retained version of a tree,
// against that version's root.
func (db *DB) ProveAt(treeName string, key []byte, version uint64) (*ics23.CommitmentProof, bool, error) {
	return db.prove(treeName, key, version, false)
}

func (db *DB) prove(treeName string, key []byte, version uint64, latest bool) (*ics23.CommitmentProof, bool, error) {
	if err := validateKey(key); err != nil {
		return nil, false, err
	}
	// The pages and the snapshot must be of one version: hold mu for the walk.
	db.mu.RLock()
	defer db.mu.RUnlock()
	v, err := db.committed.readView(treeName, version, latest)
	if err != nil {
		return nil, false, err
	}
	roots := db.committed.record.roots
	if !latest {
		if roots, err = db.committed.rootsAt(version); err != nil {
			return nil, false, err
		}
	}
	return v.prove(key, roots[v.tree.store])
}

// Check verifies every tree's committed pages against its root, leaf
// index and values (trie.Tree.Check) and returns the violations found, per
// tree.
func (db *DB) Check() (map[string][]trie.Violation, error) {
	db.mu.RLock()
	version := db.committed.record.version
	db.mu.RUnlock()
	if version == 0 {
		return map[string][]trie.Violation{}, nil
	}
	return db.CheckAt(version)
}

// CheckAt is Check at a retained version: it walks the version's pages,
// superseded or current, against its roots and leaf index.
func (db *DB) CheckAt(version uint64) (map[string][]trie.Violation, error) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	roots, err := db.committed.rootsAt(version)
	if err != nil {
		return nil, err
	}
	out := map[string][]trie.Violation{}
	for name, t := range db.committed.trees {
		violations, err := db.committed.view(t, version).check(roots[t.store])
		if err != nil {
			return nil, err
		}
		if len(violations) > 0 {
			out[name] = violations
		}
	}
	return out, nil
}

// CheckTreeAt is CheckAt for one tree: the violations found in its pages,
// leaf index and values at a retained version (none: the root recomputes).
func (db *DB) CheckTreeAt(treeName string, version uint64) ([]trie.Violation, error) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	v, err := db.committed.readView(treeName, version, false)
	if err != nil {
		return nil, err
	}
	roots, err := db.committed.rootsAt(version)
	if err != nil {
		return nil, err
	}
	return v.check(roots[v.tree.store])
}

// Stats describe the engine.
type Stats struct {
	Version         uint64
	EarliestVersion uint64
	Table           bitbox.Stats
	// DirtyPages are committed pages held in memory until the next
	// checkpoint writes them to the table.
	DirtyPages int
	// ElideBelow is the directory's page elision threshold.
	ElideBelow int
	// WALRecords and WALRecordBytes are the write-ahead records in the
	// log (wal/): those since the last checkpoint, which a restart after
	// a crash would replay, and those a running checkpoint will remove.
	WALRecords, WALRecordBytes uint64
	Commits                    uint64 // since open
	PagesWritten               uint64 // since open
	WALBytes                   uint64 // since open
	// BatchChunks counts the chunks large commits were written in since
	// open (Options.MaxBatchBytes); 0 while every commit fits one batch.
	BatchChunks uint64
	// Pruning since open: versions deleted, runs that failed, and the last
	// failure (nil after a run that succeeded).
	PrunedVersions uint64
	PruneFailures  uint64
	LastPruneError error
}

// Stats returns the engine's current figures.
func (db *DB) Stats() Stats {
	db.mu.RLock()
	s := Stats{Version: db.committed.record.version, Table: db.committed.pages.table.Stats(), DirtyPages: db.committed.pages.table.Dirty(), ElideBelow: db.committed.elideBelow}
	db.mu.RUnlock()
	s.WALRecords, s.WALRecordBytes = uint64(db.committed.pages.wal.records.Load()), uint64(db.committed.pages.wal.bytes.Load())
	s.EarliestVersion = db.committed.earliest.Load()
	s.Commits, s.PagesWritten, s.WALBytes = db.stats.commits.Load(), db.stats.pagesWritten.Load(), db.stats.walBytes.Load()
	s.BatchChunks = db.stats.batchChunks.Load()
	s.PrunedVersions, s.PruneFailures = db.stats.prunedVersions.Load(), db.stats.pruneFailures.Load()
	if e := db.stats.lastPruneError.Load(); e != nil {
		s.LastPruneError = *e
	}
	return s
}

// CheckTreeChangesAt checks what a retained version changed in one tree,
// at a cost that follows the size of that change rather than of the tree:
// each key the version set or deleted is proven at the version from its
// pages and leaf index, and the proof must verify with ICS23 against the
// version's root with the value the version holds (or its absence). A proof
// covers every node on the key's path and their siblings, so this checks
// every page node the version wrote. The earliest retained version's
// change list is not kept (pruning drops it with the version before it):
// there, use CheckTreeAt. It returns the violations found and, separately,
// an error when the version's data cannot be read at all.
func (db *DB) CheckTreeChangesAt(treeName string, version uint64) ([]trie.Violation, error) {
	db.mu.RLock()
	v, err := db.committed.readView(treeName, version, false)
	t := v.tree
	var roots map[trie.StoreID]trie.Hash
	if err == nil {
		roots, err = db.committed.rootsAt(version)
	}
	var raw []byte
	var found bool
	if err == nil {
		raw, found, err = getEntry(db.committed.snap.snap, versionKey(prefixChanges, version))
	}
	db.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, nil // the version changed nothing, or its list was pruned
	}
	changed, err := decodeChangeList(raw)
	if err != nil {
		return nil, fmt.Errorf("commitment: change list of version %d: %w", version, err)
	}
	root := roots[t.store]
	var violations []trie.Violation
	for _, k := range changed.keys {
		if k.store != t.store {
			continue
		}
		problem := func(format string, args ...any) {
			violations = append(violations, trie.Violation{Page: trie.RootPageID, Slot: -1,
				Problem: fmt.Sprintf("key %x changed at version %d: %s", k.key, version, fmt.Sprintf(format, args...))})
		}
		value, err := db.GetAt(treeName, k.key, version)
		if err != nil {
			problem("reading its value: %v", err)
			continue
		}
		if root.IsEmpty() {
			if value != nil {
				problem("the tree is empty but the key holds a value")
			}
			continue
		}
		proof, exists, err := db.ProveAt(treeName, k.key, version)
		switch {
		case err != nil:
			problem("proving it: %v", err)
		case exists != (value != nil):
			problem("its proof says present=%v, its value says present=%v", exists, value != nil)
		case exists && !ics23.VerifyMembership(ics23.SmtSpec, root[:], proof, k.key, trie.ProofValue(value)):
			problem("its membership proof does not verify against the root %s", root)
		case !exists && !ics23.VerifyNonMembership(ics23.SmtSpec, root[:], proof, k.key):
			problem("its non-membership proof does not verify against the root %s", root)
		}
	}
	return violations, nil
}
