package multistore

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"cosmossdk.io/log/v2"
	"github.com/cometbft/cometbft/crypto/merkle"
	dbm "github.com/cosmos/cosmos-db"
	"github.com/cosmos/cosmos-sdk/store/v2/rootmulti"
	"github.com/cosmos/cosmos-sdk/store/v2/types"

	"github.com/nomtstore/nomtstore/migrate"
)

// TestMigrateFromStoreV2IAVL: the state of a store/v2 node on IAVL
// (rootmulti v2, iavl v1.2.8 over goleveldb, an empty store among them:
// IAVL reads its empty roots there as missing versions) migrates into a
// v0.54 store that reports IAVL's app hash at the switch height, holds the
// same keys and values, answers IAVL's proofs there from the IAVL data,
// and commits its own roots from the next height on.
func TestMigrateFromStoreV2IAVL(t *testing.T) {
	appDB, err := dbm.NewDB("application", dbm.GoLevelDBBackend, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = appDB.Close() }()
	iavlStore := rootmulti.NewStore(appDB, log.NewNopLogger())
	bank, acc, empty := types.NewKVStoreKey("bank"), types.NewKVStoreKey("acc"), types.NewKVStoreKey("authz")
	for _, k := range []*types.KVStoreKey{bank, acc, empty} {
		iavlStore.MountStoreWithDB(k, types.StoreTypeIAVL, nil)
	}
	if err := iavlStore.LoadLatestVersion(); err != nil {
		t.Fatal(err)
	}
	var last types.CommitID
	for h := 1; h <= 5; h++ {
		for i := range 50 {
			iavlStore.GetKVStore(bank).Set(fmt.Appendf(nil, "b%03d", i*h%97), fmt.Appendf(nil, "v%d-%d", h, i))
			iavlStore.GetKVStore(acc).Set(fmt.Appendf(nil, "a%02d", i%17), fmt.Appendf(nil, "%d", h))
		}
		last = iavlStore.Commit()
	}

	src, err := migrate.OpenSource(appDB, 0, DecodeCommitInfo)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "nomtstore")
	res, err := migrate.FromIAVL(context.Background(), src, dir, migrate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Height != last.Version || !bytes.Equal(res.AppHash, last.Hash) {
		t.Fatalf("migrated height %d hash %X, IAVL committed %d %X", res.Height, res.AppHash, last.Version, last.Hash)
	}

	s, err := New(dir, log.NewNopLogger(), Options{AppDB: appDB})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	for _, k := range []*types.KVStoreKey{bank, acc, empty} {
		s.MountStoreWithDB(k, types.StoreTypeIAVL, nil)
	}
	if err := s.LoadLatestVersion(); err != nil {
		t.Fatal(err)
	}
	if id := s.LastCommitID(); id.Version != last.Version || !bytes.Equal(id.Hash, last.Hash) {
		t.Fatalf("the migrated store reports %d %X, IAVL's was %d %X", id.Version, id.Hash, last.Version, last.Hash)
	}
	for _, k := range []*types.KVStoreKey{bank, acc, empty} {
		compareKV(t, "migrated "+k.Name(), iavlStore.GetKVStore(k), s.GetKVStore(k), nil, []iterRange{{nil, nil}})
	}
	// IAVL's proof at the switch height, against IAVL's app hash.
	key := []byte("b001")
	resp, err := s.Query(&types.RequestQuery{Path: "/bank/key", Data: key, Height: last.Version, Prove: true})
	if err != nil {
		t.Fatal(err)
	}
	if ops := resp.ProofOps.GetOps(); len(ops) != 2 || ops[0].Type != types.ProofOpIAVLCommitment {
		t.Fatalf("proof ops at the switch height: %+v", resp.ProofOps)
	}
	keyPath := merkle.KeyPath{}.AppendKey([]byte("bank"), merkle.KeyEncodingURL).AppendKey(key, merkle.KeyEncodingURL).String()
	if err := proofRuntime().VerifyValue(resp.ProofOps, last.Hash, keyPath, resp.Value); err != nil {
		t.Fatalf("IAVL's proof at the switch height: %v", err)
	}
	// The next commit is nomtstore's own.
	s.GetKVStore(bank).Set([]byte("after"), []byte("switch"))
	next := s.Commit()
	if next.Version != last.Version+1 || bytes.Equal(next.Hash, last.Hash) {
		t.Fatalf("commit after the switch: %d %X", next.Version, next.Hash)
	}
}
