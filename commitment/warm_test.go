package commitment

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/nomtstore/nomtstore/commitment/bitbox"
	"github.com/nomtstore/nomtstore/commitment/trie"
)

// With the warm-up on, staging keys brings their pages into the page cache
// before the commit, and the commits give the roots a DB without it gives.
// The first block, staged into an empty tree, reads nothing and leaves the
// warmer sampling (warmPace); each later one starts from a purged page
// cache, so it passes only if the warmer goes back to warming every key.
func TestWarmUpCachesPagesAndChangesNothing(t *testing.T) {
	warm, err := Open(t.TempDir(), testTrees, Options{WarmUp: WarmUpOn, PageCachePages: 4096, ElideBelow: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = warm.Close() }()
	cold, err := Open(t.TempDir(), testTrees, Options{WarmUp: WarmUpOff, PageCachePages: 4096, ElideBelow: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cold.Close() }()
	if warm.warm == nil || cold.warm != nil {
		t.Fatalf("warmers: on %v, off %v", warm.warm != nil, cold.warm != nil)
	}
	rng := rand.New(rand.NewPCG(9, 9))
	set := func(tree string, key, value []byte) {
		for _, db := range []*DB{warm, cold} {
			if err := db.Set(tree, key, value); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range 20_000 {
		set(testTrees[i%len(testTrees)], fmt.Appendf(nil, "key%06d", i), []byte("v"))
	}
	for v := range 5 {
		if v > 0 {
			// The cache starts from nothing: what the next block stages
			// is what the warmer reads.
			warm.mu.Lock()
			warm.committed.pages.cache.purge()
			warm.mu.Unlock()
			for range 200 {
				set(testTrees[rng.IntN(len(testTrees))], fmt.Appendf(nil, "key%06d", rng.IntN(20_000)), fmt.Appendf(nil, "v%d", v))
			}
			deadline := time.Now().Add(10 * time.Second)
			for len(warm.warm.keys) > 0 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			if n := warm.committed.pages.cache.lru.Len(); n < 100 {
				t.Fatalf("block %d: %d pages cached after staging 200 keys", v, n)
			}
		}
		a, err := warm.Commit()
		if err != nil {
			t.Fatal(err)
		}
		b, err := cold.Commit()
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(a.Roots, b.Roots) {
			t.Fatalf("version %d: roots with warm-up %v, without %v", a.Version, a.Roots, b.Roots)
		}
	}
}

// The warmer warms every key while warming reads something, one in
// warmSample once warmIdleKeys keys in a row read nothing, and every key
// again from the first sampled one that reads.
func TestWarmPaceSamplesOnlyWhileIdle(t *testing.T) {
	var p warmPace
	warmedKeys := func(n int, read bool) int {
		warmed := 0
		for range n {
			if p.next() {
				warmed++
				p.warmed(read)
			}
		}
		return warmed
	}
	if got := warmedKeys(warmIdleKeys, false); got != warmIdleKeys {
		t.Fatalf("warmed %d of the first %d keys", got, warmIdleKeys)
	}
	if got := warmedKeys(100*warmSample, false); got != 100 {
		t.Fatalf("idle: warmed %d of %d keys, want one in %d", got, 100*warmSample, warmSample)
	}
	// Reads again: the first sampled key that reads brings back warming
	// every key.
	if got := warmedKeys(warmSample, true); got != 1 {
		t.Fatalf("warmed %d of the next %d keys", got, warmSample)
	}
	if got := warmedKeys(1000, true); got != 1000 {
		t.Fatalf("after a read: warmed %d of 1000 keys", got)
	}
}

// The warmer's sign of reads to do counts pages read from the table only:
// a lookup of an absent page (an elided subtree's, where every key of a
// store of a million keys ends) probes the table's metadata in memory, and
// counting it kept the warmer warming every key at 1M keys, where warming
// costs the block more than it saves.
func TestTableReadsCountOnlyPagesRead(t *testing.T) {
	db := openElidedStore(t)
	db.mu.Lock()
	db.committed.pages.cache.purge()
	db.mu.Unlock()
	db.mu.RLock()
	defer db.mu.RUnlock()
	store := db.committed.trees[testTrees[0]].store
	var path trie.KeyPath
	for _, tc := range []struct {
		name      string
		pageDepth int
		found     bool
		reads     uint64
	}{
		{"the root page", 0, true, 1},
		{"the root page again, from the cache", 0, true, 0},
		// 5,000 keys put ~1.2 under each third-level page: elided.
		{"an elided page", 2, false, 0},
		{"a page below it", 4, false, 0},
	} {
		before := db.committed.pages.tableReads.Load()
		_, found, err := db.committed.pages.lookup(bitbox.PageKey{Store: store, ID: trie.PageIDOf(&path, tc.pageDepth)})
		if err != nil || found != tc.found {
			t.Fatalf("%s: found %v (%v), want %v", tc.name, found, err, tc.found)
		}
		if read := db.committed.pages.tableReads.Load() - before; read != tc.reads {
			t.Fatalf("%s: %d table reads counted, want %d", tc.name, read, tc.reads)
		}
	}
}

// A key whose pages are cached but whose elided subtree is not in the
// leaf cache reads the leaf index: a read to do only for a warmer that
// counts leaf reads, which it does with four cores or more.
func TestWarmKeyCountsLeafReadsWithCoresToSpare(t *testing.T) {
	for cores, want := range map[int]bool{1: false, 2: false, 3: false, 4: true, 64: true} {
		if got := warmsLeafIndex(cores); got != want {
			t.Errorf("warmsLeafIndex(%d) = %v, want %v", cores, got, want)
		}
	}
	db := openElidedStore(t)
	k := warmKey{t: db.committed.trees[testTrees[0]], key: "key000042"}
	for _, leafReads := range []bool{false, true} {
		db.committed.leaves.purge()
		if got := db.warmKey(k, leafReads); got != leafReads {
			t.Errorf("leaf reads counted %v: warming a key whose subtree is not cached read %v", leafReads, got)
		}
		// Now cached, by the read just made.
		if db.warmKey(k, leafReads) {
			t.Errorf("leaf reads counted %v: warming the key again read", leafReads)
		}
	}
}

// openElidedStore opens a DB without a warmer whose first tree holds 5,000
// committed keys: two levels of stored pages, the rest elided subtrees of
// a key or two.
func openElidedStore(t *testing.T) *DB {
	t.Helper()
	db, err := Open(t.TempDir(), testTrees, Options{WarmUp: WarmUpOff})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	for i := range 5000 {
		if err := db.Set(testTrees[0], fmt.Appendf(nil, "key%06d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Commit(); err != nil {
		t.Fatal(err)
	}
	return db
}
