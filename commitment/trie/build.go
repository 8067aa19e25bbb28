package trie

import (
	"bytes"
	"errors"
	"fmt"
)

// Builder builds a trie from scratch out of its keys in path order, in
// memory bounded by Window whatever the number of keys: the bulk load of a
// restore. Each page is complete when it is emitted, and is emitted once;
// the root and pages are exactly those a batch update of the same keys into
// an empty trie makes (with the same ElideBelow), since both build a
// subtree out of the same joins of the same children.
//
// How: the keys under a node at a page boundary (a depth that is a
// multiple of six) are looked at, up to Window of them. When they fit, that
// subtree is built whole, as a batch update builds it; when they do not, the
// node's page is assembled from its 64 bottom nodes, each of them such a
// subtree one page deeper, built first. A key passes through the lookahead
// once per page level above where it lands: two or three times for
// millions of keys.
type Builder struct {
	Store StoreID
	// ElideBelow is Tree.ElideBelow of the trie being built.
	ElideBelow int
	// Window bounds the leaves held at once, 64 bytes each (and the pages
	// of one subtree built whole, about one per ElideBelow of them). It is
	// raised to MinBuildWindow and to ElideBelow.
	Window int
	// Emit receives each finished page.
	Emit func(PageID, *Page) error
}

// MinBuildWindow is the smallest lookahead a build uses: more than the 16
// keys that can share 252 bits of path, past which no page can be split.
const MinBuildWindow = 256

// ErrBuildOrder is returned by a build whose leaves are not in strictly
// increasing path order.
var ErrBuildOrder = errors.New("trie: build leaves not strictly sorted by key path")

// BuildResult is the outcome of a build.
type BuildResult struct {
	Root   Hash
	Leaves int
	Pages  int
	// NodeHashes counts the internal node hashes computed.
	NodeHashes int
}

// Build pulls every leaf from next, which returns false once there are no
// more, and builds their trie.
func (b *Builder) Build(next func() (Leaf, bool, error)) (BuildResult, error) {
	window := max(b.Window, MinBuildWindow, b.ElideBelow)
	r := &buildRun{b: b, tree: Tree{Store: b.Store, Pages: noPages{}, ElideBelow: b.ElideBelow},
		window: window, next: next, pending: make([]entry, 0, 2*window+2)}
	if err := r.fill(1); err != nil {
		return BuildResult{}, err
	}
	if r.available() == 0 {
		return BuildResult{}, nil
	}
	n, err := r.node(KeyPath{}, 0)
	if err != nil {
		return BuildResult{}, err
	}
	return BuildResult{Root: n.Hash, Leaves: r.pulled, Pages: r.pages, NodeHashes: r.hashes}, nil
}

// noPages is the page source of a trie being built: nothing is committed.
type noPages struct{}

func (noPages) Page(PageID) (*Page, error) { return nil, nil }

// buildRun is one Build's state.
type buildRun struct {
	b      *Builder
	tree   Tree
	window int
	next   func() (Leaf, bool, error)
	// pending is the lookahead: pending[head:] are pulled, not yet placed.
	pending []entry
	head    int
	eof     bool
	pulled  int
	pages   int
	hashes  int
}

func (r *buildRun) available() int { return len(r.pending) - r.head }

// fill pulls leaves until the lookahead holds n, or the leaves run out.
func (r *buildRun) fill(n int) error {
	// Asked for at most window+1 leaves: with head past window, what is
	// kept fits in the first half of the (never regrown) buffer.
	if r.head > r.window {
		r.pending = r.pending[:copy(r.pending, r.pending[r.head:])]
		r.head = 0
	}
	for !r.eof && r.available() < n {
		leaf, ok, err := r.next()
		if err != nil {
			return err
		}
		if !ok {
			r.eof = true
			break
		}
		if len(r.pending) > 0 {
			if last := &r.pending[len(r.pending)-1].Path; bytes.Compare(leaf.Path[:], last[:]) <= 0 {
				return fmt.Errorf("%w: %s after %s", ErrBuildOrder, leaf.Path, last)
			}
		}
		r.pending = append(r.pending, leaf)
		r.pulled++
	}
	return nil
}

// node places every remaining leaf whose path starts with prefix's first d
// bits (d a multiple of six; the next leaf is one of them) and returns the
// node at depth d over them.
func (r *buildRun) node(prefix KeyPath, d int) (Node, error) {
	if err := r.fill(r.window + 1); err != nil {
		return Node{}, err
	}
	ahead := r.pending[r.head:]
	k := 0
	for k < len(ahead) && k <= r.window && ahead[k].Path.HasPrefix(&prefix, d) {
		k++
	}
	if k <= r.window {
		entries := ahead[:k]
		w := newWalker(&r.tree)
		w.noNotes = true
		n, err := w.build(&entries[0].Path, d, entries, nil)
		if err != nil {
			return Node{}, err
		}
		r.head += k
		r.hashes += w.hashes
		for id, wp := range w.pages {
			if err := r.emit(id, wp.page); err != nil {
				return Node{}, err
			}
		}
		return n, nil
	}
	if d+PageLevels > MaxDepth {
		return Node{}, fmt.Errorf("%w: more than %d keys share the first %d bits of their paths", ErrBuildOrder, r.window, d)
	}
	// Too many keys for one go: the 64 subtrees below this node's page
	// first, then the page over them.
	var bottom [PageFanout]Node
	for {
		if err := r.fill(1); err != nil {
			return Node{}, err
		}
		if r.available() == 0 || !r.pending[r.head].Path.HasPrefix(&prefix, d) {
			break
		}
		child := r.pending[r.head].Path
		n, err := r.node(child, d+PageLevels)
		if err != nil {
			return Node{}, err
		}
		bottom[child.bits(d, PageLevels)] = n
	}
	w := newWalker(&r.tree)
	page := &workingPage{page: NewPage(r.tree.Store, PageIDOf(&prefix, d/PageLevels))}
	level := bottom[:]
	for l := PageLevels; l >= 1; l-- {
		for i := 0; i < len(level)/2; i++ {
			level[i] = w.join(page, Slot(l, 2*i), level[2*i], level[2*i+1])
		}
		level = level[:len(level)/2]
	}
	r.hashes += w.hashes
	if err := r.emit(PageIDOf(&prefix, d/PageLevels), page.page); err != nil {
		return Node{}, err
	}
	return level[0], nil
}

func (r *buildRun) emit(id PageID, p *Page) error {
	if p.IsEmpty() {
		return nil
	}
	r.pages++
	return r.b.Emit(id, p)
}
