package bench

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/nomtstore/nomtstore/commitment"
)

// Workloads of docs/benchmarks.md, in the order a run takes them.
const (
	W1 = "W1" // transfers on one big store
	W2 = "W2" // ten module stores, prefix iterations
	W3 = "W3" // W1 under pruning nothing, everything, custom: latency and disk
	W4 = "W4" // reads and proofs at latest, latest-50 and latest-1000 while blocks commit
	W5 = "W5" // state-sync snapshot and restore
)

// Workloads lists them all.
var Workloads = []string{W1, W2, W3, W4, W5}

// Config is one harness run. SizeConfig gives docs/benchmarks.md's sizes.
type Config struct {
	Size string `json:"size"`
	// N is the accounts W1 (and W3, W4, W5) preload and the keys W2
	// spreads over its ten stores; T the transactions per block.
	N int `json:"n"`
	T int `json:"t"`
	// Blocks is the timed blocks of W1 and of W2, W3Blocks of each W3
	// pruning setting, W4Blocks of W4.
	Blocks   int `json:"blocks"`
	W3Blocks int `json:"w3_blocks"`
	W4Blocks int `json:"w4_blocks"`
	// QueryDepths are how far below the latest height W4 reads (50 and
	// 1000), to show whether history slows old reads.
	QueryDepths []int `json:"query_depths"`
	// HistoryT is the transfers in each of the untimed blocks W4 commits
	// first, until the store holds the deepest QueryDepth versions after
	// its preload: small, so that IAVL's share of them stays short.
	HistoryT int    `json:"history_t"`
	Seed     uint64 `json:"seed"`
	// PreloadChunk is the keys per preload commit.
	PreloadChunk int      `json:"preload_chunk"`
	Kinds        []string `json:"kinds"`
	Workloads    []string `json:"workloads"`
	// W3Settings are the pruning settings W3 runs (nothing, everything,
	// custom), all three unless named.
	W3Settings []string `json:"w3_settings"`
	// Quiet is how long the process must have written nothing before a
	// timed run starts and before its bytes are counted at its end (the
	// stores' background compactions and flushes); SizeConfig sets 1 s.
	Quiet time.Duration `json:"quiet_ns"`
	// WarmUp is the nomtstore kinds' warm-up setting (commitment.Options).
	WarmUp commitment.WarmUp `json:"warm_up"`
	// LeafCacheMB and ValueCacheMB size the nomtstore kinds' leaf and
	// value caches (commitment.Options); 0 keeps the store's default.
	LeafCacheMB  int `json:"leaf_cache_mb,omitempty"`
	ValueCacheMB int `json:"value_cache_mb,omitempty"`
	// Dir holds the stores while they run (removed as runs end).
	Dir string `json:"-"`
	// ProfileDir, if set, receives a CPU profile of each timed run,
	// <kind>-<workload>.pprof (preloads excluded), and the process's
	// allocations profile before and after it (-allocs-before.pprof,
	// -allocs.pprof: the run's are their difference, pprof -diff_base).
	ProfileDir string `json:"-"`
	// AfterKind, if set, is called with the report so far after each store
	// kind's runs, so that a long run that dies later keeps what it did.
	AfterKind func(*Report) `json:"-"`
	// Progress receives progress bars (on a terminal) or a line per phase;
	// nil: neither.
	Progress io.Writer `json:"-"`
}

// engineOptions are the nomtstore kinds' options: the store's defaults
// but for what the configuration sets.
func (c *Config) engineOptions() commitment.Options {
	return commitment.Options{
		WarmUp:          c.WarmUp,
		LeafCacheBytes:  int64(c.LeafCacheMB) << 20,
		ValueCacheBytes: int64(c.ValueCacheMB) << 20,
	}
}

// nomtSettings lists the nomtstore settings that differ from the store's
// defaults, for the report; "" if none do.
func (c *Config) nomtSettings() string {
	var set []string
	if c.WarmUp == commitment.WarmUpOff {
		set = append(set, "warm-up off")
	}
	if c.LeafCacheMB != 0 {
		set = append(set, fmt.Sprintf("a %d MiB leaf cache", c.LeafCacheMB))
	}
	if c.ValueCacheMB != 0 {
		set = append(set, fmt.Sprintf("a %d MiB value cache", c.ValueCacheMB))
	}
	return strings.Join(set, ", ")
}

// SizeConfig returns the configuration of a named size: "quick" (N =
// 100k, T = 500, W1 and W4 only: what make bench runs in a few minutes),
// "small" (N = 1M, T = 2,500) or "large" (N = 10M, T = 5,000), the last two
// with every workload; every store kind in each.
func SizeConfig(size string) (Config, error) {
	c := Config{Size: size, QueryDepths: []int{50, 1000}, HistoryT: 10, Seed: 1, PreloadChunk: 100_000, Quiet: time.Second,
		Kinds: slices.Clone(Kinds), Workloads: slices.Clone(Workloads), W3Settings: w3SettingNames()}
	switch size {
	case "quick":
		c.N, c.T, c.Blocks, c.W3Blocks, c.W4Blocks = 100_000, 500, 20, 20, 10
		c.Workloads = []string{W1, W4}
		c.Quiet = 500 * time.Millisecond
	case "small":
		c.N, c.T, c.Blocks, c.W3Blocks, c.W4Blocks = 1_000_000, 2_500, 50, 120, 20
	case "large":
		c.N, c.T, c.Blocks, c.W3Blocks, c.W4Blocks = 10_000_000, 5_000, 100, 200, 30
		// IAVL rewrites its upper nodes at every commit: ten commits of a
		// million keys preload it in a fraction of a hundred commits' time.
		c.PreloadChunk = 1_000_000
	default:
		return c, fmt.Errorf("unknown size %q (quick, small or large)", size)
	}
	return c, nil
}

// Validate reports a configuration the harness cannot run.
func (c *Config) Validate() error {
	var problems []string
	if c.N < 2*groupSize {
		problems = append(problems, fmt.Sprintf("N must be at least %d (got %d)", 2*groupSize, c.N))
	}
	if c.T < 1 || c.HistoryT < 1 || c.Blocks < 1 || c.W3Blocks < 1 || c.W4Blocks < 1 {
		problems = append(problems, fmt.Sprintf("T, the history T and the block counts must be at least 1 (T %d, history T %d, blocks %d, W3 %d, W4 %d)",
			c.T, c.HistoryT, c.Blocks, c.W3Blocks, c.W4Blocks))
	}
	if len(c.QueryDepths) == 0 || slices.Min(c.QueryDepths) < 1 || len(slices.Compact(slices.Sorted(slices.Values(c.QueryDepths)))) != len(c.QueryDepths) {
		problems = append(problems, fmt.Sprintf("at least one query depth, each at least 1 and each once (got %v)", c.QueryDepths))
	}
	if c.Quiet < 0 {
		problems = append(problems, "the quiet wait cannot be negative")
	}
	if c.PreloadChunk < 1 {
		problems = append(problems, "the preload chunk must be at least 1 key")
	}
	if c.LeafCacheMB < 0 || c.ValueCacheMB < 0 {
		problems = append(problems, fmt.Sprintf("cache sizes cannot be negative (leaf cache %d MiB, value cache %d MiB)", c.LeafCacheMB, c.ValueCacheMB))
	}
	if len(c.Kinds) == 0 || len(c.Workloads) == 0 {
		problems = append(problems, "at least one store kind and one workload")
	}
	for _, k := range c.Kinds {
		if !slices.Contains(Kinds, k) {
			problems = append(problems, fmt.Sprintf("unknown store kind %q (kinds: %s)", k, strings.Join(Kinds, ", ")))
		}
	}
	for _, w := range c.Workloads {
		if !slices.Contains(Workloads, w) {
			problems = append(problems, fmt.Sprintf("unknown workload %q (workloads: %s)", w, strings.Join(Workloads, ", ")))
		}
	}
	for _, name := range c.W3Settings {
		if !slices.Contains(w3SettingNames(), name) {
			problems = append(problems, fmt.Sprintf("unknown W3 pruning setting %q (settings: %s)", name, strings.Join(w3SettingNames(), ", ")))
		}
	}
	if slices.Contains(c.Workloads, W3) && len(c.W3Settings) == 0 {
		problems = append(problems, "W3 needs at least one pruning setting")
	}
	if c.Dir == "" {
		problems = append(problems, "no work directory")
	}
	if len(problems) > 0 {
		return fmt.Errorf("bench: %s", strings.Join(problems, "; "))
	}
	return nil
}

func (c *Config) wants(workload string) bool { return slices.Contains(c.Workloads, workload) }
