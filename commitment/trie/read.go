package trie

// descend walks from the root toward path until it reaches a leaf or an
// empty node, and returns that node and the siblings passed on the way
// (siblings[d] is the sibling at depth d+1; the node's depth is len(siblings)).
func (t *Tree) descend(root Hash, path *KeyPath) ([]Hash, Node, error) {
	n, err := t.rootNode(root)
	if err != nil {
		return nil, Node{}, err
	}
	var siblings []Hash
	var page *Page
	for d := 0; n.IsInternal(); d++ {
		if d >= MaxDepth {
			return nil, Node{}, corruptf("internal node at depth %d on path %s", d, path)
		}
		if d%PageLevels == 0 {
			id := PageIDOf(path, d/PageLevels)
			if page, err = t.page(id); err != nil {
				return nil, Node{}, err
			}
			if page == nil {
				return nil, Node{}, corruptf("internal node at depth %d on path %s has no child page %s", d, path, id)
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
	return siblings, n, nil
}

// find looks path up. It returns the leaf the walk toward path ends at (if
// any), whether that leaf is path's own, and the siblings above it.
func (t *Tree) find(root Hash, path *KeyPath) (leaf Leaf, found bool, siblings []Hash, err error) {
	siblings, n, err := t.descend(root, path)
	if err != nil || n.IsEmpty() {
		return Leaf{}, false, siblings, err
	}
	depth := len(siblings)
	leaf, ok, err := t.Leaves.Ceil(path.Prefix(depth))
	if err != nil {
		return Leaf{}, false, nil, err
	}
	if !ok || !leaf.Path.HasPrefix(path, depth) || leaf.Hash() != n.Hash {
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

// Touch reads the pages on the way from the root toward path, for a page
// source that caches what it reads: an update of path that follows finds
// them in memory.
func (t *Tree) Touch(root Hash, path KeyPath) error {
	_, _, err := t.descend(root, &path)
	return err
}
