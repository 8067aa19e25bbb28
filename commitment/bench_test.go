package commitment

import (
	"bufio"
	"encoding/binary"
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"
)

// Workload W1 of ../../shared/BENCHMARK.md (transfers) at the engine level:
// one "bank" tree preloaded with N accounts, then blocks of T transfers (2
// reads + 2 writes each) plus 1% new accounts, each block committed. The
// defaults are the `small` size (about 1 minute on an idle 2-core machine,
// half of it the untimed preload):
//
//	go test ./commitment/ -run '^$' -bench W1 -benchtime 1x -timeout 30m
//
// A quick smoke run passes tiny sizes, either explicitly:
//
//	go test ./commitment/ -run '^$' -bench W1 -benchtime 1x -args -w1.n=20000 -w1.t=500 -w1.blocks=5
//
// or with -short, which makes those the defaults of any -w1 flag not given.
// -short exists because the -w1 flags are defined only in this package's
// test binary: `go test ./... -args -w1.n=...` fails in every other
// package, while `go test -short -bench . ./...` works everywhere.
var (
	w1N      = flag.Int("w1.n", 1_000_000, "W1: accounts preloaded into the bank tree (small: 1M, large: 10M)")
	w1T      = flag.Int("w1.t", 2_500, "W1: transfers per block (small: 2500, large: 5000)")
	w1Blocks = flag.Int("w1.blocks", 50, "W1: timed blocks per benchmark iteration")
	w1Seed   = flag.Uint64("w1.seed", 1, "W1: seed of the accounts and transfers")
	// The two caches are the engine's memory knobs; 0 keeps its defaults.
	w1PageCache   = flag.Int("w1.pagecache", 0, "W1: Options.PageCachePages (0: engine default)")
	w1PebbleCache = flag.Int64("w1.pebblecache", 0, "W1: Options.PebbleCacheBytes (0: engine default)")
	// -cpuprofile would mostly profile the preload; this one covers only
	// the timed blocks.
	w1CPUProfile = flag.String("w1.cpuprofile", "", "W1: write a CPU profile of the timed blocks only to this file")
)

// Sizes of the -short smoke run (about 1 s), for flags not given.
const (
	w1ShortN, w1ShortT, w1ShortBlocks = 20_000, 500, 5
)

const (
	w1Tree = "bank"
	// w1PreloadChunk keys per preload commit: big enough that preloading
	// 1M keys costs 10 commits, small enough to keep one commit's staged
	// map and page changes to a few hundred MiB.
	w1PreloadChunk = 100_000
	// w1ValueSize is about a bank balance entry: amount plus encoding.
	w1ValueSize = 40
	// w1InitialBalance keeps balances far from zero for any run length, so
	// the uint64 arithmetic of transfers never wraps.
	w1InitialBalance = 1 << 50
)

// w1Denom is the denomination suffix of every balance key.
var w1Denom = []byte("stake")

func BenchmarkW1Transfers(b *testing.B) {
	n, t, blocks := *w1N, *w1T, *w1Blocks
	if testing.Short() {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["w1.n"] {
			n = w1ShortN
		}
		if !set["w1.t"] {
			t = w1ShortT
		}
		if !set["w1.blocks"] {
			blocks = w1ShortBlocks
		}
	}
	if n < 2 || t < 1 || blocks < 1 {
		b.Fatalf("W1 needs -w1.n >= 2, -w1.t >= 1, -w1.blocks >= 1 (got %d, %d, %d)", n, t, blocks)
	}
	// The sizes are in the name so that results of different sizes never
	// compare as one benchmark.
	b.Run(fmt.Sprintf("N=%d,T=%d", n, t), func(b *testing.B) { benchW1(b, n, t, blocks, *w1Seed) })
}

// w1State is the workload's deterministic generator: the same seed gives
// the same accounts and the same transfers.
type w1State struct {
	rng   *rand.Rand
	addrs [][20]byte // every account, in creation order
	key   []byte     // scratch, reused: Set and Get copy what they keep
	value []byte
}

func newW1State(seed uint64) *w1State {
	return &w1State{rng: rand.New(rand.NewPCG(seed, 0x57a1e5eed)), key: make([]byte, 0, 1+20+len(w1Denom))}
}

// balanceKey is the bank balance key of account i: prefix 0x02, the 20-byte
// address, the denom (the SDK's layout without its address length byte).
func (w *w1State) balanceKey(i int) []byte {
	w.key = append(w.key[:0], 0x02)
	w.key = append(w.key, w.addrs[i][:]...)
	return append(w.key, w1Denom...)
}

// newAccount creates an account and returns its key and first value.
func (w *w1State) newAccount() ([]byte, []byte) {
	var a [20]byte
	for i := 0; i < 20; i += 8 {
		var u [8]byte
		binary.LittleEndian.PutUint64(u[:], w.rng.Uint64())
		copy(a[i:], u[:])
	}
	w.addrs = append(w.addrs, a)
	w.value = binary.BigEndian.AppendUint64(w.value[:0], w1InitialBalance+w.rng.Uint64N(1<<40))
	for len(w.value) < w1ValueSize {
		w.value = binary.LittleEndian.AppendUint64(w.value, w.rng.Uint64())
	}
	w.value = w.value[:w1ValueSize]
	return w.balanceKey(len(w.addrs) - 1), w.value
}

// w1Block is what one timed block measured.
type w1Block struct {
	exec, hash, flushWait, commit time.Duration
	writes, hashes                int
}

// block runs one block: T transfers between random existing accounts, T/100
// new accounts, WorkingRoots, then Commit, timing each phase.
func (w *w1State) block(b *testing.B, db *DB, transfers int) w1Block {
	var r w1Block
	start := time.Now()
	for range transfers {
		from := w.rng.IntN(len(w.addrs))
		to := w.rng.IntN(len(w.addrs) - 1)
		if to >= from {
			to++ // two distinct accounts, uniformly
		}
		amount := 1 + w.rng.Uint64N(1000)
		fromKey := slices.Clone(w.balanceKey(from))
		toKey := w.balanceKey(to)
		fromValue := w1Get(b, db, fromKey)
		toValue := w1Get(b, db, toKey)
		// Reads see the committed version (the SDK's cache layer would
		// give read-your-writes; the engine does not, and need not here).
		binary.BigEndian.PutUint64(fromValue, binary.BigEndian.Uint64(fromValue)-amount)
		binary.BigEndian.PutUint64(toValue, binary.BigEndian.Uint64(toValue)+amount)
		if err := db.Set(w1Tree, fromKey, fromValue); err != nil {
			b.Fatal(err)
		}
		if err := db.Set(w1Tree, toKey, toValue); err != nil {
			b.Fatal(err)
		}
		r.writes += 2
	}
	for range transfers / 100 {
		key, value := w.newAccount()
		if err := db.Set(w1Tree, key, value); err != nil {
			b.Fatal(err)
		}
		r.writes++
	}
	hashStart := time.Now()
	if _, err := db.WorkingRoots(); err != nil {
		b.Fatal(err)
	}
	flushStart := time.Now()
	r.hashes = w1WorkingHashes(db)
	// Commit starts by waiting for the previous block's background page
	// flush; waiting here first changes nothing but splits the two costs.
	// The flush has overlapped execution and hashing up to this point, as
	// it does in the SDK's FinalizeBlock -> Commit sequence.
	if err := w1WaitFlush(db); err != nil {
		b.Fatal(err)
	}
	commitStart := time.Now()
	if _, err := db.Commit(); err != nil {
		b.Fatal(err)
	}
	end := time.Now()
	r.exec, r.hash = hashStart.Sub(start), flushStart.Sub(hashStart)
	r.flushWait, r.commit = commitStart.Sub(flushStart), end.Sub(commitStart)
	return r
}

func w1Get(b *testing.B, db *DB, key []byte) []byte {
	v, err := db.Get(w1Tree, key)
	if err != nil {
		b.Fatal(err)
	}
	if len(v) != w1ValueSize {
		b.Fatalf("account %x: value of %d bytes, want %d", key, len(v), w1ValueSize)
	}
	return v
}

// w1WorkingHashes counts the node hashes of the staged working set, which
// the engine does not export.
func w1WorkingHashes(db *DB) int {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	n := 0
	if db.working != nil {
		for _, u := range db.working.updates {
			n += u.result.NodeHashes
		}
	}
	return n
}

// w1WaitFlush waits for the last commit's background page flush.
func w1WaitFlush(db *DB) error {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	return db.waitFlushLocked()
}

func benchW1(b *testing.B, n, transfers, blocks int, seed uint64) {
	dir := filepath.Join(b.TempDir(), "w1")
	db, err := Open(dir, []string{w1Tree}, Options{PageCachePages: *w1PageCache, PebbleCacheBytes: *w1PebbleCache})
	if err != nil {
		b.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			_ = db.Close()
		}
	}()
	w := newW1State(seed)

	preloadStart := time.Now()
	for done := 0; done < n; {
		chunk := min(w1PreloadChunk, n-done)
		for range chunk {
			key, value := w.newAccount()
			if err := db.Set(w1Tree, key, value); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := db.Commit(); err != nil {
			b.Fatal(err)
		}
		done += chunk
	}
	if err := w1WaitFlush(db); err != nil {
		b.Fatal(err)
	}
	preload := time.Since(preloadStart)
	settle := w1Settle(b, db)
	b.Logf("preloaded %d accounts in %d commits in %v (%.0f keys/s); Pebble settled in %v",
		n, (n+w1PreloadChunk-1)/w1PreloadChunk, preload.Round(time.Millisecond), float64(n)/preload.Seconds(), settle.Round(time.Millisecond))

	ioBefore, ioErr := w1ProcWriteBytes()
	statsBefore := db.Stats()
	pebbleBefore := db.pebble.Metrics()
	var results []w1Block
	stopProfile := w1StartProfile(b)
	for b.Loop() {
		for range blocks {
			results = append(results, w.block(b, db, transfers))
		}
		// The last block's pages are written in the background; waiting
		// here keeps that work inside the timed run, as the next block's
		// Commit would.
		if err := w1WaitFlush(db); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := b.Elapsed()
	stopProfile()
	// The root depends only on the seed and sizes: equal roots across runs
	// and stores show they did the same work.
	root, err := db.Root(w1Tree)
	if err != nil {
		b.Fatal(err)
	}
	statsAfter := db.Stats()
	pebbleAfter := db.pebble.Metrics()
	closed = true
	// Close waits for running Pebble compactions, so the bytes they write
	// because of the timed blocks are counted below.
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	ioAfter, ioErr2 := w1ProcWriteBytes()

	var writes, hashes int
	var exec, hash, flushWait, commit, hashCommit, block []time.Duration
	for _, r := range results {
		writes += r.writes
		hashes += r.hashes
		exec = append(exec, r.exec)
		hash = append(hash, r.hash)
		flushWait = append(flushWait, r.flushWait)
		commit = append(commit, r.flushWait+r.commit)
		hashCommit = append(hashCommit, r.hash+r.flushWait+r.commit)
		block = append(block, r.exec+r.hash+r.flushWait+r.commit)
	}
	fw := float64(writes)
	b.ReportMetric(fw/elapsed.Seconds(), "writes/s")
	// commit: the Commit call after WorkingRoots, as the SDK calls it
	// (WorkingHash in FinalizeBlock, then Commit), including its wait for
	// the previous block's page flush. hash+commit: what Commit costs when
	// nobody called WorkingRoots first.
	b.ReportMetric(w1Ms(w1Pct(commit, 50)), "commit-p50-ms")
	b.ReportMetric(w1Ms(w1Pct(commit, 99)), "commit-p99-ms")
	b.ReportMetric(w1Ms(w1Pct(commit, 100)), "commit-max-ms")
	b.ReportMetric(w1Ms(w1Pct(hashCommit, 50)), "hash+commit-p50-ms")
	b.ReportMetric(w1Ms(w1Pct(hashCommit, 99)), "hash+commit-p99-ms")
	b.ReportMetric(w1Ms(w1Pct(hashCommit, 100)), "hash+commit-max-ms")
	b.ReportMetric(w1Ms(w1Pct(hash, 50)), "hash-p50-ms")
	b.ReportMetric(w1Ms(w1Pct(flushWait, 50)), "flushwait-p50-ms")
	b.ReportMetric(w1Ms(w1Pct(exec, 50)), "exec-p50-ms")
	b.ReportMetric(w1Ms(w1Pct(block, 50)), "block-p50-ms")
	b.ReportMetric(float64(hashes)/fw, "hashes/write")
	pages := statsAfter.PagesWritten - statsBefore.PagesWritten
	walBytes := statsAfter.WALBytes - statsBefore.WALBytes
	b.ReportMetric(float64(pages)/fw, "pages/write")
	if ioErr == nil && ioErr2 == nil {
		b.ReportMetric(float64(ioAfter-ioBefore)/fw, "disk-B/write")
	} else {
		b.Logf("no disk bytes: /proc/self/io: %v %v", ioErr, ioErr2)
	}

	pebbleWritten := w1PebbleWritten(pebbleAfter) - w1PebbleWritten(pebbleBefore)
	b.Logf("timed: %d blocks to version %d, root %s", len(results), statsAfter.Version, root)
	b.Logf("timed: %d blocks, %d writes in %v; per write: %.0f B page-table pages (%d pages x 4 KiB), %.0f B page WAL, %.0f B Pebble (WAL+flush+compaction; %d compactions)",
		len(results), writes, elapsed.Round(time.Millisecond),
		float64(pages)*4096/fw, pages, float64(walBytes)/fw, float64(pebbleWritten)/fw,
		pebbleAfter.Compact.Count-pebbleBefore.Compact.Count)
	// The LSM shape explains Pebble's share of the bytes: random keys make
	// every flush overlap every file below it.
	var lsm []string
	for i, l := range pebbleAfter.Levels {
		if l.NumFiles > 0 {
			lsm = append(lsm, fmt.Sprintf("L%d %d files %.1f MiB", i, l.NumFiles, w1MiB(l.Size)))
		}
	}
	total := pebbleAfter.Total()
	b.Logf("pebble: %s; write amp since open %.1f", strings.Join(lsm, ", "), total.WriteAmp())
	b.Logf("hash+commit ms p50/p99/max %.1f/%.1f/%.1f; commit %.1f/%.1f/%.1f; hash p50 %.1f; flush wait p50 %.1f; exec p50 %.1f; block p50 %.1f",
		w1Ms(w1Pct(hashCommit, 50)), w1Ms(w1Pct(hashCommit, 99)), w1Ms(w1Pct(hashCommit, 100)),
		w1Ms(w1Pct(commit, 50)), w1Ms(w1Pct(commit, 99)), w1Ms(w1Pct(commit, 100)),
		w1Ms(w1Pct(hash, 50)), w1Ms(w1Pct(flushWait, 50)), w1Ms(w1Pct(exec, 50)), w1Ms(w1Pct(block, 50)))
	ts := statsAfter.Table
	b.Logf("page table: %d buckets, %d full, %d tombstones, load %.3f, generation %d, mean probe %.3f over %d lookups, longest %d",
		ts.Buckets, ts.Full, ts.Tombstones, ts.LoadFactor, ts.Generation, ts.MeanProbe, ts.Lookups, ts.LongestProbe)
	sizes, err := w1DirSizes(dir)
	if err != nil {
		b.Fatal(err)
	}
	// pages.ht is sparse (created by truncate): its apparent size counts
	// empty buckets, its full buckets are what occupies the disk.
	b.Logf("directory %s: %.1f MiB apparent (pages.ht %.1f MiB of which %.1f MiB full buckets, pebble/ %.1f MiB, wal/ %.1f MiB)",
		dir, w1MiB(sizes["."]), w1MiB(sizes[tableFile]), w1MiB(int64(ts.Full)*4096), w1MiB(sizes[pebbleDir]), w1MiB(sizes[walDir]))
}

// w1StartProfile starts the CPU profile of -w1.cpuprofile, if set, and
// returns what stops it.
func w1StartProfile(b *testing.B) func() {
	if *w1CPUProfile == "" {
		return func() {}
	}
	f, err := os.Create(*w1CPUProfile)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatalf("%v (-w1.cpuprofile cannot be combined with -cpuprofile)", err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Error(err)
		}
	}
}

// w1Settle flushes Pebble's memtable and waits until it has no compaction
// running or owed, so the timed blocks do not pay the preload's compaction
// debt. A compaction is scheduled only after the flush returns, hence the
// debt check rather than "nothing running".
func w1Settle(b *testing.B, db *DB) time.Duration {
	start := time.Now()
	if err := db.pebble.Flush(); err != nil {
		b.Fatal(err)
	}
	for deadline := start.Add(2 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
		m := db.pebble.Metrics()
		if m.Compact.NumInProgress == 0 && m.Compact.EstimatedDebt == 0 {
			break
		}
		if time.Now().After(deadline) {
			b.Logf("Pebble still owes %d bytes of compaction after %v; timing anyway", m.Compact.EstimatedDebt, time.Since(start))
			break
		}
	}
	return time.Since(start)
}

// w1PebbleWritten is what Pebble itself wrote: its WAL, memtable flushes
// and compactions.
func w1PebbleWritten(m *pebble.Metrics) uint64 {
	t := m.Total()
	return m.WAL.BytesWritten + t.BytesFlushed + t.BytesCompacted
}

// w1ProcWriteBytes is the bytes this process (every thread, Pebble's
// background goroutines included) caused to be written to storage, minus
// those whose writeback was cancelled by truncating or deleting the file.
func w1ProcWriteBytes() (int64, error) {
	f, err := os.Open("/proc/self/io")
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }()
	var written, cancelled int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		v, err := strconv.ParseInt(strings.TrimSpace(value), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/self/io: %q: %w", sc.Text(), err)
		}
		switch name {
		case "write_bytes":
			written = v
		case "cancelled_write_bytes":
			cancelled = v
		}
	}
	return written - cancelled, sc.Err()
}

// w1DirSizes sums apparent file sizes under dir: the total under ".", and
// per top-level entry.
func w1DirSizes(dir string) (map[string]int64, error) {
	sizes := map[string]int64{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		top, _, _ := strings.Cut(filepath.ToSlash(rel), "/")
		sizes[top] += info.Size()
		sizes["."] += info.Size()
		return nil
	})
	return sizes, err
}

// w1Pct is the p-th percentile (nearest rank) of ds; p = 100 is the max.
// Below 100 blocks the p99 is the max: pass -w1.blocks=200 to tell them
// apart.
func w1Pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := (p*len(s) + 99) / 100 // ceil(p/100 * n)
	return s[max(rank, 1)-1]
}

func w1Ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func w1MiB(n int64) float64 { return float64(n) / (1 << 20) }
