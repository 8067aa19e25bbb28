package multistore

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	errorsmod "cosmossdk.io/errors"
	"github.com/cometbft/cometbft/crypto/merkle"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	dbm "github.com/cosmos/cosmos-db"
	"github.com/cosmos/cosmos-sdk/store/v2/cache"
	pruningtypes "github.com/cosmos/cosmos-sdk/store/v2/pruning/types"
	"github.com/cosmos/cosmos-sdk/store/v2/rootmulti"
	"github.com/cosmos/cosmos-sdk/store/v2/types"
	protoio "github.com/cosmos/gogoproto/io"
	"github.com/cosmos/gogoproto/proto"
	"google.golang.org/protobuf/encoding/protowire"
)

// These tests run the same calls against rootmulti.Store, the reference,
// and against ours, and compare what a chain would see: data, versions,
// store names, errors and panics. App hashes differ (IAVL against our
// sparse Merkle trie), so hashes are only compared within our store.

// commitMultiStoreCoverage names, for every method of
// types.CommitMultiStore (with the embedded Committer, MultiStore,
// Snapshotter and CacheWrapper), a test of this file that calls it on both
// stores and compares them.
var commitMultiStoreCoverage = map[string]string{
	// Committer
	"Commit":       "TestWorkingHashAndCommitInfo",
	"LastCommitID": "TestLastCommitIDBeforeAnyCommit",
	"WorkingHash":  "TestWorkingHashAndCommitInfo",
	"SetPruning":   "TestPruning",
	"GetPruning":   "TestPruning",
	// MultiStore (with Store and CacheWrapper)
	"GetStoreType":               "TestLastCommitIDBeforeAnyCommit",
	"CacheWrap":                  "TestReadsMatch",
	"CacheMultiStore":            "TestReadsMatch",
	"CacheMultiStoreWithVersion": "TestReadsMatch, TestBadHeights",
	"GetStore":                   "TestReadsMatch, TestUnknownKeysAndMounts",
	"GetKVStore":                 "TestReadsMatch, TestUnknownKeysAndMounts",
	"LatestVersion":              "TestLastCommitIDBeforeAnyCommit, TestSetInitialVersion",
	"GetObjKVStore":              "TestObjectStores",
	// Snapshotter
	"Snapshot":            "TestSnapshotRestore",
	"Restore":             "TestSnapshotRestore, TestRestoreIAVLSnapshot",
	"PruneSnapshotHeight": "TestPruningHoldsSnapshotHeights",
	"SetSnapshotInterval": "TestPruningHoldsSnapshotHeights",
	// CommitMultiStore
	"MountStoreWithDB":            "TestUnknownKeysAndMounts, TestDBStores, TestTransientAndMemoryStores",
	"LoadLatestVersion":           "TestReadsMatch",
	"LoadLatestVersionAndUpgrade": "TestStoreUpgrades",
	"LoadVersionAndUpgrade":       "TestStoreUpgrades",
	"LoadVersion":                 "TestLoadVersionOfAPastHeight",
	"SetInterBlockCache":          "TestInterBlockCache",
	"SetInitialVersion":           "TestSetInitialVersion",
	"SetIAVLCacheSize":            "TestIAVLOptions",
	"SetIAVLDisableFastNode":      "TestIAVLOptions",
	"SetIAVLSyncPruning":          "TestIAVLOptions, TestBadHeights",
	"RollbackToVersion":           "TestRollbackToVersion",
	"EarliestVersion":             "TestEarliestVersion",
	"ListeningEnabled":            "TestListeners",
	"AddListeners":                "TestListeners",
	"PopStateCache":               "TestListeners",
}

// TestCommitMultiStoreMethodsCovered keeps the table above in step with
// the interface: 32 methods in store/v2 v2.0.0.
func TestCommitMultiStoreMethodsCovered(t *testing.T) {
	typ := reflect.TypeFor[types.CommitMultiStore]()
	if typ.NumMethod() != 32 {
		t.Errorf("types.CommitMultiStore has %d methods, expected 32: update the coverage table", typ.NumMethod())
	}
	for i := range typ.NumMethod() {
		name := typ.Method(i).Name
		if commitMultiStoreCoverage[name] == "" {
			t.Errorf("method %s is not covered by any comparison test", name)
		}
	}
	if len(commitMultiStoreCoverage) != typ.NumMethod() {
		t.Errorf("coverage table has %d entries for %d methods", len(commitMultiStoreCoverage), typ.NumMethod())
	}
}

func TestLastCommitIDBeforeAnyCommit(t *testing.T) {
	acc := iavlMount("acc")
	tw := newTwin(t, acc)
	empty := sha256.Sum256(nil)
	check := func(when string) {
		t.Helper()
		tw.each(func(side string, s multi) {
			if id := s.LastCommitID(); id.Version != 0 || !bytes.Equal(id.Hash, empty[:]) {
				t.Errorf("%s %s: LastCommitID %v, want version 0 and sha256 of nothing", side, when, id)
			}
			if v := s.LatestVersion(); v != 0 {
				t.Errorf("%s %s: LatestVersion %d", side, when, v)
			}
			if typ := s.GetStoreType(); typ != types.StoreTypeMulti {
				t.Errorf("%s: GetStoreType %v", side, typ)
			}
		})
	}
	check("before loading")
	tw.load()
	check("after loading version 0")
	tw.each(func(side string, s multi) {
		if _, err := s.GetCommitInfo(0); err == nil {
			t.Errorf("%s: GetCommitInfo(0) should fail", side)
		}
		if _, err := s.GetCommitInfo(1); err == nil {
			t.Errorf("%s: GetCommitInfo(1) before any commit should fail", side)
		}
	})
	query := func(when string) {
		t.Helper()
		req := func() *types.RequestQuery { return &types.RequestQuery{Path: "/acc/key", Data: []byte("a")} }
		refRes, refErr := tw.ref.Query(req())
		oursRes, oursErr := tw.ours.Query(req())
		if refErr != nil || oursErr != nil || refRes.Height != oursRes.Height || refRes.Log != oursRes.Log ||
			!bytes.Equal(refRes.Value, oursRes.Value) {
			t.Errorf("query at height 0 %s:\nrootmulti %+v %v\nours      %+v %v", when, refRes, refErr, oursRes, oursErr)
		}
	}
	query("before any commit") // nothing to read: "version does not exist"
	// A first commit: both at version 1, and queries at height 0 read it
	// (there is no latest but one).
	tw.set(acc.key, "a", "1")
	tw.commit()
	tw.each(func(side string, s multi) {
		if v := s.LatestVersion(); v != 1 {
			t.Errorf("%s: LatestVersion after a commit %d", side, v)
		}
	})
	query("after the first commit")
}

// readsFixture commits three blocks on two IAVL stores (keys with 0x00 and
// 0xFF bytes, an empty value, deletions), then leaves writes uncommitted.
func readsFixture(t *testing.T, extra ...*mount) (tw *twin, acc, bank *mount, keys [][]byte) {
	acc, bank = iavlMount("acc"), iavlMount("bank")
	tw = loadedTwin(t, append([]*mount{acc, bank}, extra...)...)
	tw.set(acc.key, "a", "1", "b", "2", "b\x00", "3", "\x00", "zero", "\xff", "ff", "\xff\xff", "ffff", "c", "")
	tw.set(bank.key, "x", "1")
	tw.commit()
	tw.del(acc.key, "a", "\xff")
	tw.set(acc.key, "b", "22", "d", "4")
	tw.set(bank.key, "y", "2")
	tw.commit()
	tw.set(acc.key, "a", "111")
	tw.commit()
	// Uncommitted: a set, a deletion, an overwrite with an empty value.
	tw.set(acc.key, "e", "5", "d", "")
	tw.del(acc.key, "b")
	keys = keysOf("a", "b", "b\x00", "c", "d", "e", "x", "y", "\x00", "\xff", "\xff\xff", "nope", "\x00\x00")
	return tw, acc, bank, keys
}

func TestReadsMatch(t *testing.T) {
	tw, acc, bank, keys := readsFixture(t)
	views := []struct {
		name string
		kv   func(s multi, key types.StoreKey) types.KVStore
	}{
		{"GetKVStore", func(s multi, key types.StoreKey) types.KVStore { return s.GetKVStore(key) }},
		{"GetStore", func(s multi, key types.StoreKey) types.KVStore { return s.GetStore(key).(types.KVStore) }},
		{"GetStore as CommitKVStore", func(s multi, key types.StoreKey) types.KVStore {
			return s.GetStore(key).(types.CommitKVStore)
		}},
		{"CacheMultiStore", func(s multi, key types.StoreKey) types.KVStore {
			return s.CacheMultiStore().GetKVStore(key)
		}},
		{"CacheWrap", func(s multi, key types.StoreKey) types.KVStore {
			return s.CacheWrap().(types.CacheMultiStore).GetKVStore(key)
		}},
		{"nested CacheWrap of a CacheMultiStore", func(s multi, key types.StoreKey) types.KVStore {
			return s.CacheMultiStore().CacheWrap().(types.CacheMultiStore).GetKVStore(key)
		}},
		{"KVStore CacheWrap", func(s multi, key types.StoreKey) types.KVStore {
			return s.GetKVStore(key).CacheWrap().(types.KVStore)
		}},
	}
	for _, v := range views {
		for _, m := range []*mount{acc, bank} {
			compareKV(t, v.name+" "+m.key.Name(), v.kv(tw.ref, m.key), v.kv(tw.ours, m.key), keys, commonRanges)
		}
	}

	// Past heights through CacheMultiStoreWithVersion: the pending writes
	// are not visible there.
	for v := int64(1); v <= 3; v++ {
		refCMS, err := tw.ref.CacheMultiStoreWithVersion(v)
		if err != nil {
			t.Fatal(err)
		}
		oursCMS, err := tw.ours.CacheMultiStoreWithVersion(v)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range []*mount{acc, bank} {
			compareKV(t, fmt.Sprintf("version %d %s", v, m.key.Name()), refCMS.GetKVStore(m.key), oursCMS.GetKVStore(m.key), keys, commonRanges)
		}
	}

	// A branch written back: writes in the branch, then Write, then the
	// parent reads them (still uncommitted), then a commit.
	tw.each(func(_ string, s multi) {
		cms := s.CacheMultiStore()
		kv := cms.GetKVStore(acc.key)
		kv.Set([]byte("f"), []byte("6"))
		kv.Delete([]byte("c"))
		kv.Set([]byte("\x00"), []byte("zero2"))
		inner := cms.CacheMultiStore()
		inner.GetKVStore(bank.key).Set([]byte("z"), []byte("26"))
		inner.Write()
		cms.Write()
	})
	keys = append(keys, keysOf("f", "z")...)
	for _, m := range []*mount{acc, bank} {
		compareKV(t, "after CacheMultiStore.Write "+m.key.Name(), tw.ref.GetKVStore(m.key), tw.ours.GetKVStore(m.key), keys, commonRanges)
	}
	tw.commit()
	for _, m := range []*mount{acc, bank} {
		compareKV(t, "after commit "+m.key.Name(), tw.ref.GetKVStore(m.key), tw.ours.GetKVStore(m.key), keys, commonRanges)
	}

	// And after a restart.
	tw.reopen()
	tw.load()
	for _, m := range []*mount{acc, bank} {
		compareKV(t, "reopened "+m.key.Name(), tw.ref.GetKVStore(m.key), tw.ours.GetKVStore(m.key), keys, commonRanges)
	}
}

func TestWorkingHashAndCommitInfo(t *testing.T) {
	tr := &mount{key: types.NewTransientStoreKey("tr"), typ: types.StoreTypeTransient}
	mem := &mount{key: types.NewMemoryStoreKey("mem"), typ: types.StoreTypeMemory}
	tw, acc, bank, _ := readsFixture(t, tr, mem)
	tw.set(tr.key, "t", "1")
	tw.set(mem.key, "m", "1")
	header := cmtproto.Header{Height: 4, Time: time.Unix(1700000000, 0).UTC()}
	tw.ref.SetCommitHeader(header)
	tw.ours.SetCommitHeader(header)

	var oursWorking []byte
	tw.each(func(side string, s multi) {
		h1, h2 := s.WorkingHash(), s.WorkingHash()
		if !bytes.Equal(h1, h2) {
			t.Errorf("%s: WorkingHash not stable: %x then %x", side, h1, h2)
		}
		if side == "ours" {
			oursWorking = h1
		}
	})
	refID, oursID := tw.commit()
	if !bytes.Equal(oursWorking, oursID.Hash) {
		t.Errorf("ours: WorkingHash %x, Commit %x", oursWorking, oursID.Hash)
	}
	if refID.Version != 4 {
		t.Fatalf("version %d", refID.Version)
	}
	refInfo, err := tw.ref.GetCommitInfo(4)
	if err != nil {
		t.Fatal(err)
	}
	oursInfo, err := tw.ours.GetCommitInfo(4)
	if err != nil {
		t.Fatal(err)
	}
	// Same stores (IAVL only: transient and memory stores are left out),
	// same versions, same time; and each side's info hashes to its app hash.
	if a, b := storeNames(refInfo), storeNames(oursInfo); !slices.Equal(a, b) {
		t.Errorf("commit info stores: rootmulti %v, ours %v", a, b)
	}
	if want := []string{acc.key.Name() + "@4", bank.key.Name() + "@4"}; !slices.Equal(storeNames(oursInfo), want) {
		t.Errorf("commit info stores %v, want %v", storeNames(oursInfo), want)
	}
	if !refInfo.Timestamp.Equal(oursInfo.Timestamp) || !oursInfo.Timestamp.Equal(header.Time) {
		t.Errorf("commit info time: rootmulti %v, ours %v, header %v", refInfo.Timestamp, oursInfo.Timestamp, header.Time)
	}
	if !bytes.Equal(refInfo.Hash(), refID.Hash) || !bytes.Equal(oursInfo.Hash(), oursID.Hash) {
		t.Error("a commit info does not hash to its commit's app hash")
	}
	if lc := tw.ours.LastCommitID(); lc.Version != 4 || !bytes.Equal(lc.Hash, oursID.Hash) {
		t.Errorf("ours: LastCommitID %v after commit %v", lc, oursID)
	}
	// Per store: the commit's version, and (ours) the root in the info.
	for _, m := range []*mount{acc, bank} {
		rc, oc := tw.ref.GetStore(m.key).(types.CommitKVStore).LastCommitID(), tw.ours.GetStore(m.key).(types.CommitKVStore).LastCommitID()
		if rc.Version != oc.Version {
			t.Errorf("%s LastCommitID version: rootmulti %d, ours %d", m.key.Name(), rc.Version, oc.Version)
		}
		if !bytes.Equal(oc.Hash, oursInfo.StoreInfos[slices.IndexFunc(oursInfo.StoreInfos, func(si types.StoreInfo) bool { return si.Name == m.key.Name() })].CommitId.Hash) {
			t.Errorf("ours %s: LastCommitID hash differs from the commit info's", m.key.Name())
		}
	}

	// Nothing written: the working hash is the last app hash, in both.
	tw.each(func(side string, s multi) {
		if !bytes.Equal(s.WorkingHash(), s.LastCommitID().Hash) {
			t.Errorf("%s: WorkingHash with nothing written differs from the last app hash", side)
		}
	})
	// An empty block keeps the app hash and moves the version.
	refEmpty, oursEmpty := tw.commit()
	if !bytes.Equal(refEmpty.Hash, refID.Hash) || !bytes.Equal(oursEmpty.Hash, oursID.Hash) || oursEmpty.Version != 5 {
		t.Errorf("an empty block changed the app hash: rootmulti %v -> %v, ours %v -> %v", refID, refEmpty, oursID, oursEmpty)
	}

	// Ours is stable across a restart.
	tw.reopen()
	tw.load()
	if lc := tw.ours.LastCommitID(); lc.Version != 5 || !bytes.Equal(lc.Hash, oursID.Hash) {
		t.Errorf("ours reopened: LastCommitID %v, want version 5 hash %x", lc, oursID.Hash)
	}
	if !bytes.Equal(tw.ours.WorkingHash(), oursID.Hash) {
		t.Error("ours reopened: WorkingHash differs from the last app hash")
	}
}

// TestWorkingHashWithDBStore: rootmulti's WorkingHash covers IAVL stores
// only while its commit info (and app hash) also has the DB-type stores;
// ours does the same, so WorkingHash differs from the commit's hash in
// both when a DB store is mounted.
func TestWorkingHashWithDBStore(t *testing.T) {
	acc := iavlMount("acc")
	db := &mount{key: types.NewKVStoreKey("db"), typ: types.StoreTypeDB}
	tw := loadedTwin(t, acc, db)
	tw.set(acc.key, "a", "1")
	tw.set(db.key, "d", "1")
	tw.each(func(side string, s multi) {
		working := s.WorkingHash()
		id := s.Commit()
		if bytes.Equal(working, id.Hash) {
			t.Errorf("%s: WorkingHash equals the commit hash with a DB store mounted", side)
		}
		info, err := s.GetCommitInfo(id.Version)
		if err != nil {
			t.Fatal(err)
		}
		if got := storeNames(info); !slices.Equal(got, []string{"acc@1", "db@-1"}) {
			t.Errorf("%s: commit info %v", side, got)
		}
		if !bytes.Equal(info.StoreInfos[1].CommitId.Hash, []byte("FAKE_HASH")) {
			t.Errorf("%s: DB store hash %q", side, info.StoreInfos[1].CommitId.Hash)
		}
	})
}

func TestTransientAndMemoryStores(t *testing.T) {
	acc := iavlMount("acc")
	tr := &mount{key: types.NewTransientStoreKey("tr"), typ: types.StoreTypeTransient}
	mem := &mount{key: types.NewMemoryStoreKey("mem"), typ: types.StoreTypeMemory}
	tw := loadedTwin(t, acc, tr, mem)
	tw.each(func(side string, s multi) {
		for m, want := range map[*mount]types.StoreType{acc: types.StoreTypeIAVL, tr: types.StoreTypeTransient, mem: types.StoreTypeMemory} {
			if got := s.GetKVStore(m.key).GetStoreType(); got != want {
				t.Errorf("%s: store %s type %v, want %v", side, m.key.Name(), got, want)
			}
		}
	})
	keys := keysOf("t1", "t2", "m1", "m2")
	all := []iterRange{{nil, nil}}
	for block := 1; block <= 3; block++ {
		tw.set(tr.key, fmt.Sprintf("t%d", block), "v")
		tw.set(mem.key, fmt.Sprintf("m%d", block), "v")
		tw.set(acc.key, "a", fmt.Sprint(block))
		for _, m := range []*mount{tr, mem} {
			compareKV(t, fmt.Sprintf("block %d before commit %s", block, m.key.Name()), tw.ref.GetKVStore(m.key), tw.ours.GetKVStore(m.key), keys, all)
		}
		tw.commit()
		// A transient store is emptied by the commit, a memory store kept.
		for _, m := range []*mount{tr, mem} {
			compareKV(t, fmt.Sprintf("block %d after commit %s", block, m.key.Name()), tw.ref.GetKVStore(m.key), tw.ours.GetKVStore(m.key), keys, all)
		}
		if n := len(readRange(tw.ours.GetKVStore(tr.key), nil, nil, false)); n != 0 {
			t.Errorf("block %d: the transient store keeps %d keys after the commit", block, n)
		}
		if n := len(readRange(tw.ours.GetKVStore(mem.key), nil, nil, false)); n != block {
			t.Errorf("block %d: the memory store has %d keys", block, n)
		}
	}
	// Neither is in the commit info, nor in a snapshot.
	tw.each(func(side string, s multi) {
		info, err := s.GetCommitInfo(3)
		if err != nil {
			t.Fatal(err)
		}
		if got := storeNames(info); !slices.Equal(got, []string{"acc@3"}) {
			t.Errorf("%s: commit info %v", side, got)
		}
		if stores, _, _ := snapshotItems(t, takeSnapshot(t, s, 3)); !slices.Equal(stores, []string{"acc"}) {
			t.Errorf("%s: snapshot stores %v", side, stores)
		}
	})
	// Wrong key types are refused at load, with rootmulti's errors.
	for _, bad := range []*mount{
		{key: types.NewKVStoreKey("tr2"), typ: types.StoreTypeTransient},
		{key: types.NewKVStoreKey("mem2"), typ: types.StoreTypeMemory},
	} {
		tw := newTwin(t, bad)
		refErr, oursErr := tw.ref.LoadLatestVersion(), tw.ours.LoadLatestVersion()
		if refErr == nil || oursErr == nil || refErr.Error() != oursErr.Error() {
			t.Errorf("%v with a KVStoreKey: rootmulti %v, ours %v", bad.typ, refErr, oursErr)
		}
	}
}

func TestDBStores(t *testing.T) {
	acc := iavlMount("acc")
	shared := &mount{key: types.NewKVStoreKey("shared"), typ: types.StoreTypeDB}
	own := &mount{key: types.NewKVStoreKey("own"), typ: types.StoreTypeDB, ownDB: true}
	tw := loadedTwin(t, acc, shared, own)
	keys := keysOf("a", "b", "c", "\x00", "\xff")
	ranges := []iterRange{{nil, nil}, {[]byte("b"), nil}}
	// An empty value in a DB store reads back as the database gives it:
	// empty from a MemDB, nil from LevelDB (rootmulti on a LevelDB app
	// database does the same). Our shared DB stores live in LevelDB unless
	// Options.AppDB is given, so only the store with its own MemDB gets one.
	tw.set(own.key, "e", "")
	keys = append(keys, []byte("e"))
	for block := 1; block <= 2; block++ {
		for _, m := range []*mount{shared, own} {
			tw.set(m.key, "a", fmt.Sprint(block), "\x00", "z", "\xff", "f")
			if block == 2 {
				tw.del(m.key, "\x00")
				tw.set(m.key, "c", "3")
			}
		}
		tw.commit()
	}
	check := func(when string) {
		for _, m := range []*mount{shared, own} {
			compareKV(t, when+" "+m.key.Name(), tw.ref.GetKVStore(m.key), tw.ours.GetKVStore(m.key), keys, ranges)
		}
	}
	check("committed")
	// A store with its own database keeps its keys there under "s/_/", in
	// both.
	for side, db := range map[string]dbm.DB{"rootmulti": own.refDB, "ours": own.oursDB} {
		v, err := db.Get([]byte("s/_/a"))
		if err != nil || string(v) != "2" {
			t.Errorf("%s: own database s/_/a = %q, %v", side, v, err)
		}
	}
	// rootmulti keeps the other DB stores in its database; ours in its
	// directory (or Options.AppDB): they survive a restart in both.
	tw.reopen()
	tw.load()
	check("reopened")
	// Not queryable, and no snapshot with a DB store mounted, in both.
	tw.each(func(side string, s multi) {
		if _, err := s.(types.Queryable).Query(&types.RequestQuery{Path: "/shared/key", Data: []byte("a")}); err == nil {
			t.Errorf("%s: a query of a DB store should fail", side)
		}
		if err := s.Snapshot(2, nopWriter{}); err == nil || !strings.Contains(err.Error(), "don't know how to snapshot store") {
			t.Errorf("%s: Snapshot with a DB store: %v", side, err)
		}
	})
}

// TestDBStoresInAppDB: with Options.AppDB, DB stores without a database of
// their own use rootmulti's layout in it ("s/k:<name>/").
func TestDBStoresInAppDB(t *testing.T) {
	appDB := dbm.NewMemDB()
	s, err := New(t.TempDir(), nil, Options{AppDB: appDB})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	key := types.NewKVStoreKey("params")
	s.MountStoreWithDB(key, types.StoreTypeDB, nil)
	if err := s.LoadLatestVersion(); err != nil {
		t.Fatal(err)
	}
	s.GetKVStore(key).Set([]byte("k"), []byte("v"))
	s.Commit()
	if v, err := appDB.Get([]byte("s/k:params/k")); err != nil || string(v) != "v" {
		t.Errorf("AppDB s/k:params/k = %q, %v", v, err)
	}
}

// nopWriter drops a snapshot's items.
type nopWriter struct{}

func (nopWriter) WriteMsg(proto.Message) error { return nil }

func TestUnknownKeysAndMounts(t *testing.T) {
	acc := iavlMount("acc")
	tw := loadedTwin(t, acc)
	unknown := types.NewKVStoreKey("unknown")
	sameName := types.NewKVStoreKey("acc") // another key with a mounted name
	for _, key := range []types.StoreKey{unknown, sameName} {
		for _, call := range []struct {
			name string
			fn   func(s multi)
		}{
			{"GetStore", func(s multi) { s.GetStore(key) }},
			{"GetKVStore", func(s multi) { s.GetKVStore(key) }},
		} {
			refMsg, oursMsg := recovered(func() { call.fn(tw.ref) }), recovered(func() { call.fn(tw.ours) })
			if refMsg == "" || refMsg != oursMsg {
				t.Errorf("%s(%s) panics: rootmulti %q, ours %q", call.name, key.Name(), refMsg, oursMsg)
			}
		}
	}
	// The mounted key works through every getter.
	tw.each(func(side string, s multi) {
		if s.GetStore(acc.key) == nil || s.GetKVStore(acc.key) == nil {
			t.Errorf("%s: a getter returned nil for a mounted key", side)
		}
		if got := s.GetStore(acc.key).GetStoreType(); got != types.StoreTypeIAVL {
			t.Errorf("%s: GetStore type %v", side, got)
		}
	})
	// Mount errors panic with rootmulti's messages.
	for _, bad := range []struct {
		name string
		key  types.StoreKey
	}{
		{"nil key", nil},
		{"same key", acc.key},
		{"same name", sameName},
	} {
		refMsg := recovered(func() { tw.ref.MountStoreWithDB(bad.key, types.StoreTypeIAVL, nil) })
		oursMsg := recovered(func() { tw.ours.MountStoreWithDB(bad.key, types.StoreTypeIAVL, nil) })
		if refMsg == "" || refMsg != oursMsg {
			t.Errorf("MountStoreWithDB %s: rootmulti %q, ours %q", bad.name, refMsg, oursMsg)
		}
	}
	// Deliberate difference: rootmulti accepts any store type at mount and
	// panics at load on the ones it cannot build; ours refuses them at
	// mount.
	ours := tempOurs(t)
	for _, typ := range []types.StoreType{types.StoreTypeMulti, types.StoreTypeSMT, types.StoreTypePersistent} {
		if msg := recovered(func() { ours.MountStoreWithDB(types.NewKVStoreKey("x"+typ.String()), typ, nil) }); !strings.Contains(msg, "not supported") {
			t.Errorf("ours: mounting %v: %q", typ, msg)
		}
	}
}

func TestListeners(t *testing.T) {
	acc, bank := iavlMount("acc"), iavlMount("bank")
	tw := loadedTwin(t, acc, bank)
	tw.set(acc.key, "a", "1")
	tw.commit()
	tw.each(func(side string, s multi) {
		if s.ListeningEnabled(acc.key) {
			t.Errorf("%s: listening before AddListeners", side)
		}
		s.AddListeners([]types.StoreKey{acc.key})
		s.AddListeners([]types.StoreKey{acc.key}) // twice: one listener
		if !s.ListeningEnabled(acc.key) || s.ListeningEnabled(bank.key) || s.ListeningEnabled(types.NewKVStoreKey("x")) {
			t.Errorf("%s: ListeningEnabled wrong", side)
		}
	})
	pop := func(s multi) []string {
		var out []string
		for _, p := range s.PopStateCache() {
			out = append(out, fmt.Sprintf("%s del=%v %q=%q", p.StoreKey, p.Delete, p.Key, p.Value))
		}
		return out
	}
	tw.each(func(_ string, s multi) {
		kv := s.GetKVStore(acc.key)
		kv.Set([]byte("b"), []byte("2"))
		kv.Delete([]byte("a"))
		kv.Set([]byte("e"), []byte{})
		_ = kv.Get([]byte("b")) // reads are not heard
		s.GetKVStore(bank.key).Set([]byte("x"), []byte("9"))
		// Through a branch: heard when written back.
		cms := s.CacheMultiStore()
		cms.GetKVStore(acc.key).Set([]byte("c"), []byte("3"))
		cms.GetKVStore(acc.key).Delete([]byte("b"))
		cms.GetKVStore(bank.key).Set([]byte("y"), []byte("8"))
		cms.Write()
		// A branch at a version is read-only; reading it is not heard.
		past, err := s.CacheMultiStoreWithVersion(1)
		if err != nil {
			t.Fatal(err)
		}
		_ = past.GetKVStore(acc.key).Get([]byte("a"))
	})
	refPairs, oursPairs := pop(tw.ref), pop(tw.ours)
	if !slices.Equal(refPairs, oursPairs) || len(refPairs) != 5 {
		t.Errorf("PopStateCache:\nrootmulti %q\nours      %q", refPairs, oursPairs)
	}
	tw.each(func(side string, s multi) {
		if rest := pop(s); len(rest) != 0 {
			t.Errorf("%s: second PopStateCache %q", side, rest)
		}
	})
	// Still listening after a commit, in both.
	tw.commit()
	tw.set(acc.key, "z", "26")
	if a, b := pop(tw.ref), pop(tw.ours); !slices.Equal(a, b) || len(a) != 1 {
		t.Errorf("after commit: rootmulti %q, ours %q", a, b)
	}
}

func TestStoreUpgrades(t *testing.T) {
	loaders := []struct {
		name string
		load func(s multi, u *types.StoreUpgrades) error
	}{
		{"LoadLatestVersionAndUpgrade", func(s multi, u *types.StoreUpgrades) error {
			return s.LoadLatestVersionAndUpgrade(u)
		}},
		{"LoadVersionAndUpgrade", func(s multi, u *types.StoreUpgrades) error {
			return s.LoadVersionAndUpgrade(s.LatestVersion(), u)
		}},
	}
	cases := []struct {
		name     string
		mounted  []string // after the upgrade
		upgrades *types.StoreUpgrades
		stores   []string // in the commit info after the upgrade's commit
		gone     []string // unmounted after the commit
	}{
		{
			name:     "added",
			mounted:  []string{"acc", "bank", "old", "gone", "new"},
			upgrades: &types.StoreUpgrades{Added: []string{"new"}},
			stores:   []string{"acc@3", "bank@3", "gone@3", "new@3", "old@3"},
		},
		{
			name:     "renamed",
			mounted:  []string{"acc", "bank", "gone", "renamed"},
			upgrades: &types.StoreUpgrades{Renamed: []types.StoreRename{{OldKey: "old", NewKey: "renamed"}}},
			stores:   []string{"acc@3", "bank@3", "gone@3", "renamed@3"},
		},
		{
			name:     "deleted",
			mounted:  []string{"acc", "bank", "old", "gone"},
			upgrades: &types.StoreUpgrades{Deleted: []string{"gone"}},
			stores:   []string{"acc@3", "bank@3", "old@3"},
			gone:     []string{"gone"},
		},
		{
			name:    "all at once",
			mounted: []string{"acc", "bank", "gone", "new", "renamed"},
			upgrades: &types.StoreUpgrades{
				Added:   []string{"new"},
				Renamed: []types.StoreRename{{OldKey: "old", NewKey: "renamed"}},
				Deleted: []string{"gone"},
			},
			stores: []string{"acc@3", "bank@3", "new@3", "renamed@3"},
			gone:   []string{"gone"},
		},
		{
			// A mounted store with nothing in the commit info is refused
			// without an upgrade; an unmounted one silently leaves the
			// commit info.
			name:    "unmounted store dropped",
			mounted: []string{"acc", "bank", "gone"},
			stores:  []string{"acc@3", "bank@3", "gone@3"},
		},
	}
	keys := keysOf("a", "b", "o1", "o2", "g1", "n", "\x00", "\xff")
	for _, loader := range loaders {
		for _, tc := range cases {
			t.Run(loader.name+"/"+tc.name, func(t *testing.T) {
				before := map[string]*mount{}
				var mounts []*mount
				for _, name := range []string{"acc", "bank", "old", "gone"} {
					before[name] = iavlMount(name)
					mounts = append(mounts, before[name])
				}
				tw := loadedTwin(t, mounts...)
				tw.set(before["acc"].key, "a", "1", "\x00", "")
				tw.set(before["old"].key, "o1", "1", "o2", "", "\xff", "ff")
				tw.set(before["gone"].key, "g1", "1")
				tw.commit()
				tw.set(before["bank"].key, "b", "2")
				tw.del(before["old"].key, "o1")
				tw.set(before["old"].key, "o1", "11")
				tw.commit()

				after := map[string]*mount{}
				tw.mounts = nil
				for _, name := range tc.mounted {
					m := before[name]
					if m == nil {
						m = iavlMount(name)
					}
					after[name] = m
					tw.mounts = append(tw.mounts, m)
				}
				tw.reopen()
				refErr, oursErr := loader.load(tw.ref, tc.upgrades), loader.load(tw.ours, tc.upgrades)
				if refErr != nil || oursErr != nil {
					t.Fatalf("upgrade: rootmulti %v, ours %v", refErr, oursErr)
				}
				// The data, before the upgrade commits.
				for name, m := range after {
					compareKV(t, "upgraded "+name, tw.ref.GetKVStore(m.key), tw.ours.GetKVStore(m.key), keys, commonRanges)
				}
				if m := after["renamed"]; m != nil {
					if got := readRange(tw.ours.GetKVStore(m.key), nil, nil, false); fmtPairs(got) != fmtPairs([]pair{{"o1", "11"}, {"o2", ""}, {"\xff", "ff"}}) {
						t.Errorf("renamed store holds %s", fmtPairs(got))
					}
				}
				tw.each(func(side string, s multi) {
					if !bytes.Equal(s.WorkingHash(), s.WorkingHash()) {
						t.Errorf("%s: WorkingHash not stable", side)
					}
				})
				tw.commit()
				tw.each(func(side string, s multi) {
					info, err := s.GetCommitInfo(3)
					if err != nil {
						t.Fatal(err)
					}
					if got := storeNames(info); !slices.Equal(got, tc.stores) {
						t.Errorf("%s: commit info %v, want %v", side, got, tc.stores)
					}
					for _, name := range tc.gone {
						if msg := recovered(func() { s.GetKVStore(after[name].key) }); msg == "" {
							t.Errorf("%s: store %s still mounted after its deletion committed", side, name)
						}
					}
				})
				for name, m := range after {
					if slices.Contains(tc.gone, name) {
						continue
					}
					compareKV(t, "committed "+name, tw.ref.GetKVStore(m.key), tw.ours.GetKVStore(m.key), keys, commonRanges)
				}
				// Without the deleted stores, a restart loads.
				tw.mounts = slices.DeleteFunc(tw.mounts, func(m *mount) bool { return slices.Contains(tc.gone, m.key.Name()) })
				tw.reopen()
				tw.load()
				for _, m := range tw.mounts {
					compareKV(t, "reopened "+m.key.Name(), tw.ref.GetKVStore(m.key), tw.ours.GetKVStore(m.key), keys, commonRanges)
				}
			})
		}
	}

	// A mounted store missing from the commit info without an upgrade: the
	// same error; adding it with an upgrade then works.
	t.Run("missing store", func(t *testing.T) {
		acc := iavlMount("acc")
		tw := loadedTwin(t, acc)
		tw.set(acc.key, "a", "1")
		tw.commit()
		added := iavlMount("added")
		tw.mounts = append(tw.mounts, added)
		tw.reopen()
		refErr, oursErr := tw.ref.LoadLatestVersion(), tw.ours.LoadLatestVersion()
		if refErr == nil || oursErr == nil || refErr.Error() != oursErr.Error() {
			t.Fatalf("load with an unknown store: rootmulti %v, ours %v", refErr, oursErr)
		}
		tw.each(func(side string, s multi) {
			if err := s.LoadLatestVersionAndUpgrade(&types.StoreUpgrades{Added: []string{"added"}}); err != nil {
				t.Fatalf("%s: retry with the upgrade: %v", side, err)
			}
		})
		tw.set(added.key, "n", "1")
		tw.commit()
		compareKV(t, "added", tw.ref.GetKVStore(added.key), tw.ours.GetKVStore(added.key), keysOf("n"), commonRanges)

		// At a height before the store was added, both read it as empty
		// (store/v2's rootmulti does; v1.1.2's panicked).
		for _, sd := range tw.sides() {
			cms, err := sd.s.CacheMultiStoreWithVersion(1)
			if err != nil {
				t.Fatal(err)
			}
			if got := readRange(cms.GetKVStore(added.key), nil, nil, false); cms.GetKVStore(added.key).Get([]byte("n")) != nil || len(got) != 0 {
				t.Errorf("%s: the added store at height 1 holds %s", sd.name, fmtPairs(got))
			}
		}
		res, err := tw.ours.Query(&types.RequestQuery{Path: "/added/key", Data: []byte("n"), Height: 1})
		if err != nil || res.Value != nil || res.Log != "" {
			t.Errorf("ours: query of the added store at height 1: %+v, %v", res, err)
		}
	})

	// Deliberate difference: ours applies upgrades at the latest version
	// only (below it the store is read-only); rootmulti loads the old
	// version and upgrades it.
	t.Run("upgrade below latest", func(t *testing.T) {
		acc := iavlMount("acc")
		tw := loadedTwin(t, acc)
		tw.commit()
		tw.commit()
		if err := tw.ours.LoadVersionAndUpgrade(1, &types.StoreUpgrades{Added: []string{"x"}}); err == nil {
			t.Error("ours: an upgrade below the latest version should be refused")
		}
	})
}

func TestLoadVersionOfAPastHeight(t *testing.T) {
	tw, acc, bank, keys := readsFixture(t)
	tw.commit() // version 4, with the pending writes
	tw.each(func(side string, s multi) {
		if err := s.LoadVersion(2); err != nil {
			t.Fatalf("%s: LoadVersion(2): %v", side, err)
		}
		if v := s.LatestVersion(); v != 2 {
			t.Errorf("%s: LatestVersion after LoadVersion(2): %d", side, v)
		}
	})
	for _, m := range []*mount{acc, bank} {
		compareKV(t, "loaded at 2 "+m.key.Name(), tw.ref.GetKVStore(m.key), tw.ours.GetKVStore(m.key), keys, commonRanges)
		compareKV(t, "loaded at 2, branch "+m.key.Name(), tw.ref.CacheMultiStore().GetKVStore(m.key), tw.ours.CacheMultiStore().GetKVStore(m.key), keys, commonRanges)
	}
	// Deliberate difference: rootmulti can write on top of a past version
	// (and then fails or forks at the commit); ours loaded below the
	// latest is read-only: RollbackToVersion is what moves the latest.
	for name, fn := range map[string]func(){
		"Set":         func() { tw.ours.GetKVStore(acc.key).Set([]byte("a"), []byte("x")) },
		"Delete":      func() { tw.ours.GetKVStore(acc.key).Delete([]byte("a")) },
		"Commit":      func() { tw.ours.Commit() },
		"WorkingHash": func() { tw.ours.WorkingHash() },
		"branch Write": func() {
			cms := tw.ours.CacheMultiStore()
			cms.GetKVStore(acc.key).Set([]byte("a"), []byte("x"))
			cms.Write()
		},
	} {
		if msg := recovered(fn); !strings.Contains(msg, ErrPastVersion.Error()) {
			t.Errorf("ours at a past version: %s panics with %q, want ErrPastVersion", name, msg)
		}
	}
	// Back to the latest: writable again, same data.
	tw.load()
	tw.each(func(side string, s multi) {
		if v := s.LatestVersion(); v != 4 {
			t.Errorf("%s: LatestVersion after reloading the latest: %d", side, v)
		}
	})
	for _, m := range []*mount{acc, bank} {
		compareKV(t, "latest again "+m.key.Name(), tw.ref.GetKVStore(m.key), tw.ours.GetKVStore(m.key), keys, commonRanges)
	}
	tw.set(acc.key, "new", "1")
	tw.commit()
	// A version never committed cannot be loaded, in both.
	tw.each(func(side string, s multi) {
		if err := s.LoadVersion(9); err == nil {
			t.Errorf("%s: LoadVersion of a future height should fail", side)
		}
	})
}

// pruneTwin is a twin whose rootmulti prunes synchronously (so that only
// ours needs waiting for) with the given options.
func pruneTwin(t *testing.T, opts pruningtypes.PruningOptions, snapshotInterval uint64, mounts ...*mount) *twin {
	tw := newTwin(t, mounts...)
	tw.beforeLoad = func(s multi) {
		s.SetIAVLSyncPruning(true)
		s.SetPruning(opts)
		s.SetSnapshotInterval(snapshotInterval)
	}
	tw.beforeLoad(tw.ref)
	tw.beforeLoad(tw.ours)
	tw.load()
	return tw
}

// readableHeights lists the heights in [1, latest] a side can branch at.
func readableHeights(s multi) []int64 {
	var out []int64
	for v := int64(1); v <= s.LatestVersion(); v++ {
		if _, err := s.CacheMultiStoreWithVersion(v); err == nil {
			out = append(out, v)
		}
	}
	return out
}

// waitReadable waits until both sides hold exactly the heights from..latest.
func waitReadable(t *testing.T, tw *twin, from int64) {
	t.Helper()
	latest := tw.ref.LatestVersion()
	var want []int64
	for v := from; v <= latest; v++ {
		want = append(want, v)
	}
	if got := readableHeights(tw.ref); !slices.Equal(got, want) {
		t.Fatalf("rootmulti holds heights %v, the test expects %v", got, want)
	}
	waitFor(t, fmt.Sprintf("ours to hold heights %d..%d", from, latest), 10*time.Second, func() bool {
		return tw.ours.Engine().EarliestVersion() >= uint64(from)
	})
	if got := readableHeights(tw.ours); !slices.Equal(got, want) {
		t.Fatalf("ours holds heights %v, rootmulti %v", got, want)
	}
}

func TestPruning(t *testing.T) {
	acc := iavlMount("acc")
	opts := pruningtypes.NewCustomPruningOptions(2, 3) // keep 2 recent, prune every 3
	tw := pruneTwin(t, opts, 0, acc)
	tw.each(func(side string, s multi) {
		if got := s.GetPruning(); got != opts {
			t.Errorf("%s: GetPruning %+v, want %+v", side, got, opts)
		}
	})
	for h := 1; h <= 10; h++ {
		tw.set(acc.key, "k", fmt.Sprint(h), fmt.Sprintf("k%02d", h), "v")
		tw.commit()
		switch h {
		case 5:
			waitReadable(t, tw, 1) // nothing pruned before height 6
		case 6:
			waitReadable(t, tw, 4) // at 6: up to 6-1-2 = 3
		case 10:
			waitReadable(t, tw, 7) // at 9: up to 6
		}
	}
	// The heights kept read the same in both.
	for v := int64(7); v <= 10; v++ {
		r, err1 := tw.ref.CacheMultiStoreWithVersion(v)
		o, err2 := tw.ours.CacheMultiStoreWithVersion(v)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		compareKV(t, fmt.Sprintf("kept height %d", v), r.GetKVStore(acc.key), o.GetKVStore(acc.key), keysOf("k", "k01", "k09"), commonRanges)
	}
	tw.reopen() // sets the options again, as baseapp does at each start
	tw.each(func(side string, s multi) {
		if got := s.GetPruning(); got != opts {
			t.Errorf("%s: GetPruning after a restart %+v", side, got)
		}
		s.SetPruning(pruningtypes.NewPruningOptions(pruningtypes.PruningEverything))
		if got := s.GetPruning(); got.GetPruningStrategy() != pruningtypes.PruningEverything {
			t.Errorf("%s: GetPruning %+v", side, got)
		}
	})
}

// TestPruningHoldsSnapshotHeights: with a snapshot interval, heights from
// the next snapshot on are kept until PruneSnapshotHeight releases them,
// and the record survives a restart (rootmulti reloads it at each load,
// and until the next snapshot is done prunes only below it).
func TestPruningHoldsSnapshotHeights(t *testing.T) {
	acc := iavlMount("acc")
	opts := pruningtypes.NewCustomPruningOptions(1, 1)
	tw := pruneTwin(t, opts, 4, acc)
	commitTo := func(h int64) {
		for tw.ref.LatestVersion() < h {
			tw.set(acc.key, "k", fmt.Sprint(tw.ref.LatestVersion()+1))
			tw.commit()
		}
	}
	commitTo(6)
	waitReadable(t, tw, 4) // held back from the first snapshot height, 4
	tw.each(func(_ string, s multi) { s.PruneSnapshotHeight(4) })
	commitTo(7)
	waitReadable(t, tw, 6) // at 7: up to min(7-2, 4+4-1)

	// Restart: the released snapshot height 4 is remembered.
	tw.reopen()
	tw.load()
	commitTo(10)
	// store/v2 distrusts the height read back (the interval may have
	// changed): up to 4-1 until the next snapshot is done, so nothing more.
	waitReadable(t, tw, 6)
	tw.each(func(_ string, s multi) { s.PruneSnapshotHeight(8) })
	commitTo(11)
	waitReadable(t, tw, 10) // at 11: up to min(9, 8+4-1)
}

// TestBadHeights: reads at pruned, future and non-positive heights fail in
// both, through CacheMultiStoreWithVersion, Query, Snapshot and loading.
func TestBadHeights(t *testing.T) {
	acc := iavlMount("acc")
	tw := pruneTwin(t, pruningtypes.NewCustomPruningOptions(0, 1), 0, acc)
	for h := 1; h <= 5; h++ {
		tw.set(acc.key, "a", fmt.Sprint(h), "p/1", "x")
		tw.commit()
	}
	waitReadable(t, tw, 5)
	for _, v := range []int64{-1, 0, 1, 4, 6, 100} {
		tw.each(func(side string, s multi) {
			if _, err := s.CacheMultiStoreWithVersion(v); err == nil {
				t.Errorf("%s: CacheMultiStoreWithVersion(%d) should fail", side, v)
			}
		})
	}
	tw.each(func(side string, s multi) {
		if _, err := s.CacheMultiStoreWithVersion(5); err != nil {
			t.Errorf("%s: CacheMultiStoreWithVersion(5): %v", side, err)
		}
	})
	for _, h := range []int64{-1, 1, 4, 6, 100} {
		for _, prove := range []bool{false, true} {
			req := func() *types.RequestQuery {
				return &types.RequestQuery{Path: "/acc/key", Data: []byte("a"), Height: h, Prove: prove}
			}
			refRes, refErr := tw.ref.Query(req())
			oursRes, oursErr := tw.ours.Query(req())
			if (refErr == nil) != (oursErr == nil) {
				t.Errorf("query at %d prove=%v: rootmulti err %v, ours err %v", h, prove, refErr, oursErr)
				continue
			}
			if prove {
				// rootmulti: "proof is unexpectedly empty; ensure height
				// has not been pruned"; ours the same.
				if oursErr == nil || refErr.Error() != oursErr.Error() {
					t.Errorf("query at %d with proof: rootmulti %v, ours %v", h, refErr, oursErr)
				}
				continue
			}
			for side, res := range map[string]*types.ResponseQuery{"rootmulti": refRes, "ours": oursRes} {
				if !strings.Contains(res.Log, "version does not exist") || res.Value != nil || res.Height != h {
					t.Errorf("%s: query at %d: log %q value %q height %d", side, h, res.Log, res.Value, res.Height)
				}
			}
		}
	}
	// Deliberate difference: IAVL answers /subspace from the working tree
	// whatever the height; ours reads the height asked, so a pruned one is
	// refused like a /key query.
	res, err := tw.ours.Query(&types.RequestQuery{Path: "/acc/subspace", Data: []byte("p/"), Height: 1})
	if err != nil || !strings.Contains(res.Log, "version does not exist") || res.Value != nil {
		t.Errorf("ours: /subspace at a pruned height: %+v, %v", res, err)
	}
	tw.each(func(side string, s multi) {
		for _, h := range []uint64{1, 6} {
			if err := s.Snapshot(h, nopWriter{}); err == nil {
				t.Errorf("%s: Snapshot(%d) should fail", side, h)
			}
		}
		if _, err := s.GetCommitInfo(6); err == nil {
			t.Errorf("%s: GetCommitInfo of a future height should fail", side)
		}
	})
	// Deliberate difference: rootmulti keeps every commit info forever;
	// ours keeps those of the retained versions.
	if _, err := tw.ref.GetCommitInfo(1); err != nil {
		t.Errorf("rootmulti: GetCommitInfo(1): %v", err)
	}
	if _, err := tw.ours.GetCommitInfo(1); err == nil {
		t.Error("ours: GetCommitInfo of a pruned height should fail")
	}
	// Loading or rolling back to a pruned height fails in both.
	tw.each(func(side string, s multi) {
		if err := s.LoadVersion(2); err == nil {
			t.Errorf("%s: LoadVersion of a pruned height should fail", side)
		}
	})
	tw.load()
	tw.each(func(side string, s multi) {
		if err := s.RollbackToVersion(2); err == nil {
			t.Errorf("%s: RollbackToVersion to a pruned height should fail", side)
		}
	})
}

func TestSetInitialVersion(t *testing.T) {
	acc := iavlMount("acc")
	tw := loadedTwin(t, acc)
	tw.each(func(side string, s multi) {
		if err := s.SetInitialVersion(5); err != nil {
			t.Fatalf("%s: SetInitialVersion: %v", side, err)
		}
	})
	tw.set(acc.key, "a", "1")
	refID, _ := tw.commit()
	if refID.Version != 5 {
		t.Fatalf("first commit at %d, want 5", refID.Version)
	}
	tw.set(acc.key, "a", "2")
	tw.commit()
	tw.each(func(side string, s multi) {
		if v := s.LatestVersion(); v != 6 {
			t.Errorf("%s: LatestVersion %d", side, v)
		}
		if _, err := s.CacheMultiStoreWithVersion(4); err == nil {
			t.Errorf("%s: height 4 should not exist", side)
		}
		cms, err := s.CacheMultiStoreWithVersion(5)
		if err != nil || string(cms.GetKVStore(acc.key).Get([]byte("a"))) != "1" {
			t.Errorf("%s: height 5: %v", side, err)
		}
		info, err := s.GetCommitInfo(5)
		if err != nil || !slices.Equal(storeNames(info), []string{"acc@5"}) {
			t.Errorf("%s: commit info at 5: %v %v", side, info, err)
		}
	})
	tw.reopen()
	tw.load()
	tw.each(func(side string, s multi) {
		if v := s.LatestVersion(); v != 6 {
			t.Errorf("%s: reopened at %d", side, v)
		}
	})
	// Deliberate difference: rootmulti accepts any initial version at any
	// time and ignores it once a version exists; ours refuses it then, and
	// refuses versions below 1.
	if err := tw.ours.SetInitialVersion(10); err == nil {
		t.Error("ours: SetInitialVersion after commits should fail")
	}
	if err := tempOurs(t).SetInitialVersion(0); err == nil {
		t.Error("ours: SetInitialVersion(0) should fail")
	}
}

func TestRollbackToVersion(t *testing.T) {
	acc, bank := iavlMount("acc"), iavlMount("bank")
	tw := loadedTwin(t, acc, bank)
	block := func(h int) {
		tw.set(acc.key, "a", fmt.Sprint(h), fmt.Sprintf("k%d", h), "")
		tw.set(bank.key, fmt.Sprintf("b%d", h), fmt.Sprint(h))
		if h%2 == 0 {
			tw.del(acc.key, fmt.Sprintf("k%d", h-1))
		}
	}
	var hashes []types.CommitID // ours, by version - 1
	for h := 1; h <= 5; h++ {
		block(h)
		_, ours := tw.commit()
		hashes = append(hashes, ours)
	}
	keys := keysOf("a", "k1", "k2", "k3", "k4", "k5", "b1", "b4", "b5")
	// Uncommitted writes are dropped by the rollback, in both.
	tw.set(acc.key, "pending", "1")
	tw.each(func(side string, s multi) {
		if err := s.RollbackToVersion(3); err != nil {
			t.Fatalf("%s: RollbackToVersion(3): %v", side, err)
		}
		if v := s.LatestVersion(); v != 3 {
			t.Errorf("%s: LatestVersion after rollback %d", side, v)
		}
		if _, err := s.CacheMultiStoreWithVersion(4); err == nil {
			t.Errorf("%s: height 4 readable after the rollback", side)
		}
	})
	if id := tw.ours.LastCommitID(); !bytes.Equal(id.Hash, hashes[2].Hash) {
		t.Errorf("ours: LastCommitID after rollback %v, want %v", id, hashes[2])
	}
	for _, m := range []*mount{acc, bank} {
		compareKV(t, "rolled back "+m.key.Name(), tw.ref.GetKVStore(m.key), tw.ours.GetKVStore(m.key), append(keys, []byte("pending")), commonRanges)
	}
	// Replaying the same blocks gives the same app hashes (ours) and data.
	for h := 4; h <= 5; h++ {
		block(h)
		_, ours := tw.commit()
		if ours.Version != hashes[h-1].Version || !bytes.Equal(ours.Hash, hashes[h-1].Hash) {
			t.Errorf("ours: replayed height %d hash %X, first time %X", h, ours.Hash, hashes[h-1].Hash)
		}
	}
	for _, m := range []*mount{acc, bank} {
		compareKV(t, "replayed "+m.key.Name(), tw.ref.GetKVStore(m.key), tw.ours.GetKVStore(m.key), keys, commonRanges)
	}
	// The rollback is durable.
	tw.each(func(_ string, s multi) {
		if err := s.RollbackToVersion(4); err != nil {
			t.Fatal(err)
		}
	})
	tw.reopen()
	tw.load()
	tw.each(func(side string, s multi) {
		if v := s.LatestVersion(); v != 4 {
			t.Errorf("%s: reopened after a rollback at %d", side, v)
		}
	})
	if id := tw.ours.LastCommitID(); !bytes.Equal(id.Hash, hashes[3].Hash) {
		t.Errorf("ours: reopened after rollback: %v, want %v", id, hashes[3])
	}
	for _, m := range []*mount{acc, bank} {
		compareKV(t, "reopened after rollback "+m.key.Name(), tw.ref.GetKVStore(m.key), tw.ours.GetKVStore(m.key), keys, commonRanges)
	}
	tw.each(func(side string, s multi) {
		if err := s.RollbackToVersion(0); err == nil {
			t.Errorf("%s: RollbackToVersion(0) should fail", side)
		}
	})
}

// proofRuntime verifies the proofs of both stores: IAVL's and ours
// (ics23:smt), then the commit info's (ics23:simple).
func proofRuntime() *merkle.ProofRuntime {
	prt := rootmulti.DefaultProofRuntime()
	prt.RegisterOpDecoder(types.ProofOpSMTCommitment, types.CommitmentOpDecoder)
	return prt
}

func TestQuery(t *testing.T) {
	acc, bank := iavlMount("acc"), iavlMount("bank")
	db := &mount{key: types.NewKVStoreKey("db"), typ: types.StoreTypeDB}
	tr := &mount{key: types.NewTransientStoreKey("tr"), typ: types.StoreTypeTransient}
	tw := loadedTwin(t, acc, bank, db, tr)
	tw.set(acc.key, "a", "1", "b", "2", "p/1", "x", "p/2", "", "p\xff", "y", "q", "q")
	tw.commit()
	tw.set(acc.key, "a", "11", "p/3", "z")
	tw.del(acc.key, "b")
	tw.commit()
	tw.set(bank.key, "x", "1") // acc is the same at 2 and 3
	tw.commit()

	cases := []struct {
		path   string
		data   string
		height int64
		prove  bool
	}{
		{"/acc/key", "a", 0, false}, // height 0: the latest but one
		{"/acc/key", "a", 0, true},
		{"/acc/key", "a", 1, true},
		{"/acc/key", "a", 3, true},
		{"/acc/key", "b", 1, true},
		{"/acc/key", "b", 2, true}, // deleted: absence proof
		{"/acc/key", "zz", 3, true},
		{"/acc/key", "\x00", 3, true},
		{"/acc/key", "p/2", 1, false}, // an empty value
		{"/bank/key", "x", 3, true},
		{"/bank/key", "x", 2, false},
		{"/acc/subspace", "p/", 0, false},
		{"/acc/subspace", "p", 3, false},
		{"/acc/subspace", "none", 3, false},
		// Errors: both fail.
		{"acc/key", "a", 0, false},
		{"/nostore/key", "a", 0, false},
		{"/acc/key", "", 0, false},
		{"/acc/nopath", "a", 0, false},
		{"/acc", "a", 0, false},
		{"/db/key", "a", 0, false},
		{"/tr/key", "a", 0, false},
	}
	prt := proofRuntime()
	for _, tc := range cases {
		name := fmt.Sprintf("%s %q h=%d prove=%v", tc.path, tc.data, tc.height, tc.prove)
		req := func() *types.RequestQuery {
			return &types.RequestQuery{Path: tc.path, Data: []byte(tc.data), Height: tc.height, Prove: tc.prove}
		}
		refRes, refErr := tw.ref.Query(req())
		oursRes, oursErr := tw.ours.Query(req())
		if !sameError(refErr, oursErr) {
			t.Errorf("%s: errors: rootmulti %v, ours %v", name, refErr, oursErr)
			continue
		}
		if refErr != nil {
			continue
		}
		// (/subspace: rootmulti answers an empty []byte for no pairs,
		// ours nil; the same bytes on the wire.)
		nilness := tc.path != "/acc/subspace"
		if !bytes.Equal(refRes.Key, oursRes.Key) || !bytes.Equal(refRes.Value, oursRes.Value) || refRes.Height != oursRes.Height ||
			(nilness && (refRes.Value == nil) != (oursRes.Value == nil)) || refRes.Log != oursRes.Log || refRes.Code != oursRes.Code {
			t.Errorf("%s:\nrootmulti %+v\nours      %+v", name, refRes, oursRes)
		}
		if !tc.prove {
			if oursRes.ProofOps != nil {
				t.Errorf("%s: ours returned a proof unasked", name)
			}
			continue
		}
		storeName := strings.Split(tc.path, "/")[1]
		keyPath := merkle.KeyPath{}.AppendKey([]byte(storeName), merkle.KeyEncodingURL).AppendKey([]byte(tc.data), merkle.KeyEncodingURL).String()
		for _, sd := range tw.sides() {
			res := map[string]*types.ResponseQuery{"rootmulti": refRes, "ours": oursRes}[sd.name]
			ops := res.ProofOps
			if ops == nil || len(ops.Ops) != 2 || ops.Ops[1].Type != types.ProofOpSimpleMerkleCommitment || string(ops.Ops[1].Key) != storeName {
				t.Errorf("%s: %s proof ops %+v", name, sd.name, ops)
				continue
			}
			info, err := sd.s.GetCommitInfo(res.Height)
			if err != nil {
				t.Fatal(err)
			}
			if res.Value != nil {
				err = prt.VerifyValue(ops, info.Hash(), keyPath, res.Value)
			} else {
				err = prt.VerifyAbsence(ops, info.Hash(), keyPath)
			}
			if err != nil {
				t.Errorf("%s: %s proof does not verify against the app hash of %d: %v", name, sd.name, res.Height, err)
			}
		}
		if oursRes.ProofOps != nil && oursRes.ProofOps.Ops[0].Type != types.ProofOpSMTCommitment {
			t.Errorf("%s: ours proves with %s", name, oursRes.ProofOps.Ops[0].Type)
		}
	}

	// Deliberate difference: IAVL's /subspace ignores the height and reads
	// the working tree (uncommitted writes included); ours reads the
	// height asked, here compared with rootmulti's branch at that height.
	tw.set(acc.key, "p/4", "pending")
	for _, h := range []int64{1, 2} {
		res, err := tw.ours.Query(&types.RequestQuery{Path: "/acc/subspace", Data: []byte("p/"), Height: h})
		if err != nil || res.Height != h {
			t.Fatalf("ours /subspace at %d: %+v %v", h, res, err)
		}
		cms, err := tw.ref.CacheMultiStoreWithVersion(h)
		if err != nil {
			t.Fatal(err)
		}
		want := readRange(cms.GetKVStore(acc.key), []byte("p/"), types.PrefixEndBytes([]byte("p/")), false)
		if got := decodePairs(t, res.Value); fmtPairs(got) != fmtPairs(want) {
			t.Errorf("ours /subspace at %d: %s, rootmulti's data at that height %s", h, fmtPairs(got), fmtPairs(want))
		}
	}
	refRes, _ := tw.ref.Query(&types.RequestQuery{Path: "/acc/subspace", Data: []byte("p/"), Height: 1})
	if got := decodePairs(t, refRes.Value); len(got) != 4 {
		t.Errorf("rootmulti /subspace at 1 is expected to read the working tree: %s", fmtPairs(got))
	}

	// Deliberate difference: an empty value cannot be proven by ICS23's
	// SmtSpec (see the engine's README); IAVL proves it.
	if _, err := tw.ref.Query(&types.RequestQuery{Path: "/acc/key", Data: []byte("p/2"), Height: 3, Prove: true}); err != nil {
		t.Errorf("rootmulti: proving an empty value: %v", err)
	}
	res, err := tw.ours.Query(&types.RequestQuery{Path: "/acc/key", Data: []byte("p/2"), Height: 3, Prove: true})
	if err != nil || res.Value == nil || len(res.Value) != 0 || res.ProofOps == nil {
		t.Fatalf("ours: querying an empty value with a proof: %+v, %v", res, err)
	}
	info, err := tw.ours.GetCommitInfo(3)
	if err != nil {
		t.Fatal(err)
	}
	keyPath := merkle.KeyPath{}.AppendKey([]byte("acc"), merkle.KeyEncodingURL).AppendKey([]byte("p/2"), merkle.KeyEncodingURL).String()
	if prt.VerifyValue(res.ProofOps, info.Hash(), keyPath, res.Value) == nil {
		t.Error("ours: the proof of an empty value verifies; update the README and this test")
	}
}

// sameError reports whether both calls failed alike: both or neither, with
// the same ABCI code and message (the store's Go type named in a message
// aside).
func sameError(ref, ours error) bool {
	if (ref == nil) != (ours == nil) {
		return false
	}
	if ref == nil {
		return true
	}
	rSpace, rCode, rLog := errorsmod.ABCIInfo(ref, false)
	oSpace, oCode, oLog := errorsmod.ABCIInfo(ours, false)
	typeName := regexp.MustCompile(`\(type [^)]*\)`)
	return rSpace == oSpace && rCode == oCode && typeName.ReplaceAllString(rLog, "") == typeName.ReplaceAllString(oLog, "")
}

// decodePairs decodes a /subspace answer (kv.Pairs).
func decodePairs(t *testing.T, b []byte) []pair {
	t.Helper()
	var out []pair
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num != 1 || typ != protowire.BytesType {
			t.Fatalf("bad pairs encoding %x", b)
		}
		b = b[n:]
		msg, n := protowire.ConsumeBytes(b)
		if n < 0 {
			t.Fatalf("bad pairs encoding %x", b)
		}
		b = b[n:]
		var p pair
		for len(msg) > 0 {
			num, _, n := protowire.ConsumeTag(msg)
			if n < 0 {
				t.Fatalf("bad pair encoding %x", msg)
			}
			msg = msg[n:]
			v, n := protowire.ConsumeBytes(msg)
			if n < 0 {
				t.Fatalf("bad pair encoding %x", msg)
			}
			msg = msg[n:]
			if num == 1 {
				p.Key = string(v)
			} else {
				p.Value = string(v)
			}
		}
		out = append(out, p)
	}
	return out
}

func TestSnapshotRestore(t *testing.T) {
	acc, bank := iavlMount("acc"), iavlMount("bank")
	empty := iavlMount("empty") // never written
	tr := &mount{key: types.NewTransientStoreKey("tr"), typ: types.StoreTypeTransient}
	tw := loadedTwin(t, acc, bank, empty, tr)
	for h := 1; h <= 3; h++ {
		for i := range 20 * h {
			tw.set(acc.key, fmt.Sprintf("k%03d", i), fmt.Sprint(h))
		}
		tw.set(acc.key, "\x00", "", "\xff\xff", "ff")
		tw.set(bank.key, fmt.Sprintf("b%d", h), "")
		tw.set(tr.key, "t", "x")
		if h == 3 {
			tw.del(acc.key, "k000", "k007")
		}
		tw.commit()
	}
	keys := keysOf("k000", "k001", "k007", "k019", "k059", "\x00", "\xff\xff", "b1", "b2", "b3")
	for _, height := range []uint64{2, 3} {
		t.Run(fmt.Sprint("height ", height), func(t *testing.T) {
			refStream, oursStream := takeSnapshot(t, tw.ref, height), takeSnapshot(t, tw.ours, height)
			// Same stores, same leaves; IAVL adds its inner nodes.
			refStores, refLeaves, refInner := snapshotItems(t, refStream)
			oursStores, oursLeaves, oursInner := snapshotItems(t, oursStream)
			if !slices.Equal(refStores, oursStores) || !slices.Equal(oursStores, []string{"acc", "bank", "empty"}) {
				t.Errorf("snapshot stores: rootmulti %v, ours %v", refStores, oursStores)
			}
			for _, name := range oursStores {
				if refLeaves[name] != oursLeaves[name] || oursInner[name] != 0 || (refInner[name] == 0) != (name == "empty") {
					t.Errorf("store %s: leaves rootmulti %d ours %d, inner nodes rootmulti %d ours %d",
						name, refLeaves[name], oursLeaves[name], refInner[name], oursInner[name])
				}
			}
			if !bytes.Equal(oursStream, takeSnapshot(t, tw.ours, height)) {
				t.Error("ours: two snapshots of one height differ")
			}
			srcRef, err := tw.ref.CacheMultiStoreWithVersion(int64(height))
			if err != nil {
				t.Fatal(err)
			}
			wantInfo, err := tw.ours.GetCommitInfo(int64(height))
			if err != nil {
				t.Fatal(err)
			}
			// Ours into ours, and IAVL's into ours: same data as the
			// source at that height; ours into ours also the same app hash.
			for name, stream := range map[string][]byte{"ours": oursStream, "rootmulti": refStream} {
				dst := newTwin(t, acc, bank, empty, tr)
				dst.load()
				item, err := restoreSnapshot(dst.ours, height, stream)
				if err != nil {
					t.Fatalf("restoring %s's snapshot into ours: %v", name, err)
				}
				if item.Item != nil {
					t.Errorf("restore returned item %v", item)
				}
				id := dst.ours.LastCommitID()
				if id.Version != int64(height) {
					t.Errorf("%s's snapshot restored at version %d", name, id.Version)
				}
				if !bytes.Equal(id.Hash, wantInfo.Hash()) {
					t.Errorf("%s's snapshot restored: app hash %X, the source's %X", name, id.Hash, wantInfo.Hash())
				}
				for _, m := range []*mount{acc, bank, empty} {
					compareKV(t, name+"'s snapshot restored "+m.key.Name(), srcRef.GetKVStore(m.key), dst.ours.GetKVStore(m.key), keys, commonRanges)
				}
				// The restored store goes on like the source.
				if height == 3 {
					if !bytes.Equal(withWrite(t, dst.ours, acc.key, "next", "1"), withWrite(t, tw.ours, acc.key, "next", "1")) {
						t.Errorf("%s's snapshot restored: the next block's hash differs from the source's", name)
					}
				}
				// rootmulti restores its own snapshot to the same data.
				if name == "rootmulti" {
					if _, err := restoreSnapshot(dst.ref, height, stream); err != nil {
						t.Fatal(err)
					}
					for _, m := range []*mount{acc, bank} {
						compareKV(t, "both restored "+m.key.Name(), dst.ref.GetKVStore(m.key), dst.ours.GetKVStore(m.key), keys, commonRanges)
					}
				}
			}
		})
	}

	// An extension's item after the stores is handed back, by both.
	withExt := append(takeSnapshot(t, tw.ours, 3), extensionItem(t, "ext")...)
	refWithExt := append(takeSnapshot(t, tw.ref, 3), extensionItem(t, "ext")...)
	dst := loadedTwin(t, acc, bank, empty, tr)
	for _, sd := range dst.sides() {
		stream := map[string][]byte{"rootmulti": refWithExt, "ours": withExt}[sd.name]
		item, err := restoreSnapshot(sd.s, 3, stream)
		if err != nil {
			t.Fatalf("%s: restore with an extension: %v", sd.name, err)
		}
		if ext := item.GetExtension(); ext == nil || ext.Name != "ext" {
			t.Errorf("%s: restore returned %v, want the extension item", sd.name, item)
		}
	}
	// Restoring into a store that has versions fails in both.
	dst.each(func(side string, s multi) {
		if _, err := restoreSnapshot(s, 3, withExt); err == nil {
			t.Errorf("%s: restoring into a non-empty store should fail", side)
		}
	})
	// A snapshot naming a store not mounted fails in both.
	onlyAcc := loadedTwin(t, acc)
	onlyAcc.each(func(side string, s multi) {
		stream := map[string][]byte{"rootmulti": refWithExt, "ours": withExt}[side]
		if _, err := restoreSnapshot(s, 3, stream); err == nil || !strings.Contains(err.Error(), `cannot import into non-IAVL store "bank"`) {
			t.Errorf("%s: restoring an unknown store: %v", side, err)
		}
	})
	// Heights: 0 and future refused by both.
	tw.each(func(side string, s multi) {
		for _, h := range []uint64{0, 4} {
			if err := s.Snapshot(h, nopWriter{}); err == nil {
				t.Errorf("%s: Snapshot(%d) should fail", side, h)
			}
		}
	})
	if _, err := restoreSnapshot(tempOurs(t), 0, withExt); err == nil {
		t.Error("ours: Restore at height 0 should fail")
	}
}

// withWrite returns the working hash s would have with one more write,
// without keeping it: the write is made then undone by a reload.
func withWrite(t *testing.T, s *Store, key types.StoreKey, k, v string) []byte {
	t.Helper()
	s.GetKVStore(key).Set([]byte(k), []byte(v))
	h := s.WorkingHash()
	if err := s.LoadLatestVersion(); err != nil {
		t.Fatal(err)
	}
	return h
}

// TestRestoreIAVLSnapshot documents why ours leaves IAVL's
// inner nodes out: its own stream restores into ours, not into rootmulti
// (IAVL's importer needs the inner nodes); a chain never mixes the two,
// whose app hashes differ anyway.
func TestRestoreIAVLSnapshot(t *testing.T) {
	acc := iavlMount("acc")
	tw := loadedTwin(t, acc)
	for i := range 50 {
		tw.set(acc.key, fmt.Sprintf("k%02d", i), fmt.Sprint(i))
	}
	tw.commit()
	oursStream := takeSnapshot(t, tw.ours, 1)
	dst := loadedTwin(t, acc)
	if _, err := restoreSnapshot(dst.ref, 1, oursStream); err == nil || !strings.Contains(err.Error(), "invalid node structure") {
		t.Errorf("rootmulti restoring our leaves-only snapshot: %v", err)
	}
	if _, err := restoreSnapshot(dst.ours, 1, takeSnapshot(t, tw.ref, 1)); err != nil {
		t.Fatal(err)
	}
	compareKV(t, "restored", tw.ref.GetKVStore(acc.key), dst.ours.GetKVStore(acc.key), keysOf("k00", "k49"), commonRanges)
}

func TestInterBlockCache(t *testing.T) {
	acc, bank := iavlMount("acc"), iavlMount("bank")
	tw := newTwin(t, acc, bank)
	tw.beforeLoad = func(s multi) {
		s.SetInterBlockCache(cache.NewCommitKVStoreCacheManager(cache.DefaultCommitKVStoreCacheSize))
	}
	tw.beforeLoad(tw.ref)
	tw.beforeLoad(tw.ours)
	tw.load()
	keys := keysOf("a", "b", "c", "\x00")
	tw.set(acc.key, "a", "1", "b", "2", "\x00", "")
	tw.commit()
	_ = tw.ref.GetKVStore(acc.key).Get([]byte("a")) // cached
	_ = tw.ours.GetKVStore(acc.key).Get([]byte("a"))
	tw.set(acc.key, "a", "11")
	tw.del(acc.key, "b")
	compareKV(t, "cached", tw.ref.GetKVStore(acc.key), tw.ours.GetKVStore(acc.key), keys, commonRanges)
	tw.commit()
	compareKV(t, "cached, committed", tw.ref.GetKVStore(acc.key), tw.ours.GetKVStore(acc.key), keys, commonRanges)
	// GetKVStore serves the cache; the commit store getters unwrap it.
	tw.each(func(side string, s multi) {
		if _, ok := s.GetKVStore(acc.key).(*cache.CommitKVStoreCache); !ok {
			t.Errorf("%s: GetKVStore returns %T, not the cache", side, s.GetKVStore(acc.key))
		}
		for name, st := range map[string]types.Store{"GetStore": s.GetStore(acc.key)} {
			if _, ok := st.(*cache.CommitKVStoreCache); ok {
				t.Errorf("%s: %s returns the cache", side, name)
			}
		}
	})
	// Loading again (as a snapshot restore does) keeps the store served
	// through the cache and the one committed the same.
	tw.load()
	tw.set(acc.key, "c", "3")
	tw.commit()
	for _, m := range []*mount{acc, bank} {
		rc, oc := tw.ref.GetStore(m.key).(types.CommitKVStore).LastCommitID(), tw.ours.GetStore(m.key).(types.CommitKVStore).LastCommitID()
		if rc.Version != oc.Version || oc.Version != 3 {
			t.Errorf("%s after a reload: LastCommitID version rootmulti %d, ours %d", m.key.Name(), rc.Version, oc.Version)
		}
	}
	compareKV(t, "cached, reloaded", tw.ref.GetKVStore(acc.key), tw.ours.GetKVStore(acc.key), keys, commonRanges)
	// A rollback with the cache: ours reads the rolled-back state.
	// (rootmulti's cache keeps serving the values written after the
	// target, so only ours is checked.)
	if err := tw.ours.RollbackToVersion(2); err != nil {
		t.Fatal(err)
	}
	if v := tw.ours.GetKVStore(acc.key).Get([]byte("c")); v != nil {
		t.Errorf("ours: after a rollback with the inter-block cache, c = %q", v)
	}
}

// TestIAVLOptions: the IAVL tuning options are accepted (ours ignores
// them) and the store reads as rootmulti does.
func TestIAVLOptions(t *testing.T) {
	acc := iavlMount("acc")
	tw := newTwin(t, acc)
	tw.each(func(side string, s multi) {
		s.SetIAVLCacheSize(10)
		s.SetIAVLDisableFastNode(true)
		s.SetIAVLSyncPruning(true)
	})
	tw.load()
	for i := range 30 {
		tw.set(acc.key, fmt.Sprintf("k%02d", i), fmt.Sprint(i))
	}
	tw.commit()
	tw.del(acc.key, "k03")
	compareKV(t, "with IAVL options", tw.ref.GetKVStore(acc.key), tw.ours.GetKVStore(acc.key), keysOf("k00", "k03", "k29"), commonRanges)
	tw.commit()
}

// TestConcurrentReadsDuringCommits: queries, branches at past heights and
// the commit getters run alongside commits (baseapp's query goroutines);
// meant for -race.
func TestConcurrentReadsDuringCommits(t *testing.T) {
	s := tempOurs(t)
	acc := types.NewKVStoreKey("acc")
	s.MountStoreWithDB(acc, types.StoreTypeIAVL, nil)
	if err := s.LoadLatestVersion(); err != nil {
		t.Fatal(err)
	}
	s.SetPruning(pruningtypes.NewCustomPruningOptions(2, 1))
	s.GetKVStore(acc).Set([]byte("a"), []byte("0"))
	s.Commit()
	blocks := 40
	if testing.Short() {
		blocks = 15
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var failures sync.Map
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				latest := s.LatestVersion()
				res, err := s.Query(&types.RequestQuery{Path: "/acc/key", Data: []byte("a"), Height: latest, Prove: true})
				if err != nil && !errors.Is(err, types.ErrInvalidRequest) {
					failures.Store("query", err)
				} else if err == nil && res.Log == "" && string(res.Value) != fmt.Sprint(latest-1) {
					failures.Store("query value", fmt.Sprintf("at %d: %q", latest, res.Value))
				}
				if cms, err := s.CacheMultiStoreWithVersion(latest); err == nil {
					func() {
						defer func() {
							// The height may be pruned while read.
							if r := recover(); r != nil && !strings.Contains(fmt.Sprint(r), "pruned") {
								failures.Store("branch", r)
							}
						}()
						_ = cms.GetKVStore(acc).Get([]byte("a"))
					}()
				}
				_ = s.LastCommitID()
				_, _ = s.GetCommitInfo(latest)
				_ = s.GetCommitKVStore(acc).LastCommitID()
			}
		}()
	}
	for h := 2; h <= blocks; h++ {
		s.GetKVStore(acc).Set([]byte("a"), []byte(fmt.Sprint(h-1)))
		_ = s.GetKVStore(acc).Get([]byte("a"))
		s.Commit()
	}
	close(stop)
	wg.Wait()
	failures.Range(func(k, v any) bool {
		t.Errorf("%v: %v", k, v)
		return true
	})
}

// TestSnapshotWhileCommitting: as baseapp's snapshot manager does, take
// snapshots of the snapshot heights in the background while blocks go on
// committing and pruning, then release them (PruneSnapshotHeight); each
// restores to the app hash of its height. Meant for -race.
func TestSnapshotWhileCommitting(t *testing.T) {
	src := tempOurs(t)
	acc, bank := types.NewKVStoreKey("acc"), types.NewKVStoreKey("bank")
	for _, k := range []types.StoreKey{acc, bank} {
		src.MountStoreWithDB(k, types.StoreTypeIAVL, nil)
	}
	src.SetPruning(pruningtypes.NewCustomPruningOptions(1, 1))
	src.SetSnapshotInterval(4)
	if err := src.LoadLatestVersion(); err != nil {
		t.Fatal(err)
	}
	blocks := 24
	if testing.Short() {
		blocks = 12
	}
	type taken struct {
		height int64
		stream []byte
		err    error
	}
	results := make(chan taken, blocks)
	var wg sync.WaitGroup
	hashes := map[int64][]byte{}
	for h := int64(1); h <= int64(blocks); h++ {
		for i := range 30 {
			src.GetKVStore(acc).Set([]byte(fmt.Sprintf("k%03d", (int(h)*7+i)%90)), []byte(fmt.Sprint(h)))
		}
		src.GetKVStore(bank).Set([]byte(fmt.Sprint(h)), []byte{})
		hashes[h] = src.Commit().Hash
		if h%4 == 0 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var buf bytes.Buffer
				err := src.Snapshot(uint64(h), protoio.NewDelimitedWriter(&buf))
				src.PruneSnapshotHeight(h)
				results <- taken{h, buf.Bytes(), err}
			}()
		}
	}
	wg.Wait()
	close(results)
	n := 0
	for r := range results {
		n++
		if r.err != nil {
			t.Errorf("snapshot of %d: %v", r.height, r.err)
			continue
		}
		dst := openOurs(t, t.TempDir())
		for _, k := range []types.StoreKey{acc, bank} {
			dst.MountStoreWithDB(k, types.StoreTypeIAVL, nil)
		}
		if err := dst.LoadLatestVersion(); err != nil {
			t.Fatal(err)
		}
		if _, err := restoreSnapshot(dst, uint64(r.height), r.stream); err != nil {
			t.Errorf("restoring the snapshot of %d: %v", r.height, err)
		} else if id := dst.LastCommitID(); id.Version != r.height || !bytes.Equal(id.Hash, hashes[r.height]) {
			t.Errorf("the snapshot of %d restores to %v, want hash %X", r.height, id, hashes[r.height])
		}
		if err := dst.Close(); err != nil {
			t.Error(err)
		}
	}
	if n != blocks/4 {
		t.Errorf("%d snapshots", n)
	}
	// The released heights are pruned in the end.
	src.GetKVStore(acc).Set([]byte("last"), []byte("1"))
	src.Commit()
	waitFor(t, "pruning past the released snapshots", 10*time.Second, func() bool {
		return src.Engine().EarliestVersion() >= uint64(blocks)
	})
}

// TestTreeStoreCommitRefused: a store of ours cannot commit alone
// (rootmulti's IAVL stores can, which breaks the multistore's commit
// info); the multistore commits them together.
func TestTreeStoreCommitRefused(t *testing.T) {
	s := tempOurs(t)
	acc := types.NewKVStoreKey("acc")
	s.MountStoreWithDB(acc, types.StoreTypeIAVL, nil)
	if err := s.LoadLatestVersion(); err != nil {
		t.Fatal(err)
	}
	if msg := recovered(func() { s.GetCommitKVStore(acc).Commit() }); !strings.Contains(msg, "cannot commit alone") {
		t.Errorf("treeStore.Commit: %q", msg)
	}
	// Its pruning options are the multistore's.
	st := s.GetCommitKVStore(acc)
	st.SetPruning(pruningtypes.NewPruningOptions(pruningtypes.PruningEverything))
	if st.GetPruning() != pruningtypes.NewPruningOptions(pruningtypes.PruningUndefined) {
		t.Error("treeStore has pruning options of its own")
	}
}
