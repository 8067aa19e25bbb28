package multistore

import (
	"fmt"
	"testing"
	"time"

	"cosmossdk.io/log"
	pruningtypes "cosmossdk.io/store/pruning/types"
	"cosmossdk.io/store/types"

	"github.com/nomtstore/nomtstore/commitment"
	"github.com/nomtstore/nomtstore/commitment/vfs"
)

// TestPruningBacklogHoldsUpNeitherCloseNorRollback: an archive node that
// turns pruning on has every version it kept to delete. Closing the store
// (SIGTERM) and an in-process rollback stop that run between two versions
// instead of waiting for the backlog; what was deleted stays deleted, and
// the rest is pruned later.
func TestPruningBacklogHoldsUpNeitherCloseNorRollback(t *testing.T) {
	versions := 1500
	if testing.Short() {
		versions = 400
	}
	key := types.NewKVStoreKey("bank")
	tests := []struct {
		name string
		stop func(t *testing.T, s *Store)
	}{
		{"close", func(t *testing.T, s *Store) {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		}},
		{"rollback", func(t *testing.T, s *Store) {
			target := s.LastCommitID().Version - 1
			if err := s.RollbackToVersion(target); err != nil {
				t.Fatal(err)
			}
			if got := s.LastCommitID().Version; got != target {
				t.Fatalf("rolled back to %d, want %d", got, target)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := vfs.NewCrashFS(1)
			open := func(p pruningtypes.PruningOptions) *Store {
				s, err := New("/store", log.NewNopLogger(), Options{Engine: commitment.Options{FS: fs, InitialBuckets: 1024, PebbleCacheBytes: 8 << 20}})
				if err != nil {
					t.Fatal(err)
				}
				s.MountStoreWithDB(key, types.StoreTypeIAVL, nil)
				s.SetPruning(p)
				if err := s.LoadLatestVersion(); err != nil {
					t.Fatal(err)
				}
				return s
			}
			commit := func(s *Store) types.CommitID {
				kv := s.GetKVStore(key)
				for i := range 4 {
					kv.Set(fmt.Appendf(nil, "k%d", (int(s.LastCommitID().Version)*4+i)%500), fmt.Appendf(nil, "v%d", s.LastCommitID().Version))
				}
				return s.Commit()
			}
			s := open(pruningtypes.NewPruningOptions(pruningtypes.PruningNothing))
			for range versions {
				commit(s)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			// Pruning turned on: the next commit at an interval asks for
			// every version but the last few.
			s = open(pruningtypes.NewCustomPruningOptions(2, 10))
			for s.PruningStats().Requested == 0 {
				commit(s)
			}
			requested := s.PruningStats().Requested
			deadline := time.Now().Add(time.Minute)
			for s.Engine().EarliestVersion() < 3 {
				if time.Now().After(deadline) {
					t.Fatal("pruning never started")
				}
				time.Sleep(100 * time.Microsecond)
			}
			start := time.Now()
			tc.stop(t, s)
			took := time.Since(start)
			if tc.name == "close" {
				s = open(pruningtypes.NewCustomPruningOptions(2, 10))
			}
			earliest := s.Engine().EarliestVersion()
			t.Logf("%s took %v; pruning had reached %d of %d", tc.name, took, earliest, requested+1)
			if earliest+uint64(versions)/3 > requested {
				t.Fatalf("%s waited for the pruning backlog: the earliest version is %d, pruning asked for %d (%v)", tc.name, earliest, requested+1, took)
			}
			// The rest is pruned once the worker runs again.
			commit(s)
			for i := 0; s.PruningStats().Requested < requested || s.Engine().EarliestVersion() <= requested; i++ {
				if time.Now().After(deadline) {
					t.Fatalf("pruning did not finish: %+v", s.PruningStats())
				}
				if i%10 == 0 {
					commit(s)
				}
				time.Sleep(time.Millisecond)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
