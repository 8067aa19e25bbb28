package commitment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble"

	"github.com/nomtstore/nomtstore/commitment/trie"
)

// randomPage is a page with some random nodes, as the trie would leave it.
func randomPage(rng *rand.Rand, id trie.PageID) *trie.Page {
	p := trie.NewPage(7, id)
	for range 1 + rng.IntN(20) {
		var n trie.Node
		for i := range n.Hash {
			n.Hash[i] = byte(rng.Uint32())
		}
		n.Leaf = rng.IntN(2) == 0
		p.SetNode(rng.IntN(trie.PageNodes), n)
	}
	return p
}

// changePage rewrites a few nodes of p, as one commit does.
func changePage(rng *rand.Rand, p *trie.Page) *trie.Page {
	c := p.Clone()
	for range 1 + rng.IntN(6) {
		var n trie.Node
		n.Hash[0], n.Hash[31] = byte(rng.Uint32()), 1
		c.SetNode(rng.IntN(trie.PageNodes), n)
	}
	return c
}

// TestWholeCopiesAreStaggered: pages created together and then changed in
// every version store their whole copies spread over the versions, not all
// in the same ones.
func TestWholeCopiesAreStaggered(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	const pages = 2000
	ids := make([]trie.PageID, 0, pages)
	for i := 0; len(ids) < pages; i++ {
		var path trie.KeyPath
		binary.BigEndian.PutUint32(path[:], uint32(i)<<20)
		ids = append(ids, trie.PageIDOf(&path, 2))
	}
	current := make([]*trie.Page, pages)
	for i, id := range ids {
		current[i] = randomPage(rng, id)
		supersededPage(1, trie.PageChange{ID: id, Page: current[i]})
	}
	const versions = 3 * maxDeltaChain
	most, total := 0, 0
	for range versions {
		whole := 0
		for i, id := range ids {
			next := changePage(rng, current[i])
			if supersededPage(1, trie.PageChange{ID: id, Page: next, Prior: current[i]})[0] == pageWhole {
				whole++
			}
			current[i] = next
		}
		most, total = max(most, whole), total+whole
	}
	if mean := total / versions; mean != pages/maxDeltaChain || most > 2*mean {
		t.Fatalf("whole copies per version: %d at most, %d on average (%d pages, one copy per %d changes)", most, mean, pages, maxDeltaChain)
	}
}

func TestSupersededPageForms(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const store = trie.StoreID(3)
	id := trie.RootPageID
	page := randomPage(rng, id)
	start := historyStart(store, id)
	if e := supersededPage(store, trie.PageChange{ID: id, Page: page}); !bytes.Equal(e, []byte{pageCreated}) || page[trie.HistoryOffset] != start {
		t.Fatalf("a created page: entry %x, history byte %d, want %d", e, page[trie.HistoryOffset], start)
	}
	// Each change stores a delta until the chain would reach its bound,
	// then a whole copy; the page before is always what the entry gives.
	// The first chain starts at the page's historyStart.
	for i := 1; i <= 3*maxDeltaChain; i++ {
		next := changePage(rng, page)
		entry := supersededPage(store, trie.PageChange{ID: id, Page: next, Prior: page})
		again := supersededPage(store, trie.PageChange{ID: id, Page: next, Prior: page})
		if !bytes.Equal(entry, again) {
			t.Fatalf("change %d: the entry differs when encoded twice", i)
		}
		count := (int(start) + i) % maxDeltaChain
		wantWhole := count == 0
		if (entry[0] == pageWhole) != wantWhole || !wantWhole && entry[0] != pageDelta {
			t.Fatalf("change %d: entry kind %d (history byte of the prior %d)", i, entry[0], page[trie.HistoryOffset])
		}
		if want := byte(count); next[trie.HistoryOffset] != want {
			t.Fatalf("change %d: history byte %d, want %d", i, next[trie.HistoryOffset], want)
		}
		if entry[0] == pageDelta && len(entry) > trie.PageSize/8 {
			t.Fatalf("change %d: a delta of %d bytes for a few nodes", i, len(entry))
		}
		before, err := pageBefore(entry, func() (*trie.Page, error) { return next, nil })
		if err != nil || *before != *page {
			t.Fatalf("change %d: page before differs (%v)", i, err)
		}
		page = next
	}
	// A cleared page is kept whole: no page is left to take a delta from.
	if e := supersededPage(store, trie.PageChange{ID: id, Prior: page}); e[0] != pageWhole || !bytes.Equal(e[1:], page[:]) {
		t.Fatalf("a cleared page: entry kind %d", e[0])
	}
}

func TestPageBeforeRefusesDamage(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	prior := randomPage(rng, trie.RootPageID)
	page := changePage(rng, prior)
	delta := supersededPage(1, trie.PageChange{ID: trie.RootPageID, Page: page, Prior: prior})
	current := func() (*trie.Page, error) { return page, nil }
	tests := map[string]struct {
		entry []byte
		after func() (*trie.Page, error)
	}{
		"empty":             {nil, current},
		"unknown kind":      {[]byte{9}, current},
		"long created":      {[]byte{pageCreated, 0}, current},
		"short whole":       {append([]byte{pageWhole}, prior[:100]...), current},
		"truncated delta":   {delta[:len(delta)-1], current},
		"delta with extra":  {append(bytes.Clone(delta), 0), current},
		"delta header only": {delta[:10], current},
		"delta from nothing": {delta, func() (*trie.Page, error) {
			return nil, nil
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if p, err := pageBefore(tc.entry, tc.after); err == nil {
				t.Fatalf("accepted, gave a page: %v", p != nil)
			}
		})
	}
}

// TestPagesAtEveryVersion changes one small tree's pages in every commit,
// far past the delta chain's bound, and reads each page back at every
// version, before and after pruning, against copies taken as each version
// committed.
func TestPagesAtEveryVersion(t *testing.T) {
	db, err := Open(t.TempDir(), []string{"acc"}, Options{InitialBuckets: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	rng := rand.New(rand.NewPCG(5, 6))
	const versions = 3*maxDeltaChain + 5
	type snapshot map[trie.PageID]trie.Page
	at := map[uint64]snapshot{}
	keys := 0
	for v := uint64(1); v <= versions; v++ {
		// Some keys change, one or two arrive, and now and then one goes.
		for range 5 {
			if err := db.Set("acc", fmt.Appendf(nil, "k%03d", rng.IntN(keys+2)), fmt.Appendf(nil, "v%d", rng.Uint32())); err != nil {
				t.Fatal(err)
			}
		}
		keys += 2
		if v%7 == 0 {
			if err := db.Delete("acc", fmt.Appendf(nil, "k%03d", rng.IntN(keys))); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.Commit(); err != nil {
			t.Fatal(err)
		}
		at[v] = currentPages(t, db)
	}
	check := func(from uint64) {
		t.Helper()
		for v := from; v <= versions; v++ {
			for id := range at[versions] {
				got := pageAtVersion(t, db, id, v)
				if w, existed := at[v][id]; existed != (got != nil) || existed && *got != w {
					t.Fatalf("page %s at version %d: got a page %v, want one %v (or it differs)", id, v, got != nil, existed)
				}
			}
			if violations, err := db.CheckAt(v); err != nil || len(violations["acc"]) > 0 {
				t.Fatalf("version %d: %v %v", v, err, violations)
			}
		}
	}
	check(1)
	// The history holds about one whole page per maxDeltaChain changes.
	var whole, deltas int
	countEntries(t, db, prefixOldPage, func(v []byte) bool {
		switch v[0] {
		case pageWhole:
			whole++
		case pageDelta:
			deltas++
		}
		return true
	})
	if deltas < 4*whole {
		t.Errorf("%d whole pages and %d deltas in the history: deltas should be most of it", whole, deltas)
	}
	if err := db.PruneTo(versions / 2); err != nil {
		t.Fatal(err)
	}
	check(versions/2 + 1)
}

// currentPages copies every page of the tree at the latest version.
func currentPages(t *testing.T, db *DB) map[trie.PageID]trie.Page {
	t.Helper()
	pages := map[trie.PageID]trie.Page{}
	var walk func(id trie.PageID)
	walk = func(id trie.PageID) {
		p := pageAtVersion(t, db, id, db.Version())
		if p == nil {
			return
		}
		pages[id] = *p
		for i := range trie.PageFanout {
			walk(id.Child(i))
		}
	}
	walk(trie.RootPageID)
	return pages
}

func pageAtVersion(t *testing.T, db *DB, id trie.PageID, v uint64) *trie.Page {
	t.Helper()
	db.mu.RLock()
	defer db.mu.RUnlock()
	tr, _ := db.committed.view(db.committed.trees["acc"], v).trie(nil)
	p, err := tr.Pages.Page(id)
	if err != nil {
		t.Fatalf("page %s at version %d: %v", id, v, err)
	}
	if p == nil {
		return nil
	}
	c := *p
	clear(c[trie.ChecksumOffset:]) // the table's checksum bytes are not the page's
	return &c
}

// A damaged delta makes reads of the versions that need it fail with
// ErrCorrupt, and leaves the others readable.
func TestDamagedPageHistoryIsCorruption(t *testing.T) {
	db, err := Open(t.TempDir(), []string{"acc"}, Options{ElideBelow: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	for v := range 4 {
		if err := db.Set("acc", fmt.Appendf(nil, "k%d", v), []byte("value")); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	// Version 3's record of the root page as version 2 left it.
	key := oldPageKey(3, db.committed.trees["acc"].store, trie.RootPageID)
	entry, closer, err := db.history.Get(key)
	if err != nil {
		t.Fatal(err)
	}
	damaged := append(bytes.Clone(entry), 0xff)
	_ = closer.Close()
	if damaged[0] != pageDelta {
		t.Fatalf("version 3 stored the root page as kind %d, want a delta", damaged[0])
	}
	if err := db.history.Set(key, damaged, pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	db.mu.Lock()
	db.committed.snap.release()
	db.committed.snap = newSnapshot(db.pebble, db.history.DB)
	db.mu.Unlock()
	// (Version 1 holds one key: its root is that key's leaf, in no page.)
	for _, v := range []uint64{2} {
		if _, _, err := db.ProveAt("acc", []byte("k0"), v); !errors.Is(err, ErrCorrupt) {
			t.Errorf("proof at version %d through the damaged delta: %v", v, err)
		}
	}
	for _, v := range []uint64{3, 4} {
		if _, _, err := db.ProveAt("acc", []byte("k0"), v); err != nil {
			t.Errorf("proof at version %d, which needs no damaged entry: %v", v, err)
		}
	}
}

// TestHistoryTablesDoNotOverlap: the page history's tables hold disjoint
// ranges of versions, through checkpoints and a reopen, so Pebble moves them
// down its levels instead of rewriting them. A range deletion written when
// there is nothing to delete (at a checkpoint with nothing pruned, at open
// with no stray versions) would span the history and overlap them all.
func TestHistoryTablesDoNotOverlap(t *testing.T) {
	dir := t.TempDir()
	opts := Options{CheckpointInterval: 7}
	db, err := Open(dir, testTrees, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	rng := rand.New(rand.NewPCG(5, 5))
	m := newModel()
	for v := 1; v <= 60; v++ {
		randomEngineBatch(t, rng, db, m, 200)
		if _, err := db.Commit(); err != nil {
			t.Fatal(err)
		}
		if v%5 == 0 {
			// A table per five versions.
			if err := db.history.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		if v == 30 {
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if db, err = Open(dir, testTrees, opts); err != nil {
				t.Fatal(err)
			}
		}
	}
	levels, err := db.history.SSTables()
	if err != nil {
		t.Fatal(err)
	}
	var tables []pebble.SSTableInfo
	for _, level := range levels {
		tables = append(tables, level...)
	}
	if len(tables) < 10 {
		t.Fatalf("%d history tables, want a dozen", len(tables))
	}
	slices.SortFunc(tables, func(a, b pebble.SSTableInfo) int { return bytes.Compare(a.Smallest.UserKey, b.Smallest.UserKey) })
	for i := 1; i < len(tables); i++ {
		if bytes.Compare(tables[i-1].Largest.UserKey, tables[i].Smallest.UserKey) >= 0 {
			t.Fatalf("history tables overlap: %x..%x and %x..%x", tables[i-1].Smallest.UserKey, tables[i-1].Largest.UserKey, tables[i].Smallest.UserKey, tables[i].Largest.UserKey)
		}
	}
	checkAgainstModel(t, rng, db, m)
}

// TestPrunedHistoryGoesOnceDurable: pruning deletes the superseded pages of
// the versions it pruned only once Pebble has flushed the batch that moved
// the earliest version (a crash before would bring those versions back),
// and then without waiting for a checkpoint.
func TestPrunedHistoryGoesOnceDurable(t *testing.T) {
	db, err := Open(t.TempDir(), testTrees, Options{CheckpointInterval: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	rng := rand.New(rand.NewPCG(9, 9))
	m := newModel()
	for range 30 {
		randomEngineBatch(t, rng, db, m, 100)
		if _, err := db.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	through := func(v uint64) int {
		it, err := db.history.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixOldPage}, UpperBound: versionKey(prefixOldPage, v+1)})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = it.Close() }()
		n := 0
		for it.First(); it.Valid(); it.Next() {
			n++
		}
		return n
	}
	if err := db.PruneTo(10); err != nil {
		t.Fatal(err)
	}
	if through(11) == 0 {
		t.Fatal("the history of versions up to 11 went before the pruning batch was durable")
	}
	if err := db.pebble.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := db.PruneTo(12); err != nil {
		t.Fatal(err)
	}
	if n := through(11); n != 0 {
		t.Fatalf("%d superseded pages of versions up to 11 left once their pruning was durable", n)
	}
	if through(14) == 0 {
		t.Fatal("the history of retained versions went")
	}
	checkAgainstModel(t, rng, db, m)
}
