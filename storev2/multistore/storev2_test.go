package multistore

import (
	"fmt"
	"testing"

	pruningtypes "github.com/cosmos/cosmos-sdk/store/v2/pruning/types"
	"github.com/cosmos/cosmos-sdk/store/v2/types"
)

// The tests of this file cover what store/v2 added to the CommitMultiStore
// of v1.1.2 (object stores, EarliestVersion, announced snapshots), against
// store/v2's rootmulti as the other tests of this package are.

// TestObjectStores: a store of Go values (StoreTypeObject) holds what is
// set in it, directly and through branches, until the commit empties it;
// it is in no commit info and no snapshot; the getters of the wrong kind
// panic as rootmulti's do.
func TestObjectStores(t *testing.T) {
	acc := iavlMount("acc")
	obj := &mount{key: types.NewObjectStoreKey("obj"), typ: types.StoreTypeObject}
	tw := loadedTwin(t, acc, obj)
	type payload struct{ n int }
	tw.each(func(side string, s multi) {
		store := s.GetObjKVStore(obj.key)
		store.Set([]byte("a"), &payload{1})
		branch := s.CacheMultiStore()
		branch.GetObjKVStore(obj.key).Set([]byte("b"), &payload{2})
		if got := store.Get([]byte("b")); got != nil {
			t.Errorf("%s: a branch's write is visible before Write: %v", side, got)
		}
		branch.Write()
		for k, want := range map[string]int{"a": 1, "b": 2} {
			got, ok := store.Get([]byte(k)).(*payload)
			if !ok || got.n != want {
				t.Errorf("%s: object %s = %v, want %d", side, k, store.Get([]byte(k)), want)
			}
		}
		s.GetKVStore(acc.key).Set([]byte("k"), []byte("v"))
	})
	ref, ours := tw.commit()
	for side, id := range map[string]types.CommitID{"rootmulti": ref, "ours": ours} {
		if id.Version != 1 {
			t.Errorf("%s: committed version %d", side, id.Version)
		}
	}
	tw.each(func(side string, s multi) {
		if got := s.GetObjKVStore(obj.key).Get([]byte("a")); got != nil {
			t.Errorf("%s: the commit left %v in the object store", side, got)
		}
		info, err := s.(interface {
			GetCommitInfo(int64) (*types.CommitInfo, error)
		}).GetCommitInfo(1)
		if err != nil {
			t.Fatalf("%s: %v", side, err)
		}
		if got := fmt.Sprint(storeNames(info)); got != "[acc@1]" {
			t.Errorf("%s: commit info stores %s", side, got)
		}
	})
	for _, call := range []struct {
		name string
		fn   func(s multi)
	}{
		{"GetKVStore of an object store", func(s multi) { s.GetKVStore(obj.key) }},
		{"GetObjKVStore of a KV store", func(s multi) { s.GetObjKVStore(acc.key) }},
		{"GetObjKVStore of an unknown key", func(s multi) { s.GetObjKVStore(types.NewObjectStoreKey("nope")) }},
	} {
		refMsg, oursMsg := recovered(func() { call.fn(tw.ref) }), recovered(func() { call.fn(tw.ours) })
		if refMsg == "" || refMsg != oursMsg {
			t.Errorf("%s panics: rootmulti %q, ours %q", call.name, refMsg, oursMsg)
		}
	}
	stores, _, _ := snapshotItems(t, takeSnapshot(t, tw.ours, 1))
	if fmt.Sprint(stores) != "[acc]" {
		t.Errorf("ours: snapshot of stores %v", stores)
	}
	// An object store needs an object store key, as in rootmulti.
	bad := newTwin(t, &mount{key: types.NewKVStoreKey("obj2"), typ: types.StoreTypeObject})
	refErr, oursErr := bad.ref.LoadLatestVersion(), bad.ours.LoadLatestVersion()
	if refErr == nil || oursErr == nil {
		t.Errorf("an object store under a KV store key: rootmulti %v, ours %v", refErr, oursErr)
	}
}

// TestEarliestVersion: 1 before any commit and while nothing is pruned,
// as rootmulti reports, then the earliest version pruning kept (ours once
// the background pruning is done).
func TestEarliestVersion(t *testing.T) {
	acc := iavlMount("acc")
	tw := pruneTwin(t, pruningtypes.NewCustomPruningOptions(2, 3), 0, acc)
	tw.each(func(side string, s multi) {
		if got := s.EarliestVersion(); got != 1 {
			t.Errorf("%s: EarliestVersion before any commit: %d", side, got)
		}
	})
	for h := 1; h <= 8; h++ {
		tw.set(acc.key, "k", fmt.Sprint(h))
		tw.commit()
		if h == 2 {
			tw.each(func(side string, s multi) {
				if got := s.EarliestVersion(); got != 1 {
					t.Errorf("%s: EarliestVersion before pruning: %d", side, got)
				}
			})
		}
	}
	// At 6: up to 6-1-2 = 3.
	waitReadable(t, tw, 4)
	if ref, ours := tw.ref.EarliestVersion(), tw.ours.EarliestVersion(); ref != 4 || ours != 4 {
		t.Errorf("EarliestVersion after pruning to 3: rootmulti %d, ours %d", ref, ours)
	}
	tw.reopen()
	tw.load()
	if ref, ours := tw.ref.EarliestVersion(), tw.ours.EarliestVersion(); ref != ours {
		t.Errorf("EarliestVersion after a restart: rootmulti %d, ours %d", ref, ours)
	}
}

// TestAnnouncedSnapshotHoldsPruning: a snapshot the snapshot manager
// announced keeps its height from pruning until it is done, where the
// completed snapshots alone would let pruning reach it.
func TestAnnouncedSnapshotHoldsPruning(t *testing.T) {
	acc := iavlMount("acc")
	tw := pruneTwin(t, pruningtypes.NewCustomPruningOptions(1, 1), 4, acc)
	commitTo := func(h int64) {
		for tw.ref.LatestVersion() < h {
			tw.set(acc.key, "k", fmt.Sprint(tw.ref.LatestVersion()+1))
			tw.commit()
		}
	}
	commitTo(9)
	tw.each(func(_ string, s multi) {
		s.PruneSnapshotHeight(4)
		s.PruneSnapshotHeight(8)
		s.(interface{ AnnounceSnapshotHeight(int64) }).AnnounceSnapshotHeight(10)
	})
	commitTo(12)
	waitReadable(t, tw, 10) // completed snapshots allow up to 11; 10 is in flight
	tw.each(func(_ string, s multi) { s.PruneSnapshotHeight(10) })
	commitTo(13)
	waitReadable(t, tw, 12) // at 13: up to min(13-2, 8+4-1)
}
