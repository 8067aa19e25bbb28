package trie

import (
	"errors"
	"fmt"
)

// PageSource is where the trie reads committed pages from. Page returns nil
// and no error for a page that does not exist. Implementations must allow
// concurrent calls: a large batch reads disjoint subtrees in parallel.
// Returned pages are never modified by the trie.
type PageSource interface {
	Page(id PageID) (*Page, error)
}

// Leaf is one key as the leaf index holds it: its path and its leaf node
// hash, LeafHash(path, value digest). The index keeps the node hash rather
// than the value digest so that rebuilding an elided subtree hashes only
// its internal nodes.
type Leaf struct {
	Path KeyPath
	Hash Hash
}

// NewLeaf returns the leaf of a key whose value has the given digest.
func NewLeaf(path KeyPath, valueHash Hash) Leaf {
	return Leaf{Path: path, Hash: LeafHash(path, valueHash)}
}

// LeafIndex is the ordered set of the trie's keys by path, as of the trie
// being read or updated. The trie uses it to find the key behind a leaf node
// (to push it down when another key lands under it), a missing key's
// neighbours, and the keys of an elided subtree. Implementations must allow
// concurrent calls.
type LeafIndex interface {
	// Ceil returns the leaf with the smallest path >= path.
	Ceil(path KeyPath) (Leaf, bool, error)
	// Floor returns the leaf with the largest path <= path.
	Floor(path KeyPath) (Leaf, bool, error)
	// Under returns, in path order, the leaves whose paths agree with
	// prefix on its first depth bits, but at most limit of them: a caller
	// that gets limit leaves knows there may be more.
	Under(prefix KeyPath, depth, limit int) ([]Leaf, error)
}

// LeafGetter is an optional extension of a LeafIndex: the leaf at exactly
// path. Where a point lookup is cheaper than a seek (Pebble with bloom
// filters), an update of an existing key finds the leaf it replaces with it.
type LeafGetter interface {
	Leaf(path KeyPath) (Leaf, bool, error)
}

// ElidedHashes is an optional extension of a LeafIndex that also keeps the
// bucket nodes an update computed for an elided subtree
// (ElidedSubtree.Buckets). The next update of the subtree then hashes only
// the buckets its ops change, where it would rebuild the whole subtree from
// its leaves.
type ElidedHashes interface {
	// UnderElided is Under for the keys of the elided subtree below depth,
	// with their buckets' nodes, or nil buckets if they are not known.
	UnderElided(prefix KeyPath, depth, limit int) ([]Leaf, *Buckets, error)
}

// Preimages gives the raw key and value behind a key path, for proofs.
type Preimages interface {
	Preimage(path KeyPath) (key, value []byte, err error)
}

// Errors. Corruption is a mark: test it with errors.Is(err, ErrCorrupt).
var (
	// ErrCorrupt marks damaged or inconsistent data: a trie whose pages or
	// leaf index contradict each other or the hashes. Packages bitbox and
	// commitment use this same mark, so errors.Is(err, ErrCorrupt) holds
	// for corruption found at any layer.
	ErrCorrupt = errors.New("nomtstore: corrupt data")
	// ErrUnsortedOps is returned by Update for operations that are not in
	// strictly increasing path order (which also rules out duplicates).
	ErrUnsortedOps = errors.New("trie: operations not strictly sorted by key path")
	// ErrEmptyTrie is returned when asked to prove anything in an empty
	// trie: ICS23 cannot express a proof against the empty root.
	ErrEmptyTrie = errors.New("trie: empty trie has no proofs")
)

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}
