package bench

import (
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"slices"
	"sync"

	"cosmossdk.io/store/cachekv"
	"cosmossdk.io/store/rootmulti"
	snapshottypes "cosmossdk.io/store/snapshots/types"
	storetypes "cosmossdk.io/store/types"
	"github.com/cometbft/cometbft/crypto/merkle"
	cmtprotocrypto "github.com/cometbft/cometbft/proto/tendermint/crypto"
	protoio "github.com/cosmos/gogoproto/io"
	ics23 "github.com/cosmos/ics23/go"
	"github.com/crypto-org-chain/cronos/memiavl"
)

// memiavlOptions are Cronos's app.toml [memiavl] defaults for a node that
// enables it (cronos store/config DefaultMemIAVLConfig, memiavl v0.1.0's
// era): a snapshot of every tree rewritten every 1,000 blocks, one older
// snapshot kept besides the latest, the WAL written by a goroutine behind
// an unbuffered queue (async-commit-buffer 0; -1 would be synchronous),
// reads copied out of the mmap-ed snapshot (zero-copy off) and a
// 1,000-entry cache per tree. memiavl opens its WAL with NoSync: no commit
// is fsynced, durability is the latest snapshot plus what the OS flushed.
func memiavlOptions(trees []string) memiavl.Options {
	return memiavl.Options{
		Logger:             memiavl.NewNopLogger(),
		CreateIfMissing:    true,
		InitialStores:      trees,
		SnapshotInterval:   memiavl.DefaultSnapshotInterval,
		SnapshotKeepRecent: 1,
		AsyncCommitBuffer:  0,
		ZeroCopy:           false,
		CacheSize:          1000,
	}
}

// memiavlStore drives memiavl's DB the way Cronos's store/rootmulti does
// (that multistore is a module of its own, not part of memiavl v0.1.0):
// a block's writes go to the SDK's cachekv branches over each tree, and
// are handed to the DB as one change set per tree when FinalizeBlock asks
// for the working hash; Commit saves the version and queues its WAL entry.
// The app hash is the SDK commit info's over the trees' IAVL root hashes.
type memiavlStore struct {
	dir   string
	opts  memiavl.Options
	db    *memiavl.DB
	trees []string
	// block is the open block's branch of each tree (nil between blocks);
	// parents are what the branches write back into.
	block   map[string]storetypes.CacheKVStore
	parents map[string]*memiavlKV
	proofs  *merkle.ProofRuntime
	// abci plays CometBFT's local client mutex, as cmsStore.abci does for
	// rootmulti: Query waits for the block's write-back and Commit, which
	// change the latest tree in place (memiavl mutates the nodes of the
	// working version rather than copying them), and they wait for it.
	// Unlike rootmulti's, it is held from the write-back to Commit: in
	// between, memiavl's latest tree holds the block's uncommitted state
	// under the last commit's height, and Cronos's Query would answer from
	// it with proofs that no app hash verifies.
	abci sync.Mutex
	// working is set while abci is held from WorkingHash to Commit; only
	// the block's goroutine reads and writes it.
	working bool
	// latest guards the latest trees' caches, which reads fill and which
	// are not safe for concurrent use: the block's reads and Query's reads
	// at the latest height take turns. A query at a past height reads a DB
	// of its own and leaves the block's reads alone, as with rootmulti.
	latest sync.Mutex
	// appHashes are the app hashes the store committed, by height: what a
	// client holds from the block headers and checks proofs against.
	appHashes map[int64][]byte // REQUIRES: abci
}

func openMemIAVL(dir string, trees []string) (Store, error) {
	trees = slices.Sorted(slices.Values(trees))
	opts := memiavlOptions(trees)
	db, err := memiavl.Load(dir, opts)
	if err != nil {
		return nil, err
	}
	s := &memiavlStore{dir: dir, opts: opts, db: db, trees: trees, parents: map[string]*memiavlKV{},
		proofs: rootmulti.DefaultProofRuntime(), appHashes: map[int64][]byte{}}
	for _, name := range trees {
		s.parents[name] = &memiavlKV{store: s, name: name}
	}
	if v := db.Version(); v > 0 {
		s.appHashes[v] = sdkCommitInfo(db.LastCommitInfo()).Hash()
	}
	return s, nil
}

// sdkCommitInfo is memiavl's commit info as the SDK's, whose hash is the
// app hash and whose proof ops chain a tree's root to it.
func sdkCommitInfo(ci *memiavl.CommitInfo) storetypes.CommitInfo {
	out := storetypes.CommitInfo{Version: ci.Version, StoreInfos: make([]storetypes.StoreInfo, len(ci.StoreInfos))}
	for i, si := range ci.StoreInfos {
		out.StoreInfos[i] = storetypes.StoreInfo{Name: si.Name,
			CommitId: storetypes.CommitID{Version: si.CommitId.Version, Hash: si.CommitId.Hash}}
	}
	return out
}

func (s *memiavlStore) kv(tree string) storetypes.CacheKVStore {
	if s.block == nil {
		s.block = make(map[string]storetypes.CacheKVStore, len(s.trees))
		for name, parent := range s.parents {
			s.block[name] = cachekv.NewStore(parent)
		}
	}
	b, ok := s.block[tree]
	if !ok {
		panic(fmt.Sprintf("bench: no memiavl tree %q", tree))
	}
	return b
}

func (s *memiavlStore) Get(tree string, key []byte) []byte { return s.kv(tree).Get(key) }
func (s *memiavlStore) Set(tree string, key, value []byte) { s.kv(tree).Set(key, value) }
func (s *memiavlStore) Delete(tree string, key []byte)     { s.kv(tree).Delete(key) }

func (s *memiavlStore) Iterate(tree string, start, end []byte) int {
	return countIterated(s.kv(tree).Iterator(start, end))
}

// writeBack hands the block's writes to the DB: each branch writes its
// sorted changes into its tree's change set, and the change sets go to
// the trees (and to the pending WAL entry) in tree-name order.
// REQUIRES: abci.
func (s *memiavlStore) writeBack() error {
	if s.block == nil {
		return nil
	}
	var sets []*memiavl.NamedChangeSet
	for _, name := range s.trees {
		s.block[name].Write()
		if cs := s.parents[name].pop(); len(cs.Pairs) > 0 {
			sets = append(sets, &memiavl.NamedChangeSet{Name: name, Changeset: cs})
		}
	}
	s.block = nil
	return s.db.ApplyChangeSets(sets)
}

// WorkingHash returns with abci held, for Commit to release.
func (s *memiavlStore) WorkingHash() []byte {
	if !s.working {
		s.abci.Lock()
	}
	held := false
	defer func() {
		if !held { // a panic: the store is done for, but Close must not hang
			s.working = false
			s.abci.Unlock()
		}
	}()
	if err := s.writeBack(); err != nil {
		panic(err)
	}
	info := sdkCommitInfo(s.db.WorkingCommitInfo())
	s.working, held = true, true
	return info.Hash()
}

func (s *memiavlStore) Commit() (int64, []byte) {
	if !s.working {
		s.abci.Lock()
	}
	defer func() {
		s.working = false
		s.abci.Unlock()
	}()
	if err := s.writeBack(); err != nil {
		panic(err)
	}
	v, err := s.db.Commit()
	if err != nil {
		panic(err)
	}
	hash := sdkCommitInfo(s.db.LastCommitInfo()).Hash()
	s.appHashes[v] = hash
	return v, hash
}

// endPreload writes a snapshot of the preloaded state and reopens the
// trees on it, untimed. Without it the preload would stay in the WAL until
// height 1,000, and every query at a past height would replay it from the
// empty snapshot at genesis; a node that has run past its first snapshot
// interval, or was state-synced, holds its bulk state in a snapshot and
// replays at most an interval of blocks.
func (s *memiavlStore) endPreload() error {
	s.abci.Lock()
	defer s.abci.Unlock()
	if err := s.db.RewriteSnapshot(); err != nil {
		return err
	}
	return s.db.Reload()
}

// Query answers as Cronos's rootmulti does: the latest height from the
// live DB, any other by loading a read-only DB at that height (the
// snapshot at or below it, then its WAL replayed up to it) and closing
// it after; proofs are IAVL existence proofs chained to the commit info.
func (s *memiavlStore) Query(tree string, key []byte, height int64, prove bool) ([]byte, int64, func() error, error) {
	s.abci.Lock()
	defer s.abci.Unlock()
	db := s.db
	if height == 0 {
		height = db.Version()
	}
	if height != db.Version() {
		if height > math.MaxUint32 || height < 0 {
			return nil, 0, nil, fmt.Errorf("height %d out of memiavl's range", height)
		}
		past, err := memiavl.Load(s.dir, memiavl.Options{TargetVersion: uint32(height), ReadOnly: true})
		if err != nil {
			return nil, 0, nil, err
		}
		defer func() { _ = past.Close() }()
		if past.Version() != height {
			return nil, 0, nil, fmt.Errorf("memiavl loaded version %d for height %d", past.Version(), height)
		}
		db = past
	}
	if db == s.db {
		s.latest.Lock()
		defer s.latest.Unlock()
	}
	t := db.TreeByName(tree)
	if t == nil {
		return nil, 0, nil, fmt.Errorf("no memiavl tree %q", tree)
	}
	value := t.Get(key)
	if !prove {
		return value, height, func() error { return nil }, nil
	}
	var proof *ics23.CommitmentProof
	var err error
	if value != nil {
		proof, err = t.GetMembershipProof(key)
	} else {
		proof, err = t.GetNonMembershipProof(key)
	}
	if err != nil {
		return nil, 0, nil, err
	}
	ops := &cmtprotocrypto.ProofOps{Ops: []cmtprotocrypto.ProofOp{
		storetypes.NewIavlCommitmentOp(key, proof).ProofOp(),
		sdkCommitInfo(db.LastCommitInfo()).ProofOp(tree),
	}}
	appHash := s.appHashes[height]
	verify := func() error {
		if appHash == nil {
			return fmt.Errorf("no app hash committed at height %d", height)
		}
		path := merkle.KeyPath{}.AppendKey([]byte(tree), merkle.KeyEncodingURL).AppendKey(key, merkle.KeyEncodingHex).String()
		return s.proofs.VerifyValue(ops, appHash, path, value)
	}
	return value, height, verify, nil
}

func (s *memiavlStore) Snapshotter() snapshottypes.Snapshotter { return s }

// LastCommitID is the latest height and app hash.
func (s *memiavlStore) LastCommitID() storetypes.CommitID {
	s.abci.Lock()
	defer s.abci.Unlock()
	return sdkCommitInfo(s.db.LastCommitInfo()).CommitID()
}

// Snapshot writes height's trees as the SDK's state-sync items (a store
// item, then the tree's nodes in post order, IAVL's export format). The
// height need not be one of memiavl's snapshots: it is loaded read-only,
// as Cronos does with supportExportNonSnapshotVersion.
func (s *memiavlStore) Snapshot(height uint64, w protoio.Writer) (err error) {
	if height > math.MaxUint32 {
		return fmt.Errorf("height %d out of memiavl's range", height)
	}
	s.abci.Lock()
	// The read-only load replays the WAL; the last commits' entries may
	// still be in the async writer's queue.
	err = s.db.WaitAsyncCommit()
	s.abci.Unlock()
	if err != nil {
		return err
	}
	exporter, err := memiavl.NewMultiTreeExporter(s.dir, uint32(height), true)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, exporter.Close()) }()
	for {
		item, err := exporter.Next()
		if errors.Is(err, memiavl.ErrorExportDone) {
			return nil
		}
		if err != nil {
			return err
		}
		var msg snapshottypes.SnapshotItem
		switch item := item.(type) {
		case string:
			msg.Item = &snapshottypes.SnapshotItem_Store{Store: &snapshottypes.SnapshotStoreItem{Name: item}}
		case *memiavl.ExportNode:
			msg.Item = &snapshottypes.SnapshotItem_IAVL{IAVL: &snapshottypes.SnapshotIAVLItem{
				Key: item.Key, Value: item.Value, Version: item.Version, Height: int32(item.Height)}}
		default:
			return fmt.Errorf("memiavl export: item of type %T", item)
		}
		if err := w.WriteMsg(&msg); err != nil {
			return err
		}
	}
}

// Restore replaces the store with a snapshot's trees: the DB is closed,
// the items imported as memiavl's snapshot at height, and the DB reopened
// on it.
func (s *memiavlStore) Restore(height uint64, format uint32, r protoio.Reader) (snapshottypes.SnapshotItem, error) {
	if format != snapshottypes.CurrentFormat {
		return snapshottypes.SnapshotItem{}, fmt.Errorf("snapshot format %d, want %d", format, snapshottypes.CurrentFormat)
	}
	s.abci.Lock()
	defer s.abci.Unlock()
	if err := s.closeDB(); err != nil {
		return snapshottypes.SnapshotItem{}, err
	}
	item, err := s.importSnapshot(height, r)
	db, openErr := memiavl.Load(s.dir, s.opts)
	if openErr != nil {
		return item, errors.Join(err, openErr)
	}
	s.db, s.block = db, nil
	if v := db.Version(); v > 0 {
		s.appHashes[v] = sdkCommitInfo(db.LastCommitInfo()).Hash()
	}
	return item, err
}

func (s *memiavlStore) importSnapshot(height uint64, r protoio.Reader) (item snapshottypes.SnapshotItem, err error) {
	importer, err := memiavl.NewMultiTreeImporter(s.dir, height)
	if err != nil {
		return item, err
	}
	defer func() { err = errors.Join(err, importer.Close()) }()
	for {
		item = snapshottypes.SnapshotItem{}
		err := r.ReadMsg(&item)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return item, fmt.Errorf("snapshot item: %w", err)
		}
		if st := item.GetStore(); st != nil {
			if err := importer.AddTree(st.Name); err != nil {
				return item, err
			}
			continue
		}
		n := item.GetIAVL()
		if n == nil {
			break // an extension's items: none here
		}
		if n.Height > math.MaxInt8 || n.Height < 0 {
			return item, fmt.Errorf("snapshot node of height %d", n.Height)
		}
		node := &memiavl.ExportNode{Key: n.Key, Value: n.Value, Version: n.Version, Height: int8(n.Height)}
		// Protobuf decodes an empty key or value as nil; a leaf has both.
		if node.Key == nil {
			node.Key = []byte{}
		}
		if node.Height == 0 && node.Value == nil {
			node.Value = []byte{}
		}
		importer.AddNode(node)
	}
	return item, importer.Finalize()
}

// PruneSnapshotHeight and SetSnapshotInterval do nothing: memiavl keeps
// its own snapshots (snapshot-keep-recent), as in Cronos.
func (s *memiavlStore) PruneSnapshotHeight(int64)  {}
func (s *memiavlStore) SetSnapshotInterval(uint64) {}

func (s *memiavlStore) Close() error {
	s.abci.Lock()
	defer s.abci.Unlock()
	return s.closeDB()
}

// closeDB closes the DB once its background snapshot pruning is done:
// DB.Close does not wait for that goroutine, which then truncates the WAL
// that Close has set to nil and panics the process. The goroutine holds
// the unexported pruneSnapshotLock while it runs, reached by reflection.
// REQUIRES: abci.
func (s *memiavlStore) closeDB() error {
	if s.db == nil {
		return nil
	}
	lock, ok := unexportedField(reflect.ValueOf(s.db).Elem(), "pruneSnapshotLock").Addr().Interface().(*sync.Mutex)
	if !ok {
		return errors.New("bench: memiavl's DB has no pruneSnapshotLock in this version")
	}
	lock.Lock()
	err := s.db.Close()
	lock.Unlock()
	s.db = nil
	return err
}

// memiavlKV is one tree as the KVStore under a block's cachekv branch:
// reads go to the tree, writes to the change set the next write-back
// hands to the DB (Cronos's memiavlstore does the same).
type memiavlKV struct {
	store   *memiavlStore
	name    string
	changes memiavl.ChangeSet
}

var _ storetypes.KVStore = (*memiavlKV)(nil)

func (kv *memiavlKV) tree() *memiavl.Tree { return kv.store.db.TreeByName(kv.name) }

func (kv *memiavlKV) pop() memiavl.ChangeSet {
	cs := kv.changes
	kv.changes = memiavl.ChangeSet{}
	return cs
}

func (kv *memiavlKV) Get(key []byte) []byte {
	kv.store.latest.Lock()
	defer kv.store.latest.Unlock()
	return kv.tree().Get(key)
}

func (kv *memiavlKV) Has(key []byte) bool { return kv.Get(key) != nil }

func (kv *memiavlKV) Set(key, value []byte) {
	kv.changes.Pairs = append(kv.changes.Pairs, &memiavl.KVPair{Key: key, Value: value})
}

func (kv *memiavlKV) Delete(key []byte) {
	kv.changes.Pairs = append(kv.changes.Pairs, &memiavl.KVPair{Key: key, Delete: true})
}

// Iterators read the tree without its cache, and the tree changes only in
// the write-back, on the block's goroutine: they need no lock.
func (kv *memiavlKV) Iterator(start, end []byte) storetypes.Iterator {
	return kv.tree().Iterator(start, end, true)
}

func (kv *memiavlKV) ReverseIterator(start, end []byte) storetypes.Iterator {
	return kv.tree().Iterator(start, end, false)
}

func (kv *memiavlKV) GetStoreType() storetypes.StoreType { return storetypes.StoreTypeIAVL }

func (kv *memiavlKV) CacheWrap() storetypes.CacheWrap { return cachekv.NewStore(kv) }

func (kv *memiavlKV) CacheWrapWithTrace(io.Writer, storetypes.TraceContext) storetypes.CacheWrap {
	return cachekv.NewStore(kv)
}
