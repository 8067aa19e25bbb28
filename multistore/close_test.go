package multistore

import (
	"errors"
	"testing"

	"cosmossdk.io/store/types"

	"github.com/nomtstore/nomtstore/commitment"
)

// TestCloseTwice: the SDK's server closes the app twice on shutdown; the
// second Close returns nil, and the directory opens again after it. A
// Close refused while an iterator is open leaves the store open, and a
// Close after the iterator is closed succeeds.
func TestCloseTwice(t *testing.T) {
	dir := t.TempDir()
	key := types.NewKVStoreKey("bank")
	s := openOurs(t, dir)
	s.MountStoreWithDB(key, types.StoreTypeIAVL, nil)
	if err := s.LoadLatestVersion(); err != nil {
		t.Fatal(err)
	}
	s.GetKVStore(key).Set([]byte("k"), []byte("v"))
	s.Commit()

	view, err := s.CacheMultiStoreWithVersion(1)
	if err != nil {
		t.Fatal(err)
	}
	it := view.GetKVStore(key).Iterator(nil, nil)
	if err := s.Close(); !errors.Is(err, commitment.ErrIteratorsOpen) {
		t.Fatalf("Close with an iterator open: %v, want %v", err, commitment.ErrIteratorsOpen)
	}
	if !it.Valid() || string(it.Value()) != "v" {
		t.Fatal("the iterator lost its store when Close was refused")
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	s = openOurs(t, dir)
	s.MountStoreWithDB(key, types.StoreTypeIAVL, nil)
	if err := s.LoadLatestVersion(); err != nil {
		t.Fatal(err)
	}
	if got := s.GetKVStore(key).Get([]byte("k")); string(got) != "v" {
		t.Fatalf("after reopening: %q", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
