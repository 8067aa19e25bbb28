package bench

import (
	"bytes"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nomtstore/nomtstore/commitment"
)

// smokeConfig is every workload against every store at a size that runs
// in seconds: big enough for several preload commits, W3's pruning to
// delete versions and W4's past height to be below the latest.
func smokeConfig(t *testing.T) Config {
	return Config{Size: "smoke", N: 3_000, T: 60, Blocks: 3, W3Blocks: 24, W4Blocks: 3, QueryDepths: []int{5, 20}, HistoryT: 5, Seed: 7,
		PreloadChunk: 1_000, Quiet: 50 * time.Millisecond, Kinds: slices.Clone(Kinds), Workloads: slices.Clone(Workloads), W3Settings: w3SettingNames(), Dir: t.TempDir()}
}

func TestRunEveryWorkloadOnEveryStore(t *testing.T) {
	cfg := smokeConfig(t)
	rep, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failed() {
		for _, res := range rep.Results {
			if res.Error != "" {
				t.Errorf("%s %s: %s", res.Kind, res.Workload, res.Error)
			}
		}
		t.FailNow()
	}
	transferWrites := cfg.Blocks * (2*cfg.T + cfg.T/100)
	for _, kind := range Kinds {
		for _, workload := range []string{W1, W2, W3 + "/nothing", W3 + "/everything", W3 + "/custom", W4, W5} {
			res := rep.find(workload, kind)
			if workload == W5 && kind == KindNomtEngine {
				if res != nil {
					t.Errorf("the engine has no state sync, yet W5 has a result: %+v", res)
				}
				continue
			}
			if res == nil {
				t.Errorf("%s %s: no result", kind, workload)
				continue
			}
			if workload == W5 {
				if want := cfg.N + (cfg.Blocks+cfg.W4Blocks)*(cfg.T/100); res.SnapshotKeys != want || res.ExportKeysPerS <= 0 || res.RestoreKeysPerS <= 0 || res.SnapshotBytes <= 0 {
					t.Errorf("%s W5: %d keys (want %d), export %.0f/s, restore %.0f/s, %d bytes", kind, res.SnapshotKeys, want, res.ExportKeysPerS, res.RestoreKeysPerS, res.SnapshotBytes)
				}
				continue
			}
			if res.WritesPerSec <= 0 || res.CommitP50Ms <= 0 || res.CommitMaxMs < res.CommitP99Ms || res.CommitP99Ms < res.CommitP50Ms ||
				res.BytesWritten <= 0 || res.DiskBytes <= 0 || res.PeakRSS <= 0 || res.CPUSeconds <= 0 {
				t.Errorf("%s %s: implausible figures %+v", kind, workload, res)
			}
			if nomt := strings.HasPrefix(kind, "nomt"); nomt != (res.HashesPerWrite > 0) || nomt != (res.HashBoundP50Ms > 0) {
				t.Errorf("%s %s: hashes/write %.1f, bound %.2f ms: want them for nomtstore only", kind, workload, res.HashesPerWrite, res.HashBoundP50Ms)
			}
			if workload == W1 && res.Writes != transferWrites {
				t.Errorf("%s W1: %d writes, want %d", kind, res.Writes, transferWrites)
			}
		}
		if res := rep.find(W4, kind); res != nil {
			for _, q := range res.Queries {
				if q.Count == 0 || q.P50Ms <= 0 {
					t.Errorf("%s W4 %s: %d queries, p50 %.3f ms", kind, q.Name, q.Count, q.P50Ms)
				}
			}
		}
	}
	// The same seed gives every store the same work: W2's reads and writes
	// depend on what the stores returned, and the SDK stores iterate the
	// same keys (the engine's iterator does not see the open block).
	ref := rep.find(W2, referenceKind)
	for _, kind := range Kinds {
		res := rep.find(W2, kind)
		if res.Writes != ref.Writes || res.Reads != ref.Reads || kind != KindNomtEngine && res.Iterated != ref.Iterated {
			t.Errorf("W2 %s did %d writes, %d reads, %d iterated; %s %d, %d, %d", kind, res.Writes, res.Reads, res.Iterated,
				referenceKind, ref.Writes, ref.Reads, ref.Iterated)
		}
		if res.Iterated < cfg.Blocks*cfg.T/10*groupSize/2 {
			t.Errorf("W2 %s iterated %d keys: too few for a prefix iteration of about %d keys in a quarter of the transactions", kind, res.Iterated, groupSize)
		}
	}
	// Pruning everything keeps less than pruning nothing.
	for _, kind := range Kinds {
		nothing, everything := rep.find(W3+"/nothing", kind), rep.find(W3+"/everything", kind)
		last := func(r *Result) int64 { return r.Blocks[len(r.Blocks)-1].DiskBytes }
		if last(everything) <= 0 || last(nothing) <= 0 {
			t.Errorf("%s W3: no disk sizes per block", kind)
		}
		// Each figure is its own store's: W1's store is the size of W3's
		// copies of it, not of it and the copies together. (The engine's
		// log holds every block's batch until a checkpoint, which these
		// few small blocks never reach: W1's store is larger by it.)
		if w1 := rep.find(W1, kind); w1.DiskBytes > 4*last(nothing) {
			t.Errorf("%s: W1's store takes %d bytes, W3's copy of it %d", kind, w1.DiskBytes, last(nothing))
		}
	}

	out := t.TempDir()
	var md bytes.Buffer
	if err := rep.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	for _, want := range append(slices.Clone(Kinds), "## W1", "## W2", "## W3 pruning everything", "## W4", "## W5", "writes/s") {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown has no %q:\n%s", want, md.String())
		}
	}
	if strings.Contains(md.String(), "FAILED") {
		t.Errorf("markdown reports a failure:\n%s", md.String())
	}
	if err := rep.WriteJSON(filepath.Join(out, "r.json")); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(out, "r.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Results) != len(rep.Results) || len(back.Results[0].Blocks) != len(rep.Results[0].Blocks) {
		t.Errorf("JSON round trip: %d results, want %d", len(back.Results), len(rep.Results))
	}
	if err := rep.WriteChart(filepath.Join(out, "r.png")); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(out, "r.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() < 800 || b.Dy() < 500 {
		t.Errorf("chart of %v: too small for its panels", b)
	}
}

// A store that cannot run reports its error; the others still run.
func TestOneStoreFailingLeavesTheOthers(t *testing.T) {
	cfg := smokeConfig(t)
	cfg.Kinds, cfg.Workloads = []string{KindIAVLLevelDB, KindNomt}, []string{W1}
	// A file where the nomt store's directory would be.
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg.Dir, KindNomt), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := Run(cfg)
	if err == nil {
		// Run removes each kind's directory after it; the file makes that
		// fail only if the kind got that far.
		t.Log("no error from Run")
	}
	if rep == nil {
		t.Fatal("no report")
	}
	if res := rep.find(W1, KindIAVLLevelDB); res == nil || res.Error != "" || res.WritesPerSec <= 0 {
		t.Errorf("iavl-leveldb W1: %+v", res)
	}
	var failed *Result
	for i := range rep.Results {
		if rep.Results[i].Kind == KindNomt {
			failed = &rep.Results[i]
		}
	}
	if failed == nil || failed.Error == "" || !rep.Failed() {
		t.Fatalf("nomt's failure was not reported: %+v", rep.Results)
	}
	var md bytes.Buffer
	if err := rep.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "| nomt | FAILED: ") {
		t.Errorf("markdown does not show the failure:\n%s", md.String())
	}
}

func TestConfigValidate(t *testing.T) {
	good := func() Config { c, _ := SizeConfig("small"); c.Dir = "/tmp/x"; return c }
	tests := []struct {
		name   string
		change func(*Config)
		want   string // "" = valid
	}{
		{"small as given", func(*Config) {}, ""},
		{"tiny N", func(c *Config) { c.N = 10 }, "N must be at least"},
		{"no blocks", func(c *Config) { c.W3Blocks = 0 }, "block counts"},
		{"unknown store", func(c *Config) { c.Kinds = []string{"iavl-rocksdb"} }, `unknown store kind "iavl-rocksdb"`},
		{"unknown workload", func(c *Config) { c.Workloads = []string{"W9"} }, `unknown workload "W9"`},
		{"unknown W3 setting", func(c *Config) { c.W3Settings = []string{"sometimes"} }, `unknown W3 pruning setting "sometimes"`},
		{"W3 without a setting", func(c *Config) { c.W3Settings = nil }, `W3 needs at least one pruning setting`},
		{"no workloads", func(c *Config) { c.Workloads = nil }, "at least one"},
		{"no dir", func(c *Config) { c.Dir = "" }, "no work directory"},
		{"negative depth", func(c *Config) { c.QueryDepths = []int{50, -1} }, "each at least 1"},
		{"no depth", func(c *Config) { c.QueryDepths = nil }, "at least one query depth"},
		{"depth twice", func(c *Config) { c.QueryDepths = []int{50, 50} }, "each once"},
		{"no history T", func(c *Config) { c.HistoryT = 0 }, "history T"},
		{"negative quiet", func(c *Config) { c.Quiet = -1 }, "cannot be negative"},
		{"leaf cache set", func(c *Config) { c.LeafCacheMB = 1024 }, ""},
		{"negative leaf cache", func(c *Config) { c.LeafCacheMB = -1 }, "cache sizes cannot be negative"},
		{"negative value cache", func(c *Config) { c.ValueCacheMB = -5 }, "cache sizes cannot be negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := good()
			tc.change(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	if _, err := SizeConfig("medium"); err == nil {
		t.Error("size medium accepted")
	}
	// make bench's profile: W1 and W4 against every store kind.
	quick, err := SizeConfig("quick")
	if err != nil || !slices.Equal(quick.Workloads, []string{W1, W4}) || !slices.Equal(quick.Kinds, Kinds) || !slices.Contains(quick.QueryDepths, 1000) {
		t.Errorf("quick: %+v, %v", quick, err)
	}
	large, err := SizeConfig("large")
	if err != nil || large.N != 10_000_000 || large.T < 5_000 {
		t.Errorf("large: %+v, %v", large, err)
	}
}

func TestPercentileAndDiskGrowth(t *testing.T) {
	var blocks []Block
	for i := range 30 {
		blocks = append(blocks, Block{DiskBytes: int64(100 + min(i, 10))})
	}
	if g := diskGrowth(blocks); g != 1 {
		t.Errorf("plateau: growth %.3f, want 1", g)
	}
	for i := range blocks {
		blocks[i].DiskBytes = int64(100 * (i + 1))
	}
	if g := diskGrowth(blocks); g < 1.4 {
		t.Errorf("steady growth: %.3f, want well above 1", g)
	}
}

func TestCopyTreeKeepsHoles(t *testing.T) {
	src, dst := t.TempDir(), filepath.Join(t.TempDir(), "copy")
	f, err := os.Create(filepath.Join(src, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	// 64 MiB with one written 4 KiB block in the middle and one at the end.
	block := bytes.Repeat([]byte{0xab}, 4096)
	for _, off := range []int64{32 << 20, 64<<20 - 4096} {
		if _, err := f.WriteAt(block, off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(src, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "sub", "small"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := copyTree(src, dst); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"sparse", "sub/small"} {
		a, _ := os.ReadFile(filepath.Join(src, name))
		b, err := os.ReadFile(filepath.Join(dst, name))
		if err != nil || !bytes.Equal(a, b) {
			t.Fatalf("%s differs after the copy (%v)", name, err)
		}
	}
	used, err := diskUsage(dst)
	if err != nil {
		t.Fatal(err)
	}
	if used > 1<<20 {
		t.Errorf("copy occupies %d bytes: the holes were written", used)
	}
}

// Closing an IAVL store waits for its trees' pruning, then stops IAVL's
// async pruning goroutine: still pruning, it would read the closed database
// and panic the process (a W3 run under pruning everything did); left idle,
// it keeps the tree's caches alive (W2's stores held ~10 GB after closing).
func TestIAVLCloseStopsPruning(t *testing.T) {
	for _, kind := range []string{KindIAVLLevelDB, KindIAVLPebble} {
		t.Run(kind, func(t *testing.T) {
			before := runtime.NumGoroutine()
			s, err := openStore(kind, t.TempDir(), []string{bankTree}, w3Settings[1].opts, &observer{}, commitment.Options{})
			if err != nil {
				t.Fatal(err)
			}
			accts := newAccounts(1)
			for range 2_000 {
				k, v := accts.add()
				s.Set(bankTree, k, v)
			}
			// Past the pruning interval, with every block rewriting keys, so
			// that pruning has versions to delete when the store closes.
			for range 25 {
				if _, err := transferBlock(s, accts, 200); err != nil {
					t.Fatal(err)
				}
				s.Commit()
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond) // a live pruning goroutine would panic here
			for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > before; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("%d goroutines after closing, %d before opening: IAVL's pruning goroutine still runs", runtime.NumGoroutine(), before)
				}
			}
		})
	}
}

// memiavl's queries see committed state only: its latest tree holds the
// block's writes from the working hash on, under the last commit's height,
// so a query waits for Commit. Past heights load the DB at that height,
// and every proof verifies against the app hash committed there.
func TestMemIAVLQueries(t *testing.T) {
	dir := t.TempDir()
	s, err := openStore(KindMemIAVL, dir, []string{bankTree}, pruneDefault, &observer{}, commitment.Options{})
	if err != nil {
		t.Fatal(err)
	}
	accts := newAccounts(1)
	for range 500 {
		k, v := accts.add()
		s.Set(bankTree, k, v)
	}
	first, _ := s.Commit()
	key := accts.key(0)
	old := s.Get(bankTree, key)
	changed := append([]byte{0xff}, old[1:]...)
	s.Set(bankTree, key, changed)
	s.WorkingHash()
	got := make(chan []byte)
	go func() {
		v, at, verify, err := s.Query(bankTree, key, 0, true)
		if err == nil {
			err = verify()
		}
		if err != nil || at != first+1 {
			t.Errorf("query at the latest height: height %d, %v", at, err)
		}
		got <- v
	}()
	time.Sleep(50 * time.Millisecond) // the query waits for Commit
	s.Commit()
	if v := <-got; !bytes.Equal(v, changed) {
		t.Errorf("query during the commit read %x, want the committed %x", v, changed)
	}
	v, at, verify, err := s.Query(bankTree, key, first, true)
	if err == nil {
		err = verify()
	}
	if err != nil || at != first || !bytes.Equal(v, old) {
		t.Errorf("query at height %d: %x at %d (%v), want %x", first, v, at, err, old)
	}
	// Past memiavl's first snapshot interval: once the background rewrite
	// is switched in, Commit starts pruning the old snapshots in a goroutine
	// that Close must wait for (it truncates the WAL Close releases).
	hashes := map[int64][]byte{}
	for h := first + 1; ; h++ {
		if _, err := transferBlock(s, accts, 5); err != nil {
			t.Fatal(err)
		}
		s.WorkingHash()
		height, hash := s.Commit()
		hashes[height] = hash
		if link, _ := os.Readlink(filepath.Join(dir, "current")); link == "snapshot-00000000000000001000" {
			break
		}
		if h > 1000+5000 {
			t.Fatal("memiavl never switched to its snapshot at height 1000")
		}
	}
	latest, hash := s.Commit()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // a pruning goroutine left running would panic here
	s, err = openStore(KindMemIAVL, dir, []string{bankTree}, pruneDefault, &observer{}, commitment.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	if id := s.(*memiavlStore).LastCommitID(); id.Version != latest || !bytes.Equal(id.Hash, hash) {
		t.Errorf("reopened at %d %X, want %d %X", id.Version, id.Hash, latest, hash)
	}
	// The client's headers: the reopened store knows its latest app hash
	// only. A height at or above the snapshot the store switched to: the
	// goroutine that prunes older snapshots may already have truncated
	// the log below it (how far it got depends on the machine's load).
	past := max(int64(1000), latest-2)
	s.(*memiavlStore).appHashes[past] = hashes[past]
	_, at, verify, err = s.Query(bankTree, key, past, true)
	if err == nil {
		err = verify()
	}
	if err != nil || at != past {
		t.Errorf("query at %d after reopening (latest %d): height %d, %v", past, latest, at, err)
	}
}

// TestSampleGCCountsCycles: a block's GC figures come from the runtime's
// counters, which a forced collection moves.
func TestSampleGCCountsCycles(t *testing.T) {
	before := sampleGC()
	runtime.GC()
	runtime.GC()
	after := sampleGC()
	if got := after.cycles - before.cycles; got < 2 {
		t.Fatalf("two forced collections counted as %d cycles", got)
	}
	if after.cpu < before.cpu {
		t.Fatalf("GC CPU went backwards: %v then %v", before.cpu, after.cpu)
	}
}
