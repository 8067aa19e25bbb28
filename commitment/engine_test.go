package commitment

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	ics23 "github.com/cosmos/ics23/go"

	"github.com/nomtstore/nomtstore/commitment/trie"
)

var testTrees = []string{"acc", "bank", "staking"}

// model is the engine's reference: per tree, a plain map of keys to values.
type model map[string]map[string][]byte

func newModel() model {
	m := model{}
	for _, t := range testTrees {
		m[t] = map[string][]byte{}
	}
	return m
}

// roots computes every tree's root from scratch with an in-memory trie.
func (m model) roots(t testing.TB) map[string]trie.Hash {
	t.Helper()
	out := map[string]trie.Hash{}
	for name, kv := range m {
		ms := trie.NewMemStore(0)
		var changes []trie.Change
		for k, v := range kv {
			changes = append(changes, trie.Change{Key: []byte(k), Value: v})
		}
		if _, err := ms.Apply(changes); err != nil {
			t.Fatal(err)
		}
		out[name] = ms.Root()
	}
	return out
}

func (m model) sortedKeys(tree string) []string {
	keys := make([]string, 0, len(m[tree]))
	for k := range m[tree] {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// randomEngineBatch stages random sets and deletes on db and applies them to m.
func randomEngineBatch(t testing.TB, rng *rand.Rand, db *DB, m model, size int) {
	t.Helper()
	for range size {
		tree := testTrees[rng.IntN(len(testTrees))]
		var key []byte
		if existing := m.sortedKeys(tree); len(existing) > 0 && rng.IntN(2) == 0 {
			key = []byte(existing[rng.IntN(len(existing))])
		} else {
			key = fmt.Appendf(nil, "k%05d", rng.IntN(20000))
		}
		if rng.IntN(4) == 0 {
			if err := db.Delete(tree, key); err != nil {
				t.Fatal(err)
			}
			delete(m[tree], string(key))
			continue
		}
		value := fmt.Appendf(nil, "v%d", rng.Uint64())
		if err := db.Set(tree, key, value); err != nil {
			t.Fatal(err)
		}
		m[tree][string(key)] = value
	}
}

// checkAgainstModel compares every read the engine offers with the model.
func checkAgainstModel(t testing.TB, rng *rand.Rand, db *DB, m model) {
	t.Helper()
	want := m.roots(t)
	got := db.Roots()
	for _, tree := range testTrees {
		if got[tree] != want[tree] {
			t.Fatalf("tree %s: root %s, model %s", tree, got[tree], want[tree])
		}
		keys := m.sortedKeys(tree)
		for _, k := range keys {
			v, err := db.Get(tree, []byte(k))
			if err != nil || !bytes.Equal(v, m[tree][k]) {
				t.Fatalf("tree %s key %s: got %q, %v; want %q", tree, k, v, err, m[tree][k])
			}
		}
		if v, err := db.Get(tree, []byte("absent")); v != nil || err != nil {
			t.Fatalf("absent key: %q, %v", v, err)
		}
		// Iteration over a random range, both ways.
		lo, hi := fmt.Sprintf("k%05d", rng.IntN(20000)), fmt.Sprintf("k%05d", rng.IntN(20000))
		if lo > hi {
			lo, hi = hi, lo
		}
		var inRange []string
		for _, k := range keys {
			if k >= lo && k < hi {
				inRange = append(inRange, k)
			}
		}
		for _, reverse := range []bool{false, true} {
			it, err := db.NewIterator(tree, []byte(lo), []byte(hi), reverse)
			if err != nil {
				t.Fatal(err)
			}
			var seen []string
			for ; it.Valid(); it.Next() {
				seen = append(seen, string(it.Key()))
				if !bytes.Equal(it.Value(), m[tree][string(it.Key())]) {
					t.Fatalf("iterator value of %s", it.Key())
				}
			}
			if err := it.Close(); err != nil {
				t.Fatal(err)
			}
			expect := slices.Clone(inRange)
			if reverse {
				slices.Reverse(expect)
			}
			if !slices.Equal(seen, expect) {
				t.Fatalf("tree %s [%s,%s) reverse=%v: iterated %d keys, model %d", tree, lo, hi, reverse, len(seen), len(expect))
			}
		}
		// Proofs of a few present and absent keys.
		root := got[tree]
		for range 5 {
			key := []byte(fmt.Sprintf("k%05d", rng.IntN(20000)))
			if len(keys) > 0 && rng.IntN(2) == 0 {
				key = []byte(keys[rng.IntN(len(keys))])
			}
			proof, exists, err := db.Prove(tree, key)
			if len(keys) == 0 {
				continue
			}
			if err != nil {
				t.Fatalf("prove %s/%s: %v", tree, key, err)
			}
			value, present := m[tree][string(key)]
			if exists != present {
				t.Fatalf("prove %s/%s: exists=%v, model %v", tree, key, exists, present)
			}
			ok := exists && ics23.VerifyMembership(ics23.SmtSpec, root[:], proof, key, value) ||
				!exists && ics23.VerifyNonMembership(ics23.SmtSpec, root[:], proof, key)
			if !ok {
				t.Fatalf("proof of %s/%s (exists=%v) does not verify", tree, key, exists)
			}
		}
	}
	if raceEnabled && rng.IntN(8) != 0 {
		return
	}
	violations, err := db.Check()
	if err != nil || len(violations) > 0 {
		t.Fatalf("check: %v %v", err, violations)
	}
}

// TestEngineModelAcrossReopen commits random batches over three trees with
// a tiny initial table (so it grows several times), closing and reopening
// now and then, and compares every read with the model after each commit.
func TestEngineModelAcrossReopen(t *testing.T) {
	for _, syncFlush := range []bool{false, true} {
		t.Run(fmt.Sprintf("syncFlush=%v", syncFlush), func(t *testing.T) {
			dir := t.TempDir()
			// Every page stored, so that the table grows.
			opts := Options{InitialBuckets: 16, SyncFlush: syncFlush, PageCachePages: 64, ElideBelow: 1}
			db, err := Open(dir, testTrees, opts)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(7, uint64(len(dir))))
			m := newModel()
			versions := uint64(60)
			if raceEnabled {
				versions = 25
			}
			for v := uint64(1); v <= versions; v++ {
				randomEngineBatch(t, rng, db, m, rng.IntN(300))
				if rng.IntN(3) == 0 {
					if _, err := db.WorkingRoots(); err != nil {
						t.Fatal(err)
					}
				}
				res, err := db.Commit()
				if err != nil {
					t.Fatalf("commit %d: %v", v, err)
				}
				if res.Version != v {
					t.Fatalf("commit returned version %d, want %d", res.Version, v)
				}
				checkAgainstModel(t, rng, db, m)
				if rng.IntN(6) == 0 {
					if err := db.Close(); err != nil {
						t.Fatal(err)
					}
					if db, err = Open(dir, testTrees, opts); err != nil {
						t.Fatal(err)
					}
					if db.Version() != v {
						t.Fatalf("reopened at %d, want %d", db.Version(), v)
					}
					checkAgainstModel(t, rng, db, m)
				}
			}
			st := db.Stats()
			t.Logf("table: %d buckets (generation %d), load %.2f, mean probe %.2f, longest %d",
				st.Table.Buckets, st.Table.Generation, st.Table.LoadFactor, st.Table.MeanProbe, st.Table.LongestProbe)
			if st.Table.Generation < 2 {
				t.Fatalf("table grew %d times, want several", st.Table.Generation)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestCloseWithReaders: Close waits for reads in flight (they end with their
// value or ErrClosed, never a panic) and refuses while iterators are open.
func TestCloseWithReaders(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, testTrees, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Set("bank", []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Commit(); err != nil {
		t.Fatal(err)
	}
	it, err := db.NewIterator("bank", nil, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); !errors.Is(err, ErrIteratorsOpen) {
		t.Fatalf("close with an open iterator: %v", err)
	}
	if !it.Valid() || string(it.Key()) != "k" {
		t.Fatal("the refused Close disturbed the iterator")
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				v, err := db.Get("bank", []byte("k"))
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil || string(v) != "v" {
					t.Errorf("get during close: %q, %v", v, err)
					return
				}
			}
		}()
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
}

// TestOpenAfterKilledFirstOpen: a first Open killed while writing FORMAT
// leaves FORMAT.tmp; the next Open must take the directory.
func TestOpenAfterKilledFirstOpen(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, formatFile+".tmp"), []byte("nomtstore-fo"), 0o644); err != nil {
		t.Fatal(err)
	}
	db, err := Open(dir, testTrees, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestWaitFlushed: after WaitFlushed the commit's pages are in the table,
// its WAL record is gone and the table holds no dirty page.
func TestWaitFlushed(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, testTrees, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	if err := db.WaitFlushed(); err != nil {
		t.Fatalf("with no commit yet: %v", err)
	}
	for i := range 100 {
		if err := db.Set("bank", fmt.Appendf(nil, "k%d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := db.WaitFlushed(); err != nil {
		t.Fatal(err)
	}
	if wals := ftWALs(t, db); len(wals) != 0 {
		t.Fatalf("WAL records left after WaitFlushed: %v", wals)
	}
	if n := db.Stats().DirtyPages; n != 0 {
		t.Fatalf("%d dirty pages after WaitFlushed", n)
	}
}

// TestCompact: after a prune, Compact frees the pruned versions' space at
// once, and every read (the latest state, the retained versions, a reopen)
// is what it was, also while reads run beside it.
func TestCompact(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, testTrees, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	rng := rand.New(rand.NewPCG(7, 7))
	m := newModel()
	var retainedRoots map[string]trie.Hash
	for v := 1; v <= 60; v++ {
		randomEngineBatch(t, rng, db, m, 300)
		if _, err := db.Commit(); err != nil {
			t.Fatal(err)
		}
		if v == 55 {
			retainedRoots = db.Roots()
		}
	}
	if err := db.PruneTo(50); err != nil {
		t.Fatal(err)
	}
	if err := db.WaitFlushed(); err != nil {
		t.Fatal(err)
	}
	tablesBytes := func() int64 {
		var n int64
		entries, err := os.ReadDir(filepath.Join(dir, "pebble"))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if info, err := e.Info(); err == nil {
				n += info.Size()
			}
		}
		return n
	}
	before := tablesBytes()
	stop := make(chan struct{})
	var readers sync.WaitGroup
	readers.Add(1)
	go func() {
		defer readers.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := db.Get("bank", []byte("k00001")); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	err = db.Compact()
	close(stop)
	readers.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if after := tablesBytes(); after >= before {
		t.Fatalf("Pebble's files take %d bytes after Compact, %d before", after, before)
	}
	checkAgainstModel(t, rng, db, m)
	if got, err := db.RootsAt(55); err != nil || !maps.Equal(got, retainedRoots) {
		t.Fatalf("roots of version 55 after Compact: %v, %v; want %v", got, err, retainedRoots)
	}
	if violations, err := db.Check(); err != nil || len(violations) > 0 {
		t.Fatalf("Check after Compact: %v, %v", violations, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Compact(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Compact after Close: %v, want ErrClosed", err)
	}
	db, err = Open(dir, testTrees, Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkAgainstModel(t, rng, db, m)
}
