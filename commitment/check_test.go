package commitment

import (
	"errors"
	"fmt"
	"strings"
	"testing"

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
	store := db.trees[testTrees[0]].store
	if err := db.pebble.Set(valueKey(store, []byte("k7")), bornValue(1, []byte("other")), nil); err != nil {
		t.Fatal(err)
	}
	db.mu.Lock()
	db.snap.release()
	db.snap = newSnapshot(db.pebble)
	db.mu.Unlock()
	violations, err := db.Check()
	if err != nil {
		t.Fatal(err)
	}
	v := violations[testTrees[0]]
	if len(v) != 1 || !strings.Contains(v[0].Error(), "the value of key 6b37 hashes to") || !strings.HasPrefix(v[0].Error(), "page root") {
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
