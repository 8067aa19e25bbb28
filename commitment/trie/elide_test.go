package trie

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	ics23 "github.com/cosmos/ics23/go"
)

// elidedStoreWith is memStoreWith with pages of fewer than elide keys not
// stored.
func elidedStoreWith(t testing.TB, keys int, seed uint64, elide int) *MemStore {
	t.Helper()
	m := NewMemStore(1)
	m.Tree().ElideBelow = elide
	var batch []Change
	for i := range keys {
		batch = append(batch, Change{Key: fmt.Appendf(nil, "acct/%d/%d", seed, i), Value: fmt.Appendf(nil, "balance=%d", i*7+1)})
	}
	if _, err := m.Apply(batch); err != nil {
		t.Fatal(err)
	}
	return m
}

// keysUnder counts the keys of the leaf index below a page's top node.
func keysUnder(m *MemStore, id PageID) int {
	top := id.Path()
	leaves, _ := m.leaves.Under(top, id.Depth()*PageLevels, 1<<30)
	return len(leaves)
}

// TestElisionStoresExactlyTheBigPages grows a trie by inserts only, in
// batches of every size: the pages stored are exactly those whose subtree
// holds at least ElideBelow keys, whatever the batches, and the roots and
// proofs are those of the trie that stores every page.
func TestElisionStoresExactlyTheBigPages(t *testing.T) {
	for _, elide := range []int{3, 8, 20, 64} {
		t.Run(fmt.Sprintf("elide%d", elide), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(elide), 5))
			full, elided := NewMemStore(1), NewMemStore(1)
			elided.Tree().ElideBelow = elide
			elided.Options = UpdateOptions{Workers: 2, ParallelMinOps: 8}
			next := 0
			for round := range 40 {
				var batch []Change
				for range 1 + rng.IntN(400) {
					batch = append(batch, Change{Key: fmt.Appendf(nil, "k/%d", next), Value: fmt.Appendf(nil, "v%d", rng.Uint64())})
					next++
				}
				if _, err := full.Apply(batch); err != nil {
					t.Fatal(err)
				}
				if _, err := elided.Apply(batch); err != nil {
					t.Fatal(err)
				}
				if full.Root() != elided.Root() {
					t.Fatalf("round %d: root %s, without elision %s", round, elided.Root(), full.Root())
				}
				if err := elided.Check(); err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
			}
			stored := 0
			for id := range full.pages {
				want := keysUnder(full, id) >= elide
				if got := elided.pages[id] != nil; got != want {
					t.Fatalf("page %s with %d keys: stored %v, want %v", id, keysUnder(full, id), got, want)
				}
				if want {
					stored++
				}
			}
			if len(elided.pages) != stored {
				t.Fatalf("%d pages stored, %d expected", len(elided.pages), stored)
			}
			t.Logf("%d keys: %d of %d pages stored", next, stored, len(full.pages))
			for i := 0; i < next; i += 1 + next/50 {
				key := fmt.Appendf(nil, "k/%d", i)
				value, _ := elided.Get(key)
				proof, exists, err := elided.Prove(key)
				if err != nil || !exists || !ics23.VerifyMembership(ics23.SmtSpec, elided.Root().Bytes(), proof, key, value) {
					t.Fatalf("proof of %s: exists=%v err=%v", key, exists, err)
				}
				absent := fmt.Appendf(nil, "absent/%d", i)
				proof, exists, err = elided.Prove(absent)
				if err != nil || exists || !ics23.VerifyNonMembership(ics23.SmtSpec, elided.Root().Bytes(), proof, absent) {
					t.Fatalf("proof of absent %s: exists=%v err=%v", absent, exists, err)
				}
			}
		})
	}
}

// TestElidedTrieShrinks deletes keys until the trie is empty: every root
// along the way is the model's, and the pages of a shrinking trie are only
// ever cleared (a stored page is not elided again while it has keys).
func TestElidedTrieShrinks(t *testing.T) {
	m := elidedStoreWith(t, 3000, 2, 16)
	model := map[KeyPath]Hash{}
	m.leaves.Ascend(func(l Leaf) bool {
		key, value, _ := m.Preimage(l.Path)
		_ = key
		model[l.Path] = ValueHash(value)
		return true
	})
	paths := make([]KeyPath, 0, len(model))
	for p := range model {
		paths = append(paths, p)
	}
	rng := rand.New(rand.NewPCG(9, 9))
	rng.Shuffle(len(paths), func(i, j int) { paths[i], paths[j] = paths[j], paths[i] })
	for len(paths) > 0 {
		n := min(len(paths), 1+rng.IntN(200))
		ops := make([]Op, n)
		for i, p := range paths[:n] {
			ops[i] = Op{Path: p, Delete: true}
		}
		paths = paths[n:]
		slices.SortFunc(ops, func(a, b Op) int { return bytes.Compare(a.Path[:], b.Path[:]) })
		res, err := m.applyOps(ops)
		if err != nil {
			t.Fatal(err)
		}
		for _, pc := range res.Pages {
			if pc.Prior == nil {
				t.Fatalf("deletes created page %s", pc.ID)
			}
		}
		applyToModel(model, ops)
		if want := modelRoot(model); m.Root() != want {
			t.Fatalf("%d keys left: root %s, model %s", len(model), m.Root(), want)
		}
		if err := m.Check(); err != nil {
			t.Fatalf("%d keys left: %v", len(model), err)
		}
	}
	if m.Pages() != 0 || !m.Root().IsEmpty() {
		t.Fatalf("empty trie keeps %d pages", m.Pages())
	}
}

// TestElisionDetectsCorruption: a leaf index that disagrees with an elided
// subtree, or a stored page gone missing, is ErrCorrupt on update and
// proof and a violation in Check, never a wrong root.
func TestElisionDetectsCorruption(t *testing.T) {
	const elide = 16
	// elidedKey returns a key under an elided subtree of m, and that
	// subtree's keys.
	elidedKey := func(t *testing.T, m *MemStore) []byte {
		for i := 0; ; i++ {
			key := fmt.Appendf(nil, "acct/3/%d", i)
			path := PathOf(key)
			for d := PageLevels; d < MaxDepth; d += PageLevels {
				if m.pages[PageIDOf(&path, d/PageLevels)] == nil {
					if leaves, _ := m.leaves.Under(path, d, elide); len(leaves) >= 2 {
						return key
					}
					break
				}
			}
		}
	}
	cases := []struct {
		name   string
		damage func(t *testing.T, m *MemStore) []byte // returns a key whose update must fail
		want   string
	}{
		{"leaf hash changed", func(t *testing.T, m *MemStore) []byte {
			key := elidedKey(t, m)
			l, _ := m.leaves.Get(Leaf{Path: PathOf(key)})
			l.Hash[3] ^= 1
			m.leaves.ReplaceOrInsert(l)
			return key
		}, "hash to"},
		{"key missing from the index", func(t *testing.T, m *MemStore) []byte {
			key := elidedKey(t, m)
			m.leaves.Delete(Leaf{Path: PathOf(key)})
			return key
		}, "hash to"},
		{"stored page missing", func(t *testing.T, m *MemStore) []byte {
			id := RootPageID.Child(firstChild(m))
			delete(m.pages, id)
			for i := 0; ; i++ {
				key := fmt.Appendf(nil, "acct/3/%d", i)
				if p := PathOf(key); p.bits(0, PageLevels) == id.ChildIndex() {
					return key
				}
			}
		}, "missing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := elidedStoreWith(t, 3000, 3, elide)
			key := tc.damage(t, m)
			if err := m.Check(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check = %v, want a report containing %q", err, tc.want)
			}
			if _, _, err := m.Prove(key); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("prove: got %v, want ErrCorrupt", err)
			}
			before := m.Root()
			if _, err := m.Apply([]Change{{Key: key, Value: []byte("x")}}); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("update: got %v, want ErrCorrupt", err)
			}
			if m.Root() != before {
				t.Fatal("a failed update changed the root")
			}
		})
	}
}

// TestSmallTrieHasNoPages: a trie of fewer keys than ElideBelow stores no
// page at all, and still proves every key.
func TestSmallTrieHasNoPages(t *testing.T) {
	for _, keys := range []int{1, 2, 5, 31} {
		m := elidedStoreWith(t, keys, 7, 32)
		if m.Pages() != 0 {
			t.Fatalf("%d keys: %d pages stored", keys, m.Pages())
		}
		if err := m.Check(); err != nil {
			t.Fatal(err)
		}
		for i := range keys {
			key := fmt.Appendf(nil, "acct/7/%d", i)
			value, _ := m.Get(key)
			proof, exists, err := m.Prove(key)
			if err != nil || !exists || !ics23.VerifyMembership(ics23.SmtSpec, m.Root().Bytes(), proof, key, value) {
				t.Fatalf("%d keys: proof of %s: exists=%v err=%v", keys, key, exists, err)
			}
		}
	}
}

// elidedCache is what a cache of elided subtrees' keys holds when kept by
// applying UpdateResult.Elided.
type elidedCache map[PageID][]Leaf

func (c elidedCache) apply(res *UpdateResult) {
	for _, e := range res.Elided {
		if e.Leaves == nil {
			delete(c, e.ID)
		} else {
			c[e.ID] = e.Leaves
		}
	}
}

// check fails unless every cached subtree is elided and holds exactly the
// keys the leaf index has under it.
func (c elidedCache) check(t *testing.T, m *MemStore) {
	t.Helper()
	for id, cached := range c {
		if m.pages[id] != nil {
			t.Fatalf("cached subtree %s has a stored page", id)
		}
		leaves, _ := m.leaves.Under(id.Path(), id.Depth()*PageLevels, 1<<30)
		if !slices.Equal(leaves, cached) {
			t.Fatalf("cached subtree %s holds %d keys, the index %d", id, len(cached), len(leaves))
		}
	}
}

// bucketIndex is the leaf index with a cache of elided subtrees' keys and
// bucket nodes, kept by applying UpdateResult.Elided as the engine's leaf
// cache is: updates read the buckets back through ElidedHashes.
type bucketIndex struct {
	memLeaves
	leaves  elidedCache
	buckets map[PageID]*Buckets
	served  *atomic.Int64 // subtrees served with their buckets (updates read in parallel)
}

func (b bucketIndex) UnderElided(prefix KeyPath, depth, limit int) ([]Leaf, *Buckets, error) {
	if depth%PageLevels == 0 {
		id := PageIDOf(&prefix, depth/PageLevels)
		if leaves, ok := b.leaves[id]; ok {
			if b.buckets[id] != nil {
				b.served.Add(1)
			}
			return leaves, b.buckets[id], nil
		}
	}
	leaves, err := b.Under(prefix, depth, limit)
	return leaves, nil, err
}

func (b bucketIndex) apply(res *UpdateResult) {
	b.leaves.apply(res)
	for _, e := range res.Elided {
		if e.Leaves == nil {
			delete(b.buckets, e.ID)
		} else {
			b.buckets[e.ID] = e.Buckets
		}
	}
}

// TestElidedBucketsMatchRebuild updates elided subtrees through the bucket
// nodes earlier updates left (sets, deletes, inserts that turn a subtree
// into a page and deletes that elide it again; subtrees of fewer than
// minBucketedKeys keys keep none): the roots are those of the same trie
// updated without them, and every bucket node kept is the node over its
// leaves.
func TestElidedBucketsMatchRebuild(t *testing.T) {
	for _, elide := range []int{4, 24, 64} {
		t.Run(fmt.Sprintf("elide=%d", elide), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(elide), 7))
			withBuckets, plain := NewMemStore(1), NewMemStore(1)
			withBuckets.Tree().ElideBelow, plain.Tree().ElideBelow = elide, elide
			var served atomic.Int64
			index := bucketIndex{memLeaves: withBuckets.leaves, leaves: elidedCache{}, buckets: map[PageID]*Buckets{}, served: &served}
			withBuckets.Tree().Leaves = index
			keys := 1500 + rng.IntN(1000)
			for round := range 120 {
				var batch []Change
				seen := map[int]bool{}
				for range 1 + rng.IntN([]int{3, 30, 300}[round%3]) {
					k := rng.IntN(keys)
					if seen[k] {
						continue
					}
					seen[k] = true
					c := Change{Key: fmt.Appendf(nil, "k%d", k)}
					if _, ok := plain.Get(c.Key); ok && rng.IntN(3) == 0 {
						c.Delete = true
					} else {
						c.Value = fmt.Appendf(nil, "v%d", rng.Uint64())
					}
					batch = append(batch, c)
				}
				res, err := withBuckets.Apply(batch)
				if err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
				index.apply(res)
				if _, err := plain.Apply(batch); err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
				if withBuckets.Root() != plain.Root() {
					t.Fatalf("round %d: root %s with bucket nodes, %s without", round, withBuckets.Root(), plain.Root())
				}
			}
			for id, buckets := range index.buckets {
				if buckets == nil {
					continue
				}
				checkBuckets(t, id, index.leaves[id], buckets)
			}
			// Subtrees of fewer keys keep no bucket nodes.
			if elide > minBucketedKeys && served.Load() == 0 {
				t.Fatal("no update read an elided subtree's bucket nodes")
			}
		})
	}
}

// checkBuckets fails unless buckets are the nodes over leaves' buckets.
func checkBuckets(t *testing.T, id PageID, leaves []Leaf, buckets *Buckets) {
	t.Helper()
	d := id.Depth()*PageLevels + BucketBits
	for b := range buckets {
		var in []Leaf
		for _, l := range leaves {
			if l.Path.bits(id.Depth()*PageLevels, BucketBits) == b {
				in = append(in, l)
			}
		}
		var want Hash
		if len(in) >= 2 {
			n, _ := subtreeNode(in, d)
			want = n.Hash
		}
		if buckets[b] != want {
			t.Fatalf("subtree %s bucket %d (%d keys): node %s, want %s", id, b, len(in), buckets[b], want)
		}
	}
}
