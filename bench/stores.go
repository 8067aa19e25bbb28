package bench

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"cosmossdk.io/log"
	iavlstore "cosmossdk.io/store/iavl"
	"cosmossdk.io/store/metrics"
	pruningtypes "cosmossdk.io/store/pruning/types"
	"cosmossdk.io/store/rootmulti"
	snapshottypes "cosmossdk.io/store/snapshots/types"
	storetypes "cosmossdk.io/store/types"
	"github.com/cometbft/cometbft/crypto/merkle"
	dbm "github.com/cosmos/cosmos-db"
	"github.com/cosmos/iavl"
	ics23 "github.com/cosmos/ics23/go"

	"github.com/nomtstore/nomtstore/commitment"
	"github.com/nomtstore/nomtstore/commitment/trie"
	"github.com/nomtstore/nomtstore/multistore"
	"github.com/nomtstore/nomtstore/pruning"
)

// Store is what the workloads drive: a block's reads and writes (seeing
// the block's own writes, as SDK transactions do), the working hash that
// ends FinalizeBlock, Commit, and the queries an RPC node answers while
// blocks commit. Failures inside a store panic, as the SDK's stores do;
// the runner turns a panic into that store's error.
type Store interface {
	Get(tree string, key []byte) []byte
	Set(tree string, key, value []byte)
	Delete(tree string, key []byte)
	// Iterate walks [start, end) in order and returns how many keys it saw.
	Iterate(tree string, start, end []byte) int
	WorkingHash() []byte
	Commit() (version int64, hash []byte)
	// Query reads key at height (0: the latest), with a proof if prove,
	// and returns the value, the height read and a check of the proof
	// against that height's commitment (run outside the timed part, as a
	// client would).
	Query(tree string, key []byte, height int64, prove bool) (value []byte, at int64, verify func() error, err error)
	// Snapshotter is the state-sync side, or nil if the store has none.
	Snapshotter() snapshottypes.Snapshotter
	Close() error
}

// Store kinds, as the report names them.
const (
	KindNomt        = "nomt"         // the CommitMultiStore an app installs
	KindNomtEngine  = "nomt-engine"  // the engine's own API, no SDK layer
	KindIAVLLevelDB = "iavl-leveldb" // rootmulti + IAVL v1 on goleveldb: the SDK default
	KindIAVLPebble  = "iavl-pebble"  // rootmulti + IAVL v1 on pebble
	KindMemIAVL     = "memiavl"      // Cronos's memiavl DB with Cronos's defaults
)

// Kinds lists every store kind, the reference (iavl-leveldb) first.
var Kinds = []string{KindIAVLLevelDB, KindIAVLPebble, KindMemIAVL, KindNomt, KindNomtEngine}

// referenceKind is what ratios are taken against.
const referenceKind = KindIAVLLevelDB

// iavlCacheSize is app.toml's default iavl-cache-size (the store
// package's own default is smaller).
const iavlCacheSize = 781250

// openStore opens a store of kind in dir (created if new) with trees
// mounted and the given pruning, reporting nomtstore's commits to obs.
// openStore opens a store of a kind; engine tunes the nomtstore kinds
// (its Observer is replaced by obs).
func openStore(kind, dir string, trees []string, prune pruningtypes.PruningOptions, obs *observer, engine commitment.Options) (Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	switch kind {
	case KindNomt:
		return openNomt(dir, trees, prune, obs, engine)
	case KindNomtEngine:
		return openEngine(dir, trees, prune, obs, engine)
	case KindIAVLLevelDB:
		db, err := dbm.NewGoLevelDB("application", dir, nil)
		if err != nil {
			return nil, err
		}
		return openIAVL(db, trees, prune)
	case KindIAVLPebble:
		db, err := dbm.NewPebbleDB("application", dir, nil)
		if err != nil {
			return nil, err
		}
		return openIAVL(db, trees, prune)
	case KindMemIAVL:
		// memiavl has no pruning options: it keeps the versions of its
		// retained snapshots and their WAL (snapshot-keep-recent).
		return openMemIAVL(dir, trees)
	}
	return nil, fmt.Errorf("unknown store kind %q (kinds: %v)", kind, Kinds)
}

// cmsStore drives an SDK CommitMultiStore as baseapp does: a block's
// writes go to one cache branch, written back when FinalizeBlock computes
// the working hash, then Commit.
type cmsStore struct {
	cms    storetypes.CommitMultiStore
	keys   map[string]*storetypes.KVStoreKey
	block  storetypes.CacheMultiStore // nil between blocks
	close  func() error
	proofs *merkle.ProofRuntime
	// iavl is set for rootmulti, whose IAVL pruning Close waits for.
	iavl bool
	// abci serializes Query with a block's write-back and Commit for
	// rootmulti: its Query reads the commit info, IAVL's version map and
	// tree nodes that those write unguarded (the race detector reports
	// each), so a node relies on CometBFT's local ABCI client, which holds
	// one mutex across FinalizeBlock, Commit and Query. W4's IAVL queries
	// wait for them as they would on such a node; nomtstore's reads are
	// safe alongside a commit and are not serialized.
	abci sync.Mutex
}

func newCMSStore(cms storetypes.CommitMultiStore, trees []string, prune pruningtypes.PruningOptions, closeFn func() error) (*cmsStore, error) {
	s := &cmsStore{cms: cms, keys: map[string]*storetypes.KVStoreKey{}, close: closeFn, proofs: rootmulti.DefaultProofRuntime()}
	s.proofs.RegisterOpDecoder(storetypes.ProofOpSMTCommitment, storetypes.CommitmentOpDecoder)
	for _, name := range trees {
		key := storetypes.NewKVStoreKey(name)
		s.keys[name] = key
		cms.MountStoreWithDB(key, storetypes.StoreTypeIAVL, nil)
	}
	cms.SetPruning(prune)
	if err := cms.LoadLatestVersion(); err != nil {
		return nil, errors.Join(err, closeFn())
	}
	return s, nil
}

func openIAVL(db dbm.DB, trees []string, prune pruningtypes.PruningOptions) (Store, error) {
	rs := rootmulti.NewStore(db, log.NewNopLogger(), metrics.NewNoOpMetrics())
	rs.SetIAVLCacheSize(iavlCacheSize)
	rs.SetIAVLDisableFastNode(false)
	s, err := newCMSStore(rs, trees, prune, db.Close)
	if err != nil {
		return nil, err
	}
	s.iavl = true
	return s, nil
}

// stopIAVLPruning waits until the IAVL tree under one of rootmulti's stores
// has no pruning left to do, then stops the tree's async pruning goroutine.
// Neither rootmulti nor the SDK's iavl.Store has a Close: a node closes the
// database and exits. In one process, IAVL's pruning goroutine outlives the
// store: still deleting versions, it read the closed database and panicked
// (after W3 under pruning everything); idle, it kept the node database and
// its caches alive (the stores of W2 alone held ~10 GB, which squeezed the
// OS page cache of the stores measured after them). iavl.MutableTree.Close
// cannot stop it, as it waits for the goroutine while holding the lock the
// goroutine takes (IAVL v1.2.2). So the harness waits until the pending
// prune height, read under that lock, is 0, then cancels the goroutine's
// context and waits for its exit signal, without the lock. The fields are
// unexported, reached by reflection.
func stopIAVLPruning(store storetypes.CommitKVStore, limit time.Duration) error {
	st, ok := store.(*iavlstore.Store)
	if !ok {
		return fmt.Errorf("bench: rootmulti store of type %T, not an IAVL store", store)
	}
	tree, ok := unexportedField(reflect.ValueOf(st).Elem(), "tree").Interface().(*iavl.MutableTree)
	if !ok {
		return errors.New("bench: the IAVL store's tree is not a mutable tree")
	}
	ndb := unexportedField(reflect.ValueOf(tree).Elem(), "ndb").Elem()
	mtx, okMtx := unexportedField(ndb, "mtx").Addr().Interface().(*sync.Mutex)
	pending := unexportedField(ndb, "pruneVersion")
	cancel, okCancel := unexportedField(ndb, "cancel").Interface().(context.CancelFunc)
	done, okDone := unexportedField(ndb, "done").Interface().(chan struct{})
	async := unexportedField(unexportedField(ndb, "opts"), "AsyncPruning")
	if !okMtx || !okCancel || !okDone || pending.Kind() != reflect.Int64 || async.Kind() != reflect.Bool {
		return errors.New("bench: IAVL's node database has no mtx, pruneVersion, cancel, done and opts.AsyncPruning in this version")
	}
	if !async.Bool() {
		return nil // no goroutine
	}
	deadline := time.Now().Add(limit)
	for ; ; time.Sleep(50 * time.Millisecond) {
		mtx.Lock()
		to := pending.Int()
		mtx.Unlock()
		if to == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: IAVL still pruning to %d after %v", to, limit)
		}
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-time.After(time.Until(deadline) + time.Second):
		return errors.New("bench: IAVL's pruning goroutine did not stop")
	}
}

// unexportedField is v's field name, made readable; invalid if absent.
func unexportedField(v reflect.Value, name string) reflect.Value {
	f := v.FieldByName(name)
	if !f.IsValid() {
		return f
	}
	return reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem()
}

func openNomt(dir string, trees []string, prune pruningtypes.PruningOptions, obs *observer, engine commitment.Options) (Store, error) {
	engine.Observer = nil // the multistore sets it from Observer
	ms, err := multistore.New(filepath.Join(dir, "nomtstore"), log.NewNopLogger(), multistore.Options{Engine: engine, Observer: obs})
	if err != nil {
		return nil, err
	}
	return newCMSStore(ms, trees, prune, ms.Close)
}

func (s *cmsStore) kv(tree string) storetypes.KVStore {
	if s.block == nil {
		s.block = s.cms.CacheMultiStore()
	}
	key, ok := s.keys[tree]
	if !ok {
		panic(fmt.Sprintf("bench: no store %q mounted", tree))
	}
	return s.block.GetKVStore(key)
}

func (s *cmsStore) Get(tree string, key []byte) []byte { return s.kv(tree).Get(key) }
func (s *cmsStore) Set(tree string, key, value []byte) { s.kv(tree).Set(key, value) }
func (s *cmsStore) Delete(tree string, key []byte)     { s.kv(tree).Delete(key) }

func (s *cmsStore) Iterate(tree string, start, end []byte) int {
	return countIterated(s.kv(tree).Iterator(start, end))
}

// countIterated walks an SDK iterator to its end, reading each value, and
// closes it. Not it.Error(): the SDK's cache iterator reports an error
// whenever it is past its end, and a failed read below it panics anyway.
func countIterated(it storetypes.Iterator) int {
	defer func() { _ = it.Close() }()
	n := 0
	for ; it.Valid(); it.Next() {
		_ = it.Value()
		n++
	}
	return n
}

func (s *cmsStore) WorkingHash() []byte {
	if s.iavl {
		s.abci.Lock()
		defer s.abci.Unlock()
	}
	return s.workingHash()
}

func (s *cmsStore) workingHash() []byte {
	if s.block != nil {
		s.block.Write()
		s.block = nil
	}
	return s.cms.WorkingHash()
}

func (s *cmsStore) Commit() (int64, []byte) {
	if s.iavl {
		s.abci.Lock()
		defer s.abci.Unlock()
	}
	if s.block != nil {
		s.workingHash()
	}
	id := s.cms.Commit()
	return id.Version, id.Hash
}

// commitInfos is what both CommitMultiStores answer for a height's
// commit info, whose hash is the app hash proofs verify against.
type commitInfos interface {
	GetCommitInfo(ver int64) (*storetypes.CommitInfo, error)
}

func (s *cmsStore) Query(tree string, key []byte, height int64, prove bool) ([]byte, int64, func() error, error) {
	if s.iavl {
		s.abci.Lock()
		defer s.abci.Unlock()
	}
	res, err := s.cms.(storetypes.Queryable).Query(&storetypes.RequestQuery{
		Path: "/" + tree + "/key", Data: key, Height: height, Prove: prove,
	})
	if err != nil {
		return nil, 0, nil, err
	}
	verify := func() error {
		if !prove {
			return nil
		}
		info, err := s.cms.(commitInfos).GetCommitInfo(res.Height)
		if err != nil {
			return err
		}
		path := merkle.KeyPath{}.AppendKey([]byte(tree), merkle.KeyEncodingURL).AppendKey(key, merkle.KeyEncodingHex).String()
		return s.proofs.VerifyValue(res.ProofOps, info.Hash(), path, res.Value)
	}
	return res.Value, res.Height, verify, nil
}

// LastCommitID is the latest height and app hash (W5 checks a restore).
func (s *cmsStore) LastCommitID() storetypes.CommitID { return s.cms.LastCommitID() }

func (s *cmsStore) Snapshotter() snapshottypes.Snapshotter {
	sn, _ := s.cms.(snapshottypes.Snapshotter)
	return sn
}

func (s *cmsStore) Close() error {
	var errs []error
	if s.iavl {
		for _, key := range s.keys {
			errs = append(errs, stopIAVLPruning(s.cms.GetCommitKVStore(key), 30*time.Minute))
		}
	}
	return errors.Join(append(errs, s.close())...)
}

// engineStore drives the engine directly: what the SDK layer above it
// (cache branches, commit info, the multistore's bookkeeping) costs shows
// as the gap to cmsStore over the same engine. Reads see the block's
// writes through a map of them, as the SDK's branch gives; iteration
// sees the committed state only.
type engineStore struct {
	db      *commitment.DB
	pruner  *pruning.Manager
	worker  *pruning.Worker
	pending map[string]map[string][]byte // the block's writes; nil value: deleted
}

func openEngine(dir string, trees []string, prune pruningtypes.PruningOptions, obs *observer, engine commitment.Options) (Store, error) {
	engine.Observer = obs
	db, err := commitment.Open(filepath.Join(dir, "nomtstore"), trees, engine)
	if err != nil {
		return nil, err
	}
	logger := slog.New(slog.DiscardHandler)
	s := &engineStore{db: db, pruner: pruning.NewManager(db, logger), worker: pruning.NewWorker(db, pruning.WorkerOptions{Logger: logger}),
		pending: map[string]map[string][]byte{}}
	s.pruner.SetOptions(multistore.PruningFromSDK(prune))
	return s, nil
}

func (s *engineStore) Get(tree string, key []byte) []byte {
	if v, ok := s.pending[tree][string(key)]; ok {
		return v
	}
	v, err := s.db.Get(tree, key)
	if err != nil {
		panic(err)
	}
	return v
}

func (s *engineStore) stage(tree string, key, value []byte) {
	m := s.pending[tree]
	if m == nil {
		m = map[string][]byte{}
		s.pending[tree] = m
	}
	m[string(key)] = value
}

func (s *engineStore) Set(tree string, key, value []byte) {
	if err := s.db.Set(tree, key, value); err != nil {
		panic(err)
	}
	s.stage(tree, key, slices.Clone(value))
}

func (s *engineStore) Delete(tree string, key []byte) {
	if err := s.db.Delete(tree, key); err != nil {
		panic(err)
	}
	s.stage(tree, key, nil)
}

func (s *engineStore) Iterate(tree string, start, end []byte) int {
	it, err := s.db.NewIterator(tree, start, end, false)
	if err != nil {
		panic(err)
	}
	n := 0
	for ; it.Valid(); it.Next() {
		_ = it.Value()
		n++
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		panic(err)
	}
	return n
}

// rootsHash stands for an app hash: the engine has none of its own.
func rootsHashOf(roots map[string]trie.Hash) []byte {
	names := make([]string, 0, len(roots))
	for name := range roots {
		names = append(names, name)
	}
	slices.Sort(names)
	h := sha256.New()
	for _, name := range names {
		root := roots[name]
		h.Write([]byte(name))
		h.Write(root[:])
	}
	return h.Sum(nil)
}

func (s *engineStore) WorkingHash() []byte {
	roots, err := s.db.WorkingRoots()
	if err != nil {
		panic(err)
	}
	return rootsHashOf(roots)
}

func (s *engineStore) Commit() (int64, []byte) {
	res, err := s.db.Commit()
	if err != nil {
		panic(err)
	}
	clear(s.pending)
	if to := s.pruner.PruneHeight(int64(res.Version)); to > 0 {
		s.worker.Request(uint64(to))
	}
	return int64(res.Version), rootsHashOf(res.Roots)
}

func (s *engineStore) Query(tree string, key []byte, height int64, prove bool) ([]byte, int64, func() error, error) {
	version := uint64(height)
	if height == 0 {
		version = s.db.Version()
	}
	value, err := s.db.GetAt(tree, key, version)
	if err != nil || !prove {
		return value, int64(version), func() error { return nil }, err
	}
	proof, exists, err := s.db.ProveAt(tree, key, version)
	if err != nil {
		return nil, 0, nil, err
	}
	verify := func() error {
		roots, err := s.db.RootsAt(version)
		if err != nil {
			return err
		}
		root := roots[tree]
		if !exists || !ics23.VerifyMembership(ics23.SmtSpec, root[:], proof, key, value) {
			return fmt.Errorf("store %s: proof of %x at version %d does not verify", tree, key, version)
		}
		return nil
	}
	return value, int64(version), verify, nil
}

func (s *engineStore) Snapshotter() snapshottypes.Snapshotter { return nil }

func (s *engineStore) Close() error {
	s.worker.WaitIdle()
	s.worker.Close()
	return s.db.Close()
}

// observer collects nomtstore's commit figures: the node hashes each
// commit computed (for the hashing bound) and the pruning runs.
type observer struct {
	hashes    atomic.Int64 // since the last take
	pruneRuns atomic.Int64
	mu        sync.Mutex
	pruneErr  error                    // REQUIRES: mu
	phases    map[string]time.Duration // since the last take, REQUIRES: mu
}

func (o *observer) CommitPhase(phase string, d time.Duration) {
	o.mu.Lock()
	if o.phases == nil {
		o.phases = map[string]time.Duration{}
	}
	o.phases[phase] += d
	o.mu.Unlock()
}

// takePhases returns the commit phases' durations since the last call, in
// ms (the background page flush of a block is taken with the next one).
func (o *observer) takePhases() map[string]float64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.phases) == 0 {
		return nil
	}
	out := make(map[string]float64, len(o.phases))
	for phase, d := range o.phases {
		out[phase] = ms(d)
	}
	clear(o.phases)
	return out
}

func (o *observer) Committed(s commitment.CommitStats) { o.hashes.Add(int64(s.NodeHashes)) }

func (o *observer) PruneRun(_ uint64, _ time.Duration, err error) {
	o.pruneRuns.Add(1)
	if err != nil {
		o.mu.Lock()
		o.pruneErr = err
		o.mu.Unlock()
	}
}

func (o *observer) Versions(uint64, uint64, pruning.Stats) {}

// takeHashes returns the node hashes since the last call.
func (o *observer) takeHashes() int64 { return o.hashes.Swap(0) }
