package multistore

import (
	"crypto/sha256"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"

	"cosmossdk.io/log/v2"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	dbm "github.com/cosmos/cosmos-db"
	"github.com/cosmos/cosmos-sdk/store/v2/cachemulti"
	"github.com/cosmos/cosmos-sdk/store/v2/listenkv"
	pruningtypes "github.com/cosmos/cosmos-sdk/store/v2/pruning/types"
	snapshottypes "github.com/cosmos/cosmos-sdk/store/v2/snapshots/types"
	"github.com/cosmos/cosmos-sdk/store/v2/types"

	"github.com/nomtstore/nomtstore/cms"
	"github.com/nomtstore/nomtstore/commitment"
	"github.com/nomtstore/nomtstore/migrate"
	"github.com/nomtstore/nomtstore/pruning"
)

var (
	// ErrPastVersion is the panic of a write or commit to a store loaded
	// at a version below the latest (cms.ErrPastVersion).
	ErrPastVersion = cms.ErrPastVersion
	// ErrNotLoaded is the panic of a commit before any version was loaded.
	ErrNotLoaded = cms.ErrNotLoaded
)

// Options configure a Store.
type Options struct {
	// Engine tunes the commitment engine (the [nomtstore] section of
	// app.toml). Its Logger is set from the Store's logger if nil.
	Engine commitment.Options
	// AppDB keeps the StoreTypeDB stores mounted without a DB of their own,
	// as rootmulti keeps them in the application database. If nil, such
	// stores live in a LevelDB database in the store's directory.
	AppDB dbm.DB
	// Observer, if set, receives the engine's commit figures, the pruning
	// worker's runs and, after each Commit, the versions kept and the
	// pruning lag.
	Observer cms.Observer
}

// Store is a CommitMultiStore of store/v2 v2.0.0 over the nomtstore
// engine: what a v0.54 app installs in place of rootmulti and IAVL.
//
// Concurrency: like rootmulti, writes, Commit and loading come from one
// goroutine (the ABCI connection); CacheMultiStoreWithVersion, Query,
// GetCommitInfo and LastCommitID may run alongside them.
type Store struct {
	core *cms.Store

	// mu guards the fields below. It is never held while calling the
	// core, which calls back into line (lock order: core, then mu).
	mu              sync.RWMutex
	interBlockCache types.MultiStorePersistentCache
	listeners       map[types.StoreKey]*types.MemoryListener
	pruningOpts     pruningtypes.PruningOptions
}

var (
	_ types.CommitMultiStore          = (*Store)(nil)
	_ types.Queryable                 = (*Store)(nil)
	_ snapshottypes.SnapshotAnnouncer = (*Store)(nil) // the snapshot manager looks for it
)

// New opens (or creates) a store in dir. Stores are then mounted and a
// version loaded, as with rootmulti.NewStore.
func New(dir string, logger log.Logger, opts Options) (*Store, error) {
	if logger == nil {
		logger = log.NewNopLogger()
	}
	s := &Store{
		listeners:   map[types.StoreKey]*types.MemoryListener{},
		pruningOpts: pruningtypes.NewPruningOptions(pruningtypes.PruningNothing),
	}
	core, err := cms.New(dir, cms.Options{
		Engine: opts.Engine, Logger: cms.NewSlog(logger.With("module", "nomtstore")), AppDB: opts.AppDB,
		Observer: opts.Observer, Line: line{owner: s}, OpenIAVL: migrate.Opener(DecodeCommitInfo),
	})
	if err != nil {
		return nil, err
	}
	// store/v2's pruning manager distrusts the snapshot heights it reads
	// back at a load; so does this line's.
	core.Pruner().DistrustAfterRestart()
	s.core = core
	return s, nil
}

// Core is the SDK-free store this adapter wraps.
func (s *Store) Core() *cms.Store { return s.core }

// Engine returns the engine under the store, for tools and queries
// (read-only use while the store runs).
func (s *Store) Engine() *commitment.DB { return s.core.Engine() }

// PruningStats reports the background pruning worker.
func (s *Store) PruningStats() pruning.Stats { return s.core.PruningStats() }

// Close stops pruning and closes the engine. The store is unusable
// afterwards.
func (s *Store) Close() error { return s.core.Close() }

// OnLoad sets a function run at the start of every load of a version,
// from the loading goroutine, before the store's lock is taken.
func (s *Store) OnLoad(f func()) { s.core.OnLoad(f) }

// GetStoreType is StoreTypeMulti.
func (s *Store) GetStoreType() types.StoreType { return types.StoreTypeMulti }

// MountStoreWithDB mounts a store, with rootmulti's checks. IAVL-type
// stores become engine trees; db is used only by StoreTypeDB stores.
func (s *Store) MountStoreWithDB(key types.StoreKey, typ types.StoreType, db dbm.DB) {
	if key == nil {
		panic("MountIAVLStore() key cannot be nil")
	}
	var kind cms.Kind
	switch typ {
	case types.StoreTypeIAVL:
		kind = cms.KindTree
	case types.StoreTypeDB:
		kind = cms.KindDB
	case types.StoreTypeTransient:
		kind = cms.KindTransient
	case types.StoreTypeMemory:
		kind = cms.KindMemory
	case types.StoreTypeObject:
		kind = cms.KindObject
	default:
		panic(fmt.Sprintf("nomtstore: store %s: store type %v is not supported", key.Name(), typ))
	}
	s.core.Mount(key, kind, db)
}

// GetCommitKVStore returns a mounted store, unwrapped from the inter-block
// cache, or nil.
func (s *Store) GetCommitKVStore(key types.StoreKey) types.CommitKVStore {
	// The cache manager's map is guarded by mu (line.ServeTrees resets it).
	s.mu.RLock()
	var unwrapped types.CommitKVStore
	if s.interBlockCache != nil {
		unwrapped = s.interBlockCache.Unwrap(key)
	}
	s.mu.RUnlock()
	if unwrapped != nil {
		return unwrapped
	}
	store, _ := s.core.Served(key).(types.CommitKVStore)
	return store
}

// GetCommitStore returns a mounted store (of any kind), unwrapped from
// the inter-block cache, or nil.
func (s *Store) GetCommitStore(key types.StoreKey) types.CommitStore {
	if store := s.GetCommitKVStore(key); store != nil {
		return store
	}
	store, _ := s.core.Served(key).(types.CommitStore)
	return store
}

// StoreKeysByName returns the mounted keys by name.
func (s *Store) StoreKeysByName() map[string]types.StoreKey {
	keys := map[string]types.StoreKey{}
	for name, key := range s.core.KeysByName() {
		keys[name] = key.(types.StoreKey)
	}
	return keys
}

// GetStoreByName returns a mounted store by name, or nil.
func (s *Store) GetStoreByName(name string) types.Store {
	key, ok := s.core.KeysByName()[name].(types.StoreKey)
	if !ok {
		return nil
	}
	if store := s.GetCommitStore(key); store != nil {
		return store
	}
	return nil
}

// GetStore returns a mounted store; it panics for an unknown key, as
// rootmulti does.
func (s *Store) GetStore(key types.StoreKey) types.Store {
	store := s.GetCommitStore(key)
	if store == nil {
		panic(fmt.Sprintf("store does not exist for key: %s", key.Name()))
	}
	return store
}

// GetKVStore returns a mounted store, wrapped for listening when that is
// on; it panics for an unknown key or a store of Go values, as rootmulti
// does.
func (s *Store) GetKVStore(key types.StoreKey) types.KVStore {
	served := s.core.Served(key)
	if served == nil {
		panic(fmt.Sprintf("store does not exist for key: %s", key.Name()))
	}
	store, ok := served.(types.KVStore)
	if !ok {
		panic(fmt.Sprintf("store with key %v is not KVStore", key))
	}
	s.mu.RLock()
	listener := s.listeners[key]
	s.mu.RUnlock()
	if listener != nil {
		store = listenkv.NewStore(store, key, listener)
	}
	return store
}

// GetObjKVStore returns a mounted store of Go values (StoreTypeObject);
// it panics for an unknown key or a store of another type, as rootmulti
// does.
func (s *Store) GetObjKVStore(key types.StoreKey) types.ObjKVStore {
	served := s.core.Served(key)
	if served == nil {
		panic(fmt.Sprintf("store does not exist for key: %s", key.Name()))
	}
	store, ok := served.(types.ObjKVStore)
	if !ok {
		panic(fmt.Sprintf("store with key %v is not ObjKVStore", key))
	}
	return store
}

// SetInterBlockCache wraps the IAVL-type stores loaded from now on in the
// inter-block cache.
func (s *Store) SetInterBlockCache(c types.MultiStorePersistentCache) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.interBlockCache = c
}

// AddListeners makes the writes to these stores observable (PopStateCache).
func (s *Store) AddListeners(keys []types.StoreKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, key := range keys {
		if s.listeners[key] == nil {
			s.listeners[key] = types.NewMemoryListener()
		}
	}
}

// ListeningEnabled reports whether the writes to key's store are observed.
func (s *Store) ListeningEnabled(key types.StoreKey) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.listeners[key] != nil
}

// PopStateCache returns and clears the writes the listeners observed,
// ordered by store key name.
func (s *Store) PopStateCache() []*types.StoreKVPair {
	s.mu.RLock()
	listeners := slices.Collect(maps.Values(s.listeners))
	s.mu.RUnlock()
	var cache []*types.StoreKVPair
	for _, l := range listeners {
		cache = append(cache, l.PopStateCache()...)
	}
	sort.SliceStable(cache, func(i, j int) bool { return cache[i].StoreKey < cache[j].StoreKey })
	return cache
}

// SetPruning sets the SDK pruning options (validated by the caller, as
// baseapp does at Init).
func (s *Store) SetPruning(opts pruningtypes.PruningOptions) {
	s.mu.Lock()
	s.pruningOpts = opts
	s.mu.Unlock()
	s.core.SetPruning(PruningFromSDK(opts))
}

// GetPruning returns the pruning options in force.
func (s *Store) GetPruning() pruningtypes.PruningOptions {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.pruningOpts
}

// SetSnapshotInterval holds back the heights snapshots are taken at from
// pruning until PruneSnapshotHeight.
func (s *Store) SetSnapshotInterval(interval uint64) { s.core.SetSnapshotInterval(interval) }

// AnnounceSnapshotHeight holds pruning below a snapshot being taken until
// PruneSnapshotHeight reports it done.
func (s *Store) AnnounceSnapshotHeight(height int64) {
	s.core.Pruner().AnnounceSnapshotHeight(height)
}

// PruneSnapshotHeight releases a snapshot height for pruning.
func (s *Store) PruneSnapshotHeight(height int64) { s.core.PruneSnapshotHeight(height) }

// SetIAVLCacheSize is accepted and ignored: the engine's page cache is set
// by the [nomtstore] section of app.toml (page-cache-pages).
func (s *Store) SetIAVLCacheSize(int) {}

// SetIAVLDisableFastNode is accepted and ignored: current values are always
// kept apart from history, which is what IAVL's fast nodes add.
func (s *Store) SetIAVLDisableFastNode(bool) {}

// SetIAVLSyncPruning is accepted and ignored: pruning always runs in the
// background worker, which never blocks a commit.
func (s *Store) SetIAVLSyncPruning(bool) {}

// SetCommitHeader records the header of the block being committed: its
// time goes into the version's commit info.
func (s *Store) SetCommitHeader(h cmtproto.Header) { s.core.SetCommitTime(h.Time) }

// CacheWrap implements CacheWrapper.
func (s *Store) CacheWrap() types.CacheWrap {
	return s.CacheMultiStore().(types.CacheWrap)
}

// CacheMultiStore branches the working state.
func (s *Store) CacheMultiStore() types.CacheMultiStore {
	return s.branch(func(_ types.StoreKey, store types.CacheWrapper) types.CacheWrapper { return store })
}

// CacheMultiStoreWithVersion branches a retained version, read-only for
// the IAVL-type stores; it stays readable while later blocks commit. A
// pruned or future version is an error, as in rootmulti.
func (s *Store) CacheMultiStoreWithVersion(version int64) (types.CacheMultiStore, error) {
	if err := s.core.CheckReadable(version); err != nil {
		return nil, err
	}
	return s.branch(func(key types.StoreKey, store types.CacheWrapper) types.CacheWrapper {
		if t := s.core.TreeAt(key, version); t != nil {
			return versionStore{tree: t}
		}
		return store
	}), nil
}

// branch is a cache multistore over each mounted store as storeOf gives
// it, wrapped for the listeners.
func (s *Store) branch(storeOf func(types.StoreKey, types.CacheWrapper) types.CacheWrapper) types.CacheMultiStore {
	served, _ := s.core.AllServed()
	// storeOf may call the core: mu is not held meanwhile (lock order:
	// core, then mu).
	stores := make(map[types.StoreKey]types.CacheWrapper, len(served))
	for k, v := range served {
		key := k.(types.StoreKey)
		stores[key] = storeOf(key, v.(types.CacheWrapper))
	}
	s.mu.RLock()
	for key, store := range stores {
		if l := s.listeners[key]; l != nil {
			if kv, ok := store.(types.KVStore); ok {
				stores[key] = listenkv.NewStore(kv, key, l)
			}
		}
	}
	s.mu.RUnlock()
	return cachemulti.NewStore(stores)
}

// LatestVersion is the last committed version.
func (s *Store) LatestVersion() int64 { return s.LastCommitID().Version }

// EarliestVersion is the earliest version the store can read: the
// engine's, or 1 before any commit. It differs from rootmulti's, which
// reports 1 until its first prune and then the pruning height + 1 at once:
// this is the first version actually held (the restore height after state
// sync, the initial height, the height of a switch from IAVL), and it
// moves when a background pruning run is done, not when it is asked for.
func (s *Store) EarliestVersion() int64 {
	if earliest := s.core.Engine().EarliestVersion(); earliest > 0 {
		return int64(earliest)
	}
	return 1
}

// LastCommitID is the version and app hash of the last commit; before the
// first, version 0 and SHA-256 of nothing, as rootmulti reports.
func (s *Store) LastCommitID() types.CommitID {
	id := infoToSDK(s.core.LastCommitInfo()).CommitID()
	if len(id.Hash) == 0 {
		empty := sha256.Sum256(nil)
		id.Hash = empty[:]
	}
	return id
}

// WorkingHash computes the app hash the staged writes will commit: every
// tree's new root, computed in memory (nothing is written).
func (s *Store) WorkingHash() []byte { return infoToSDK(s.core.WorkingInfo()).Hash() }

// Commit makes every store's writes durable as the next version in one
// engine sync, with the version's commit info (rootmulti's format) in the
// same atomic batch, then asks the pruning worker for what the pruning
// options allow. It panics on a failed commit, as rootmulti does.
func (s *Store) Commit() types.CommitID { return infoToSDK(s.core.Commit()).CommitID() }

// GetCommitInfo returns the commit info of a retained version, as
// rootmulti stores it.
func (s *Store) GetCommitInfo(ver int64) (*types.CommitInfo, error) {
	info, err := s.core.GetCommitInfo(ver)
	if err != nil {
		return nil, err
	}
	return infoToSDK(*info), nil
}

// SetInitialVersion makes the first commit's version v (InitChain with an
// initial height). It fails once a version exists.
func (s *Store) SetInitialVersion(version int64) error { return s.core.SetInitialVersion(version) }

// RollbackToVersion makes target the latest version: every later version
// is undone in the engine, durably, and the stores are reloaded at target.
func (s *Store) RollbackToVersion(target int64) error { return s.core.RollbackToVersion(target) }

// LoadLatestVersion loads the latest version.
func (s *Store) LoadLatestVersion() error { return s.core.LoadVersion(s.core.LatestVersion(), nil) }

// LoadLatestVersionAndUpgrade loads the latest version and applies the
// store upgrades (added, renamed, deleted) as writes of the next commit.
func (s *Store) LoadLatestVersionAndUpgrade(upgrades *types.StoreUpgrades) error {
	return s.core.LoadVersion(s.core.LatestVersion(), upgradesFromSDK(upgrades))
}

// LoadVersion loads a version. Below the latest, the store reads that
// version and refuses writes (ErrPastVersion).
func (s *Store) LoadVersion(ver int64) error { return s.core.LoadVersion(ver, nil) }

// LoadVersionAndUpgrade is LoadVersion with upgrades, which apply only at
// the latest version.
func (s *Store) LoadVersionAndUpgrade(ver int64, upgrades *types.StoreUpgrades) error {
	return s.core.LoadVersion(ver, upgradesFromSDK(upgrades))
}
