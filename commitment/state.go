package commitment

import (
	"fmt"
	"sync/atomic"

	"github.com/nomtstore/nomtstore/commitment/trie"
)

// committedState is the latest committed version as every reader sees it:
// its commit record (version, roots, log position), the trees, the page
// store that serves its pages, a Pebble snapshot of it, the caches of its
// values and elided subtrees, and the oldest version still retained. It
// answers which version and tree a read names, and gives the view of one
// tree at one version (view.go) that the read goes through.
//
// Invariants:
//   - Guarded by DB.mu: readers hold it (read) for as long as they use what
//     they took from it (a view, the snapshot); a commit's swap, Close and
//     registering trees hold it (write). earliest alone is read without it,
//     and pages, values, leaves and elideBelow are set once at open and
//     never replaced (what they point to has locks of its own), so the
//     writer uses them without it.
//   - snap holds record's version: a commit applies its batch to Pebble
//     before the swap that takes the new snapshot and record together.
//   - The caches hold only entries current at their own versions, and a
//     reader takes only those no newer than its version (valuecache.go);
//     cachesAhead is set while a commit writes its entries ahead of the
//     swap, and readers put nothing into the caches meanwhile.
//   - earliest <= record.version, both 0 before the first commit; pruning
//     raises earliest before it deletes, so a reader that checked a
//     version reads one its snapshot still holds.
//   - Trees are never removed, and keep their objects for the DB's life:
//     staged changes are keyed by them.
type committedState struct {
	record  *commitRecord
	trees   map[string]*tree
	byStore map[trie.StoreID]*tree
	pages   *pageStore
	snap    *snapshot
	closed  bool
	// values caches the latest version's current entries, leaves its
	// elided subtrees' keys (valuecache.go).
	values      *valueCache
	leaves      *leafCache
	cachesAhead bool
	earliest    atomic.Uint64
	// elideBelow is the directory's elision threshold ("params"), fixed
	// at its creation.
	elideBelow int
}

// namedRoots names the roots of one version; trees it did not have are
// empty. REQUIRES: DB.mu held (read).
func (c *committedState) namedRoots(roots map[trie.StoreID]trie.Hash) map[string]trie.Hash {
	out := make(map[string]trie.Hash, len(c.trees))
	for name, t := range c.trees {
		out[name] = roots[t.store]
	}
	return out
}

// checkVersion refuses versions that are not retained. REQUIRES: DB.mu
// held (read).
func (c *committedState) checkVersion(version uint64) error {
	if c.closed {
		return ErrClosed
	}
	latest := c.record.version
	if version > latest || version == 0 {
		return fmt.Errorf("%w: version %d (the latest is %d)", ErrVersionFuture, version, latest)
	}
	if earliest := c.earliest.Load(); version < earliest {
		return fmt.Errorf("%w: version %d (the earliest retained is %d, the latest %d)", ErrVersionPruned, version, earliest, latest)
	}
	return nil
}

// rootsAt reads the roots of a retained version. REQUIRES: DB.mu (read).
func (c *committedState) rootsAt(version uint64) (map[trie.StoreID]trie.Hash, error) {
	if err := c.checkVersion(version); err != nil {
		return nil, err
	}
	if version == c.record.version {
		return c.record.roots, nil
	}
	b, found, err := getEntry(c.snap.snap, versionKey(prefixRoots, version))
	if err != nil {
		return nil, fmt.Errorf("commitment: roots of version %d: %w", version, err)
	}
	if !found {
		return nil, fmt.Errorf("%w: no roots record for retained version %d", ErrCorrupt, version)
	}
	return decodeRoots(b)
}

// lookupTree returns the tree of a name. REQUIRES: DB.mu held (read).
func (c *committedState) lookupTree(name string) (*tree, error) {
	t, ok := c.trees[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownTree, name)
	}
	return t, nil
}

// view returns the view of a tree at a version the caller checked.
// REQUIRES: DB.mu held (read).
func (c *committedState) view(t *tree, version uint64) treeView {
	return treeView{tree: t, version: version, latest: c.record.version, snap: c.snap,
		pages: c.pages, values: c.values, leaves: c.leaves, fill: !c.cachesAhead, elideBelow: c.elideBelow}
}

// readView checks a read's tree and version and returns its view. latest
// reads whatever version is the latest, even none. REQUIRES: mu held
// (read).
func (c *committedState) readView(treeName string, version uint64, latest bool) (treeView, error) {
	if c.closed {
		return treeView{}, ErrClosed
	}
	t, err := c.lookupTree(treeName)
	if err != nil {
		return treeView{}, err
	}
	if latest {
		version = c.record.version
	} else if err := c.checkVersion(version); err != nil {
		return treeView{}, err
	}
	return c.view(t, version), nil
}
