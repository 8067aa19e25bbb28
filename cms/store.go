package cms

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

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
)

// Options configure a Store.
type Options struct {
	// Engine tunes the commitment engine (the [nomtstore] section of
	// app.toml).
	Engine commitment.Options
	// Logger receives the store's messages; nil discards them. It becomes
	// Engine.Logger unless that is set.
	Logger *slog.Logger
	// AppDB keeps the KindDB stores mounted without a DB of their own,
	// as rootmulti keeps them in the application database. If nil, such
	// stores live in a LevelDB database in the store's directory.
	AppDB dbm.DB
	// Observer, if set, receives the engine's commit figures, the pruning
	// worker's runs and, after each Commit, the versions kept and the
	// pruning lag. It becomes Engine.Observer unless that is set.
	Observer Observer
	// Line is the SDK line's adapter. Required.
	Line Line
	// OpenIAVL reads the IAVL data a migration from IAVL left in AppDB,
	// for IAVL's proofs at the version of the switch (migrate.Opener).
	// Without it, such proofs are refused with a clear error.
	OpenIAVL IAVLOpener
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

// Store is the SDK-free half of a CommitMultiStore over the engine, which
// both SDK lines' adapters wrap: the mounted stores, loading a version
// with store upgrades, one Commit of every tree in one engine sync with
// the version's commit info, pruning, rollback, queries and state-sync
// snapshots. Trees are engine trees; the stores of the SDK's other kinds
// are the adapter's (Line), held here as opaque values.
//
// Concurrency: like rootmulti, writes, Commit and loading come from one
// goroutine (the ABCI connection); reads at a version, Query,
// GetCommitInfo and LastCommitInfo may run alongside them.
type Store struct {
	dir      string
	logger   *slog.Logger
	line     Line
	engine   *commitment.DB
	pruner   *pruning.Manager
	worker   *pruning.Worker
	observer Observer
	appDB    dbm.DB
	openIAVL IAVLOpener
	// ownDB is the LevelDB database opened for DB stores when no AppDB was
	// given; closed with the Store.
	ownDB dbm.DB

	// closeMu serialises Close; closed is set once the engine is closed,
	// so that a second Close (the SDK's server closes the app twice on
	// shutdown) is a no-op rather than an error in the node's log.
	closeMu sync.Mutex
	closed  bool

	// mu guards the fields below against the readers listed above.
	mu             sync.RWMutex
	loaded         bool
	lastCommitInfo *CommitInfo
	// pastVersion is non-zero when a past version was loaded (ErrPastVersion).
	pastVersion int64
	mounts      map[StoreKey]mount
	// stores are the stores as served (Line.ServeTrees for the trees).
	stores     map[StoreKey]any
	trees      map[StoreKey]*Tree
	keysByName map[string]StoreKey
	removalMap map[StoreKey]bool

	initialVersion int64
	// onLoad, if set, runs at the start of every load (OnLoad).
	onLoad     func()
	commitTime time.Time

	// migrated answers for the version of a switch from IAVL, if any.
	migrated migratedHeight
}

type mount struct {
	key  StoreKey
	db   dbm.DB
	kind Kind
}

// New opens (or creates) a store in dir. Stores are then mounted and a
// version loaded, as with rootmulti.
func New(dir string, opts Options) (*Store, error) {
	if opts.Line == nil {
		return nil, errors.New("nomtstore: cms.Options.Line is required")
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	engineOpts := opts.Engine
	if engineOpts.Logger == nil {
		engineOpts.Logger = logger
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
	s := &Store{
		dir:        dir,
		logger:     logger,
		line:       opts.Line,
		engine:     engine,
		observer:   opts.Observer,
		appDB:      opts.AppDB,
		openIAVL:   opts.OpenIAVL,
		mounts:     map[StoreKey]mount{},
		stores:     map[StoreKey]any{},
		trees:      map[StoreKey]*Tree{},
		keysByName: map[string]StoreKey{},
		removalMap: map[StoreKey]bool{},
	}
	s.pruner = pruning.NewManager(engine, engineOpts.Logger)
	s.worker = pruning.NewWorker(engine, workerOpts)
	return s, nil
}

// Dir is the store's directory (the engine's files).
func (s *Store) Dir() string { return s.dir }

// Engine returns the engine under the store, for tools and the module's
// queries (read-only use while the store runs).
func (s *Store) Engine() *commitment.DB { return s.engine }

// Logger is the store's logger.
func (s *Store) Logger() *slog.Logger { return s.logger }

// AppDB is the application database, or nil.
func (s *Store) AppDB() dbm.DB { return s.appDB }

// Pruner decides which versions pruning deletes.
func (s *Store) Pruner() *pruning.Manager { return s.pruner }

// PruningStats reports the background pruning worker.
func (s *Store) PruningStats() pruning.Stats { return s.worker.Stats() }

// Close stops pruning and closes the engine (and the DB stores' database
// if the Store opened it). The store is unusable afterwards; closing it
// again returns nil. A Close refused because iterators are still open
// (commitment.ErrIteratorsOpen) leaves the engine open, to be retried.
func (s *Store) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return nil
	}
	s.worker.Close()
	engineErr := s.engine.Close()
	if errors.Is(engineErr, commitment.ErrIteratorsOpen) {
		return engineErr
	}
	s.closed = true
	errs := []error{engineErr}
	if s.ownDB != nil {
		errs = append(errs, s.ownDB.Close())
	}
	return errors.Join(errs...)
}

// OnLoad sets a function run at the start of every load of a version
// (LoadVersion, and the reloads of a rollback or a state-sync restore),
// from the loading goroutine, before the store's lock is taken.
func (s *Store) OnLoad(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onLoad = f
}

// Mount mounts a store, with rootmulti's checks (and its panics). db is
// used only by KindDB stores.
func (s *Store) Mount(key StoreKey, kind Kind, db dbm.DB) {
	if key == nil {
		panic("MountIAVLStore() key cannot be nil")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.mounts[key]; ok {
		panic(fmt.Sprintf("store duplicate store key %v", key))
	}
	if _, ok := s.keysByName[key.Name()]; ok {
		panic(fmt.Sprintf("store duplicate store key name %v", key))
	}
	s.mounts[key] = mount{key: key, db: db, kind: kind}
	s.keysByName[key.Name()] = key
}

// KeysByName returns the mounted keys by name.
func (s *Store) KeysByName() map[string]StoreKey {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return maps.Clone(s.keysByName)
}

// Served returns the loaded store of key as served, or nil.
func (s *Store) Served(key StoreKey) any {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.stores[key]
}

// ServedByName returns the loaded store named name as served, or nil.
func (s *Store) ServedByName(name string) any {
	s.mu.RLock()
	defer s.mu.RUnlock()
	key := s.keysByName[name]
	if key == nil {
		return nil
	}
	return s.stores[key]
}

// AllServed returns every loaded store as served, and the keys by name.
func (s *Store) AllServed() (map[StoreKey]any, map[string]StoreKey) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return maps.Clone(s.stores), maps.Clone(s.keysByName)
}

// Tree returns the loaded tree of key, or nil (a store of another kind).
func (s *Store) Tree(key StoreKey) *Tree {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.trees[key]
}

// Trees returns the loaded trees.
func (s *Store) Trees() []*Tree {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*Tree, 0, len(s.trees))
	for _, t := range s.trees {
		out = append(out, t)
	}
	return out
}

// IsTree reports whether name is a mounted engine tree.
func (s *Store) IsTree(name string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	key := s.keysByName[name]
	return key != nil && s.trees[key] != nil
}

// TreeAt returns the tree of key at a retained version, read-only; a tree
// added after version reads as empty at it. It is nil for a store of
// another kind. The version's readability is CheckReadable's.
func (s *Store) TreeAt(key StoreKey, version int64) *VersionTree {
	s.mu.RLock()
	t := s.trees[key]
	s.mu.RUnlock()
	if t == nil {
		return nil
	}
	return &VersionTree{engine: s.engine, name: t.name, version: uint64(version)}
}

// CheckReadable refuses versions the engine does not hold, with the
// engine's error (errors.Is commitment.ErrVersionPruned / ErrVersionFuture).
func (s *Store) CheckReadable(version int64) error {
	if version <= 0 {
		return fmt.Errorf("%w: version %d", commitment.ErrVersionFuture, version)
	}
	_, err := s.engine.RootsAt(uint64(version))
	return err
}

// SetPruning sets the pruning options (validated by the caller, as
// baseapp does at Init).
func (s *Store) SetPruning(opts pruning.Options) { s.pruner.SetOptions(opts) }

// SetSnapshotInterval holds back the heights snapshots are taken at from
// pruning until PruneSnapshotHeight.
func (s *Store) SetSnapshotInterval(interval uint64) { s.pruner.SetSnapshotInterval(interval) }

// SnapshotInterval is the state-sync snapshot interval whose heights are
// held back from pruning.
func (s *Store) SnapshotInterval() uint64 { return s.pruner.SnapshotInterval() }

// PruneSnapshotHeight releases a snapshot height for pruning.
func (s *Store) PruneSnapshotHeight(height int64) {
	if err := s.pruner.HandleSnapshotHeight(height); err != nil {
		s.logger.Error("nomtstore: recording a snapshot height for pruning", "height", height, "err", err)
	}
}

// SetCommitTime records the time of the block being committed: it goes
// into the version's commit info.
func (s *Store) SetCommitTime(t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commitTime = t
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

// newSDKStore builds a store of one of the SDK's own kinds through the
// line, with rootmulti's key prefixes for DB stores.
func (s *Store) newSDKStore(m mount) (any, error) {
	var db dbm.DB
	if m.kind == KindDB {
		if m.db != nil {
			db = dbm.NewPrefixDB(m.db, []byte("s/_/"))
		} else {
			parent, err := s.dbStoresDB()
			if err != nil {
				return nil, err
			}
			db = dbm.NewPrefixDB(parent, []byte("s/k:"+m.key.Name()+"/"))
		}
	}
	return s.line.NewSDKStore(m.key, m.kind, db)
}
