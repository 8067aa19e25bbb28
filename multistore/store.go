package multistore

import (
	"crypto/sha256"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"cosmossdk.io/log"
	"cosmossdk.io/store/cachemulti"
	"cosmossdk.io/store/listenkv"
	"cosmossdk.io/store/metrics"
	pruningtypes "cosmossdk.io/store/pruning/types"
	"cosmossdk.io/store/tracekv"
	"cosmossdk.io/store/types"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	dbm "github.com/cosmos/cosmos-db"

	"github.com/nomtstore/nomtstore/cms"
	"github.com/nomtstore/nomtstore/commitment"
	"github.com/nomtstore/nomtstore/migrate"
	"github.com/nomtstore/nomtstore/pruning"
)

var (
	// ErrPastVersion is the panic of a write or commit to a store loaded
	// at a version below the latest (LoadVersion, for an export at a
	// height): it reads that version only. RollbackToVersion is what moves
	// the latest version back.
	ErrPastVersion = cms.ErrPastVersion
	// ErrNotLoaded is the panic of a commit before any version was loaded
	// (LoadLatestVersion).
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
	// Metrics receives the store's timings; nil means none.
	Metrics metrics.StoreMetrics
	// Observer, if set, receives the engine's commit figures, the pruning
	// worker's runs and, after each Commit, the versions kept and the
	// pruning lag (module.TelemetryObserver sends them to the SDK's
	// telemetry). It becomes Engine.Observer unless that is set.
	Observer Observer
}

// Observer receives the store's figures, for metrics (cms.Observer).
type Observer = cms.Observer

// Store is a CommitMultiStore of cosmossdk.io/store v1.1.2 over the
// nomtstore engine. What it does lives in the SDK-free core (cms.Store),
// which the store/v2 adapter (module storev2) shares; this type converts
// the SDK's types and wires the SDK's own packages: transient, memory and
// DB stores, cache multistores, listeners, tracing, metrics and the
// inter-block cache.
//
// Concurrency: like rootmulti, writes, Commit and loading come from one
// goroutine (the ABCI connection); CacheMultiStoreWithVersion, Query,
// GetCommitInfo and LastCommitID may run alongside them.
type Store struct {
	core   *cms.Store
	logger log.Logger
	// cacheParent is the (empty) parent store of the cache multistores.
	cacheParent dbm.DB
	metrics     atomic.Pointer[metrics.StoreMetrics]

	// mu guards the fields below. It is never held while calling the
	// core, which calls back into line (lock order: core, then mu).
	mu              sync.RWMutex
	interBlockCache types.MultiStorePersistentCache
	listeners       map[types.StoreKey]*types.MemoryListener
	pruningOpts     pruningtypes.PruningOptions

	traceMu      sync.Mutex
	traceWriter  io.Writer
	traceContext types.TraceContext
}

var (
	_ types.CommitMultiStore = (*Store)(nil)
	_ types.Queryable        = (*Store)(nil)
)

// New opens (or creates) a store in dir. Stores are then mounted and a
// version loaded, as with rootmulti.NewStore.
func New(dir string, logger log.Logger, opts Options) (*Store, error) {
	if logger == nil {
		logger = log.NewNopLogger()
	}
	s := &Store{
		logger:      logger,
		cacheParent: dbm.NewMemDB(),
		listeners:   map[types.StoreKey]*types.MemoryListener{},
		pruningOpts: pruningtypes.NewPruningOptions(pruningtypes.PruningNothing),
	}
	m := opts.Metrics
	if m == nil {
		m = metrics.NewNoOpMetrics()
	}
	s.metrics.Store(&m)
	core, err := cms.New(dir, cms.Options{
		Engine: opts.Engine, Logger: cms.NewSlog(logger.With("module", "nomtstore")), AppDB: opts.AppDB,
		Observer: opts.Observer, Line: line{owner: s}, OpenIAVL: migrate.Opener(DecodeCommitInfo),
	})
	if err != nil {
		return nil, err
	}
	s.core = core
	return s, nil
}

func (s *Store) storeMetrics() metrics.StoreMetrics { return *s.metrics.Load() }

// Core is the SDK-free store this adapter wraps.
func (s *Store) Core() *cms.Store { return s.core }

// Engine returns the engine under the store, for tools and the module's
// queries (read-only use while the store runs).
func (s *Store) Engine() *commitment.DB { return s.core.Engine() }

// PruningStats reports the background pruning worker.
func (s *Store) PruningStats() pruning.Stats { return s.core.PruningStats() }

// Dir is the store's directory (the engine's files: page table, WAL
// directory, Pebble directory).
func (s *Store) Dir() string { return s.core.Dir() }

// SnapshotInterval is the state-sync snapshot interval whose heights are
// held back from pruning.
func (s *Store) SnapshotInterval() uint64 { return s.core.SnapshotInterval() }

// Close stops pruning and closes the engine (and the DB stores' database
// if the Store opened it). The store is unusable afterwards.
func (s *Store) Close() error { return s.core.Close() }

// OnLoad sets a function run at the start of every load of a version
// (LoadLatestVersion, LoadVersion, and the reloads of a rollback or a
// state-sync restore), from the loading goroutine, before the store's lock
// is taken: the module composes its ABCI listener with the app's there,
// once the app has installed its own.
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
	default:
		panic(fmt.Sprintf("nomtstore: store %s: store type %v is not supported", key.Name(), typ))
	}
	s.core.Mount(key, kind, db)
}

// GetCommitStore is GetCommitKVStore.
func (s *Store) GetCommitStore(key types.StoreKey) types.CommitStore {
	return s.GetCommitKVStore(key)
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
	if store := s.GetCommitKVStore(key); store != nil {
		return store
	}
	return nil
}

// GetStore returns a mounted store; it panics for an unknown key, as
// rootmulti does.
func (s *Store) GetStore(key types.StoreKey) types.Store {
	store := s.GetCommitKVStore(key)
	if store == nil {
		panic(fmt.Sprintf("store does not exist for key: %s", key.Name()))
	}
	return store
}

// GetKVStore returns a mounted store, wrapped for tracing and listening
// when those are on; it panics for an unknown key, as rootmulti does.
func (s *Store) GetKVStore(key types.StoreKey) types.KVStore {
	st, _ := s.core.Served(key).(types.KVStore)
	if st == nil {
		panic(fmt.Sprintf("store does not exist for key: %s", key.Name()))
	}
	s.mu.RLock()
	listener := s.listeners[key]
	s.mu.RUnlock()
	store := st
	if s.TracingEnabled() {
		store = tracekv.NewStore(store, s.traceWriter, s.getTracingContext())
	}
	if listener != nil {
		store = listenkv.NewStore(store, key, listener)
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

// SetTracer traces the operations of the stores GetKVStore and the cache
// multistores return to w (nil stops tracing).
func (s *Store) SetTracer(w io.Writer) types.MultiStore {
	s.traceMu.Lock()
	defer s.traceMu.Unlock()
	s.traceWriter = w
	return s
}

// SetTracingContext merges tc into the context written with each trace.
func (s *Store) SetTracingContext(tc types.TraceContext) types.MultiStore {
	s.traceMu.Lock()
	defer s.traceMu.Unlock()
	s.traceContext = s.traceContext.Merge(tc)
	return s
}

func (s *Store) getTracingContext() types.TraceContext {
	s.traceMu.Lock()
	defer s.traceMu.Unlock()
	if s.traceContext == nil {
		return nil
	}
	return maps.Clone(s.traceContext)
}

// TracingEnabled reports whether a tracer is set.
func (s *Store) TracingEnabled() bool {
	s.traceMu.Lock()
	defer s.traceMu.Unlock()
	return s.traceWriter != nil
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

// SetMetrics sets where the stores' timings go.
func (s *Store) SetMetrics(m metrics.StoreMetrics) { s.metrics.Store(&m) }

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
// time goes into the version's commit info. baseapp calls it only on
// *rootmulti.Store; the module's baseapp option feeds it instead.
func (s *Store) SetCommitHeader(h cmtproto.Header) { s.core.SetCommitTime(h.Time) }

// CacheWrap implements CacheWrapper.
func (s *Store) CacheWrap() types.CacheWrap {
	return s.CacheMultiStore().(types.CacheWrap)
}

// CacheWrapWithTrace implements CacheWrapper; the tracer is the store's.
func (s *Store) CacheWrapWithTrace(_ io.Writer, _ types.TraceContext) types.CacheWrap {
	return s.CacheWrap()
}

// CacheMultiStore branches the working state.
func (s *Store) CacheMultiStore() types.CacheMultiStore {
	return s.branch(func(_ types.StoreKey, store types.KVStore) types.KVStore { return store })
}

// CacheMultiStoreWithVersion branches a retained version, read-only for
// the IAVL-type stores; it stays readable while later blocks commit. A
// pruned or future version is an error, as in rootmulti.
func (s *Store) CacheMultiStoreWithVersion(version int64) (types.CacheMultiStore, error) {
	if err := s.core.CheckReadable(version); err != nil {
		return nil, err
	}
	return s.branch(func(key types.StoreKey, store types.KVStore) types.KVStore {
		if t := s.core.TreeAt(key, version); t != nil {
			return versionStore{tree: t}
		}
		return store
	}), nil
}

// branch is a cache multistore over each mounted store as storeOf gives
// it, wrapped for the listeners and the tracer.
func (s *Store) branch(storeOf func(types.StoreKey, types.KVStore) types.KVStore) types.CacheMultiStore {
	served, byName := s.core.AllServed()
	// storeOf may call the core: mu is not held meanwhile (lock order:
	// core, then mu).
	stores := make(map[types.StoreKey]types.CacheWrapper, len(served))
	for k, v := range served {
		key := k.(types.StoreKey)
		stores[key] = storeOf(key, v.(types.KVStore))
	}
	s.mu.RLock()
	for key, store := range stores {
		if l := s.listeners[key]; l != nil {
			stores[key] = listenkv.NewStore(store.(types.KVStore), key, l)
		}
	}
	s.mu.RUnlock()
	keys := make(map[string]types.StoreKey, len(byName))
	for name, key := range byName {
		keys[name] = key.(types.StoreKey)
	}
	s.traceMu.Lock()
	w := s.traceWriter
	s.traceMu.Unlock()
	return cachemulti.NewStore(s.cacheParent, stores, keys, w, s.getTracingContext())
}

// LatestVersion is the last committed version.
func (s *Store) LatestVersion() int64 { return s.LastCommitID().Version }

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
// tree's new root, computed in memory (nothing is written). Like
// rootmulti's, it covers the IAVL-type stores only.
func (s *Store) WorkingHash() []byte { return infoToSDK(s.core.WorkingInfo()).Hash() }

// Commit makes every store's writes durable as the next version in one
// engine sync, with the version's commit info (rootmulti's format) in the
// same atomic batch, then asks the pruning worker for what the pruning
// options allow. It panics on a failed commit, as rootmulti does: the
// version does not exist and the node must stop.
func (s *Store) Commit() types.CommitID {
	defer s.storeMetrics().MeasureSince("store", "nomtstore", "commit")
	return infoToSDK(s.core.Commit()).CommitID()
}

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

// RollbackToVersion makes target the latest version (the node's rollback
// command): every later version is undone in the engine, durably, and the
// stores are reloaded at target. A pruned target is refused.
func (s *Store) RollbackToVersion(target int64) error { return s.core.RollbackToVersion(target) }

// LoadLatestVersion loads the latest version.
func (s *Store) LoadLatestVersion() error { return s.core.LoadVersion(s.core.LatestVersion(), nil) }

// LoadLatestVersionAndUpgrade loads the latest version and applies the
// store upgrades (added, renamed, deleted) as writes of the next commit.
// rootmulti keeps a deleted store's data forever; here the deletion
// commits with the upgrade, so pruning reclaims the space.
func (s *Store) LoadLatestVersionAndUpgrade(upgrades *types.StoreUpgrades) error {
	return s.core.LoadVersion(s.core.LatestVersion(), upgradesFromSDK(upgrades))
}

// LoadVersion loads a version. Below the latest, the store reads that
// version and refuses writes (ErrPastVersion): that is what loading a
// height for an export needs; RollbackToVersion is what moves the latest.
func (s *Store) LoadVersion(ver int64) error { return s.core.LoadVersion(ver, nil) }

// LoadVersionAndUpgrade is LoadVersion with upgrades, which apply only at
// the latest version.
func (s *Store) LoadVersionAndUpgrade(ver int64, upgrades *types.StoreUpgrades) error {
	return s.core.LoadVersion(ver, upgradesFromSDK(upgrades))
}
