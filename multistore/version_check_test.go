package multistore

import (
	"fmt"
	"strings"
	"testing"

	"cosmossdk.io/log"
	"cosmossdk.io/store/types"

	"github.com/nomtstore/nomtstore/commitment"
	"github.com/nomtstore/nomtstore/commitment/vfs"
)

// TestCommitRefusesAVersionMismatch: a store whose loaded version is not
// the engine's (LoadVersion(0) on a non-empty store) refuses to commit
// before the engine commits anything, instead of writing a version whose
// commit info names another height and panicking after it is durable.
func TestCommitRefusesAVersionMismatch(t *testing.T) {
	key := types.NewKVStoreKey("bank")
	fs := vfs.NewCrashFS(1)
	open := func() *Store {
		s, err := New("/store", log.NewNopLogger(), Options{Engine: commitment.Options{FS: fs, InitialBuckets: 64, PebbleCacheBytes: 1 << 20}})
		if err != nil {
			t.Fatal(err)
		}
		s.MountStoreWithDB(key, types.StoreTypeIAVL, nil)
		return s
	}
	s := open()
	if err := s.LoadLatestVersion(); err != nil {
		t.Fatal(err)
	}
	for v := range 3 {
		s.GetKVStore(key).Set([]byte("k"), fmt.Appendf(nil, "v%d", v+1))
		s.Commit()
	}
	if err := s.LoadVersion(0); err != nil {
		t.Fatal(err)
	}
	s.GetKVStore(key).Set([]byte("k"), []byte("v4"))
	func() {
		defer func() {
			r := recover()
			if r == nil {
				t.Fatal("a commit at version 1 of a store at version 3 went through")
			}
			if msg := fmt.Sprint(r); !strings.Contains(msg, "nothing was committed") {
				t.Fatalf("panic %q does not say the commit was refused before the engine committed", msg)
			}
		}()
		s.Commit()
	}()
	if v := s.Engine().Version(); v != 3 {
		t.Fatalf("the refused commit moved the engine to version %d", v)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open()
	defer func() { _ = s.Close() }()
	if err := s.LoadLatestVersion(); err != nil {
		t.Fatal(err)
	}
	if id := s.LastCommitID(); id.Version != 3 {
		t.Fatalf("reopened at %d, want 3", id.Version)
	}
	s.GetKVStore(key).Set([]byte("k"), []byte("v4"))
	if id := s.Commit(); id.Version != 4 {
		t.Fatalf("the next commit made version %d", id.Version)
	}
	info, err := s.GetCommitInfo(4)
	if err != nil || info.Version != 4 {
		t.Fatalf("commit info of version 4: %+v, %v", info, err)
	}
}
