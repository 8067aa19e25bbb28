package pruning

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"cosmossdk.io/store/pruning/types"

	"github.com/nomtstore/nomtstore/commitment"
)

var (
	benchKeys   = flag.Int("prunebench.n", 200_000, "BenchmarkCommitWhilePruning: keys preloaded")
	benchWrites = flag.Int("prunebench.t", 2500, "BenchmarkCommitWhilePruning: writes per block")
	benchBlocks = flag.Int("prunebench.blocks", 300, "BenchmarkCommitWhilePruning: blocks committed")
)

// BenchmarkCommitWhilePruning measures commit latency per block while the
// worker prunes behind the commits, against the same blocks with pruning
// "nothing". Each mode runs the whole scenario once per b.N; run it with
// -benchtime 1x. Reported: commit p50, p99 and max in ms, and the versions
// pruned during the run.
func BenchmarkCommitWhilePruning(b *testing.B) {
	keys, writes, blocks := *benchKeys, *benchWrites, *benchBlocks
	if testing.Short() {
		keys, writes, blocks = 5000, 200, 40
	}
	for _, mode := range []struct {
		name string
		opts types.PruningOptions
	}{
		{"nothing", types.NewPruningOptions(types.PruningNothing)},
		{"everything", types.NewPruningOptions(types.PruningEverything)},
		{"custom-100-10", types.NewCustomPruningOptions(100, 10)},
	} {
		b.Run(mode.name, func(b *testing.B) {
			for range b.N {
				benchCommitWhilePruning(b, mode.opts, keys, writes, blocks)
			}
		})
	}
}

func benchCommitWhilePruning(b *testing.B, opts types.PruningOptions, keys, writes, blocks int) {
	b.StopTimer()
	db, err := commitment.Open(b.TempDir(), []string{"bank"}, commitment.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	rng := rand.New(rand.NewPCG(9, 9))
	set := func(i int) {
		if err := db.Set("bank", fmt.Appendf(nil, "balance/%08d", i), fmt.Appendf(nil, "%024d", rng.Uint64())); err != nil {
			b.Fatal(err)
		}
	}
	for i := range keys {
		set(i)
		if i%50_000 == 49_999 || i == keys-1 {
			if _, err := db.Commit(); err != nil {
				b.Fatal(err)
			}
		}
	}
	m := NewManager(db, nil)
	m.SetOptions(fromSDK(opts))
	w := NewWorker(db, WorkerOptions{})
	defer w.Close()
	pruned := db.Stats().PrunedVersions
	latencies := make([]time.Duration, 0, blocks)
	b.StartTimer()
	for range blocks {
		for range writes {
			set(rng.IntN(keys))
		}
		start := time.Now()
		res, err := db.Commit()
		if err != nil {
			b.Fatal(err)
		}
		latencies = append(latencies, time.Since(start))
		if to := m.PruneHeight(int64(res.Version)); to > 0 {
			w.Request(uint64(to))
		}
	}
	b.StopTimer()
	st := w.WaitIdle()
	if st.LastError != nil {
		b.Fatalf("pruning failed: %v", st.LastError)
	}
	slices.Sort(latencies)
	pct := func(p int) float64 {
		return float64(latencies[min(len(latencies)-1, len(latencies)*p/100)]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(50), "p50-ms")
	b.ReportMetric(pct(99), "p99-ms")
	b.ReportMetric(float64(latencies[len(latencies)-1])/float64(time.Millisecond), "max-ms")
	b.ReportMetric(float64(db.Stats().PrunedVersions-pruned), "pruned-versions")
}
