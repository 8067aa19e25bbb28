package pruning

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"cosmossdk.io/store/pruning/types"

	"github.com/nomtstore/nomtstore/commitment"
)

// diskUsage is the space dir takes on disk: allocated blocks, so the
// sparse page table counts for what it holds, not its length.
func diskUsage(t testing.TB, dir string) int64 {
	var total int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			// Pebble deletes the tables a compaction replaced as it goes.
			return nil
		}
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			total += st.Blocks * 512
		} else {
			total += info.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return total
}

// TestDiskPlateau commits thousands of versions that overwrite a fixed key
// set, with the SDK's pruning run by the worker, and checks that the
// directory stops growing once the kept window is full: the size over the
// last third of the run is no larger than over the middle third.
func TestDiskPlateau(t *testing.T) {
	versions := 2000
	if testing.Short() {
		versions = 1000
	}
	for _, opts := range []types.PruningOptions{
		types.NewPruningOptions(types.PruningEverything),
		types.NewCustomPruningOptions(100, 10),
	} {
		t.Run(fmt.Sprintf("keep%d-every%d", opts.KeepRecent, opts.Interval), func(t *testing.T) {
			dir := t.TempDir()
			db, err := commitment.Open(dir, []string{"bank", "acc"}, commitment.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = db.Close() }()
			m := NewManager(db, nil)
			m.SetOptions(fromSDK(opts))
			w := NewWorker(db, WorkerOptions{})
			defer w.Close()
			rng := rand.New(rand.NewPCG(1, opts.KeepRecent))
			var curve []string
			var sizes []int64
			step := versions / 15
			for h := 1; h <= versions; h++ {
				for range 100 {
					tree := []string{"bank", "acc"}[rng.IntN(2)]
					key := fmt.Appendf(nil, "account/%05d", rng.IntN(10000))
					value := fmt.Appendf(nil, "%032d", rng.Uint64())
					if err := db.Set(tree, key, value); err != nil {
						t.Fatal(err)
					}
				}
				if _, err := db.Commit(); err != nil {
					t.Fatal(err)
				}
				if to := m.PruneHeight(int64(h)); to > 0 {
					w.Request(uint64(to))
				}
				if h%step == 0 {
					w.WaitIdle()
					// Pebble compacts once a dozen flushes have gathered, so
					// between its compactions the directory also holds what
					// pruning deleted (a sawtooth a few samples wide here).
					// After a full compaction the size is what the kept
					// versions take.
					if err := db.WaitFlushed(); err != nil {
						t.Fatal(err)
					}
					before := diskUsage(t, dir)
					if err := db.Compact(); err != nil {
						t.Fatal(err)
					}
					size := diskUsage(t, dir)
					sizes = append(sizes, size)
					curve = append(curve, fmt.Sprintf("%d:%.1f(%.1f)MiB(earliest %d)", h, float64(size)/(1<<20), float64(before)/(1<<20), db.EarliestVersion()))
				}
			}
			st := w.WaitIdle()
			t.Logf("disk use by version, compacted (before): %s", strings.Join(curve, " "))
			if st.LastError != nil || st.Failures > 0 {
				t.Fatalf("pruning failed: %+v", st)
			}
			wantEarliest := uint64(versions/10*10) - 1 - opts.KeepRecent + 1
			if got := db.EarliestVersion(); got != wantEarliest {
				t.Fatalf("earliest version %d, want %d", got, wantEarliest)
			}
			// Minima still: a compaction of Pebble's own can run beside
			// the sample and hold its inputs and its output at once.
			third := len(sizes) / 3
			middle, last := slices.Min(sizes[third:2*third]), slices.Min(sizes[2*third:])
			if float64(last) > 1.15*float64(middle) {
				t.Fatalf("disk use still growing: at least %.1f MiB over the middle third, %.1f MiB over the last", float64(middle)/(1<<20), float64(last)/(1<<20))
			}
		})
	}
}
