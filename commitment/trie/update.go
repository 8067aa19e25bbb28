package trie

import (
	"bytes"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"sync"
)

// Tree is one trie: the store it is namespaced by and where its committed
// pages and leaves are read from. A Tree holds no state of its own; the root
// hash is passed to each call, so one Tree serves every version its sources
// can serve.
type Tree struct {
	Store  StoreID
	Pages  PageSource
	Leaves LeafIndex
	// ElideBelow turns on page elision: a page whose subtree holds fewer
	// keys than this is not stored. Its parent's bottom node still holds
	// the subtree's hash; the subtree is rebuilt from the leaf index
	// (Under) whenever it is read or updated. Below 3 every page is stored
	// and a missing page is corruption.
	//
	// Invariants, with elision on: an internal bottom node without a child
	// page (an elided subtree) holds at least 2 and fewer than ElideBelow
	// keys, and nothing below it is stored; a page is elided when it is
	// created with too few keys under it. A stored page whose subtree
	// shrinks stays stored until it is cleared (it is not worth a count of
	// its keys at every delete), so stored pages may hold fewer keys.
	ElideBelow int
}

// elides reports whether pages with few keys below are elided.
func (t *Tree) elides() bool { return t.ElideBelow > 2 }

// Op is one change to a key: set it to a value whose digest is ValueHash, or
// delete it (deleting an absent key changes nothing).
type Op struct {
	Path      KeyPath
	ValueHash Hash
	Delete    bool
}

// UpdateOptions tune a batch update. The zero value is ready to use.
type UpdateOptions struct {
	// Workers bounds the goroutines hashing the 64 subtrees under the root
	// page in parallel; 0 means GOMAXPROCS, 1 disables parallelism.
	Workers int
	// ParallelMinOps is the smallest batch worth splitting across workers;
	// 0 means DefaultParallelMinOps.
	ParallelMinOps int
	// SkipElidedNotes leaves UpdateResult.Elided without the keys of the
	// elided subtrees the update changed (64 bytes a key): for a caller
	// that keeps no cache of them, or drops it after a very large batch.
	SkipElidedNotes bool
}

// DefaultParallelMinOps is where splitting a batch across workers starts to
// pay for the goroutines: below it the whole batch hashes in microseconds.
const DefaultParallelMinOps = 256

// PageChange is one page a batch update created, changed or cleared.
type PageChange struct {
	ID PageID
	// Page is the new content, or nil when the page is cleared (all its
	// nodes became empty, so it no longer exists).
	Page *Page
	// Prior is the page as the source held it, or nil when it is new.
	Prior *Page
}

// UpdateResult is the outcome of a batch update. Applying Pages to the page
// source (store changed pages, delete cleared ones) and the ops to the leaf
// index yields the trie whose root is Root.
type UpdateResult struct {
	Root  Hash
	Pages []PageChange // sorted by page depth, then path
	// Elided lists the elided subtrees whose keys the update changed or
	// created, with their keys after it: nil Leaves when the subtree is
	// elided no more (its page is stored now, or it holds one key or none).
	// A cache of elided subtrees' keys stays exact by applying it.
	Elided []ElidedSubtree
	// NodeHashes counts the leaf and internal hashes the update computed.
	NodeHashes int
}

// ElidedSubtree is the keys of an elided subtree: the one whose page would
// be ID.
type ElidedSubtree struct {
	ID     PageID
	Leaves []Leaf
	// Buckets are the subtree's bucket nodes over Leaves, when the update
	// computed them (nil otherwise).
	Buckets *Buckets
}

// BucketBits splits an elided subtree into 1<<BucketBits buckets: the
// leaves whose paths continue below the subtree's root with the same
// BucketBits bits.
const BucketBits = 3

// minBucketedKeys is the fewest keys of an elided subtree whose bucket
// nodes an update keeps: two a bucket on average. Below it most buckets
// hold one key or none, whose nodes cost no hash, and the nodes would cost
// the leaf cache more than the keys (at 1M keys, ~4 keys a subtree).
const minBucketedKeys = 2 << BucketBits

// Buckets are the nodes of an elided subtree's buckets, BucketBits below
// its root, in path order: bucket b is the node over the leaves whose
// paths continue with b's bits. Only a bucket of two or more leaves has
// its node here (an internal node); the others are zero, their nodes being
// the empty node or the one leaf's.
type Buckets [1 << BucketBits]Hash

// Update applies ops, which must be sorted by strictly increasing path, to
// the trie whose root is root. It reads the committed pages and leaves but
// changes neither: the new pages are in the result.
func (t *Tree) Update(root Hash, ops []Op, opts UpdateOptions) (*UpdateResult, error) {
	for i := 1; i < len(ops); i++ {
		if bytes.Compare(ops[i-1].Path[:], ops[i].Path[:]) >= 0 {
			return nil, fmt.Errorf("%w: op %d (%s) after %s", ErrUnsortedOps, i, ops[i].Path, ops[i-1].Path)
		}
	}
	if len(ops) == 0 {
		return &UpdateResult{Root: root}, nil
	}
	old, err := t.rootNode(root)
	if err != nil {
		return nil, err
	}
	w := newWalker(t)
	w.noNotes = opts.SkipElidedNotes
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	minOps := opts.ParallelMinOps
	if minOps <= 0 {
		minOps = DefaultParallelMinOps
	}
	parallel := workers > 1 && len(ops) >= minOps
	var n Node
	if old.IsInternal() {
		if parallel {
			// With the root page elided the whole trie holds a few keys:
			// nothing is worth a worker.
			tasks, err := w.updateTasks(ops)
			if err != nil {
				return nil, err
			}
			if err := w.runInParallel(tasks, workers); err != nil {
				return nil, err
			}
		}
		n, err = w.update(&ops[0].Path, 0, old, ops, nil)
	} else {
		// The root holds at most one key: the new trie is built from scratch.
		entries, mergeErr := w.mergeLeaf(&ops[0].Path, 0, old, ops)
		if mergeErr != nil {
			return nil, mergeErr
		}
		if parallel && (!t.elides() || len(entries) >= t.ElideBelow) {
			if err := w.runInParallel(buildTasks(entries), workers); err != nil {
				return nil, err
			}
		}
		n, err = w.build(&ops[0].Path, 0, entries, nil)
	}
	if err != nil {
		return nil, err
	}
	return w.result(n.Hash), nil
}

// rootNode tells the root's kind: internal when the root page exists. With
// elision, a trie without a root page holds one key (the root is its leaf)
// or a few (the root page is elided): the leaf index tells which.
func (t *Tree) rootNode(root Hash) (Node, error) {
	if root.IsEmpty() {
		return Node{}, nil
	}
	page, err := t.page(RootPageID)
	if err != nil {
		return Node{}, err
	}
	if page != nil || !t.elides() {
		return Node{Hash: root, Leaf: page == nil}, nil
	}
	leaves, err := t.Leaves.Under(KeyPath{}, 0, 2)
	if err != nil {
		return Node{}, fmt.Errorf("trie: leaf index: %w", err)
	}
	switch {
	case len(leaves) == 2:
		return Node{Hash: root}, nil
	case len(leaves) == 1 && leaves[0].Hash == root:
		return leafNode(root), nil
	}
	return Node{}, corruptf("root %s of store %d has no root page and the leaf index holds %d keys", root, t.Store, len(leaves))
}

// page reads a committed page and checks that it is the page asked for.
func (t *Tree) page(id PageID) (*Page, error) {
	p, err := t.Pages.Page(id)
	if err != nil {
		return nil, fmt.Errorf("trie: reading page %s of store %d: %w", id, t.Store, err)
	}
	if p == nil {
		return nil, nil
	}
	store, label, err := p.Label()
	if err != nil || store != t.Store || label != id {
		return nil, corruptf("page %s of store %d is labelled %s of store %d (%v)", id, t.Store, label, store, err)
	}
	return p, nil
}

// walker carries one update's working pages. A walker is used by one
// goroutine; parallel updates give each worker its own and merge them.
type walker struct {
	tree   *Tree
	pages  map[PageID]*workingPage
	elided []ElidedSubtree
	hashes int
	// noNotes skips the ElidedSubtree notes, which a build from scratch
	// has no cache to keep exact with.
	noNotes bool
	// precomputed holds the new nodes at depth 6 (the root page's bottom
	// level) that workers already computed, by their index in the level.
	precomputed map[int]Node
}

type workingPage struct {
	page  *Page // being modified
	prior *Page // as committed; nil if new
	dirty bool  // a node was set to something it was not
}

// set stores n in slot s, noting whether the page changed.
func (wp *workingPage) set(s int, n Node) {
	if wp.page.Node(s) != n {
		wp.page.SetNode(s, n)
		wp.dirty = true
	}
}

func newWalker(t *Tree) *walker {
	return &walker{tree: t, pages: make(map[PageID]*workingPage)}
}

// load returns the working copy of a page, creating an empty one for a page
// that does not exist yet.
func (w *walker) load(id PageID) (*workingPage, error) {
	if wp, ok := w.pages[id]; ok {
		return wp, nil
	}
	prior, err := w.tree.page(id)
	if err != nil {
		return nil, err
	}
	wp := &workingPage{prior: prior}
	if prior == nil {
		wp.page = NewPage(w.tree.Store, id)
	} else {
		wp.page = prior.Clone()
	}
	w.pages[id] = wp
	return wp, nil
}

// existing returns the working copy of a committed page, or nil when the
// page source has none (with elision: the page is elided).
func (w *walker) existing(id PageID) (*workingPage, error) {
	if wp, ok := w.pages[id]; ok {
		return wp, nil
	}
	prior, err := w.tree.page(id)
	if err != nil || prior == nil {
		return nil, err
	}
	wp := &workingPage{prior: prior, page: prior.Clone()}
	w.pages[id] = wp
	return wp, nil
}

// childrenPage returns the page holding the children of the node at depth d
// on path. here is the page holding that node; it is only consulted when the
// children share it, so it may be nil at page boundaries.
func (w *walker) childrenPage(path *KeyPath, d int, here *workingPage) (*workingPage, error) {
	if d%PageLevels != 0 {
		return here, nil
	}
	return w.load(PageIDOf(path, d/PageLevels))
}

// update returns the new node at depth d on path, whose committed content is
// old, after applying ops (all below that node). It rewrites the nodes under
// it; the caller stores the returned node itself.
func (w *walker) update(path *KeyPath, d int, old Node, ops []Op, here *workingPage) (Node, error) {
	if d == PageLevels && w.precomputed != nil {
		if n, ok := w.precomputed[path.bits(0, PageLevels)]; ok {
			return n, nil
		}
	}
	if !old.IsInternal() {
		entries, err := w.mergeLeaf(path, d, old, ops)
		if err != nil {
			return Node{}, err
		}
		return w.build(path, d, entries, here)
	}
	if d >= MaxDepth {
		return Node{}, corruptf("internal node at depth %d on path %s", d, path)
	}
	page := here
	if d%PageLevels == 0 {
		var err error
		if page, err = w.existing(PageIDOf(path, d/PageLevels)); err != nil {
			return Node{}, err
		}
		if page == nil {
			return w.updateElided(path, d, old, ops)
		}
	}
	var err error
	ls, rs := childSlots(path, d)
	left, right := page.page.Node(ls), page.page.Node(rs)
	split := splitOps(ops, d)
	if split > 0 {
		if left, err = w.update(&ops[0].Path, d+1, left, ops[:split], page); err != nil {
			return Node{}, err
		}
	}
	if split < len(ops) {
		if right, err = w.update(&ops[split].Path, d+1, right, ops[split:], page); err != nil {
			return Node{}, err
		}
	}
	return w.join(page, ls, left, right), nil
}

// entry is a key placed by build: its path and leaf hash. It is a Leaf,
// so that the keys of an elided subtree pass from the leaf source to the
// update and back to its notes without a copy.
type entry = Leaf

// updateElided applies ops under the internal node old at depth d on path,
// whose child page is elided: the subtree's keys come from the leaf index,
// their hash must be old's, and the new subtree is built from them and the
// ops (elided again if it stays small, stored pages if it grew).
func (w *walker) updateElided(path *KeyPath, d int, old Node, ops []Op) (Node, error) {
	id := PageIDOf(path, d/PageLevels)
	if !w.tree.elides() {
		// An internal node's children must exist; an absent page read as
		// empty would silently drop the subtree from the new root.
		return Node{}, corruptf("internal node at depth %d on path %s has no child page %s", d, path, id)
	}
	prior, known, err := w.elidedEntries(path, d, id)
	if err != nil {
		return Node{}, err
	}
	entries := mergeOps(prior, ops, &w.hashes)
	if len(entries) >= w.tree.ElideBelow {
		before := w.subtree(prior, d)
		if before.Hash != old.Hash {
			return Node{}, elidedMismatch(id, w.tree.Store, len(prior), before.Hash, old.Hash)
		}
		w.elided = append(w.elided, ElidedSubtree{ID: id})
		return w.build(path, d, entries, nil)
	}
	var before, after Node
	var buckets *Buckets
	if len(entries) < minBucketedKeys {
		before, after = w.rehash(prior, entries, d)
	} else {
		buckets = new(Buckets)
		before, after = w.rehashAbove(prior, entries, d, d+BucketBits, 0, known, buckets)
	}
	if before.Hash != old.Hash {
		return Node{}, elidedMismatch(id, w.tree.Store, len(prior), before.Hash, old.Hash)
	}
	// mergeOps made entries for this subtree alone.
	w.noteElided(id, entries, true, buckets)
	return after, nil
}

// rehashAbove is rehash for the part of an elided subtree above its
// buckets (depth bucketDepth), whose nodes it writes to out. A bucket whose
// leaves the update leaves alone takes its node from known (the buckets
// before the update, if known) instead of hashing its leaves again; a
// changed bucket is rehashed from its leaves before and after, so the
// check against the parent still covers every leaf the update read.
func (w *walker) rehashAbove(before, after []entry, d, bucketDepth, bucket int, known, out *Buckets) (Node, Node) {
	same := sameEntries(before, after)
	if d == bucketDepth {
		var bn, an Node
		switch {
		case same && known != nil && len(before) >= 2:
			bn = Node{Hash: known[bucket]}
			an = bn
		case same:
			bn = w.subtree(before, d)
			an = bn
		default:
			bn, an = w.rehash(before, after, d)
		}
		if len(after) >= 2 {
			out[bucket] = an.Hash
		}
		return bn, an
	}
	bs := sort.Search(len(before), func(i int) bool { return before[i].Path.Bit(d) == 1 })
	as := sort.Search(len(after), func(i int) bool { return after[i].Path.Bit(d) == 1 })
	bl, al := w.rehashAbove(before[:bs], after[:as], d+1, bucketDepth, bucket*2, known, out)
	br, ar := w.rehashAbove(before[bs:], after[as:], d+1, bucketDepth, bucket*2+1, known, out)
	bn := w.joinOver(before, bl, br)
	if same {
		return bn, bn
	}
	return bn, w.joinOver(after, al, ar)
}

// joinOver is the node over entries (at least the ones its children hold)
// from its two children, as subtreeNode makes it: no node, the one leaf
// compacted upward, or their parent.
func (w *walker) joinOver(entries []entry, left, right Node) Node {
	switch len(entries) {
	case 0:
		return Node{}
	case 1:
		return leafNode(entries[0].Hash)
	}
	w.hashes++
	return Node{Hash: InternalHash(left.Hash, right.Hash)}
}

// noteElided records the keys of an elided subtree after the update (none
// when fewer than two keys are left: it is no subtree any more). owned
// says the entries are the update's own, written by nothing after it, so
// the note may hold them; otherwise (a bulk build's window, which it
// reuses) they are copied.
func (w *walker) noteElided(id PageID, entries []entry, owned bool, buckets *Buckets) {
	if w.noNotes {
		return
	}
	e := ElidedSubtree{ID: id}
	switch {
	case len(entries) < 2:
	case owned:
		e.Leaves, e.Buckets = entries, buckets
	default:
		e.Leaves, e.Buckets = slices.Clone(entries), buckets
	}
	w.elided = append(w.elided, e)
}

func elidedMismatch(id PageID, store StoreID, keys int, got, want Hash) error {
	return corruptf("elided page %s of store %d: its %d keys in the leaf index hash to %s, the trie holds %s", id, store, keys, got, want)
}

// elidedEntries reads the keys of the elided subtree below the node at
// depth d on path (whose page would be id) from the leaf index.
func (w *walker) elidedEntries(path *KeyPath, d int, id PageID) ([]entry, *Buckets, error) {
	var leaves []Leaf
	var buckets *Buckets
	var err error
	if src, ok := w.tree.Leaves.(ElidedHashes); ok {
		leaves, buckets, err = src.UnderElided(*path, d, w.tree.ElideBelow)
	} else {
		leaves, err = w.tree.Leaves.Under(*path, d, w.tree.ElideBelow)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("trie: leaf index: %w", err)
	}
	if err := w.tree.checkElidedCount(id, len(leaves)); err != nil {
		return nil, nil, err
	}
	// Read only from here on (mergeOps and the hashing make their own).
	return leaves, buckets, nil
}

// checkElidedCount refuses an elided subtree whose key count breaks the
// elision invariant: a missing page over many keys, or a subtree too small
// to be under an internal node.
func (t *Tree) checkElidedCount(id PageID, n int) error {
	switch {
	case n >= t.ElideBelow:
		return corruptf("page %s of store %d is missing: the leaf index holds %d or more keys under it", id, t.Store, n)
	case n < 2:
		return corruptf("page %s of store %d is elided but the leaf index holds %d keys under it", id, t.Store, n)
	}
	return nil
}

// mergeOps applies sorted ops to sorted entries, counting the leaf hashes
// it computes in hashes.
func mergeOps(entries []entry, ops []Op, hashes *int) []entry {
	out := make([]entry, 0, len(entries)+len(ops))
	i := 0
	for _, op := range ops {
		for i < len(entries) && bytes.Compare(entries[i].Path[:], op.Path[:]) < 0 {
			out = append(out, entries[i])
			i++
		}
		if i < len(entries) && entries[i].Path == op.Path {
			i++ // replaced or deleted
		}
		if !op.Delete {
			*hashes++
			out = append(out, entry{Path: op.Path, Hash: LeafHash(op.Path, op.ValueHash)})
		}
	}
	return append(out, entries[i:]...)
}

// subtree returns the node over entries (sorted, distinct, all below the
// node at depth d) without storing any page: an elided subtree's hash.
func (w *walker) subtree(entries []entry, d int) Node {
	n, hashes := subtreeNode(entries, d)
	w.hashes += hashes
	return n
}

// subtreeNode computes the compacted subtree over entries below depth d and
// the node hashes it took.
func subtreeNode(entries []entry, d int) (Node, int) {
	switch len(entries) {
	case 0:
		return Node{}, 0
	case 1:
		return leafNode(entries[0].Hash), 0
	}
	split := sort.Search(len(entries), func(i int) bool { return entries[i].Path.Bit(d) == 1 })
	left, lh := subtreeNode(entries[:split], d+1)
	right, rh := subtreeNode(entries[split:], d+1)
	// Two or more keys: never a compaction here, at worst a chain node
	// beside an empty sibling.
	return Node{Hash: InternalHash(left.Hash, right.Hash)}, lh + rh + 1
}

// rehash returns the nodes over before and after (each sorted, below depth
// d), sharing the work where they agree: an elided subtree's old hash,
// checked against its parent, and its new one.
func (w *walker) rehash(before, after []entry, d int) (Node, Node) {
	if sameEntries(before, after) {
		n := w.subtree(before, d)
		return n, n
	}
	if len(before) < 2 || len(after) < 2 {
		return w.subtree(before, d), w.subtree(after, d)
	}
	bs := sort.Search(len(before), func(i int) bool { return before[i].Path.Bit(d) == 1 })
	as := sort.Search(len(after), func(i int) bool { return after[i].Path.Bit(d) == 1 })
	bl, al := w.rehash(before[:bs], after[:as], d+1)
	br, ar := w.rehash(before[bs:], after[as:], d+1)
	w.hashes++
	return Node{Hash: InternalHash(bl.Hash, br.Hash)}, w.join2(al, ar)
}

// join2 is the parent of two sibling nodes built outside any page.
func (w *walker) join2(left, right Node) Node {
	if (left.IsEmpty() && !right.IsInternal()) || (right.IsEmpty() && left.Leaf) {
		if left.IsEmpty() {
			return right
		}
		return left
	}
	w.hashes++
	return Node{Hash: InternalHash(left.Hash, right.Hash)}
}

func sameEntries(a, b []entry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// mergeLeaf returns the keys under the node at depth d once ops are applied,
// when that node is empty or a leaf (so it holds at most one key).
func (w *walker) mergeLeaf(path *KeyPath, d int, old Node, ops []Op) ([]entry, error) {
	entries := make([]entry, 0, len(ops)+1)
	var existing Leaf
	if old.Leaf {
		leaf, err := w.leafUnder(path, d, ops)
		if err != nil {
			return nil, err
		}
		existing = leaf
	}
	keep := old.Leaf
	for i := range ops {
		op := &ops[i]
		if keep && op.Path == existing.Path {
			keep = false // replaced or deleted by op
		} else if keep && bytes.Compare(existing.Path[:], op.Path[:]) < 0 {
			if err := w.appendExisting(&entries, existing, old); err != nil {
				return nil, err
			}
			keep = false
		}
		if !op.Delete {
			w.hashes++
			entries = append(entries, entry{Path: op.Path, Hash: LeafHash(op.Path, op.ValueHash)})
		}
	}
	if keep {
		if err := w.appendExisting(&entries, existing, old); err != nil {
			return nil, err
		}
	}
	return entries, nil
}

// leafUnder returns the key of the leaf node at depth d on path. A lone op
// that updates or deletes an existing key is the common case: that key is
// the leaf (a key's leaf is the first leaf on its path), and a point lookup
// finds it; otherwise the leaf is the one key the index holds under the
// node's prefix.
func (w *walker) leafUnder(path *KeyPath, d int, ops []Op) (Leaf, error) {
	if getter, ok := w.tree.Leaves.(LeafGetter); ok && len(ops) == 1 {
		leaf, found, err := getter.Leaf(ops[0].Path)
		if err != nil {
			return Leaf{}, fmt.Errorf("trie: leaf index: %w", err)
		}
		if found {
			return leaf, nil
		}
	}
	leaf, ok, err := w.tree.Leaves.Ceil(path.Prefix(d))
	if err != nil {
		return Leaf{}, fmt.Errorf("trie: leaf index: %w", err)
	}
	if !ok || !leaf.Path.HasPrefix(path, d) {
		return Leaf{}, corruptf("leaf at depth %d on path %s is missing from the leaf index", d, path)
	}
	return leaf, nil
}

// appendExisting keeps a leaf that survives the batch, after checking that
// the leaf index agrees with the node about it: a wrong leaf here would be
// pushed down into a wrong trie.
func (w *walker) appendExisting(entries *[]entry, leaf Leaf, old Node) error {
	w.hashes++
	if leaf.Hash != old.Hash {
		return corruptf("leaf %s in the index hashes to %s, the trie holds %s", leaf.Path, leaf.Hash, old.Hash)
	}
	*entries = append(*entries, entry{Path: leaf.Path, Hash: old.Hash})
	return nil
}

// build writes the compacted subtree of entries (sorted, distinct, all under
// the node at depth d on path) below that node, which is currently empty
// underneath, and returns the node.
func (w *walker) build(path *KeyPath, d int, entries []entry, here *workingPage) (Node, error) {
	switch len(entries) {
	case 0:
		return Node{}, nil
	case 1:
		return leafNode(entries[0].Hash), nil
	}
	if d == PageLevels && w.precomputed != nil {
		if n, ok := w.precomputed[path.bits(0, PageLevels)]; ok {
			return n, nil
		}
	}
	if d >= MaxDepth {
		return Node{}, corruptf("two keys share the path %s", path)
	}
	if d%PageLevels == 0 && w.tree.elides() && len(entries) < w.tree.ElideBelow {
		w.noteElided(PageIDOf(path, d/PageLevels), entries, false, nil)
		return w.subtree(entries, d), nil
	}
	page, err := w.childrenPage(path, d, here)
	if err != nil {
		return Node{}, err
	}
	split := sort.Search(len(entries), func(i int) bool { return entries[i].Path.Bit(d) == 1 })
	var left, right Node
	if split > 0 {
		if left, err = w.build(&entries[0].Path, d+1, entries[:split], page); err != nil {
			return Node{}, err
		}
	}
	if split < len(entries) {
		if right, err = w.build(&entries[split].Path, d+1, entries[split:], page); err != nil {
			return Node{}, err
		}
	}
	ls, _ := childSlots(path, d)
	return w.join(page, ls, left, right), nil
}

// join stores two siblings at slots ls and ls+1 of page and returns their
// parent. It compacts: a leaf whose sibling is empty moves up to become the
// parent, and two empty children make an empty parent.
func (w *walker) join(page *workingPage, ls int, left, right Node) Node {
	if (left.IsEmpty() && !right.IsInternal()) || (right.IsEmpty() && left.Leaf) {
		page.set(ls, Node{})
		page.set(ls+1, Node{})
		if left.IsEmpty() {
			return right
		}
		return left
	}
	page.set(ls, left)
	page.set(ls+1, right)
	w.hashes++
	return Node{Hash: InternalHash(left.Hash, right.Hash)}
}

// splitOps returns the index of the first op that goes right at depth d.
func splitOps(ops []Op, d int) int {
	return sort.Search(len(ops), func(i int) bool { return ops[i].Path.Bit(d) == 1 })
}

// subtreeTask is the work under one node at depth 6 (the root page's
// bottom level), done by a worker.
type subtreeTask struct {
	path    *KeyPath
	old     Node
	ops     []Op    // update under an internal chain from the root,
	entries []entry // or build from scratch
}

// The parallel pass computes the new nodes at depth 6 whose result does not
// depend on the levels above, each on a worker with its own pages (subtrees
// below different depth-6 nodes share no page). The sequential pass from the
// root then takes those nodes instead of descending (walker.precomputed).

// updateTasks finds the depth-6 nodes under an internal chain from the root:
// their ops are exactly the ops sharing their 6-bit prefix.
func (w *walker) updateTasks(ops []Op) ([]subtreeTask, error) {
	rootPage, err := w.existing(RootPageID)
	if err != nil || rootPage == nil {
		return nil, err
	}
	var tasks []subtreeTask
	forEachPrefixGroup(len(ops), func(i int) *KeyPath { return &ops[i].Path }, func(lo, hi int) {
		path := &ops[lo].Path
		for d := 1; d < PageLevels; d++ {
			if !rootPage.page.Node(slotOf(path, d)).IsInternal() {
				return
			}
		}
		tasks = append(tasks, subtreeTask{path: path, old: rootPage.page.Node(slotOf(path, PageLevels)), ops: ops[lo:hi]})
	})
	return tasks, nil
}

// buildTasks finds, for a trie built from scratch, the depth-6 nodes with at
// least two keys below: every node above them will be internal.
func buildTasks(entries []entry) []subtreeTask {
	var tasks []subtreeTask
	forEachPrefixGroup(len(entries), func(i int) *KeyPath { return &entries[i].Path }, func(lo, hi int) {
		if hi-lo >= 2 {
			tasks = append(tasks, subtreeTask{path: &entries[lo].Path, entries: entries[lo:hi]})
		}
	})
	return tasks
}

func (w *walker) runInParallel(tasks []subtreeTask, workers int) error {
	if len(tasks) < 2 {
		return nil
	}
	workers = min(workers, len(tasks))
	results := make([]Node, len(tasks))
	walkers := make([]*walker, workers)
	errs := make([]error, workers)
	next := make(chan int, len(tasks))
	for i := range tasks {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	for k := range walkers {
		sub := newWalker(w.tree)
		sub.noNotes = w.noNotes
		walkers[k] = sub
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				task := &tasks[i]
				var err error
				if task.entries != nil {
					results[i], err = sub.build(task.path, PageLevels, task.entries, nil)
				} else {
					results[i], err = sub.update(task.path, PageLevels, task.old, task.ops, nil)
				}
				if err != nil {
					errs[k] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	for k, sub := range walkers {
		if errs[k] != nil {
			return errs[k]
		}
		for id, wp := range sub.pages {
			w.pages[id] = wp
		}
		w.elided = append(w.elided, sub.elided...)
		w.hashes += sub.hashes
	}
	w.precomputed = make(map[int]Node, len(tasks))
	for i := range tasks {
		w.precomputed[tasks[i].path.bits(0, PageLevels)] = results[i]
	}
	return nil
}

// forEachPrefixGroup calls fn for each run [lo, hi) of the n sorted paths
// that share their first 6 bits.
func forEachPrefixGroup(n int, path func(int) *KeyPath, fn func(lo, hi int)) {
	for lo := 0; lo < n; {
		first := path(lo)[0] >> 2
		hi := lo + 1
		for hi < n && path(hi)[0]>>2 == first {
			hi++
		}
		fn(lo, hi)
		lo = hi
	}
}

// result collects the pages the update created, changed or cleared.
func (w *walker) result(root Hash) *UpdateResult {
	res := &UpdateResult{Root: root, NodeHashes: w.hashes, Elided: w.elided}
	for id, wp := range w.pages {
		switch {
		case !wp.dirty:
		case wp.page.IsEmpty():
			if wp.prior != nil {
				res.Pages = append(res.Pages, PageChange{ID: id, Prior: wp.prior})
			}
		default:
			res.Pages = append(res.Pages, PageChange{ID: id, Page: wp.page, Prior: wp.prior})
		}
	}
	sort.Slice(res.Pages, func(i, j int) bool { return res.Pages[i].ID.Less(res.Pages[j].ID) })
	return res
}
