package multistore

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"cosmossdk.io/log"
	"cosmossdk.io/store/cachemulti"
	"cosmossdk.io/store/dbadapter"
	"cosmossdk.io/store/listenkv"
	"cosmossdk.io/store/mem"
	"cosmossdk.io/store/metrics"
	pruningtypes "cosmossdk.io/store/pruning/types"
	"cosmossdk.io/store/tracekv"
	"cosmossdk.io/store/transient"
	"cosmossdk.io/store/types"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	dbm "github.com/cosmos/cosmos-db"

	"github.com/nomtstore/nomtstore/commitment"
	"github.com/nomtstore/nomtstore/pruning"
)

var (
	// ErrPastVersion is the panic of a write or commit to a store loaded
	// at a version below the latest (LoadVersion, for an export at a
	// height): it reads that version only. RollbackToVersion is what moves
	// the latest version back.
	ErrPastVersion = errors.New("nomtstore: loaded at a past version, read-only")
	// ErrNotLoaded is the panic of a commit before any version was loaded
	// (LoadLatestVersion).
	ErrNotLoaded = errors.New("nomtstore: no version loaded")

	errKeyEmpty = errors.New("key is empty")
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

// Observer receives the store's figures, for metrics. Calls come from the
// committing goroutine, the engine's background page flush and the pruning
// worker: implementations must be safe for concurrent use, fast, and must
// not call the store.
type Observer interface {
	commitment.Observer
	// PruneRun reports one run of the pruning worker: the height it pruned
	// to, how long it took, and its error.
	PruneRun(to uint64, took time.Duration, err error)
	// Versions reports, after each Commit, the latest and earliest kept
	// versions and the pruning worker's state.
	Versions(latest, earliest uint64, pruning pruning.Stats)
}

// Store is a CommitMultiStore over the nomtstore engine. IAVL-type stores
// are engine trees committed together in one sync per Commit; transient,
// memory and DB stores are the SDK's own.
//
// Concurrency: like rootmulti, writes, Commit and loading come from one
// goroutine (the ABCI connection); CacheMultiStoreWithVersion, Query,
// GetCommitInfo and LastCommitID may run alongside them.
type Store struct {
	dir     string
	logger  log.Logger
	engine  *commitment.DB
	pruner  *pruning.Manager
	worker  *pruning.Worker
	metrics metrics.StoreMetrics
	// observer is Options.Observer, or nil.
	observer Observer
	appDB    dbm.DB
	// ownDB is the LevelDB database opened for DB stores when no AppDB was
	// given; closed with the Store.
	ownDB dbm.DB
	// cacheParent is the (empty) parent store of the cache multistores.
	cacheParent dbm.DB

	// mu guards the fields below against the readers listed above.
	mu             sync.RWMutex
	loaded         bool
	lastCommitInfo *types.CommitInfo
	// pastVersion is non-zero when a past version was loaded (ErrPastVersion).
	pastVersion  int64
	storesParams map[types.StoreKey]storeParams
	stores       map[types.StoreKey]types.CommitKVStore // as served: maybe inter-block cached
	trees        map[types.StoreKey]*treeStore
	keysByName   map[string]types.StoreKey
	removalMap   map[types.StoreKey]bool

	initialVersion  int64
	interBlockCache types.MultiStorePersistentCache
	// onLoad, if set, runs at the start of every load (OnLoad).
	onLoad       func()
	listeners    map[types.StoreKey]*types.MemoryListener
	commitHeader cmtproto.Header

	// migrated answers for the version of a switch from IAVL, if any.
	migrated migratedHeight

	traceMu      sync.Mutex
	traceWriter  io.Writer
	traceContext types.TraceContext
}

var (
	_ types.CommitMultiStore = (*Store)(nil)
	_ types.Queryable        = (*Store)(nil)
)

type storeParams struct {
	key types.StoreKey
	db  dbm.DB
	typ types.StoreType
}

// New opens (or creates) a store in dir. Stores are then mounted and a
// version loaded, as with rootmulti.NewStore.
func New(dir string, logger log.Logger, opts Options) (*Store, error) {
	if logger == nil {
		logger = log.NewNopLogger()
	}
	engineOpts := opts.Engine
	if engineOpts.Logger == nil {
		engineOpts.Logger = slogFrom(logger)
	}
	workerOpts := pruning.WorkerOptions{Logger: engineOpts.Logger}
	if opts.Observer != nil {
		if engineOpts.Observer == nil {
			engineOpts.Observer = opts.Observer
		}
		workerOpts.OnRun = opts.Observer.PruneRun
	}
	engine, err := commitment.Open(dir, nil, engineOpts)
	if err != nil {
		return nil, err
	}
	m := opts.Metrics
	if m == nil {
		m = metrics.NewNoOpMetrics()
	}
	s := &Store{
		dir:          dir,
		logger:       logger,
		engine:       engine,
		metrics:      m,
		observer:     opts.Observer,
		appDB:        opts.AppDB,
		cacheParent:  dbm.NewMemDB(),
		storesParams: map[types.StoreKey]storeParams{},
		stores:       map[types.StoreKey]types.CommitKVStore{},
		trees:        map[types.StoreKey]*treeStore{},
		keysByName:   map[string]types.StoreKey{},
		removalMap:   map[types.StoreKey]bool{},
		listeners:    map[types.StoreKey]*types.MemoryListener{},
	}
	s.pruner = pruning.NewManager(engine, engineOpts.Logger)
	s.worker = pruning.NewWorker(engine, workerOpts)
	return s, nil
}

// Engine returns the engine under the store, for tools and the module's
// queries (read-only use while the store runs).
func (s *Store) Engine() *commitment.DB { return s.engine }

// PruningStats reports the background pruning worker.
func (s *Store) PruningStats() pruning.Stats { return s.worker.Stats() }

// Close stops pruning and closes the engine (and the DB stores' database
// if the Store opened it). The store is unusable afterwards.
func (s *Store) Close() error {
	s.worker.Close()
	errs := []error{s.engine.Close()}
	if s.ownDB != nil {
		errs = append(errs, s.ownDB.Close())
	}
	return errors.Join(errs...)
}

// OnLoad sets a function run at the start of every load of a version
// (LoadLatestVersion, LoadVersion, and the reloads of a rollback or a
// state-sync restore), from the loading goroutine, before the store's lock
// is taken: the module composes its ABCI listener with the app's there,
// once the app has installed its own.
func (s *Store) OnLoad(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onLoad = f
}

// GetStoreType is StoreTypeMulti.
func (s *Store) GetStoreType() types.StoreType { return types.StoreTypeMulti }

// MountStoreWithDB mounts a store, with rootmulti's checks. IAVL-type
// stores become engine trees; db is used only by StoreTypeDB stores.
func (s *Store) MountStoreWithDB(key types.StoreKey, typ types.StoreType, db dbm.DB) {
	if key == nil {
		panic("MountIAVLStore() key cannot be nil")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.storesParams[key]; ok {
		panic(fmt.Sprintf("store duplicate store key %v", key))
	}
	if _, ok := s.keysByName[key.Name()]; ok {
		panic(fmt.Sprintf("store duplicate store key name %v", key))
	}
	switch typ {
	case types.StoreTypeIAVL, types.StoreTypeDB, types.StoreTypeTransient, types.StoreTypeMemory:
	default:
		panic(fmt.Sprintf("nomtstore: store %s: store type %v is not supported", key.Name(), typ))
	}
	s.storesParams[key] = storeParams{key: key, db: db, typ: typ}
	s.keysByName[key.Name()] = key
}

// GetCommitStore is GetCommitKVStore.
func (s *Store) GetCommitStore(key types.StoreKey) types.CommitStore {
	return s.GetCommitKVStore(key)
}

// GetCommitKVStore returns a mounted store, unwrapped from the inter-block
// cache, or nil.
func (s *Store) GetCommitKVStore(key types.StoreKey) types.CommitKVStore {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.commitKVStoreLocked(key)
}

func (s *Store) commitKVStoreLocked(key types.StoreKey) types.CommitKVStore {
	if s.interBlockCache != nil {
		if store := s.interBlockCache.Unwrap(key); store != nil {
			return store
		}
	}
	store, ok := s.stores[key]
	if !ok {
		return nil
	}
	return store
}

// StoreKeysByName returns the mounted keys by name.
func (s *Store) StoreKeysByName() map[string]types.StoreKey {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return maps.Clone(s.keysByName)
}

// GetStoreByName returns a mounted store by name, or nil.
func (s *Store) GetStoreByName(name string) types.Store {
	s.mu.RLock()
	defer s.mu.RUnlock()
	key := s.keysByName[name]
	if key == nil {
		return nil
	}
	if store := s.commitKVStoreLocked(key); store != nil {
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
	s.mu.RLock()
	st := s.stores[key]
	listener := s.listeners[key]
	s.mu.RUnlock()
	if st == nil {
		panic(fmt.Sprintf("store does not exist for key: %s", key.Name()))
	}
	store := types.KVStore(st)
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
func (s *Store) SetMetrics(m metrics.StoreMetrics) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.metrics = m
	for _, t := range s.trees {
		t.metrics = m
	}
}

// SetPruning sets the SDK pruning options (validated by the caller, as
// baseapp does at Init).
func (s *Store) SetPruning(opts pruningtypes.PruningOptions) { s.pruner.SetOptions(opts) }

// GetPruning returns the pruning options in force.
func (s *Store) GetPruning() pruningtypes.PruningOptions { return s.pruner.Options() }

// SetSnapshotInterval holds back the heights snapshots are taken at from
// pruning until PruneSnapshotHeight.
func (s *Store) SetSnapshotInterval(interval uint64) { s.pruner.SetSnapshotInterval(interval) }

// PruneSnapshotHeight releases a snapshot height for pruning.
func (s *Store) PruneSnapshotHeight(height int64) {
	if err := s.pruner.HandleSnapshotHeight(height); err != nil {
		s.logger.Error("nomtstore: recording a snapshot height for pruning", "height", height, "err", err)
	}
}

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
func (s *Store) SetCommitHeader(h cmtproto.Header) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commitHeader = h
}

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
	return s.branch(func(_ types.StoreKey, store types.CommitKVStore) types.KVStore { return store })
}

// CacheMultiStoreWithVersion branches a retained version, read-only for
// the IAVL-type stores; it stays readable while later blocks commit. A
// pruned or future version is an error, as in rootmulti.
func (s *Store) CacheMultiStoreWithVersion(version int64) (types.CacheMultiStore, error) {
	if err := s.checkReadable(version); err != nil {
		return nil, err
	}
	return s.branch(func(key types.StoreKey, store types.CommitKVStore) types.KVStore {
		if t := s.trees[key]; t != nil {
			// A store added after version reads as empty at it.
			return &versionStore{engine: s.engine, name: t.name, version: uint64(version)}
		}
		return store
	}), nil
}

// branch is a cache multistore over each mounted store as storeOf gives
// it (called under mu), wrapped for the listeners and the tracer.
func (s *Store) branch(storeOf func(types.StoreKey, types.CommitKVStore) types.KVStore) types.CacheMultiStore {
	s.mu.RLock()
	stores := make(map[types.StoreKey]types.CacheWrapper, len(s.stores))
	for k, v := range s.stores {
		store := storeOf(k, v)
		if l := s.listeners[k]; l != nil {
			store = listenkv.NewStore(store, k, l)
		}
		stores[k] = store
	}
	keys := maps.Clone(s.keysByName)
	s.mu.RUnlock()
	s.traceMu.Lock()
	w := s.traceWriter
	s.traceMu.Unlock()
	return cachemulti.NewStore(s.cacheParent, stores, keys, w, s.getTracingContext())
}

// checkReadable refuses versions the engine does not hold, with the
// engine's error (errors.Is commitment.ErrVersionPruned / ErrVersionFuture).
func (s *Store) checkReadable(version int64) error {
	if version <= 0 {
		return fmt.Errorf("%w: version %d", commitment.ErrVersionFuture, version)
	}
	_, err := s.engine.RootsAt(uint64(version))
	return err
}

// dbStoresDB returns the database that holds DB-type stores mounted
// without their own.
func (s *Store) dbStoresDB() (dbm.DB, error) {
	if s.appDB != nil {
		return s.appDB, nil
	}
	if s.ownDB == nil {
		db, err := dbm.NewGoLevelDB("dbstores", s.dir, nil)
		if err != nil {
			return nil, fmt.Errorf("nomtstore: opening the DB stores' database: %w", err)
		}
		s.ownDB = db
	}
	return s.ownDB, nil
}

// newSDKStore builds a store of one of the SDK's own types, as rootmulti
// does (including its key prefixes for DB stores).
func (s *Store) newSDKStore(p storeParams) (types.CommitKVStore, error) {
	switch p.typ {
	case types.StoreTypeDB:
		var db dbm.DB
		if p.db != nil {
			db = dbm.NewPrefixDB(p.db, []byte("s/_/"))
		} else {
			parent, err := s.dbStoresDB()
			if err != nil {
				return nil, err
			}
			db = dbm.NewPrefixDB(parent, []byte("s/k:"+p.key.Name()+"/"))
		}
		return commitDBStore{Store: dbadapter.Store{DB: db}}, nil
	case types.StoreTypeTransient:
		if _, ok := p.key.(*types.TransientStoreKey); !ok {
			return nil, fmt.Errorf("invalid StoreKey for StoreTypeTransient: %s", p.key.String())
		}
		return transient.NewStore(), nil
	case types.StoreTypeMemory:
		if _, ok := p.key.(*types.MemoryStoreKey); !ok {
			return nil, fmt.Errorf("unexpected key type for a MemoryStoreKey; got: %s", p.key.String())
		}
		return mem.NewStore(), nil
	}
	return nil, fmt.Errorf("nomtstore: store %s: unsupported store type %v", p.key.Name(), p.typ)
}

// dbStoreHash is the hash rootmulti reports for DB-type stores, which have
// no commitment.
var dbStoreHash = []byte("FAKE_HASH")

// commitDBStore is a DB-type store, committed as rootmulti commits them:
// writes go straight to the database, and the commit ID is a constant.
type commitDBStore struct{ dbadapter.Store }

func (commitDBStore) Commit() types.CommitID { return types.CommitID{Version: -1, Hash: dbStoreHash} }
func (commitDBStore) LastCommitID() types.CommitID {
	return types.CommitID{Version: -1, Hash: dbStoreHash}
}
func (commitDBStore) WorkingHash() []byte                    { return dbStoreHash }
func (commitDBStore) SetPruning(pruningtypes.PruningOptions) {}
func (commitDBStore) GetPruning() pruningtypes.PruningOptions {
	return pruningtypes.NewPruningOptions(pruningtypes.PruningUndefined)
}
