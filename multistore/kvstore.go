package multistore

import (
	"io"

	"cosmossdk.io/store/cachekv"
	pruningtypes "cosmossdk.io/store/pruning/types"
	"cosmossdk.io/store/tracekv"
	"cosmossdk.io/store/types"

	"github.com/nomtstore/nomtstore/cms"
)

// treeStore is an engine tree as the SDK sees it: cms.Tree (the working
// state) with the SDK's key checks, metrics and cache wrapping.
type treeStore struct {
	tree  *cms.Tree
	owner *Store
}

var (
	_ types.CommitKVStore = (*treeStore)(nil)
	_ types.Queryable     = (*treeStore)(nil)
)

func (s *treeStore) GetStoreType() types.StoreType { return types.StoreTypeIAVL }

func (s *treeStore) CacheWrap() types.CacheWrap { return cachekv.NewStore(s) }

func (s *treeStore) CacheWrapWithTrace(w io.Writer, tc types.TraceContext) types.CacheWrap {
	return cachekv.NewStore(tracekv.NewStore(s, w, tc))
}

func (s *treeStore) Get(key []byte) []byte {
	defer s.owner.storeMetrics().MeasureSince("store", "nomtstore", "get")
	types.AssertValidKey(key)
	return s.tree.Get(key)
}

func (s *treeStore) Has(key []byte) bool {
	defer s.owner.storeMetrics().MeasureSince("store", "nomtstore", "has")
	types.AssertValidKey(key)
	return s.tree.Get(key) != nil
}

func (s *treeStore) Set(key, value []byte) {
	defer s.owner.storeMetrics().MeasureSince("store", "nomtstore", "set")
	types.AssertValidKey(key)
	types.AssertValidValue(value)
	s.tree.Set(key, value)
}

func (s *treeStore) Delete(key []byte) {
	defer s.owner.storeMetrics().MeasureSince("store", "nomtstore", "delete")
	types.AssertValidKey(key)
	s.tree.Delete(key)
}

func (s *treeStore) Iterator(start, end []byte) types.Iterator { return s.tree.Iterator(start, end) }

func (s *treeStore) ReverseIterator(start, end []byte) types.Iterator {
	return s.tree.ReverseIterator(start, end)
}

// Commit is refused: the stores of a multistore commit together, in one
// sync, through the multistore's Commit.
func (s *treeStore) Commit() types.CommitID { panic(s.tree.CommitAlone()) }

func (s *treeStore) LastCommitID() types.CommitID { return commitIDToSDK(s.tree.LastCommitID()) }

// WorkingHash is the root this store will have at the next commit.
func (s *treeStore) WorkingHash() []byte { return s.tree.WorkingHash() }

// SetPruning is a no-op: pruning is the multistore's (SetPruning there).
func (s *treeStore) SetPruning(pruningtypes.PruningOptions) {}

// GetPruning reports no options of its own, like the SDK's DB stores.
func (s *treeStore) GetPruning() pruningtypes.PruningOptions {
	return pruningtypes.NewPruningOptions(pruningtypes.PruningUndefined)
}

// Query answers the multistore's /store/<name>/... queries for this store.
func (s *treeStore) Query(req *types.RequestQuery) (*types.ResponseQuery, error) {
	defer s.owner.storeMetrics().MeasureSince("store", "nomtstore", "query")
	res, err := s.tree.Query(requestFromSDK(req))
	return responseToSDK(res), errorToSDK(err)
}

// versionStore is one tree at a retained version, read-only: the store
// behind CacheMultiStoreWithVersion.
type versionStore struct{ tree *cms.VersionTree }

var _ types.KVStore = versionStore{}

func (s versionStore) GetStoreType() types.StoreType { return types.StoreTypeIAVL }

func (s versionStore) CacheWrap() types.CacheWrap { return cachekv.NewStore(s) }

func (s versionStore) CacheWrapWithTrace(w io.Writer, tc types.TraceContext) types.CacheWrap {
	return cachekv.NewStore(tracekv.NewStore(s, w, tc))
}

func (s versionStore) Get(key []byte) []byte {
	types.AssertValidKey(key)
	return s.tree.Get(key)
}

func (s versionStore) Has(key []byte) bool { return s.Get(key) != nil }

func (s versionStore) Set(_, _ []byte) { panic(s.tree.ReadOnly()) }

func (s versionStore) Delete(_ []byte) { panic(s.tree.ReadOnly()) }

func (s versionStore) Iterator(start, end []byte) types.Iterator {
	return s.tree.Iterator(start, end)
}

func (s versionStore) ReverseIterator(start, end []byte) types.Iterator {
	return s.tree.ReverseIterator(start, end)
}
