package commitment

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/nomtstore/nomtstore/commitment/trie"
)

// TestChangeListRoundTrip decodes what the builder encodes, for lists of
// every shape: empty, pages only, keys only (empty keys' neighbours, long
// keys), and both.
func TestChangeListRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, shape := range []struct{ pages, keys int }{{0, 0}, {3, 0}, {0, 5}, {40, 300}} {
		t.Run(fmt.Sprintf("%d pages %d keys", shape.pages, shape.keys), func(t *testing.T) {
			want := &changeList{pages: []changedPage{}, keys: []changedKey{}}
			var b changeListBuilder
			for range shape.pages {
				id := trie.RootPageID
				for range rng.IntN(4) {
					id = id.Child(rng.IntN(64))
				}
				p := changedPage{store: trie.StoreID(rng.IntN(5)), id: id, hadPrior: rng.IntN(2) == 0}
				want.pages = append(want.pages, p)
				b.addPage(p)
			}
			for range shape.keys {
				key := make([]byte, 1+rng.IntN(300))
				for i := range key {
					key[i] = byte(rng.Uint32())
				}
				k := changedKey{store: trie.StoreID(rng.IntN(5)), key: key, hadPrior: rng.IntN(2) == 0, deleted: rng.IntN(2) == 0}
				want.keys = append(want.keys, k)
				b.addKey(k)
			}
			if b.empty() != (shape.pages+shape.keys == 0) {
				t.Fatalf("empty() = %v", b.empty())
			}
			got, err := decodeChangeList(b.encode())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("decoded %+v, encoded %+v", got, want)
			}
		})
	}
}
