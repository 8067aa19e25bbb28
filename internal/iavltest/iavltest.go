// Package iavltest builds SDK application databases on IAVL (rootmulti's
// layout, as a node on IAVL leaves its application.db), for the tests and
// benchmarks of the migration from IAVL.
package iavltest

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"cosmossdk.io/log"
	"cosmossdk.io/store/metrics"
	"cosmossdk.io/store/rootmulti"
	snapshottypes "cosmossdk.io/store/snapshots/types"
	"cosmossdk.io/store/types"
	dbm "github.com/cosmos/cosmos-db"
	protoio "github.com/cosmos/gogoproto/io"
)

// NewRootMulti mounts the named IAVL stores on db with rootmulti and loads
// the latest height.
func NewRootMulti(tb testing.TB, db dbm.DB, names ...string) (*rootmulti.Store, map[string]*types.KVStoreKey) {
	tb.Helper()
	rs := rootmulti.NewStore(db, log.NewNopLogger(), metrics.NewNoOpMetrics())
	keys := map[string]*types.KVStoreKey{}
	for _, name := range names {
		keys[name] = types.NewKVStoreKey(name)
		rs.MountStoreWithDB(keys[name], types.StoreTypeIAVL, nil)
	}
	if err := rs.LoadLatestVersion(); err != nil {
		tb.Fatal(err)
	}
	return rs, keys
}

// Preload commits keys random pairs into two IAVL stores of db, 70% in
// "bank" and 30% in "acc", 32-byte keys and 40-byte values, in commits of
// 100k keys (as the benchmark harness preloads IAVL), and returns the app
// hash of the last commit.
func Preload(tb testing.TB, db dbm.DB, keys int, seed uint64) []byte {
	tb.Helper()
	rs, stores := NewRootMulti(tb, db, "bank", "acc")
	rng := rand.New(rand.NewPCG(seed, seed))
	var id types.CommitID
	for done := 0; done < keys; {
		for i := 0; i < 100_000 && done < keys; i, done = i+1, done+1 {
			// IAVL keeps the slices it is given.
			key, value := make([]byte, 0, 32), make([]byte, 0, 40)
			for range 4 {
				key = binary.BigEndian.AppendUint64(key, rng.Uint64())
			}
			for range 5 {
				value = binary.BigEndian.AppendUint64(value, rng.Uint64())
			}
			store := stores["bank"]
			if rng.IntN(10) < 3 {
				store = stores["acc"]
			}
			rs.GetCommitKVStore(store).Set(key, value)
		}
		id = rs.Commit()
	}
	return id.Hash
}

// Digest hashes every record of db, to show that something only read it.
func Digest(tb testing.TB, db dbm.DB) [32]byte {
	tb.Helper()
	it, err := db.Iterator(nil, nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = it.Close() }()
	h := sha256.New()
	for ; it.Valid(); it.Next() {
		_, _ = fmt.Fprintf(h, "%x=%x;", it.Key(), it.Value())
	}
	if err := it.Error(); err != nil {
		tb.Fatal(err)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

// Import builds an IAVL state of keys pairs at height in db faster than
// Preload can, through rootmulti's snapshot restore (IAVL's importer): it
// generates the balanced trees' export streams (70% of the keys in
// "bank", 30% in "acc"; 32-byte keys in increasing order, 40-byte values)
// and returns the app hash. IAVL writes its fast index as it loads the
// imported version, as after any restore.
func Import(tb testing.TB, db dbm.DB, keys int, height int64, seed uint64) []byte {
	tb.Helper()
	rs, _ := NewRootMulti(tb, db, "bank", "acc")
	reader, writer := io.Pipe()
	go func() {
		w := protoio.NewDelimitedWriter(writer)
		bank := keys * 7 / 10
		err := writeTree(w, "acc", keys-bank, height, seed)
		if err == nil {
			err = writeTree(w, "bank", bank, height, seed+1)
		}
		_ = writer.CloseWithError(err)
	}()
	if _, err := rs.Restore(uint64(height), snapshottypes.CurrentFormat, protoio.NewDelimitedReader(reader, 1<<20)); err != nil {
		tb.Fatal(err)
	}
	return rs.LastCommitID().Hash
}

// writeTree writes one store of n leaves as IAVL exports it: the nodes of
// a balanced tree in post-order, each inner node keyed by the first key of
// its right subtree.
func writeTree(w protoio.Writer, name string, n int, height int64, seed uint64) error {
	if err := w.WriteMsg(&snapshottypes.SnapshotItem{Item: &snapshottypes.SnapshotItem_Store{Store: &snapshottypes.SnapshotStoreItem{Name: name}}}); err != nil {
		return err
	}
	leaf := func(i int) ([]byte, []byte) {
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		key := binary.BigEndian.AppendUint64(make([]byte, 0, 32), uint64(i))
		for range 3 {
			key = binary.BigEndian.AppendUint64(key, rng.Uint64())
		}
		value := make([]byte, 0, 40)
		for range 5 {
			value = binary.BigEndian.AppendUint64(value, rng.Uint64())
		}
		return key, value
	}
	var emit func(lo, hi int) (int32, error)
	emit = func(lo, hi int) (int32, error) {
		if hi-lo == 1 {
			key, value := leaf(lo)
			return 0, w.WriteMsg(&snapshottypes.SnapshotItem{Item: &snapshottypes.SnapshotItem_IAVL{IAVL: &snapshottypes.SnapshotIAVLItem{Key: key, Value: value, Version: height}}})
		}
		mid := (lo + hi) / 2
		left, err := emit(lo, mid)
		if err != nil {
			return 0, err
		}
		right, err := emit(mid, hi)
		if err != nil {
			return 0, err
		}
		h := max(left, right) + 1
		key, _ := leaf(mid)
		return h, w.WriteMsg(&snapshottypes.SnapshotItem{Item: &snapshottypes.SnapshotItem_IAVL{IAVL: &snapshottypes.SnapshotIAVLItem{Key: key, Version: height, Height: h}}})
	}
	if n == 0 {
		return nil
	}
	_, err := emit(0, n)
	return err
}
