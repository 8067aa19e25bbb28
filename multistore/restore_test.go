package multistore

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"cosmossdk.io/log"
	snapshottypes "cosmossdk.io/store/snapshots/types"
	"cosmossdk.io/store/types"
	protoio "github.com/cosmos/gogoproto/io"

	"github.com/nomtstore/nomtstore/commitment"
	"github.com/nomtstore/nomtstore/internal/procstat"
)

var restoreKills = flag.Int("restore-kills", 0, "TestRestoreKilled: kills (0: 12, 4 with -short)")

// restoreStores are the stores of the synthetic snapshots below, with
// their share of the keys.
var restoreStores = []struct {
	name  string
	share int // per 10
}{{"acc", 6}, {"bank", 3}, {"empty", 0}, {"staking", 1}}

// synthSnapshot writes a snapshot stream of keys keys over restoreStores,
// each store's keys in order, as a source node would send it.
func synthSnapshot(t testing.TB, keys int, seed uint64) []byte {
	t.Helper()
	var buf bytes.Buffer
	writeSynthSnapshot(t, &buf, keys, seed)
	return buf.Bytes()
}

// writeSynthSnapshot writes synthSnapshot's stream to w.
func writeSynthSnapshot(t testing.TB, out io.Writer, keys int, seed uint64) {
	t.Helper()
	w := protoio.NewDelimitedWriter(out)
	rng := rand.New(rand.NewPCG(seed, 3))
	for _, st := range restoreStores {
		if err := w.WriteMsg(&snapshottypes.SnapshotItem{Item: &snapshottypes.SnapshotItem_Store{Store: &snapshottypes.SnapshotStoreItem{Name: st.name}}}); err != nil {
			t.Fatal(err)
		}
		for i := range keys * st.share / 10 {
			value := fmt.Appendf(nil, "balance-%d-%x", i, rng.Uint64())
			item := &snapshottypes.SnapshotItem{Item: &snapshottypes.SnapshotItem_IAVL{IAVL: &snapshottypes.SnapshotIAVLItem{
				Key: fmt.Appendf(nil, "%s/%010d", st.name, i), Value: value, Height: 0, Version: 1}}}
			if err := w.WriteMsg(item); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// restoreTarget opens our store in dir with restoreStores mounted and loads
// its latest version.
func restoreTarget(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	s, err := New(dir, log.NewNopLogger(), opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range restoreStores {
		s.MountStoreWithDB(types.NewKVStoreKey(st.name), types.StoreTypeIAVL, nil)
	}
	if err := s.LoadLatestVersion(); err != nil {
		t.Fatal(err)
	}
	return s
}

// committedHash commits the snapshot's keys the ordinary way, as one block
// at height, and returns the app hash.
func committedHash(t testing.TB, stream []byte, height int64) []byte {
	t.Helper()
	s := restoreTarget(t, t.TempDir(), Options{})
	defer func() { _ = s.Close() }()
	if err := s.SetInitialVersion(height); err != nil {
		t.Fatal(err)
	}
	r := protoio.NewDelimitedReader(bytes.NewReader(stream), 64<<20)
	var kv types.KVStore
	for {
		var item snapshottypes.SnapshotItem
		if err := r.ReadMsg(&item); err != nil {
			break
		}
		switch it := item.Item.(type) {
		case *snapshottypes.SnapshotItem_Store:
			kv = s.GetKVStore(s.StoreKeysByName()[it.Store.Name])
		case *snapshottypes.SnapshotItem_IAVL:
			kv.Set(it.IAVL.Key, it.IAVL.Value)
		}
	}
	id := s.Commit()
	if id.Version != height {
		t.Fatalf("committed %d", id.Version)
	}
	return id.Hash
}

// TestRestoreInBoundedMemory restores 300k keys through a sort budget of
// 4 MiB, which spills and merges runs: the heap stays within a bound that
// does not grow with the state (a restore that held every key, as the
// store's did before its bulk load, took ~3.5 KB per key here: ~1 GiB),
// and the app hash is that of the same keys committed as one block.
func TestRestoreInBoundedMemory(t *testing.T) {
	keys := 300_000
	if testing.Short() {
		keys = 100_000
	}
	stream := synthSnapshot(t, keys, 1)
	want := committedHash(t, stream, 7)
	runtime.GC()

	opts := Options{Engine: commitment.Options{BulkSortBytes: 4 << 20, CheckpointBytes: 8 << 20,
		PageCachePages: 256, ValueCacheBytes: -1, LeafCacheBytes: -1}}
	s := restoreTarget(t, t.TempDir(), opts)
	defer func() { _ = s.Close() }()
	runtime.GC()
	base := liveHeap()
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if live := liveHeap(); live > peak.Load() {
				peak.Store(live)
			}
		}
	}()
	_, err := restoreSnapshot(s, 7, stream)
	close(done)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if id := s.LastCommitID(); id.Version != 7 || !bytes.Equal(id.Hash, want) {
		t.Fatalf("restored version %d hash %X, the same keys committed give %X", id.Version, id.Hash, want)
	}
	grew := int64(peak.Load()) - int64(base)
	t.Logf("%d keys restored; the live heap grew by at most %d MiB", keys, grew>>20)
	// Pebble's memtables (2 x 32 MiB) and block cache are off the Go
	// heap; what is on it is the sort budget, the build window and the
	// page chunk and the page cache.
	if limit := int64(48 << 20); grew > limit {
		t.Fatalf("the live heap grew by %d MiB restoring %d keys, more than %d MiB: memory follows the state", grew>>20, keys, limit>>20)
	}
}

// liveHeap is the heap the last garbage collection found live.
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestRestoreKilled kills a process restoring a snapshot with SIGKILL at
// random moments (in the stream, the build, the ingestion, the commit),
// then opens its store: it is empty, or restored with the source's app
// hash; an empty one restores again to that hash.
func TestRestoreKilled(t *testing.T) {
	if dir := os.Getenv("NOMTSTORE_RESTORE_CHILD"); dir != "" {
		restoreChild(t, dir)
		return
	}
	kills := 12
	if testing.Short() {
		kills = 4
	}
	if *restoreKills > 0 {
		kills = *restoreKills
	}
	stream := synthSnapshot(t, 60_000, 2)
	file := fmt.Sprintf("%s/snapshot", t.TempDir())
	if err := os.WriteFile(file, stream, 0o644); err != nil {
		t.Fatal(err)
	}
	want := committedHash(t, stream, 9)
	// One uninterrupted child times the whole restore, start-up included.
	start := time.Now()
	if out, err := restoreProcess(t.TempDir(), file).CombinedOutput(); err != nil {
		t.Fatalf("restore child: %v\n%s", err, out)
	}
	full := time.Since(start)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
	outcomes := map[string]int{}
	for k := range kills {
		dir := t.TempDir()
		cmd := restoreProcess(dir, file)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		delay := time.Duration(rng.Int64N(int64(full)))
		time.Sleep(delay)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		s := restoreTarget(t, dir, Options{})
		switch v := s.LastCommitID().Version; v {
		case 0:
			outcomes["empty"]++
			if _, err := restoreSnapshot(s, 9, stream); err != nil {
				t.Fatalf("kill %d after %v: the retried restore: %v\nchild:\n%s", k, delay, err, out.String())
			}
		case 9:
			outcomes["restored"]++
		default:
			t.Fatalf("kill %d after %v: the store is at version %d", k, delay, v)
		}
		if id := s.LastCommitID(); id.Version != 9 || !bytes.Equal(id.Hash, want) {
			t.Fatalf("kill %d after %v: version %d hash %X, want 9 %X", k, delay, id.Version, id.Hash, want)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d kills within the %v a restore takes: %v", kills, full.Round(time.Millisecond), outcomes)
}

func restoreProcess(dir, file string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestRestoreKilled$", "-test.count=1")
	cmd.Env = append(os.Environ(), "NOMTSTORE_RESTORE_CHILD="+dir+"|"+file)
	return cmd
}

// restoreChild is the killed process: one restore with small sort runs
// and page chunks, so a kill can land between any two of them.
func restoreChild(t *testing.T, arg string) {
	dir, file, _ := strings.Cut(arg, "|")
	stream, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s := restoreTarget(t, dir, Options{Engine: commitment.Options{BulkSortBytes: 1 << 20, CheckpointBytes: 1 << 20}})
	if _, err := restoreSnapshot(s, 9, stream); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkRestore restores a synthetic snapshot of -restore-keys keys
// (default 300k), for profiling; the harness's W5 measures restores
// against IAVL and memiavl.
func BenchmarkRestore(b *testing.B) {
	keys := 300_000
	if testing.Short() {
		keys = 20_000
	}
	if v := os.Getenv("NOMTSTORE_RESTORE_KEYS"); v != "" {
		if _, err := fmt.Sscan(v, &keys); err != nil {
			b.Fatal(err)
		}
	}
	// Streamed to a file and read back as a node reads a snapshot's
	// chunks: the process's peak RSS is the restore's.
	file := filepath.Join(b.TempDir(), "snapshot")
	f, err := os.Create(file)
	if err != nil {
		b.Fatal(err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	writeSynthSnapshot(b, bw, keys, 3)
	if err := errors.Join(bw.Flush(), f.Close()); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		var opts Options
		if testing.Verbose() {
			opts.Engine.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
		}
		s := restoreTarget(b, b.TempDir(), opts)
		f, err := os.Open(file)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		_, err = s.Restore(5, snapshottypes.CurrentFormat, protoio.NewDelimitedReader(bufio.NewReaderSize(f, 1<<20), 64<<20))
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		_ = f.Close()
		_ = s.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(keys*b.N)/b.Elapsed().Seconds(), "keys/s")
	peak, err := procstat.PeakRSS()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(peak>>20), "peak-RSS-MiB")
}
