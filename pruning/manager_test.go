package pruning

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"cosmossdk.io/log"
	sdkpruning "cosmossdk.io/store/pruning"
	"cosmossdk.io/store/pruning/types"
	dbm "github.com/cosmos/cosmos-db"
)

// memMeta is a MetaStore in memory, which can be made to fail.
type memMeta struct {
	records map[string][]byte
	fail    error
}

func newMemMeta() *memMeta { return &memMeta{records: map[string][]byte{}} }

func (m *memMeta) GetMeta(name string) ([]byte, error) { return m.records[name], m.fail }

func (m *memMeta) PutMeta(name string, value []byte) error {
	if m.fail != nil {
		return m.fail
	}
	m.records[name] = value
	return nil
}

func TestPresets(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   types.PruningOptions
		height int64
		want   int64
	}{
		{"default before keep-recent", types.NewPruningOptions(types.PruningDefault), 362880, 0},
		{"default off interval", types.NewPruningOptions(types.PruningDefault), 362891, 0},
		{"default", types.NewPruningOptions(types.PruningDefault), 362890, 9},
		{"everything", types.NewPruningOptions(types.PruningEverything), 100, 97},
		{"everything off interval", types.NewPruningOptions(types.PruningEverything), 101, 0},
		{"everything at keep-recent", types.NewPruningOptions(types.PruningEverything), 2, 0},
		{"nothing", types.NewPruningOptions(types.PruningNothing), 100, 0},
		{"custom", types.NewCustomPruningOptions(100, 10), 1000, 899},
		{"custom interval 25", types.NewCustomPruningOptions(5, 25), 50, 44},
		{"custom interval 25 off", types.NewCustomPruningOptions(5, 25), 60, 0},
		{"string default", types.NewPruningOptionsFromString("default"), 362890, 9},
		{"string unknown is default", types.NewPruningOptionsFromString("bogus"), 362890, 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewManager(newMemMeta(), nil)
			m.SetOptions(fromSDK(tc.opts))
			if got := m.PruneHeight(tc.height); got != tc.want {
				t.Fatalf("PruneHeight(%d) = %d, want %d", tc.height, got, tc.want)
			}
		})
	}
}

// TestSnapshotHeightsHoldPruningBack: with snapshots every 50 heights,
// pruning stops before the first snapshot not yet done, and moves on as
// snapshots complete, also across a restart.
func TestSnapshotHeightsHoldPruningBack(t *testing.T) {
	meta := newMemMeta()
	m := NewManager(meta, nil)
	m.SetOptions(fromSDK(types.NewPruningOptions(types.PruningEverything)))
	m.SetSnapshotInterval(50)
	if got := m.PruneHeight(120); got != 49 {
		t.Fatalf("before any snapshot: %d, want 49", got)
	}
	for _, h := range []int64{50, 150} { // 100 not done yet
		if err := m.HandleSnapshotHeight(h); err != nil {
			t.Fatal(err)
		}
	}
	if got := m.PruneHeight(200); got != 99 {
		t.Fatalf("with 50 and 150 done: %d, want 99", got)
	}
	restarted := NewManager(meta, nil)
	restarted.SetOptions(fromSDK(types.NewPruningOptions(types.PruningEverything)))
	restarted.SetSnapshotInterval(50)
	if err := restarted.LoadSnapshotHeights(); err != nil {
		t.Fatal(err)
	}
	if err := restarted.HandleSnapshotHeight(100); err != nil {
		t.Fatal(err)
	}
	if got := restarted.PruneHeight(300); got != 199 {
		t.Fatalf("after 100 completes: %d, want 199", got)
	}
	meta.fail = errors.New("disk full")
	if err := restarted.HandleSnapshotHeight(200); err == nil {
		t.Fatal("a snapshot height that could not be recorded was accepted")
	}
	if got := restarted.PruneHeight(300); got != 199 {
		t.Fatalf("an unrecorded snapshot height moved pruning to %d", got)
	}
	meta.fail = nil
	meta.records[snapshotHeightsRecord] = []byte{1, 2, 3}
	if err := restarted.LoadSnapshotHeights(); err == nil {
		t.Fatal("a damaged record was loaded")
	}
}

// TestAnnouncedSnapshotsHoldPruningBack: a snapshot store/v2 announced
// keeps pruning below its height until it is done, whatever the completed
// snapshots allow; "nothing" ignores announcements.
func TestAnnouncedSnapshotsHoldPruningBack(t *testing.T) {
	m := NewManager(newMemMeta(), nil)
	m.SetOptions(fromSDK(types.NewPruningOptions(types.PruningEverything)))
	m.SetSnapshotInterval(50)
	for _, h := range []int64{50, 100} {
		if err := m.HandleSnapshotHeight(h); err != nil {
			t.Fatal(err)
		}
	}
	if got := m.PruneHeight(140); got != 137 {
		t.Fatalf("no snapshot in flight: %d, want 137", got)
	}
	m.AnnounceSnapshotHeight(120)
	m.AnnounceSnapshotHeight(120) // announced twice, done once
	if got := m.PruneHeight(140); got != 119 {
		t.Fatalf("snapshot of 120 in flight: %d, want 119", got)
	}
	if err := m.HandleSnapshotHeight(120); err != nil {
		t.Fatal(err)
	}
	if got := m.PruneHeight(140); got != 137 {
		t.Fatalf("snapshot of 120 done: %d, want 137", got)
	}
	m.AnnounceSnapshotHeight(0)
	m.AnnounceSnapshotHeight(-5)
	if got := m.PruneHeight(140); got != 137 {
		t.Fatalf("announcing heights <= 0 moved pruning to %d", got)
	}

	nothing := NewManager(newMemMeta(), nil)
	nothing.SetSnapshotInterval(50)
	nothing.AnnounceSnapshotHeight(120)
	nothing.SetOptions(fromSDK(types.NewPruningOptions(types.PruningEverything)))
	if got := nothing.PruneHeight(140); got != 49 {
		t.Fatalf("an announcement under \"nothing\" was kept: %d, want 49", got)
	}
}

// TestManagerMatchesSDK drives this manager and the SDK's with the same
// random options, snapshot interval, completed snapshots and restarts, and
// compares their prune heights at every height.
func TestManagerMatchesSDK(t *testing.T) {
	strategies := []types.PruningOptions{
		types.NewPruningOptions(types.PruningDefault),
		types.NewPruningOptions(types.PruningEverything),
		types.NewPruningOptions(types.PruningNothing),
		types.NewCustomPruningOptions(2, 10),
		types.NewCustomPruningOptions(100, 10),
		types.NewCustomPruningOptions(7, 13),
	}
	for seed := range uint64(30) {
		rng := rand.New(rand.NewPCG(seed, 1))
		opts := strategies[rng.IntN(len(strategies))]
		interval := []uint64{0, 10, 15, 50}[rng.IntN(4)]
		t.Run(fmt.Sprintf("seed%d-%+v-interval%d", seed, opts, interval), func(t *testing.T) {
			sdkDB := dbm.NewMemDB()
			meta := newMemMeta()
			start := func() (*Manager, *sdkpruning.Manager) {
				ours := NewManager(meta, nil)
				sdk := sdkpruning.NewManager(sdkDB, log.NewNopLogger())
				ours.SetOptions(fromSDK(opts))
				sdk.SetOptions(opts)
				ours.SetSnapshotInterval(interval)
				sdk.SetSnapshotInterval(interval)
				if err := errors.Join(ours.LoadSnapshotHeights(), sdk.LoadSnapshotHeights(sdkDB)); err != nil {
					t.Fatal(err)
				}
				return ours, sdk
			}
			ours, sdk := start()
			for h := int64(1); h <= 1500; h++ {
				if got, want := ours.PruneHeight(h), sdk.GetPruningHeight(h); got != want {
					t.Fatalf("height %d: prune to %d, the SDK says %d", h, got, want)
				}
				if interval > 0 && h%int64(interval) == 0 && rng.IntN(3) > 0 {
					// A snapshot completes, maybe late and out of order.
					done := h - int64(interval)*int64(rng.IntN(3))
					if done > 0 {
						if err := ours.HandleSnapshotHeight(done); err != nil {
							t.Fatal(err)
						}
						sdk.HandleSnapshotHeight(done)
					}
				}
				if rng.IntN(200) == 0 {
					ours, sdk = start()
				}
			}
		})
	}
}
