package commitment

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble"

	"github.com/nomtstore/nomtstore/commitment/trie"
)

// TestCheckReadsValues: Check recomputes each leaf from the stored value,
// so a value that no longer matches the leaf index is reported with its
// page.
func TestCheckReadsValues(t *testing.T) {
	db := ftOpen(t, t.TempDir(), Options{})
	defer func() { _ = db.Close() }()
	for i := range 200 {
		if err := db.Set(testTrees[0], fmt.Appendf(nil, "k%d", i), []byte("value")); err != nil {
			t.Fatal(err)
		}
	}
	ftCommit(t, db, 1)
	if v, err := db.Check(); err != nil || len(v) > 0 {
		t.Fatalf("check of a sound store: %v, %v", v, err)
	}
	// Damage one value behind the engine's back, as a bad disk would.
	store := db.committed.trees[testTrees[0]].store
	if err := db.pebble.Set(valueKey(store, []byte("k7")), bornValue(1, []byte("other")), pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	db.mu.Lock()
	db.committed.snap.release()
	db.committed.snap = newSnapshot(db.pebble, db.history.DB)
	db.mu.Unlock()
	violations, err := db.Check()
	if err != nil {
		t.Fatal(err)
	}
	v := violations[testTrees[0]]
	if len(v) != 1 || !strings.Contains(v[0].Error(), "the value of key 6b37 does not hash to") || !strings.HasPrefix(v[0].Error(), "page root") {
		t.Fatalf("violations %v, want the damaged value of k7 with its page", violations)
	}
	path := trie.PathOf([]byte("k7"))
	if v[0].Page != trie.PageIDOf(&path, v[0].Page.Depth()) {
		t.Fatalf("violation names page %s, which is not on k7's path", v[0].Page)
	}
	// One tree at a time, as nomtsimd's verify goes.
	if one, err := db.CheckTreeAt(testTrees[0], 1); err != nil || len(one) != 1 || one[0] != v[0] {
		t.Fatalf("CheckTreeAt: %v, %v; want %v", one, err, v)
	}
	if one, err := db.CheckTreeAt(testTrees[1], 1); err != nil || len(one) != 0 {
		t.Fatalf("CheckTreeAt of an empty tree: %v, %v", one, err)
	}
	if _, err := db.CheckTreeAt("nope", 1); !errors.Is(err, ErrUnknownTree) {
		t.Fatalf("CheckTreeAt of an unknown tree: %v", err)
	}
	if _, err := db.CheckTreeAt(testTrees[0], 2); !errors.Is(err, ErrVersionFuture) {
		t.Fatalf("CheckTreeAt of a future version: %v", err)
	}
}

// TestCheckChangesAt: checking what a version changed passes on a sound
// store at every retained version, and finds damage to the history that
// version's reads need, but not at versions that do not read it.
func TestCheckChangesAt(t *testing.T) {
	db := ftOpen(t, t.TempDir(), Options{ElideBelow: 4})
	defer func() { _ = db.Close() }()
	rng := rand.New(rand.NewPCG(7, 7))
	m := newModel()
	for v := uint64(1); v <= 6; v++ {
		randomEngineBatch(t, rng, db, m, 300)
		ftCommit(t, db, v)
	}
	for v := uint64(2); v <= 6; v++ {
		for _, name := range testTrees {
			if violations, err := db.CheckTreeChangesAt(name, v); err != nil || len(violations) > 0 {
				t.Fatalf("version %d tree %s: %v, %v", v, name, violations, err)
			}
		}
	}
	// Damage every superseded page that version 4 orphaned: they are the
	// pages as version 3 left them.
	it, err := db.history.NewIter(&pebble.IterOptions{LowerBound: versionKey(prefixOldPage, 4), UpperBound: versionKey(prefixOldPage, 5)})
	if err != nil {
		t.Fatal(err)
	}
	damaged := 0
	for it.First(); it.Valid(); it.Next() {
		v := bytes.Clone(it.Value())
		switch {
		case v[0] == pageWhole:
			v[1+40] ^= 0x5a // slot 1
		case v[0] == pageDelta && len(v) > 34+32:
			v[34+5] ^= 0x5a // the first node it restores
		default:
			continue
		}
		if err := db.history.Set(bytes.Clone(it.Key()), v, pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		damaged++
	}
	_ = it.Close()
	if damaged == 0 {
		t.Fatal("version 4 kept no page to damage")
	}
	db.mu.Lock()
	db.committed.snap.release()
	db.committed.snap = newSnapshot(db.pebble, db.history.DB)
	db.mu.Unlock()
	found := 0
	for _, name := range testTrees {
		violations, err := db.CheckTreeChangesAt(name, 3)
		if err != nil {
			t.Fatal(err)
		}
		found += len(violations)
		for _, v := range []uint64{4, 5, 6} {
			if violations, err := db.CheckTreeChangesAt(name, v); err != nil || len(violations) > 0 {
				t.Fatalf("version %d tree %s, which reads no damaged entry: %v, %v", v, name, violations, err)
			}
		}
	}
	if found == 0 {
		t.Fatal("the damage to version 3's pages went unnoticed")
	}
}
