package trie

import "sort"

// descend walks from the root toward path until it reaches a leaf or an
// empty node, and returns that node and the siblings passed on the way
// (siblings[d] is the sibling at depth d+1; the node's depth is
// len(siblings)). An elided subtree on the way is rebuilt from the leaf
// index, checked against its parent node, and walked in memory; the leaf it
// ends at, if any, is then returned too (known), saving a lookup.
func (t *Tree) descend(root Hash, path *KeyPath) (siblings []Hash, n Node, known *Leaf, err error) {
	if n, err = t.rootNode(root); err != nil {
		return nil, Node{}, nil, err
	}
	var page *Page
	for d := 0; n.IsInternal(); d++ {
		if d >= MaxDepth {
			return nil, Node{}, nil, corruptf("internal node at depth %d on path %s", d, path)
		}
		if d%PageLevels == 0 {
			id := PageIDOf(path, d/PageLevels)
			if page, err = t.page(id); err != nil {
				return nil, Node{}, nil, err
			}
			if page == nil {
				if !t.elides() {
					return nil, Node{}, nil, corruptf("internal node at depth %d on path %s has no child page %s", d, path, id)
				}
				return t.descendElided(path, d, id, n, siblings)
			}
		}
		ls, rs := childSlots(path, d)
		left, right := page.Node(ls), page.Node(rs)
		if path.Bit(d) == 0 {
			siblings = append(siblings, right.Hash)
			n = left
		} else {
			siblings = append(siblings, left.Hash)
			n = right
		}
	}
	return siblings, n, nil, nil
}

// descendElided finishes descend inside the elided subtree below node n at
// depth d (its page would be id).
func (t *Tree) descendElided(path *KeyPath, d int, id PageID, n Node, siblings []Hash) ([]Hash, Node, *Leaf, error) {
	leaves, err := t.Leaves.Under(*path, d, t.ElideBelow)
	if err != nil {
		return nil, Node{}, nil, err
	}
	if err := t.checkElidedCount(id, len(leaves)); err != nil {
		return nil, Node{}, nil, err
	}
	w := elidedWalk{path: path}
	top := w.walk(leaves, d)
	if top.Hash != n.Hash {
		return nil, Node{}, nil, elidedMismatch(id, t.Store, len(leaves), top.Hash, n.Hash)
	}
	siblings = append(siblings, w.siblings...)
	if w.end < 0 {
		return siblings, Node{}, nil, nil
	}
	return siblings, leafNode(leaves[w.end].Hash), &leaves[w.end], nil
}

// elidedWalk hashes an elided subtree and collects, on the way, the
// siblings of the nodes toward path and where the walk toward it ends.
type elidedWalk struct {
	path     *KeyPath
	siblings []Hash // from the subtree's top down
	end      int    // index of the leaf the walk ends at, -1 for an empty node
}

// walk returns the node over entries below depth d, all of which lie on
// the walk's path so far.
func (w *elidedWalk) walk(entries []entry, d int) Node {
	switch len(entries) {
	case 0:
		w.end = -1
		return Node{}
	case 1:
		w.end = 0
		return leafNode(entries[0].Hash)
	}
	split := sort.Search(len(entries), func(i int) bool { return entries[i].Path.Bit(d) == 1 })
	mine, other, offset := entries[:split], entries[split:], 0
	if w.path.Bit(d) == 1 {
		mine, other, offset = entries[split:], entries[:split], split
	}
	sibling, _ := subtreeNode(other, d+1)
	w.siblings = append(w.siblings, sibling.Hash)
	below := w.walk(mine, d+1)
	if w.end >= 0 {
		w.end += offset
	}
	if w.path.Bit(d) == 0 {
		return Node{Hash: InternalHash(below.Hash, sibling.Hash)}
	}
	return Node{Hash: InternalHash(sibling.Hash, below.Hash)}
}

// find looks path up. It returns the leaf the walk toward path ends at (if
// any), whether that leaf is path's own, and the siblings above it.
func (t *Tree) find(root Hash, path *KeyPath) (leaf Leaf, found bool, siblings []Hash, err error) {
	siblings, n, known, err := t.descend(root, path)
	if err != nil || n.IsEmpty() {
		return Leaf{}, false, siblings, err
	}
	if known != nil {
		return *known, known.Path == *path, siblings, nil
	}
	depth := len(siblings)
	leaf, ok, err := t.Leaves.Ceil(path.Prefix(depth))
	if err != nil {
		return Leaf{}, false, nil, err
	}
	if !ok || !leaf.Path.HasPrefix(path, depth) || leaf.Hash != n.Hash {
		return Leaf{}, false, nil, corruptf("leaf at depth %d on path %s does not match the leaf index", depth, path)
	}
	return leaf, leaf.Path == *path, siblings, nil
}

// Get returns the leaf stored at path in the trie whose root is root.
func (t *Tree) Get(root Hash, path KeyPath) (Leaf, bool, error) {
	leaf, found, _, err := t.find(root, &path)
	if !found {
		return Leaf{}, false, err
	}
	return leaf, true, err
}

// Touch reads the pages on the way from the root toward path, and the keys
// of the elided subtree the way ends in, if any, for sources that cache
// what they read: an update of path that follows finds them in memory. It
// hashes nothing and checks only what reading needs.
func (t *Tree) Touch(root Hash, path KeyPath) error {
	id, ok, err := t.ElidedOn(root, path)
	if err == nil && ok {
		_, err = t.Leaves.Under(path, id.Depth()*PageLevels, t.ElideBelow)
	}
	return err
}

// ElidedOn returns the elided subtree on the way from the root toward
// path, as the ID its page would have, if the way ends in one (rather than
// at a leaf or an empty node). It reads the stored pages on the way and
// hashes nothing.
func (t *Tree) ElidedOn(root Hash, path KeyPath) (PageID, bool, error) {
	n, err := t.rootNode(root)
	if err != nil {
		return PageID{}, false, err
	}
	var page *Page
	for d := 0; n.IsInternal() && d < MaxDepth; d++ {
		if d%PageLevels == 0 {
			id := PageIDOf(&path, d/PageLevels)
			if page, err = t.page(id); err != nil {
				return PageID{}, false, err
			}
			if page == nil {
				return id, t.elides(), nil
			}
		}
		ls, rs := childSlots(&path, d)
		if path.Bit(d) == 0 {
			n = page.Node(ls)
		} else {
			n = page.Node(rs)
		}
	}
	return PageID{}, false, nil
}
