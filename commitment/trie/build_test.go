package trie

import (
	"errors"
	"fmt"
	"testing"
)

// TestBuildMatchesUpdate builds tries of every size class from sorted
// leaves, with windows far smaller than the key count (so pages are
// assembled from their bottom nodes at several levels), and compares the
// root and every page with one batch update of the same keys into an empty
// trie.
func TestBuildMatchesUpdate(t *testing.T) {
	cases := []struct{ keys, elide, window int }{
		{0, 64, 256}, {1, 64, 256}, {2, 64, 256}, {63, 64, 256}, {64, 64, 256}, {65, 0, 256},
		{3000, 0, 256}, {3000, 16, 256}, {3000, 64, 256}, {3000, 64, 1 << 20},
		{40000, 64, 256}, {40000, 0, 300}, {40000, 300, 300}, {40000, 7, 1000},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("keys=%d/elide=%d/window=%d", c.keys, c.elide, c.window), func(t *testing.T) {
			m := elidedStoreWith(t, c.keys, 9, c.elide)
			leaves, err := m.leaves.Under(KeyPath{}, 0, 1<<30)
			if err != nil {
				t.Fatal(err)
			}
			built := map[PageID]*Page{}
			b := &Builder{Store: 1, ElideBelow: c.elide, Window: c.window, Emit: func(id PageID, p *Page) error {
				if _, dup := built[id]; dup {
					return fmt.Errorf("page %s emitted twice", id)
				}
				built[id] = p
				return nil
			}}
			res, err := b.Build(sliceLeaves(leaves))
			if err != nil {
				t.Fatal(err)
			}
			if res.Root != m.Root() {
				t.Fatalf("root %s, a batch update makes %s", res.Root, m.Root())
			}
			if res.Leaves != c.keys || res.Pages != len(built) {
				t.Fatalf("result counts %d leaves and %d pages; %d keys went in, %d pages came out", res.Leaves, res.Pages, c.keys, len(built))
			}
			if len(built) != len(m.pages) {
				t.Fatalf("built %d pages, a batch update stores %d", len(built), len(m.pages))
			}
			for id, want := range m.pages {
				if got := built[id]; got == nil || *got != *want {
					t.Fatalf("page %s differs from the batch update's (built: %v)", id, got != nil)
				}
			}
		})
	}
}

func sliceLeaves(leaves []Leaf) func() (Leaf, bool, error) {
	i := 0
	return func() (Leaf, bool, error) {
		if i == len(leaves) {
			return Leaf{}, false, nil
		}
		i++
		return leaves[i-1], true, nil
	}
}

// TestBuildRefusesBadStreams: leaves out of order or repeated, a failing
// source and a failing page sink each end the build with their error.
func TestBuildRefusesBadStreams(t *testing.T) {
	m := elidedStoreWith(t, 2000, 4, 64)
	leaves, _ := m.leaves.Under(KeyPath{}, 0, 1<<30)
	swapped := append([]Leaf(nil), leaves...)
	swapped[1500], swapped[1501] = swapped[1501], swapped[1500]
	repeated := append(append([]Leaf(nil), leaves[:10]...), leaves[9:]...)
	boom := errors.New("boom")
	failing := func() (Leaf, bool, error) { return Leaf{}, false, boom }
	cases := []struct {
		name string
		next func() (Leaf, bool, error)
		emit func(PageID, *Page) error
		want error
	}{
		{"out of order late", sliceLeaves(swapped), nil, ErrBuildOrder},
		{"repeated", sliceLeaves(repeated), nil, ErrBuildOrder},
		{"source fails", failing, nil, boom},
		{"sink fails", sliceLeaves(leaves), func(PageID, *Page) error { return boom }, boom},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			emit := c.emit
			if emit == nil {
				emit = func(PageID, *Page) error { return nil }
			}
			b := &Builder{Store: 1, ElideBelow: 64, Window: 256, Emit: emit}
			if _, err := b.Build(c.next); !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}
