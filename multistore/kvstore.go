package multistore

import (
	"bytes"
	"fmt"
	"io"
	"sync"

	"cosmossdk.io/store/cachekv"
	"cosmossdk.io/store/metrics"
	pruningtypes "cosmossdk.io/store/pruning/types"
	"cosmossdk.io/store/tracekv"
	"cosmossdk.io/store/types"
	"github.com/google/btree"

	"github.com/nomtstore/nomtstore/commitment"
)

// pendingWrite is an uncommitted write of one key: a value or a deletion.
type pendingWrite struct {
	key     []byte
	value   []byte
	deleted bool
}

func pendingLess(a, b pendingWrite) bool { return bytes.Compare(a.key, b.key) < 0 }

// treeStore is the working state of one IAVL-type store: the engine tree at
// the latest version plus the writes since (staged in the engine for the
// next commit, and kept here in key order so reads see them and iterators
// merge them). All stores commit together: Store.Commit.
type treeStore struct {
	engine  *commitment.DB
	name    string
	metrics metrics.StoreMetrics
	// readOnlyAt, if non-zero, is the past version the multistore was
	// loaded at: reads are at it and writes are refused (ErrPastVersion).
	readOnlyAt uint64

	mu sync.RWMutex
	// pending holds the writes since the last commit. REQUIRES: mu.
	pending *btree.BTreeG[pendingWrite]
	// lastCommit is the version and root of the last commit. REQUIRES: mu.
	lastCommit types.CommitID
}

var (
	_ types.CommitKVStore = (*treeStore)(nil)
	_ types.Queryable     = (*treeStore)(nil)
)

func newTreeStore(engine *commitment.DB, name string, m metrics.StoreMetrics, last types.CommitID) *treeStore {
	return &treeStore{
		engine:     engine,
		name:       name,
		metrics:    m,
		pending:    btree.NewG(32, pendingLess),
		lastCommit: last,
	}
}

func (s *treeStore) GetStoreType() types.StoreType { return types.StoreTypeIAVL }

func (s *treeStore) CacheWrap() types.CacheWrap { return cachekv.NewStore(s) }

func (s *treeStore) CacheWrapWithTrace(w io.Writer, tc types.TraceContext) types.CacheWrap {
	return cachekv.NewStore(tracekv.NewStore(s, w, tc))
}

func (s *treeStore) Get(key []byte) []byte {
	defer s.metrics.MeasureSince("store", "nomtstore", "get")
	types.AssertValidKey(key)
	if s.readOnlyAt != 0 {
		return s.atVersion().Get(key)
	}
	s.mu.RLock()
	p, ok := s.pending.Get(pendingWrite{key: key})
	s.mu.RUnlock()
	if ok {
		if p.deleted {
			return nil
		}
		return p.value
	}
	v, err := s.engine.Get(s.name, key)
	if err != nil {
		panic(fmt.Errorf("nomtstore: get from store %s: %w", s.name, err))
	}
	return v
}

func (s *treeStore) Has(key []byte) bool {
	defer s.metrics.MeasureSince("store", "nomtstore", "has")
	return s.Get(key) != nil
}

func (s *treeStore) Set(key, value []byte) {
	defer s.metrics.MeasureSince("store", "nomtstore", "set")
	types.AssertValidKey(key)
	types.AssertValidValue(value)
	s.refuseIfReadOnly()
	if err := s.engine.Set(s.name, key, value); err != nil {
		panic(fmt.Errorf("nomtstore: set in store %s: %w", s.name, err))
	}
	s.mu.Lock()
	s.pending.ReplaceOrInsert(pendingWrite{key: bytes.Clone(key), value: bytes.Clone(value)})
	s.mu.Unlock()
}

func (s *treeStore) Delete(key []byte) {
	defer s.metrics.MeasureSince("store", "nomtstore", "delete")
	types.AssertValidKey(key)
	s.refuseIfReadOnly()
	if err := s.engine.Delete(s.name, key); err != nil {
		panic(fmt.Errorf("nomtstore: delete in store %s: %w", s.name, err))
	}
	s.mu.Lock()
	s.pending.ReplaceOrInsert(pendingWrite{key: bytes.Clone(key), deleted: true})
	s.mu.Unlock()
}

func (s *treeStore) Iterator(start, end []byte) types.Iterator {
	return s.iterator(start, end, false)
}

func (s *treeStore) ReverseIterator(start, end []byte) types.Iterator {
	return s.iterator(start, end, true)
}

func (s *treeStore) iterator(start, end []byte, reverse bool) types.Iterator {
	checkDomain(start, end)
	if s.readOnlyAt != 0 {
		return s.atVersion().iterator(start, end, reverse)
	}
	s.mu.RLock()
	pending := pendingRange(s.pending, start, end, reverse)
	s.mu.RUnlock()
	it, err := s.engine.NewIterator(s.name, start, end, reverse)
	if err != nil {
		panic(fmt.Errorf("nomtstore: iterator over store %s: %w", s.name, err))
	}
	return newOverlayIterator(newEngineIterator(it, start, end), pending, start, end, reverse)
}

func (s *treeStore) atVersion() *versionStore {
	return &versionStore{engine: s.engine, name: s.name, version: s.readOnlyAt}
}

func (s *treeStore) refuseIfReadOnly() {
	if s.readOnlyAt != 0 {
		panic(fmt.Errorf("%w: store %s is at version %d", ErrPastVersion, s.name, s.readOnlyAt))
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
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	}
	return out
}

// committed forgets the pending writes once the engine committed them.
func (s *treeStore) committed(id types.CommitID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending.Clear(false)
	s.lastCommit = id
}

// Commit is refused: the stores of a multistore commit together, in one
// sync, through the multistore's Commit.
func (s *treeStore) Commit() types.CommitID {
	panic(fmt.Sprintf("nomtstore: store %s cannot commit alone; commit the multistore (CommitMultiStore.Commit)", s.name))
}

func (s *treeStore) LastCommitID() types.CommitID {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.lastCommit
}

// WorkingHash is the root this store will have at the next commit.
func (s *treeStore) WorkingHash() []byte {
	roots, err := s.engine.WorkingRoots()
	if err != nil {
		panic(fmt.Errorf("nomtstore: working hash of store %s: %w", s.name, err))
	}
	root := roots[s.name]
	return root[:]
}

// SetPruning is a no-op: pruning is the multistore's (SetPruning there).
func (s *treeStore) SetPruning(pruningtypes.PruningOptions) {}

// GetPruning reports no options of its own, like the SDK's DB stores.
func (s *treeStore) GetPruning() pruningtypes.PruningOptions {
	return pruningtypes.NewPruningOptions(pruningtypes.PruningUndefined)
}

// Query answers the multistore's /store/<name>/... queries for this store.
func (s *treeStore) Query(req *types.RequestQuery) (*types.ResponseQuery, error) {
	return queryTree(s.engine, s.name, req, s.metrics)
}

// versionStore is one tree at a retained version, read-only: the store
// behind CacheMultiStoreWithVersion and queries at a height. It stays
// readable while later versions commit, until its version is pruned.
type versionStore struct {
	engine  *commitment.DB
	name    string
	version uint64
}

var _ types.KVStore = (*versionStore)(nil)

func (s *versionStore) GetStoreType() types.StoreType { return types.StoreTypeIAVL }

func (s *versionStore) CacheWrap() types.CacheWrap { return cachekv.NewStore(s) }

func (s *versionStore) CacheWrapWithTrace(w io.Writer, tc types.TraceContext) types.CacheWrap {
	return cachekv.NewStore(tracekv.NewStore(s, w, tc))
}

func (s *versionStore) Get(key []byte) []byte {
	types.AssertValidKey(key)
	v, err := s.engine.GetAt(s.name, key, s.version)
	if err != nil {
		panic(fmt.Errorf("nomtstore: get from store %s at version %d: %w", s.name, s.version, err))
	}
	return v
}

func (s *versionStore) Has(key []byte) bool { return s.Get(key) != nil }

func (s *versionStore) Set(_, _ []byte) {
	panic(fmt.Sprintf("nomtstore: store %s at version %d is read-only", s.name, s.version))
}

func (s *versionStore) Delete(_ []byte) {
	panic(fmt.Sprintf("nomtstore: store %s at version %d is read-only", s.name, s.version))
}

func (s *versionStore) Iterator(start, end []byte) types.Iterator {
	return s.iterator(start, end, false)
}

func (s *versionStore) ReverseIterator(start, end []byte) types.Iterator {
	return s.iterator(start, end, true)
}

func (s *versionStore) iterator(start, end []byte, reverse bool) types.Iterator {
	checkDomain(start, end)
	it, err := s.engine.NewIteratorAt(s.name, start, end, reverse, s.version)
	if err != nil {
		panic(fmt.Errorf("nomtstore: iterator over store %s at version %d: %w", s.name, s.version, err))
	}
	return newEngineIterator(it, start, end)
}
