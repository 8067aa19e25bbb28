package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pruningtypes "cosmossdk.io/store/pruning/types"
	snapshottypes "cosmossdk.io/store/snapshots/types"
	storetypes "cosmossdk.io/store/types"
	protoio "github.com/cosmos/gogoproto/io"

	"github.com/nomtstore/nomtstore/internal/procstat"
)

// Report is a harness run: the configuration, the machine, and one Result
// per workload (and pruning setting) per store kind.
type Report struct {
	Config  Config   `json:"config"`
	Machine Machine  `json:"machine"`
	Results []Result `json:"results"`
}

// Machine is what the figures were measured on.
type Machine struct {
	Date      string  `json:"date"`
	CPUs      int     `json:"cpus"`
	CPUModel  string  `json:"cpu_model"`
	MemoryGiB float64 `json:"memory_gib"`
	Go        string  `json:"go"`
	// GoDebug is the GODEBUG the stores ran with (the same for every kind).
	GoDebug string `json:"godebug,omitempty"`
	// NodeHashNs is one SHA-256 of a 65-byte node here, in ns.
	NodeHashNs float64 `json:"node_hash_ns"`
}

// Result is one store kind through one workload.
type Result struct {
	Workload string `json:"workload"` // W1, W2, W3/<pruning>, W4, W5
	Kind     string `json:"kind"`
	Error    string `json:"error,omitempty"`
	Pruning  string `json:"pruning,omitempty"`

	Blocks   []Block `json:"blocks,omitempty"`
	Writes   int     `json:"writes"`
	Reads    int     `json:"reads"`
	Iterated int     `json:"iterated"`
	// Seconds is the timed blocks' wall time; WritesPerSec the committed
	// writes over it.
	Seconds      float64 `json:"seconds"`
	WritesPerSec float64 `json:"writes_per_sec"`
	// Commit is WorkingHash + Commit, what the store spends committing a
	// block (nomtstore's trie update is in WorkingHash); Block adds the
	// execution of its transactions.
	CommitP50Ms float64 `json:"commit_p50_ms"`
	CommitP99Ms float64 `json:"commit_p99_ms"`
	CommitMaxMs float64 `json:"commit_max_ms"`
	BlockP50Ms  float64 `json:"block_p50_ms"`
	// HashesPerWrite and HashBoundP50Ms: node hashes the trie computed and
	// the time they need at NodeHashNs on every core (nomtstore only).
	HashesPerWrite float64 `json:"hashes_per_write,omitempty"`
	HashBoundP50Ms float64 `json:"hash_bound_p50_ms,omitempty"`
	// BytesWritten is what the process wrote to storage during the timed
	// blocks and until the disk settled after them.
	BytesWritten  int64   `json:"bytes_written"`
	BytesPerWrite float64 `json:"bytes_per_write"`
	DiskBytes     int64   `json:"disk_bytes"`
	PeakRSS       int64   `json:"peak_rss"`
	CPUSeconds    float64 `json:"cpu_seconds"`
	// PageFaults is the process's minor page faults over the same span as
	// BytesWritten: memory touched for the first time, or again after the
	// Go runtime or the allocator gave it back.
	PageFaults int64 `json:"page_faults"`
	// DiskGrowth (W3): median disk size over the last third of the blocks
	// divided by the median over the middle third; about 1 is a plateau.
	DiskGrowth float64 `json:"disk_growth,omitempty"`

	Queries []QueryStat `json:"queries,omitempty"` // W4

	// W5: keys in the snapshot, and keys/s exporting and restoring.
	SnapshotKeys    int     `json:"snapshot_keys,omitempty"`
	SnapshotBytes   int64   `json:"snapshot_bytes,omitempty"`
	ExportKeysPerS  float64 `json:"export_keys_per_sec,omitempty"`
	RestoreKeysPerS float64 `json:"restore_keys_per_sec,omitempty"`
}

// Block is one timed block.
type Block struct {
	Height   int64   `json:"height"`
	ExecMs   float64 `json:"exec_ms"`
	HashMs   float64 `json:"hash_ms"` // WorkingHash
	CommitMs float64 `json:"commit_ms"`
	Writes   int     `json:"writes"`
	Hashes   int64   `json:"hashes,omitempty"`
	// Phases is nomtstore's commit phases (commitment.Phase*), in ms.
	Phases    map[string]float64 `json:"phases,omitempty"`
	DiskBytes int64              `json:"disk_bytes,omitempty"` // W3
	// GCs and GCCPUMs are the Go collector's cycles completed during the
	// block and the CPU it spent (the runtime's estimate; every goroutine
	// of the process, the store's background work included).
	GCs     uint64  `json:"gcs"`
	GCCPUMs float64 `json:"gc_cpu_ms"`
	// PageFaults is the process's minor page faults during the block:
	// first touches of memory, which the first blocks after an open pay
	// for as the heap grows.
	PageFaults int64 `json:"page_faults"`
}

// QueryStat is one kind of W4 query.
type QueryStat struct {
	Name   string  `json:"name"`
	Count  int     `json:"count"`
	PerSec float64 `json:"per_sec"`
	P50Ms  float64 `json:"p50_ms"`
	P99Ms  float64 `json:"p99_ms"`
}

// Failed reports whether any run failed.
func (r *Report) Failed() bool {
	for _, res := range r.Results {
		if res.Error != "" {
			return true
		}
	}
	return false
}

// w3Settings are W3's pruning settings (docs/benchmarks.md).
var w3Settings = []struct {
	name string
	opts pruningtypes.PruningOptions
}{
	{"nothing", pruningtypes.NewPruningOptions(pruningtypes.PruningNothing)},
	{"everything", pruningtypes.NewPruningOptions(pruningtypes.PruningEverything)},
	{"custom", pruningtypes.NewCustomPruningOptions(100, 10)},
}

func w3SettingNames() []string {
	names := make([]string, len(w3Settings))
	for i, s := range w3Settings {
		names[i] = s.name
	}
	return names
}

var pruneDefault = pruningtypes.NewPruningOptions(pruningtypes.PruningDefault)

// Run runs the configured workloads against each store kind in turn. A
// store that fails has its error in its results and the others go on;
// Run's error is for a configuration or machine it cannot run on.
func Run(cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	rep := &Report{Config: cfg, Machine: readMachine()}
	for _, kind := range cfg.Kinds {
		r := &runner{cfg: &cfg, kind: kind, dir: filepath.Join(cfg.Dir, kind), hashCost: time.Duration(rep.Machine.NodeHashNs)}
		rep.Results = append(rep.Results, r.all()...)
		if err := os.RemoveAll(r.dir); err != nil {
			return rep, err
		}
		if cfg.AfterKind != nil {
			cfg.AfterKind(rep)
		}
	}
	return rep, nil
}

// settle waits for the disk to be quiet (at most 2 minutes: a store that
// never stops writing is measured anyway).
func (r *runner) settle() { settle(r.cfg.Quiet, 2*time.Minute) }

// runner runs every workload for one store kind.
type runner struct {
	cfg      *Config
	kind     string
	dir      string
	hashCost time.Duration
	results  []Result
	// height and hash are the last commit's.
	height int64
	hash   []byte
}

// guard runs f, turning a store's panic into an error.
func guard(f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return f()
}

func (r *runner) fail(workload string, err error) {
	r.results = append(r.results, Result{Workload: workload, Kind: r.kind, Error: err.Error()})
	r.logf("%s %s: FAILED: %v", r.kind, workload, err)
}

func (r *runner) logf(format string, args ...any) {
	if r.cfg.Progress != nil {
		_, _ = fmt.Fprintf(r.cfg.Progress, format+"\n", args...)
	}
}

func (r *runner) all() []Result {
	c := r.cfg
	if c.wants(W1) || c.wants(W3) || c.wants(W4) || c.wants(W5) {
		if err := guard(r.accountWorkloads); err != nil {
			r.fail("W1 preload", err)
		}
	}
	if c.wants(W2) {
		if err := guard(r.appWorkload); err != nil {
			r.fail(W2, err)
		}
	}
	return r.results
}

// accountWorkloads preloads the W1 store once and runs W1, W4 and W5 on
// it, and W3 on copies of it taken after the preload.
func (r *runner) accountWorkloads() error {
	c := r.cfg
	template := filepath.Join(r.dir, "w1")
	obs := &observer{}
	s, err := r.openStore(template, []string{bankTree}, pruneDefault, obs)
	if err != nil {
		return err
	}
	accts := newAccounts(c.Seed)
	height, err := r.preload(s, "W1 preload", c.N, func() (string, []byte, []byte) {
		k, v := accts.add()
		return bankTree, k, v
	})
	if err == nil {
		err = s.Close()
	}
	if err != nil {
		return err
	}
	r.settle()
	if c.wants(W3) {
		for _, setting := range w3Settings {
			if !slices.Contains(c.W3Settings, setting.name) {
				continue
			}
			if err := copyTree(template, filepath.Join(r.dir, "w3-"+setting.name)); err != nil {
				return err
			}
		}
	}

	if c.wants(W1) || c.wants(W4) || c.wants(W5) {
		if s, err = r.openStore(template, []string{bankTree}, pruneDefault, obs); err != nil {
			return err
		}
		err = r.onTemplate(template, s, obs, accts, height)
		if err = errors.Join(err, s.Close()); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(template); err != nil {
		return err
	}
	if c.wants(W3) {
		for _, setting := range w3Settings {
			if !slices.Contains(c.W3Settings, setting.name) {
				continue
			}
			name := W3 + "/" + setting.name
			if err := guard(func() error { return r.w3(setting.name, setting.opts) }); err != nil {
				r.fail(name, err)
			}
		}
	}
	return nil
}

// onTemplate runs W1, W4 and W5, in that order, on the preloaded store.
func (r *runner) onTemplate(dir string, s Store, obs *observer, accts *accounts, preloadHeight int64) error {
	c := r.cfg
	preloaded := len(accts.addrs)
	if c.wants(W1) {
		res, err := r.timedBlocks(W1, dir, s, obs, c.Blocks, func() (blockWork, error) { return transferBlock(s, accts, c.T) }, nil)
		if err != nil {
			r.fail(W1, err)
			return nil
		}
		res.Pruning = "default"
		r.add(res)
	}
	if c.wants(W4) {
		if err := guard(func() error { return r.w4(dir, s, obs, accts, preloaded, preloadHeight) }); err != nil {
			r.fail(W4, err)
			return nil
		}
	}
	if c.wants(W5) {
		if err := guard(func() error { return r.w5(s, len(accts.addrs)) }); err != nil && !errors.Is(err, errSkip) {
			r.fail(W5, err)
		}
	}
	return nil
}

func (r *runner) openStore(dir string, trees []string, prune pruningtypes.PruningOptions, obs *observer) (Store, error) {
	return openStore(r.kind, dir, trees, prune, obs, r.cfg.engineOptions())
}

func (r *runner) add(res Result) {
	r.results = append(r.results, res)
	line := fmt.Sprintf("%s %s: %.0f writes/s, commit p50/p99/max %.1f/%.1f/%.1f ms, %.0f B written/write, %.1f CPU s, %d page faults",
		r.kind, res.Workload, res.WritesPerSec, res.CommitP50Ms, res.CommitP99Ms, res.CommitMaxMs, res.BytesPerWrite, res.CPUSeconds, res.PageFaults)
	if res.Workload == W5 {
		line = fmt.Sprintf("%s W5: %d keys, export %.0f keys/s, restore %.0f keys/s", r.kind, res.SnapshotKeys, res.ExportKeysPerS, res.RestoreKeysPerS)
	}
	r.logf("%s", line)
}

// preload writes n keys from next in commits of PreloadChunk keys and
// returns the last height. It is not timed.
func (r *runner) preload(s Store, what string, n int, next func() (tree string, key, value []byte)) (int64, error) {
	bar := newProgress(r.cfg.Progress, int64(n), fmt.Sprintf("%s %s", r.kind, what), "keys")
	defer bar.finish()
	var height int64
	for done := 0; done < n; {
		chunk := min(r.cfg.PreloadChunk, n-done)
		for range chunk {
			tree, k, v := next()
			s.Set(tree, k, v)
		}
		height, r.hash = s.Commit()
		r.height = height
		done += chunk
		bar.add(int64(chunk))
	}
	if e, ok := s.(preloadEnder); ok {
		if err := e.endPreload(); err != nil {
			return height, fmt.Errorf("ending the preload: %w", err)
		}
	}
	return height, nil
}

// preloadEnder is a store with work to do once a preload is committed
// (memiavl's snapshot), untimed like the preload.
type preloadEnder interface{ endPreload() error }

// timedBlocks runs blocks of exec, each followed by WorkingHash and
// Commit, and measures them; dir is the store's directory. after, if set,
// runs after each commit, untimed.
func (r *runner) timedBlocks(workload, dir string, s Store, obs *observer, blocks int, exec func() (blockWork, error), after func(b *Block)) (Result, error) {
	res := Result{Workload: workload, Kind: r.kind}
	r.settle()
	if err := procstat.ResetPeakRSS(); err != nil {
		return res, fmt.Errorf("resetting the peak RSS: %w", err)
	}
	before, err := sampleProc()
	if err != nil {
		return res, err
	}
	obs.takeHashes()
	obs.takePhases()
	stopProfile, err := r.startProfile(workload)
	if err != nil {
		return res, err
	}
	bar := newProgress(r.cfg.Progress, int64(blocks), fmt.Sprintf("%s %s", r.kind, workload), "blocks")
	var commits, blockTimes, bounds []time.Duration
	var hashes int64
	var elapsed time.Duration
	for range blocks {
		start, gcBefore, faultsBefore := time.Now(), sampleGC(), minorFaults()
		work, err := exec()
		if err != nil {
			bar.finish()
			return res, errors.Join(err, stopProfile())
		}
		hashStart := time.Now()
		s.WorkingHash()
		commitStart := time.Now()
		height, hash := s.Commit()
		end, gcAfter, faultsAfter := time.Now(), sampleGC(), minorFaults()
		r.height, r.hash = height, hash
		b := Block{Height: height, ExecMs: ms(hashStart.Sub(start)), HashMs: ms(commitStart.Sub(hashStart)),
			CommitMs: ms(end.Sub(commitStart)), Writes: work.writes, Hashes: obs.takeHashes(), Phases: obs.takePhases(),
			GCs: gcAfter.cycles - gcBefore.cycles, GCCPUMs: ms(gcAfter.cpu - gcBefore.cpu), PageFaults: faultsAfter - faultsBefore}
		elapsed += end.Sub(start)
		commits = append(commits, end.Sub(hashStart))
		blockTimes = append(blockTimes, end.Sub(start))
		bounds = append(bounds, time.Duration(b.Hashes)*r.hashCost/time.Duration(runtime.GOMAXPROCS(0)))
		hashes += b.Hashes
		res.Writes += work.writes
		res.Reads += work.reads
		res.Iterated += work.iterated
		if after != nil {
			after(&b)
		}
		res.Blocks = append(res.Blocks, b)
		bar.add(1)
	}
	bar.finish()
	if err := stopProfile(); err != nil {
		return res, err
	}
	r.settle()
	after1, err := sampleProc()
	if err != nil {
		return res, err
	}
	res.Seconds = elapsed.Seconds()
	res.WritesPerSec = float64(res.Writes) / elapsed.Seconds()
	res.CommitP50Ms, res.CommitP99Ms, res.CommitMaxMs = ms(percentile(commits, 50)), ms(percentile(commits, 99)), ms(percentile(commits, 100))
	res.BlockP50Ms = ms(percentile(blockTimes, 50))
	if hashes > 0 {
		res.HashesPerWrite = float64(hashes) / float64(res.Writes)
		res.HashBoundP50Ms = ms(percentile(bounds, 50))
	}
	res.BytesWritten = after1.written - before.written
	res.BytesPerWrite = float64(res.BytesWritten) / float64(res.Writes)
	res.CPUSeconds = (after1.cpu - before.cpu).Seconds()
	res.PageFaults = after1.pageFaults - before.pageFaults
	if res.PeakRSS, err = procstat.PeakRSS(); err != nil {
		return res, err
	}
	if res.DiskBytes, err = diskUsage(dir); err != nil {
		return res, err
	}
	return res, nil
}

// startProfile starts the CPU profile of a timed run if the
// configuration asks for profiles, and returns what stops it.
func (r *runner) startProfile(workload string) (func() error, error) {
	if r.cfg.ProfileDir == "" {
		return func() error { return nil }, nil
	}
	base := filepath.Join(r.cfg.ProfileDir, strings.ReplaceAll(fmt.Sprintf("%s-%s", r.kind, workload), "/", "-"))
	// The allocations profile counts from the process's start: the one
	// taken before the run is the base to subtract (pprof -diff_base).
	if err := writeAllocsProfile(base + "-allocs-before.pprof"); err != nil {
		return nil, err
	}
	f, err := os.Create(base + ".pprof")
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		return nil, errors.Join(err, f.Close())
	}
	return func() error {
		pprof.StopCPUProfile()
		return errors.Join(f.Close(), writeAllocsProfile(base+"-allocs.pprof"))
	}, nil
}

func writeAllocsProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	return errors.Join(pprof.Lookup("allocs").WriteTo(f, 0), f.Close())
}

// w3 runs W1 for W3Blocks on a copy of the preloaded store under one
// pruning setting, recording the disk size after each block.
func (r *runner) w3(name string, opts pruningtypes.PruningOptions) error {
	dir := filepath.Join(r.dir, "w3-"+name)
	defer func() { _ = os.RemoveAll(dir) }()
	obs := &observer{}
	s, err := r.openStore(dir, []string{bankTree}, opts, obs)
	if err != nil {
		return err
	}
	accts := newAccounts(r.cfg.Seed)
	for range r.cfg.N {
		accts.add()
	}
	var diskErr error
	res, err := r.timedBlocks(W3+"/"+name, dir, s, obs, r.cfg.W3Blocks, func() (blockWork, error) { return transferBlock(s, accts, r.cfg.T) },
		func(b *Block) {
			var err error
			b.DiskBytes, err = diskUsage(dir)
			diskErr = errors.Join(diskErr, err)
		})
	if err = errors.Join(err, diskErr, s.Close()); err != nil {
		return err
	}
	obs.mu.Lock()
	pruneErr := obs.pruneErr
	obs.mu.Unlock()
	if pruneErr != nil {
		return fmt.Errorf("pruning failed: %w", pruneErr)
	}
	res.Pruning = name
	res.DiskGrowth = diskGrowth(res.Blocks)
	r.add(res)
	return nil
}

// diskGrowth is the median disk size over the last third of the blocks
// over the median of the middle third.
func diskGrowth(blocks []Block) float64 {
	n := len(blocks)
	if n < 3 {
		return 0
	}
	median := func(bs []Block) float64 {
		ds := make([]time.Duration, len(bs))
		for i, b := range bs {
			ds[i] = time.Duration(b.DiskBytes)
		}
		return float64(percentile(ds, 50))
	}
	middle := median(blocks[n/3 : 2*n/3])
	if middle == 0 {
		return 0
	}
	return median(blocks[2*n/3:]) / middle
}

// w4Query is one kind of W4 query: at the latest height or depth below
// it, with a proof or not.
type w4Query struct {
	name  string
	depth int // 0: latest
	prove bool
}

// w4Queries are the queries the reader cycles through, in this order: a
// get and a proof at the latest height, then at each depth.
func (c *Config) w4Queries() []w4Query {
	qs := []w4Query{{"get latest", 0, false}, {"proof latest", 0, true}}
	for _, d := range c.QueryDepths {
		qs = append(qs, w4Query{fmt.Sprintf("get latest-D (D=%d)", d), d, false}, w4Query{fmt.Sprintf("proof latest-D (D=%d)", d), d, true})
	}
	return qs
}

// history commits the untimed blocks W4 needs before it: until the store
// holds the deepest query depth's versions above its preload, blocks of
// HistoryT transfers (drawn from the accounts' generator like every other
// block, so the same for every store).
func (r *runner) history(s Store, accts *accounts, preloadHeight int64) error {
	c := r.cfg
	blocks := int64(slices.Max(c.QueryDepths)) - (r.height - preloadHeight)
	if blocks <= 0 {
		return nil
	}
	bar := newProgress(c.Progress, blocks, fmt.Sprintf("%s W4 history", r.kind), "blocks")
	defer bar.finish()
	for range blocks {
		if _, err := transferBlock(s, accts, c.HistoryT); err != nil {
			return err
		}
		s.WorkingHash()
		r.height, r.hash = s.Commit()
		bar.add(1)
	}
	return nil
}

// w4 runs W4Blocks of W1 while one reader queries preloaded accounts at
// the latest height and at each QueryDepth below it, verifying every
// proof. Untimed history blocks first give the store those depths.
func (r *runner) w4(dir string, s Store, obs *observer, accts *accounts, preloaded int, preloadHeight int64) error {
	c := r.cfg
	if err := r.history(s, accts, preloadHeight); err != nil {
		return fmt.Errorf("history blocks: %w", err)
	}
	queries := c.w4Queries()
	addrs := accts.addrs[:preloaded] // the writer appends; these stay put
	var latest atomic.Int64
	latest.Store(r.height)
	stop := make(chan struct{})
	lat := make([][]time.Duration, len(queries))
	var readerErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		readerErr = guard(func() error {
			rng := rand.New(rand.NewPCG(c.Seed, 0x4ead))
			key := make([]byte, 0, 1+20+len(denom))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return nil
				default:
				}
				q := queries[i%len(queries)]
				h := latest.Load()
				h -= int64(min(q.depth, int(h-preloadHeight)))
				key = append(append(append(key[:0], 0x02), addrs[rng.IntN(len(addrs))][:]...), denom...)
				start := time.Now()
				value, at, verify, err := s.Query(bankTree, key, h, q.prove)
				took := time.Since(start)
				if err != nil {
					return fmt.Errorf("%s at height %d: %w", q.name, h, err)
				}
				if len(value) != accountValueSize || at != h {
					return fmt.Errorf("%s of %x at height %d: %d bytes at height %d", q.name, key, h, len(value), at)
				}
				if err := verify(); err != nil {
					return fmt.Errorf("%s of %x at height %d: %w", q.name, key, h, err)
				}
				lat[i%len(queries)] = append(lat[i%len(queries)], took)
			}
		})
	}()
	res, err := r.timedBlocks(W4, dir, s, obs, c.W4Blocks, func() (blockWork, error) { return transferBlock(s, accts, c.T) },
		func(b *Block) { latest.Store(b.Height) })
	close(stop)
	wg.Wait()
	if err = errors.Join(err, readerErr); err != nil {
		return err
	}
	res.Pruning = "default"
	for i, q := range queries {
		res.Queries = append(res.Queries, QueryStat{Name: q.name, Count: len(lat[i]),
			PerSec: float64(len(lat[i])) / res.Seconds, P50Ms: ms(percentile(lat[i], 50)), P99Ms: ms(percentile(lat[i], 99))})
	}
	r.add(res)
	return nil
}

// w5 exports a state-sync snapshot of the store's latest height and
// restores it into an empty store of the same kind, which must end with
// the same app hash.
func (r *runner) w5(s Store, keys int) error {
	src := s.Snapshotter()
	if src == nil {
		return errSkip
	}
	height, hash := r.height, r.hash
	file := filepath.Join(r.dir, "w5.snapshot")
	defer func() { _ = os.Remove(file) }()
	r.settle()
	res := Result{Workload: W5, Kind: r.kind, SnapshotKeys: keys}

	start := time.Now()
	if err := writeSnapshot(src, uint64(height), file); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	res.ExportKeysPerS = float64(keys) / time.Since(start).Seconds()
	info, err := os.Stat(file)
	if err != nil {
		return err
	}
	res.SnapshotBytes = info.Size()

	dir := filepath.Join(r.dir, "w5-restore")
	defer func() { _ = os.RemoveAll(dir) }()
	dst, err := r.openStore(dir, []string{bankTree}, pruneDefault, &observer{})
	if err != nil {
		return err
	}
	start = time.Now()
	err = readSnapshot(dst.Snapshotter(), uint64(height), file)
	took := time.Since(start)
	restored := dst.(interface{ LastCommitID() storetypes.CommitID }).LastCommitID()
	if err = errors.Join(err, dst.Close()); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if restored.Version != height || !bytes.Equal(restored.Hash, hash) {
		return fmt.Errorf("restored store at height %d with app hash %X, want height %d, %X", restored.Version, restored.Hash, height, hash)
	}
	res.RestoreKeysPerS = float64(keys) / took.Seconds()
	r.add(res)
	return nil
}

// errSkip marks a workload a store kind does not have (the engine has no
// state sync: that is the multistore's).
var errSkip = errors.New("not applicable to this store kind")

func writeSnapshot(src snapshottypes.Snapshotter, height uint64, file string) (err error) {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, f.Close()) }()
	bw := bufio.NewWriterSize(f, 1<<20)
	if err := src.Snapshot(height, protoio.NewDelimitedWriter(bw)); err != nil {
		return err
	}
	return bw.Flush()
}

func readSnapshot(dst snapshottypes.Snapshotter, height uint64, file string) (err error) {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, f.Close()) }()
	_, err = dst.Restore(height, snapshottypes.CurrentFormat, protoio.NewDelimitedReader(bufio.NewReaderSize(f, 1<<20), 64<<20))
	return err
}

// appWorkload preloads W2's ten stores and runs its blocks.
func (r *runner) appWorkload() error {
	c := r.cfg
	dir := filepath.Join(r.dir, "w2")
	defer func() { _ = os.RemoveAll(dir) }()
	a := newApp(c.Seed, c.N)
	obs := &observer{}
	s, err := r.openStore(dir, a.trees(), pruneDefault, obs)
	if err != nil {
		return err
	}
	// The preload fills the stores in turn, a group at a time.
	total := 0
	for _, m := range a.modules {
		total += m.size(c.N)
	}
	mod, i := 0, 0
	_, err = r.preload(s, "W2 preload", total, func() (string, []byte, []byte) {
		m := a.modules[mod]
		k, v := a.preloadKey(m, i)
		if i++; i == m.size(c.N) {
			mod, i = mod+1, 0
		}
		return m.spec.name, k, v
	})
	if err != nil {
		return errors.Join(err, s.Close())
	}
	res, err := r.timedBlocks(W2, dir, s, obs, c.Blocks, func() (blockWork, error) { return a.block(s, c.T) }, nil)
	if err = errors.Join(err, s.Close()); err != nil {
		return err
	}
	res.Pruning = "default"
	r.add(res)
	return nil
}

func readMachine() Machine {
	m := Machine{Date: time.Now().UTC().Format("2006-01-02"), CPUs: runtime.NumCPU(), Go: runtime.Version(),
		GoDebug: os.Getenv("GODEBUG"), NodeHashNs: float64(nodeHashCost())}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range bytes.Lines(data) {
			if name, value, ok := bytes.Cut(line, []byte(":")); ok && bytes.Equal(bytes.TrimSpace(name), []byte("model name")) {
				m.CPUModel = string(bytes.TrimSpace(value))
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(data), "MemTotal: %d kB", &kb); err == nil {
			m.MemoryGiB = float64(kb) / (1 << 20)
		}
	}
	return m
}
