package cms

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/google/btree"

	"github.com/nomtstore/nomtstore/commitment"
)

// Iterator is the SDK's iterator (cosmos-db's, and store/v2's
// GIterator[[]byte]): both lines' iterator interfaces have this method
// set, so the adapters return these as they are.
type Iterator interface {
	Domain() (start, end []byte)
	Valid() bool
	Next()
	Key() []byte
	Value() []byte
	Error() error
	Close() error
}

var errKeyEmpty = errors.New("key is empty")

// pendingWrite is an uncommitted write of one key: a value or a deletion.
type pendingWrite struct {
	key     []byte
	value   []byte
	deleted bool
}

func pendingLess(a, b pendingWrite) bool { return bytes.Compare(a.key, b.key) < 0 }

// Tree is the working state of one engine tree (an IAVL-type store): the
// tree at the latest version plus the writes since (staged in the engine
// for the next commit, and kept here in key order so reads see them and
// iterators merge them). All trees commit together: Store.Commit. Keys
// and values are validated by the adapter, with its line's messages.
type Tree struct {
	engine *commitment.DB
	name   string
	// readOnlyAt, if non-zero, is the past version the store was loaded
	// at: reads are at it and writes are refused (ErrPastVersion).
	readOnlyAt uint64

	mu sync.RWMutex
	// pending holds the writes since the last commit. REQUIRES: mu.
	pending *btree.BTreeG[pendingWrite]
	// lastCommit is the version and root of the last commit. REQUIRES: mu.
	lastCommit CommitID
}

func newTree(engine *commitment.DB, name string, last CommitID) *Tree {
	return &Tree{engine: engine, name: name, pending: btree.NewG(32, pendingLess), lastCommit: last}
}

// Name is the store's name (its key's).
func (t *Tree) Name() string { return t.name }

// Get returns the value of key, or nil.
func (t *Tree) Get(key []byte) []byte {
	if t.readOnlyAt != 0 {
		return t.atVersion().Get(key)
	}
	t.mu.RLock()
	p, ok := t.pending.Get(pendingWrite{key: key})
	t.mu.RUnlock()
	if ok {
		if p.deleted {
			return nil
		}
		return p.value
	}
	v, err := t.engine.Get(t.name, key)
	if err != nil {
		panic(fmt.Errorf("nomtstore: get from store %s: %w", t.name, err))
	}
	return v
}

// Set writes key (for the next commit).
func (t *Tree) Set(key, value []byte) {
	t.refuseIfReadOnly()
	if err := t.engine.Set(t.name, key, value); err != nil {
		panic(fmt.Errorf("nomtstore: set in store %s: %w", t.name, err))
	}
	t.mu.Lock()
	t.pending.ReplaceOrInsert(pendingWrite{key: bytes.Clone(key), value: bytes.Clone(value)})
	t.mu.Unlock()
}

// Delete deletes key (for the next commit).
func (t *Tree) Delete(key []byte) {
	t.refuseIfReadOnly()
	if err := t.engine.Delete(t.name, key); err != nil {
		panic(fmt.Errorf("nomtstore: delete in store %s: %w", t.name, err))
	}
	t.mu.Lock()
	t.pending.ReplaceOrInsert(pendingWrite{key: bytes.Clone(key), deleted: true})
	t.mu.Unlock()
}

// Iterator iterates [start, end) in key order, with the writes since the
// last commit.
func (t *Tree) Iterator(start, end []byte) Iterator { return t.iterator(start, end, false) }

// ReverseIterator iterates [start, end) in reverse key order.
func (t *Tree) ReverseIterator(start, end []byte) Iterator { return t.iterator(start, end, true) }

func (t *Tree) iterator(start, end []byte, reverse bool) Iterator {
	checkDomain(start, end)
	if t.readOnlyAt != 0 {
		return t.atVersion().iterator(start, end, reverse)
	}
	t.mu.RLock()
	pending := pendingRange(t.pending, start, end, reverse)
	t.mu.RUnlock()
	it, err := t.engine.NewIterator(t.name, start, end, reverse)
	if err != nil {
		panic(fmt.Errorf("nomtstore: iterator over store %s: %w", t.name, err))
	}
	return newOverlayIterator(newEngineIterator(it, start, end), pending, start, end, reverse)
}

func (t *Tree) atVersion() *VersionTree {
	return &VersionTree{engine: t.engine, name: t.name, version: t.readOnlyAt}
}

func (t *Tree) refuseIfReadOnly() {
	if t.readOnlyAt != 0 {
		panic(fmt.Errorf("%w: store %s is at version %d", ErrPastVersion, t.name, t.readOnlyAt))
	}
}

// checkDomain refuses the domains dbm refuses: empty (but non-nil) bounds.
func checkDomain(start, end []byte) {
	if (start != nil && len(start) == 0) || (end != nil && len(end) == 0) {
		panic(fmt.Errorf("nomtstore: %w", errKeyEmpty))
	}
}

// pendingRange copies the pending writes in [start, end) in iteration order.
func pendingRange(t *btree.BTreeG[pendingWrite], start, end []byte, reverse bool) []pendingWrite {
	var out []pendingWrite
	inRange := func(p pendingWrite) bool {
		return (start == nil || bytes.Compare(p.key, start) >= 0) && (end == nil || bytes.Compare(p.key, end) < 0)
	}
	collect := func(p pendingWrite) bool {
		if inRange(p) {
			out = append(out, p)
		}
		return true
	}
	switch {
	case start != nil && end != nil:
		t.AscendRange(pendingWrite{key: start}, pendingWrite{key: end}, collect)
	case start != nil:
		t.AscendGreaterOrEqual(pendingWrite{key: start}, collect)
	case end != nil:
		t.AscendLessThan(pendingWrite{key: end}, collect)
	default:
		t.Ascend(collect)
	}
	if reverse {
		slices.Reverse(out)
	}
	return out
}

// committed forgets the pending writes once the engine committed them.
func (t *Tree) committed(id CommitID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pending.Clear(false)
	t.lastCommit = id
}

// CommitAlone is the panic of a store's own Commit: the stores of a
// multistore commit together, in one sync, through its Commit.
func (t *Tree) CommitAlone() string {
	return fmt.Sprintf("nomtstore: store %s cannot commit alone; commit the multistore (CommitMultiStore.Commit)", t.name)
}

// LastCommitID is the version and root of the store's last commit.
func (t *Tree) LastCommitID() CommitID {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.lastCommit
}

// WorkingHash is the root this store will have at the next commit.
func (t *Tree) WorkingHash() []byte {
	roots, err := t.engine.WorkingRoots()
	if err != nil {
		panic(fmt.Errorf("nomtstore: working hash of store %s: %w", t.name, err))
	}
	root := roots[t.name]
	return root[:]
}

// Query answers the store-level queries (/key, /subspace) on this tree.
func (t *Tree) Query(req Request) (*Response, error) {
	return queryTree(t.engine, t.name, req)
}

// VersionTree is one tree at a retained version, read-only: the store
// behind CacheMultiStoreWithVersion and queries at a height. It stays
// readable while later versions commit, until its version is pruned.
type VersionTree struct {
	engine  *commitment.DB
	name    string
	version uint64
}

// Name is the store's name.
func (t *VersionTree) Name() string { return t.name }

// Get returns the value of key at the version, or nil.
func (t *VersionTree) Get(key []byte) []byte {
	v, err := t.engine.GetAt(t.name, key, t.version)
	if err != nil {
		panic(fmt.Errorf("nomtstore: get from store %s at version %d: %w", t.name, t.version, err))
	}
	return v
}

// ReadOnly is the panic of a write.
func (t *VersionTree) ReadOnly() string {
	return fmt.Sprintf("nomtstore: store %s at version %d is read-only", t.name, t.version)
}

// Iterator iterates [start, end) at the version, in key order.
func (t *VersionTree) Iterator(start, end []byte) Iterator { return t.iterator(start, end, false) }

// ReverseIterator iterates [start, end) at the version, in reverse order.
func (t *VersionTree) ReverseIterator(start, end []byte) Iterator {
	return t.iterator(start, end, true)
}

func (t *VersionTree) iterator(start, end []byte, reverse bool) Iterator {
	checkDomain(start, end)
	it, err := t.engine.NewIteratorAt(t.name, start, end, reverse, t.version)
	if err != nil {
		panic(fmt.Errorf("nomtstore: iterator over store %s at version %d: %w", t.name, t.version, err))
	}
	return newEngineIterator(it, start, end)
}
