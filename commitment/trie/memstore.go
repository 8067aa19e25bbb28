package trie

import (
	"bytes"
	"errors"
	"fmt"
	"sort"

	ics23 "github.com/cosmos/ics23/go"
	"github.com/google/btree"
)

// Input errors of MemStore.Apply.
var (
	// ErrEmptyKey: a key must have at least one byte (as the SDK requires).
	ErrEmptyKey = errors.New("trie: empty key")
	// ErrEmptyValue: an empty value is not a value; delete the key instead.
	ErrEmptyValue = errors.New("trie: empty value")
	// ErrDuplicateKey: a batch names the same key twice.
	ErrDuplicateKey = errors.New("trie: key appears twice in one batch")
)

// MemStore is a whole trie in memory: pages, leaf index and raw keys and
// values. It backs the trie command-line tools, which recompute roots and
// proofs from exported state, and serves as the reference in tests. It is
// not safe for concurrent use.
type MemStore struct {
	// Options tune the batch updates of Apply.
	Options UpdateOptions

	tree   Tree
	root   Hash
	pages  memPages
	leaves memLeaves
	kvs    map[KeyPath]keyValue
}

type keyValue struct{ key, value []byte }

// Change is one entry of a MemStore batch: set Key to Value, or delete Key.
type Change struct {
	Key    []byte
	Value  []byte
	Delete bool
}

// NewMemStore returns an empty in-memory trie namespaced by store.
func NewMemStore(store StoreID) *MemStore {
	m := &MemStore{
		pages:  memPages{},
		leaves: memLeaves{btree.NewG(32, func(a, b Leaf) bool { return bytes.Compare(a.Path[:], b.Path[:]) < 0 })},
		kvs:    map[KeyPath]keyValue{},
	}
	m.tree = Tree{Store: store, Pages: m.pages, Leaves: m.leaves}
	return m
}

// Apply applies one batch atomically: on error nothing changes.
func (m *MemStore) Apply(changes []Change) (*UpdateResult, error) {
	ops := make([]Op, len(changes))
	byPath := make(map[KeyPath]int, len(changes))
	for i, c := range changes {
		if len(c.Key) == 0 {
			return nil, fmt.Errorf("change %d: %w", i, ErrEmptyKey)
		}
		if !c.Delete && len(c.Value) == 0 {
			return nil, fmt.Errorf("change %d (key %x): %w", i, c.Key, ErrEmptyValue)
		}
		ops[i] = Op{Path: PathOf(c.Key), Delete: c.Delete}
		if !c.Delete {
			ops[i].ValueHash = ValueHash(c.Value)
		}
		if j, dup := byPath[ops[i].Path]; dup {
			return nil, fmt.Errorf("changes %d and %d (key %x): %w", j, i, c.Key, ErrDuplicateKey)
		}
		byPath[ops[i].Path] = i
	}
	sort.Slice(ops, func(i, j int) bool { return bytes.Compare(ops[i].Path[:], ops[j].Path[:]) < 0 })
	res, err := m.applyOps(ops)
	if err != nil {
		return nil, err
	}
	for _, c := range changes {
		if c.Delete {
			delete(m.kvs, PathOf(c.Key))
		} else {
			m.kvs[PathOf(c.Key)] = keyValue{key: bytes.Clone(c.Key), value: bytes.Clone(c.Value)}
		}
	}
	return res, nil
}

// applyOps updates the trie and leaf index (not the raw keys and values)
// with sorted ops.
func (m *MemStore) applyOps(ops []Op) (*UpdateResult, error) {
	res, err := m.tree.Update(m.root, ops, m.Options)
	if err != nil {
		return nil, err
	}
	for _, pc := range res.Pages {
		if pc.Page == nil {
			delete(m.pages, pc.ID)
		} else {
			m.pages[pc.ID] = pc.Page
		}
	}
	for _, op := range ops {
		if op.Delete {
			m.leaves.Delete(Leaf{Path: op.Path})
		} else {
			m.leaves.ReplaceOrInsert(NewLeaf(op.Path, op.ValueHash))
		}
	}
	m.root = res.Root
	return res, nil
}

// Clone returns an independent copy of the store: the same trie, pages
// and keys, which later batches on either do not share.
func (m *MemStore) Clone() *MemStore {
	c := &MemStore{
		Options: m.Options,
		root:    m.root,
		pages:   make(memPages, len(m.pages)),
		leaves:  memLeaves{m.leaves.Clone()},
		kvs:     make(map[KeyPath]keyValue, len(m.kvs)),
	}
	for id, p := range m.pages {
		c.pages[id] = p // pages are replaced, never modified, by a batch
	}
	for k, v := range m.kvs {
		c.kvs[k] = v
	}
	c.tree = Tree{Store: m.tree.Store, Pages: c.pages, Leaves: c.leaves, ElideBelow: m.tree.ElideBelow}
	return c
}

// Root is the root hash of the current key set.
func (m *MemStore) Root() Hash { return m.root }

// Len is the number of keys.
func (m *MemStore) Len() int { return m.leaves.Len() }

// Pages is the number of pages the trie occupies.
func (m *MemStore) Pages() int { return len(m.pages) }

// Tree returns the trie over the store's pages and leaf index.
func (m *MemStore) Tree() *Tree { return &m.tree }

// Get returns the value of key.
func (m *MemStore) Get(key []byte) ([]byte, bool) {
	kv, ok := m.kvs[PathOf(key)]
	return kv.value, ok
}

// Preimage implements Preimages.
func (m *MemStore) Preimage(path KeyPath) ([]byte, []byte, error) {
	kv, ok := m.kvs[path]
	if !ok {
		return nil, nil, fmt.Errorf("no key with path %s", path)
	}
	return kv.key, kv.value, nil
}

// Prove returns an existence or non-existence proof for key.
func (m *MemStore) Prove(key []byte) (*ics23.CommitmentProof, bool, error) {
	return m.tree.Prove(m.root, key, m)
}

// Check runs Tree.Check and also checks that the trie holds exactly the
// store's keys and pages. It returns every violation, joined.
func (m *MemStore) Check() error {
	rep, err := m.tree.Check(m.root)
	if err != nil {
		return err
	}
	errs := make([]error, 0, len(rep.Violations)+2)
	for _, v := range rep.Violations {
		errs = append(errs, v)
	}
	if rep.Leaves != m.leaves.Len() {
		errs = append(errs, fmt.Errorf("trie has %d leaves, the leaf index %d keys", rep.Leaves, m.leaves.Len()))
	}
	if rep.Pages != len(m.pages) {
		errs = append(errs, fmt.Errorf("%d pages reachable from the root, %d stored", rep.Pages, len(m.pages)))
	}
	return errors.Join(errs...)
}

// memPages is a PageSource over a map; concurrent reads are safe while no
// batch is being applied.
type memPages map[PageID]*Page

func (m memPages) Page(id PageID) (*Page, error) { return m[id], nil }

// memLeaves is a LeafIndex over an ordered B-tree.
type memLeaves struct{ *btree.BTreeG[Leaf] }

func (m memLeaves) Ceil(path KeyPath) (leaf Leaf, ok bool, _ error) {
	m.AscendGreaterOrEqual(Leaf{Path: path}, func(l Leaf) bool {
		leaf, ok = l, true
		return false
	})
	return leaf, ok, nil
}

func (m memLeaves) Leaf(path KeyPath) (Leaf, bool, error) {
	leaf, ok := m.Get(Leaf{Path: path})
	return leaf, ok, nil
}

func (m memLeaves) Under(prefix KeyPath, depth, limit int) ([]Leaf, error) {
	var out []Leaf
	m.AscendGreaterOrEqual(Leaf{Path: prefix.Prefix(depth)}, func(l Leaf) bool {
		if len(out) >= limit || !l.Path.HasPrefix(&prefix, depth) {
			return false
		}
		out = append(out, l)
		return true
	})
	return out, nil
}

func (m memLeaves) Floor(path KeyPath) (leaf Leaf, ok bool, _ error) {
	m.DescendLessOrEqual(Leaf{Path: path}, func(l Leaf) bool {
		leaf, ok = l, true
		return false
	})
	return leaf, ok, nil
}
