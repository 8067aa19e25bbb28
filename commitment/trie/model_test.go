package trie

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// modelRoot computes the root of a key set from its definition, without
// pages: a set of one key is that key's leaf, a larger set is the internal
// node over the halves split by the next path bit, an empty set is zero.
func modelRoot(model map[KeyPath]Hash) Hash {
	leaves := make([]Leaf, 0, len(model))
	for p, vh := range model {
		leaves = append(leaves, NewLeaf(p, vh))
	}
	slices.SortFunc(leaves, func(a, b Leaf) int { return bytes.Compare(a.Path[:], b.Path[:]) })
	return subtreeRoot(leaves, 0)
}

func subtreeRoot(leaves []Leaf, depth int) Hash {
	switch len(leaves) {
	case 0:
		return Hash{}
	case 1:
		return leaves[0].Hash
	}
	split := 0
	for split < len(leaves) && leaves[split].Path.Bit(depth) == 0 {
		split++
	}
	return InternalHash(subtreeRoot(leaves[:split], depth+1), subtreeRoot(leaves[split:], depth+1))
}

// pathGen makes key paths that often share long prefixes with earlier ones,
// down to paths differing only in their last bit, so that tries get deep and
// cross many page boundaries.
type pathGen struct {
	rng  *rand.Rand
	seen []KeyPath
}

func (g *pathGen) next() KeyPath {
	var p KeyPath
	for i := range p {
		p[i] = byte(g.rng.UintN(256))
	}
	if len(g.seen) > 0 && g.rng.IntN(2) == 0 {
		base := g.seen[g.rng.IntN(len(g.seen))]
		shared := g.rng.IntN(MaxDepth) // bits in common with base
		if g.rng.IntN(4) == 0 {
			shared = MaxDepth - 1 - g.rng.IntN(8)
		}
		for bit := 0; bit < MaxDepth; bit++ {
			mask := byte(0x80 >> uint(bit&7))
			switch {
			case bit < shared:
				p[bit>>3] = p[bit>>3]&^mask | base[bit>>3]&mask
			case bit == shared:
				p[bit>>3] = p[bit>>3]&^mask | ^base[bit>>3]&mask
			}
		}
	}
	g.seen = append(g.seen, p)
	return p
}

// randomBatch returns sorted ops: updates and deletes of present keys,
// inserts of new ones, deletes of absent ones; now and then a batch that
// empties the trie.
func randomBatch(rng *rand.Rand, gen *pathGen, model map[KeyPath]Hash) []Op {
	present := make([]KeyPath, 0, len(model))
	for p := range model {
		present = append(present, p)
	}
	slices.SortFunc(present, func(a, b KeyPath) int { return bytes.Compare(a[:], b[:]) })
	byPath := map[KeyPath]Op{}
	if len(present) > 0 && rng.IntN(12) == 0 {
		for _, p := range present {
			byPath[p] = Op{Path: p, Delete: true}
		}
	}
	n := 1 + rng.IntN(24)
	if rng.IntN(8) == 0 {
		n = 300 + rng.IntN(700)
	}
	for i := 0; i < n; i++ {
		var op Op
		switch r := rng.IntN(10); {
		case r < 4 || len(present) == 0:
			op.Path = gen.next()
		case r < 7:
			op.Path = present[rng.IntN(len(present))]
		case r < 9:
			op = Op{Path: present[rng.IntN(len(present))], Delete: true}
		default:
			op = Op{Path: gen.next(), Delete: true}
		}
		if !op.Delete {
			op.ValueHash = ValueHash(fmt.Appendf(nil, "v%d", rng.Uint64()))
		}
		byPath[op.Path] = op
	}
	ops := make([]Op, 0, len(byPath))
	for _, op := range byPath {
		ops = append(ops, op)
	}
	slices.SortFunc(ops, func(a, b Op) int { return bytes.Compare(a.Path[:], b.Path[:]) })
	return ops
}

func applyToModel(model map[KeyPath]Hash, ops []Op) {
	for _, op := range ops {
		if op.Delete {
			delete(model, op.Path)
		} else {
			model[op.Path] = op.ValueHash
		}
	}
}

// TestUpdateMatchesModel applies random batches and checks, after each, the
// root against a from-scratch computation and every page invariant.
func TestUpdateMatchesModel(t *testing.T) {
	configs := []struct {
		name string
		opts UpdateOptions

		elide int
	}{
		{"sequential", UpdateOptions{Workers: 1}, 0},
		{"parallel", UpdateOptions{Workers: 3, ParallelMinOps: 2}, 0},
		{"sequential-elide4", UpdateOptions{Workers: 1}, 4},
		{"parallel-elide4", UpdateOptions{Workers: 3, ParallelMinOps: 2}, 4},
		{"parallel-elide20", UpdateOptions{Workers: 3, ParallelMinOps: 2}, 20},
	}
	seeds := 10
	if testing.Short() {
		seeds = 3
	}
	for _, cfg := range configs {
		for seed := range seeds {
			t.Run(fmt.Sprintf("%s/seed%d", cfg.name, seed), func(t *testing.T) {
				t.Parallel()
				rng := rand.New(rand.NewPCG(uint64(seed), 1))
				gen := &pathGen{rng: rng}
				m := NewMemStore(StoreID(seed))
				m.Options = cfg.opts
				m.Tree().ElideBelow = cfg.elide
				model := map[KeyPath]Hash{}
				cache := elidedCache{}
				emptied := 0
				for step := range 120 {
					ops := randomBatch(rng, gen, model)
					wasEmpty := len(model) == 0
					res, err := m.applyOps(ops)
					if err != nil {
						t.Fatalf("step %d: %v", step, err)
					}
					cache.apply(res)
					cache.check(t, m)
					applyToModel(model, ops)
					if want := modelRoot(model); res.Root != want {
						t.Fatalf("step %d (%d ops, %d keys): root %s, model %s", step, len(ops), len(model), res.Root, want)
					}
					if err := m.Check(); err != nil {
						t.Fatalf("step %d: %v", step, err)
					}
					if len(model) == 0 && !wasEmpty {
						emptied++
						if m.Pages() != 0 || !m.Root().IsEmpty() {
							t.Fatalf("step %d: empty trie keeps %d pages, root %s", step, m.Pages(), m.Root())
						}
					}
				}
				t.Logf("%d keys, %d pages, emptied %d times", len(model), m.Pages(), emptied)
			})
		}
	}
}

// TestSplitIndependence applies one set of changes in different batch splits
// and orders: the trie (root and pages) must come out the same.
func TestSplitIndependence(t *testing.T) {
	rng := rand.New(rand.NewPCG(42, 42))
	gen := &pathGen{rng: rng}
	var ops []Op
	for range 600 {
		ops = append(ops, Op{Path: gen.next(), ValueHash: ValueHash([]byte{byte(rng.UintN(256)), 1})})
	}
	slices.SortFunc(ops, func(a, b Op) int { return bytes.Compare(a.Path[:], b.Path[:]) })
	ops = slices.CompactFunc(ops, func(a, b Op) bool { return a.Path == b.Path })

	whole := NewMemStore(1)
	if _, err := whole.applyOps(ops); err != nil {
		t.Fatal(err)
	}
	for trial := range 5 {
		split := NewMemStore(1)
		split.Options = UpdateOptions{Workers: 1 + trial%2, ParallelMinOps: 4}
		shuffled := slices.Clone(ops)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		for len(shuffled) > 0 {
			n := min(len(shuffled), 1+rng.IntN(80))
			batch := slices.Clone(shuffled[:n])
			shuffled = shuffled[n:]
			slices.SortFunc(batch, func(a, b Op) int { return bytes.Compare(a.Path[:], b.Path[:]) })
			if _, err := split.applyOps(batch); err != nil {
				t.Fatal(err)
			}
		}
		if split.Root() != whole.Root() {
			t.Fatalf("trial %d: root %s, whole batch %s", trial, split.Root(), whole.Root())
		}
		if len(split.pages) != len(whole.pages) {
			t.Fatalf("trial %d: %d pages, whole batch %d", trial, len(split.pages), len(whole.pages))
		}
		for id, p := range whole.pages {
			if q := split.pages[id]; q == nil || *q != *p {
				t.Fatalf("trial %d: page %s differs", trial, id)
			}
		}
	}
}

func TestUpdateRejectsUnsortedOps(t *testing.T) {
	a, b := PathOf([]byte("a")), PathOf([]byte("b"))
	if bytes.Compare(a[:], b[:]) > 0 {
		a, b = b, a
	}
	m := NewMemStore(1)
	for name, ops := range map[string][]Op{
		"descending": {{Path: b}, {Path: a}},
		"duplicate":  {{Path: a}, {Path: a, Delete: true}},
	} {
		if _, err := m.tree.Update(m.root, ops, UpdateOptions{}); !errors.Is(err, ErrUnsortedOps) {
			t.Errorf("%s: got %v, want ErrUnsortedOps", name, err)
		}
	}
}

// TestUpdateResultPages checks what a batch reports: created pages have no
// prior, cleared pages no content, unchanged pages are not reported.
func TestUpdateResultPages(t *testing.T) {
	m := NewMemStore(3)
	var changes []Change
	for i := range 2000 {
		changes = append(changes, Change{Key: fmt.Appendf(nil, "k%d", i), Value: []byte("v")})
	}
	res, err := m.Apply(changes)
	if err != nil {
		t.Fatal(err)
	}
	for _, pc := range res.Pages {
		if pc.Prior != nil || pc.Page == nil {
			t.Fatalf("first batch: page %s has prior or no content", pc.ID)
		}
	}
	// Re-setting a value to itself changes no page.
	res, err = m.Apply([]Change{{Key: []byte("k7"), Value: []byte("v")}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Pages) != 0 {
		t.Fatalf("no-op batch reported %d pages", len(res.Pages))
	}
	// Deleting everything clears every page.
	for i := range changes {
		changes[i] = Change{Key: changes[i].Key, Delete: true}
	}
	pages := m.Pages()
	if res, err = m.Apply(changes); err != nil {
		t.Fatal(err)
	}
	if len(res.Pages) != pages || !res.Root.IsEmpty() {
		t.Fatalf("delete all: %d page changes for %d pages, root %s", len(res.Pages), pages, res.Root)
	}
	for _, pc := range res.Pages {
		if pc.Page != nil || pc.Prior == nil {
			t.Fatalf("delete all: page %s not reported as cleared", pc.ID)
		}
	}
}
