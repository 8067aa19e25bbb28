package commitment

import (
	"testing"

	"github.com/nomtstore/nomtstore/commitment/trie"
)

// TestLeafCacheKeepsBuckets round-trips elided subtrees through the leaf
// cache with and without their bucket nodes, and refuses entries of a later
// version or too large to keep.
func TestLeafCacheKeepsBuckets(t *testing.T) {
	c := newLeafCache(32 << 20)
	leaves := make([]trie.Leaf, 5)
	for i := range leaves {
		leaves[i].Path[0], leaves[i].Hash[0] = byte(i*40), byte(i+1)
	}
	buckets := new(trie.Buckets)
	buckets[2][0], buckets[7][31] = 9, 8
	withID := trie.PageIDOf(&leaves[0].Path, 1)
	withoutID := trie.PageIDOf(&leaves[4].Path, 2)
	c.put(1, withID, leaves, buckets, 10)
	c.put(1, withoutID, leaves[:2], nil, 10)

	tests := []struct {
		name        string
		id          trie.PageID
		version     uint64
		wantLeaves  []trie.Leaf
		wantBuckets *trie.Buckets
		wantFound   bool
	}{
		{"with buckets", withID, 10, leaves, buckets, true},
		{"without buckets", withoutID, 11, leaves[:2], nil, true},
		{"read before the version written", withID, 9, nil, nil, false},
		{"a subtree not cached", trie.PageIDOf(&leaves[1].Path, 3), 10, nil, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, gotBuckets, found := c.get(1, tc.id, tc.version)
			if found != tc.wantFound {
				t.Fatalf("found %v, want %v", found, tc.wantFound)
			}
			if len(got) != len(tc.wantLeaves) {
				t.Fatalf("%d leaves, want %d", len(got), len(tc.wantLeaves))
			}
			for i := range got {
				if got[i] != tc.wantLeaves[i] {
					t.Fatalf("leaf %d differs", i)
				}
			}
			if (gotBuckets == nil) != (tc.wantBuckets == nil) || (gotBuckets != nil && *gotBuckets != *tc.wantBuckets) {
				t.Fatalf("buckets %v, want %v", gotBuckets, tc.wantBuckets)
			}
		})
	}

	// A subtree too large for one entry is dropped, not kept truncated.
	big := make([]trie.Leaf, maxCachedEntry/64)
	c.put(1, withID, big, buckets, 12)
	if _, _, found := c.get(1, withID, 12); found {
		t.Fatal("an entry over the cache's limit was kept")
	}
}
