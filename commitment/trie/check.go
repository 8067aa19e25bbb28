package trie

import (
	"errors"
	"fmt"
	"math/bits"
)

// Violation is one broken invariant found by Check.
type Violation struct {
	Page    PageID
	Slot    int // -1 when the problem is the page itself
	Problem string
}

func (v Violation) Error() string {
	if v.Slot < 0 {
		return fmt.Sprintf("page %s: %s", v.Page, v.Problem)
	}
	return fmt.Sprintf("page %s slot %d: %s", v.Page, v.Slot, v.Problem)
}

// CheckReport is what Check found.
type CheckReport struct {
	Pages      int // pages reachable from the root
	Leaves     int // leaves reachable from the root
	Violations []Violation
}

// Check walks every page reachable from root and reports each broken
// invariant: labels, leaf bits, hashes, compaction (no leaf beside an empty
// sibling, no internal node over two empty children, nothing under a leaf or
// an empty node), child pages present exactly under internal bottom nodes,
// and every leaf matching exactly one key of the leaf index. When the leaf
// index also gives Preimages, each leaf's raw key and value are read too
// and must hash to the leaf's path and value digest, so the root is
// recomputed from the values themselves. It returns an error only when a
// page or the index cannot be read; damage is reported.
func (t *Tree) Check(root Hash) (*CheckReport, error) {
	c := &checker{tree: t, report: &CheckReport{}}
	c.preimages, _ = t.Leaves.(Preimages)
	rootPage, err := c.page(RootPageID, PageID{})
	if err != nil {
		return nil, err
	}
	switch {
	case root.IsEmpty():
		if rootPage != nil {
			c.violation(RootPageID, -1, "root is empty but the root page exists")
		}
	case rootPage == nil && t.elides():
		var n Node
		if n, err = t.rootNode(root); errors.Is(err, ErrCorrupt) {
			c.violation(RootPageID, -1, "%v", err)
			err = nil
		} else if err == nil && n.Leaf {
			err = c.leaf(RootPageID, -1, KeyPath{}, 0, root)
		} else if err == nil {
			err = c.elided(RootPageID, -1, RootPageID, KeyPath{}, 0, root)
		}
	case rootPage == nil:
		err = c.leaf(RootPageID, -1, KeyPath{}, 0, root)
	default:
		err = c.checkPage(RootPageID, rootPage, root)
	}
	if err != nil {
		return nil, err
	}
	return c.report, nil
}

type checker struct {
	tree      *Tree
	preimages Preimages // nil: values are not checked
	report    *CheckReport
}

func (c *checker) violation(id PageID, slot int, format string, args ...any) {
	c.report.Violations = append(c.report.Violations, Violation{Page: id, Slot: slot, Problem: fmt.Sprintf(format, args...)})
}

// page reads a page, reporting a damaged one (from under parent) as a
// violation rather than failing.
func (c *checker) page(id, parent PageID) (*Page, error) {
	p, err := c.tree.page(id)
	if errors.Is(err, ErrCorrupt) {
		c.violation(parent, -1, "child %s: %v", id, err)
		return nil, nil
	}
	return p, err
}

func (c *checker) checkPage(id PageID, page *Page, parent Hash) error {
	c.report.Pages++
	c.internal(id, -1, parent, page.Node(0), page.Node(1))
	for _, b := range page[HistoryOffset+1 : ChecksumOffset] {
		if b != 0 {
			c.violation(id, -1, "reserved bytes are not zero")
			break
		}
	}
	for slot := 0; slot < PageNodes; slot++ {
		n := page.Node(slot)
		level := bits.Len(uint(slot+2)) - 1
		index := slot + 2 - 1<<uint(level)
		depth := id.Depth()*PageLevels + level
		if depth > MaxDepth {
			if n != (Node{}) {
				c.violation(id, slot, "node below the deepest possible depth %d", MaxDepth)
			}
			continue
		}
		path := id.Path()
		for b := 0; b < level; b++ {
			if index>>(level-1-b)&1 == 1 {
				bit := id.Depth()*PageLevels + b
				path[bit>>3] |= 0x80 >> uint(bit&7)
			}
		}
		if n.Leaf && n.IsEmpty() {
			c.violation(id, slot, "leaf bit set on an empty node")
		}
		if n.Leaf {
			if err := c.leaf(id, slot, path, depth, n.Hash); err != nil {
				return err
			}
		}
		if level < PageLevels {
			ls := Slot(level+1, index*2)
			left, right := page.Node(ls), page.Node(ls+1)
			if n.IsInternal() {
				c.internal(id, slot, n.Hash, left, right)
			} else if left != (Node{}) || right != (Node{}) {
				c.violation(id, slot, "a %s node has children", kindOf(n))
			}
			continue
		}
		childID := id.Child(index)
		before := len(c.report.Violations)
		child, err := c.page(childID, id)
		if err != nil {
			return err
		}
		switch {
		case child == nil && len(c.report.Violations) > before:
			// Damaged: reported by c.page, not missing.
		case n.IsInternal() && child == nil && c.tree.elides():
			if err := c.elided(id, slot, childID, path, depth, n.Hash); err != nil {
				return err
			}
		case n.IsInternal() && child == nil:
			c.violation(id, slot, "internal bottom node has no child page %s", childID)
		case n.IsInternal():
			if err := c.checkPage(childID, child, n.Hash); err != nil {
				return err
			}
		case child != nil:
			c.violation(id, slot, "a %s bottom node has child page %s", kindOf(n), childID)
		}
	}
	return nil
}

func kindOf(n Node) string {
	switch {
	case n.IsEmpty():
		return "empty"
	case n.Leaf:
		return "leaf"
	}
	return "internal"
}

// internal checks an internal node against its two children.
func (c *checker) internal(id PageID, slot int, parent Hash, left, right Node) {
	switch {
	case left.IsEmpty() && right.IsEmpty():
		c.violation(id, slot, "internal node has two empty children")
	case left.IsEmpty() && right.Leaf, right.IsEmpty() && left.Leaf:
		c.violation(id, slot, "leaf beside an empty sibling is not compacted upward")
	case InternalHash(left.Hash, right.Hash) != parent:
		c.violation(id, slot, "hash %s is not the hash of its children", parent)
	}
}

// leaf checks a leaf at depth on path against the leaf index: exactly one
// key lies under that position and it hashes to the node.
func (c *checker) leaf(id PageID, slot int, path KeyPath, depth int, hash Hash) error {
	c.report.Leaves++
	leaf, ok, err := c.tree.Leaves.Ceil(path.Prefix(depth))
	if err != nil {
		return err
	}
	if !ok || !leaf.Path.HasPrefix(&path, depth) {
		c.violation(id, slot, "leaf at depth %d has no key in the leaf index", depth)
		return nil
	}
	if leaf.Hash != hash {
		c.violation(id, slot, "leaf hash %s is not that of key path %s", hash, leaf.Path)
	}
	if err := c.value(id, slot, leaf); err != nil {
		return err
	}
	if after, more := leaf.Path.Next(); more {
		next, ok, err := c.tree.Leaves.Ceil(after)
		if err != nil {
			return err
		}
		if ok && next.Path.HasPrefix(&path, depth) {
			c.violation(id, slot, "leaf at depth %d covers two keys (%s, %s)", depth, leaf.Path, next.Path)
		}
	}
	return nil
}

// value checks that the raw key and value behind a leaf hash to its path
// and value digest.
func (c *checker) value(id PageID, slot int, leaf Leaf) error {
	if c.preimages == nil {
		return nil
	}
	key, value, err := c.preimages.Preimage(leaf.Path)
	switch {
	case errors.Is(err, ErrCorrupt):
		c.violation(id, slot, "key path %s: %v", leaf.Path, err)
	case err != nil:
		return err
	case PathOf(key) != leaf.Path:
		c.violation(id, slot, "the leaf index gives key %x for key path %s, which it does not hash to", key, leaf.Path)
	case LeafHash(leaf.Path, ValueHash(value)) != leaf.Hash:
		c.violation(id, slot, "the value of key %x does not hash to its leaf %s in the leaf index", key, leaf.Hash)
	}
	return nil
}

// elided checks the elided subtree below the internal node (page id, slot)
// at depth on path, whose page would be child: it holds 2 to ElideBelow-1
// keys of the leaf index, which hash to the node, and their values hash to
// their leaves.
func (c *checker) elided(id PageID, slot int, child PageID, path KeyPath, depth int, hash Hash) error {
	leaves, err := c.tree.Leaves.Under(path, depth, c.tree.ElideBelow)
	if err != nil {
		return err
	}
	if err := c.tree.checkElidedCount(child, len(leaves)); err != nil {
		c.violation(id, slot, "%v", err)
		return nil
	}
	if n, _ := subtreeNode(leaves, depth); n.Hash != hash {
		c.violation(id, slot, "elided subtree %s: its %d keys in the leaf index hash to %s, the node holds %s", child, len(leaves), n.Hash, hash)
	}
	c.report.Leaves += len(leaves)
	for _, l := range leaves {
		if err := c.value(id, slot, l); err != nil {
			return err
		}
	}
	return nil
}

// CheckRoot checks cheaply that the trie's top agrees with root, as an
// open does before serving it: the root page's top nodes hash to root or,
// with no root page, the leaf index holds no key (empty root), the one key
// whose leaf root is, or (with elision) fewer than ElideBelow keys hashing
// to root. A page table that lags the commit record fails here.
func (t *Tree) CheckRoot(root Hash) error {
	page, err := t.page(RootPageID)
	if err != nil {
		return err
	}
	if page != nil {
		if root.IsEmpty() || InternalHash(page.Node(0).Hash, page.Node(1).Hash) != root {
			return corruptf("store %d: the root page does not hash to the committed root %s", t.Store, root)
		}
		return nil
	}
	limit := max(t.ElideBelow, 2)
	leaves, err := t.Leaves.Under(KeyPath{}, 0, limit)
	if err != nil {
		return err
	}
	if len(leaves) >= 2 && (!t.elides() || len(leaves) >= t.ElideBelow) {
		return corruptf("store %d: no root page, but the leaf index holds %d or more keys", t.Store, len(leaves))
	}
	if n, _ := subtreeNode(leaves, 0); n.Hash != root {
		return corruptf("store %d: no root page, and the %d keys of the leaf index hash to %s, not the committed root %s", t.Store, len(leaves), n.Hash, root)
	}
	return nil
}
