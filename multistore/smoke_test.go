package multistore

import (
	"testing"

	"cosmossdk.io/log"
	"cosmossdk.io/store/types"
)

func TestSmoke(t *testing.T) {
	dir := t.TempDir()
	s, err := New(dir, log.NewNopLogger(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	bank := types.NewKVStoreKey("bank")
	s.MountStoreWithDB(bank, types.StoreTypeIAVL, nil)
	if err := s.LoadLatestVersion(); err != nil {
		t.Fatal(err)
	}
	kv := s.GetKVStore(bank)
	kv.Set([]byte("a"), []byte("1"))
	kv.Set([]byte("b"), []byte{})
	if string(kv.Get([]byte("a"))) != "1" || !kv.Has([]byte("b")) {
		t.Fatal("read your writes")
	}
	h := s.WorkingHash()
	id := s.Commit()
	if string(id.Hash) != string(h) || id.Version != 1 {
		t.Fatalf("commit %v vs working %x", id, h)
	}
	kv.Set([]byte("a"), []byte("2"))
	s.Commit()
	res, err := s.Query(&types.RequestQuery{Path: "/bank/key", Data: []byte("a"), Height: 1, Prove: true})
	if err != nil || string(res.Value) != "1" || len(res.ProofOps.Ops) != 2 {
		t.Fatalf("query %+v %v", res, err)
	}
	cms, err := s.CacheMultiStoreWithVersion(1)
	if err != nil || string(cms.GetKVStore(bank).Get([]byte("a"))) != "1" {
		t.Fatal("cms at 1", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = New(dir, log.NewNopLogger(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.MountStoreWithDB(bank, types.StoreTypeIAVL, nil)
	if err := s.LoadLatestVersion(); err != nil {
		t.Fatal(err)
	}
	if s.LastCommitID().Version != 2 || string(s.GetKVStore(bank).Get([]byte("a"))) != "2" {
		t.Fatal("reopen")
	}
}
