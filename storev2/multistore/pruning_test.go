package multistore

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"cosmossdk.io/log/v2"
	dbm "github.com/cosmos/cosmos-db"
	sdkpruning "github.com/cosmos/cosmos-sdk/store/v2/pruning"
	pruningtypes "github.com/cosmos/cosmos-sdk/store/v2/pruning/types"

	"github.com/nomtstore/nomtstore/pruning"
)

// memMeta keeps the pruning manager's records in memory.
type memMeta map[string][]byte

func (m memMeta) GetMeta(name string) ([]byte, error) { return m[name], nil }

func (m memMeta) PutMeta(name string, value []byte) error {
	m[name] = slices.Clone(value)
	return nil
}

// TestPruningManagerMatchesStoreV2 drives the shared pruning manager, as
// this line sets it up, and store/v2's with the same random options,
// snapshot interval, announced and completed snapshots (late and out of
// order) and restarts, and compares their prune heights at every height.
func TestPruningManagerMatchesStoreV2(t *testing.T) {
	strategies := []pruningtypes.PruningOptions{
		pruningtypes.NewPruningOptions(pruningtypes.PruningDefault),
		pruningtypes.NewPruningOptions(pruningtypes.PruningEverything),
		pruningtypes.NewPruningOptions(pruningtypes.PruningNothing),
		pruningtypes.NewCustomPruningOptions(2, 10),
		pruningtypes.NewCustomPruningOptions(100, 10),
		pruningtypes.NewCustomPruningOptions(7, 13),
	}
	seeds := uint64(40)
	if testing.Short() {
		seeds = 12
	}
	for seed := range seeds {
		rng := rand.New(rand.NewPCG(seed, 2))
		opts := strategies[rng.IntN(len(strategies))]
		interval := []uint64{0, 10, 15, 50}[rng.IntN(4)]
		t.Run(fmt.Sprintf("seed%d-%+v-interval%d", seed, opts, interval), func(t *testing.T) {
			sdkDB := dbm.NewMemDB()
			meta := memMeta{}
			start := func() (*pruning.Manager, *sdkpruning.Manager) {
				ours := pruning.NewManager(meta, nil)
				ours.DistrustAfterRestart()
				sdk := sdkpruning.NewManager(sdkDB, log.NewNopLogger())
				ours.SetOptions(PruningFromSDK(opts))
				sdk.SetOptions(opts)
				ours.SetSnapshotInterval(interval)
				sdk.SetSnapshotInterval(interval)
				if err := errors.Join(ours.LoadSnapshotHeights(), sdk.LoadSnapshotHeights(sdkDB)); err != nil {
					t.Fatal(err)
				}
				return ours, sdk
			}
			ours, sdk := start()
			var inflight []int64
			for h := int64(1); h <= 1500; h++ {
				if got, want := ours.PruneHeight(h), sdk.GetPruningHeight(h); got != want {
					t.Fatalf("height %d: prune to %d, store/v2 says %d (in flight %v)", h, got, want, inflight)
				}
				if interval > 0 && h%int64(interval) == 0 {
					ours.AnnounceSnapshotHeight(h)
					sdk.AnnounceSnapshotHeight(h)
					inflight = append(inflight, h)
				}
				if len(inflight) > 0 && rng.IntN(4) == 0 {
					// A snapshot in flight completes, maybe out of order.
					i := rng.IntN(len(inflight))
					done := inflight[i]
					inflight = slices.Delete(inflight, i, i+1)
					if err := ours.HandleSnapshotHeight(done); err != nil {
						t.Fatal(err)
					}
					sdk.HandleSnapshotHeight(done)
				}
				if rng.IntN(200) == 0 {
					ours, sdk = start()
					inflight = nil // no snapshot survives a restart
				}
			}
		})
	}
}
