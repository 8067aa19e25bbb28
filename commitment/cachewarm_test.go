package commitment

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/VictoriaMetrics/fastcache"
)

// TestCachesWarmAtOpen: a reopened DB serves the latest values and its
// elided subtrees' keys from the caches it filled at open, and what it
// serves from them equals the value store.
func TestCachesWarmAtOpen(t *testing.T) {
	dir := t.TempDir()
	db := ftOpen(t, dir, Options{ElideBelow: 8})
	const keys = 5000
	for i := range keys {
		if err := db.Set(testTrees[0], fmt.Appendf(nil, "key%05d", i), fmt.Appendf(nil, "value%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	ftCommit(t, db, 1)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	for _, cold := range []bool{false, true} {
		db := ftOpen(t, dir, Options{ColdCaches: cold})
		hits := 0
		for i := range keys {
			key := fmt.Appendf(nil, "key%05d", i)
			if r, ok := db.values.get(db.trees[testTrees[0]].store, key); ok {
				hits++
				if !r.found || !bytes.Equal(r.entry[bornSize:], fmt.Appendf(nil, "value%d", i)) {
					t.Fatalf("cached %s is %q", key, r.entry)
				}
			}
		}
		if cold && hits != 0 || !cold && hits != keys {
			t.Fatalf("cold=%v: %d of %d values cached after open", cold, hits, keys)
		}
		var st fastcache.Stats
		if db.leaves.c != nil {
			db.leaves.c.UpdateStats(&st)
		}
		subtrees := int(st.EntriesCount)
		if cold != (subtrees == 0) {
			t.Fatalf("cold=%v: %d elided subtrees cached after open", cold, subtrees)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
