package commitment

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
	"time"
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
