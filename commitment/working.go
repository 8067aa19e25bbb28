package commitment

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"unsafe"

	"github.com/nomtstore/nomtstore/commitment/bitbox"
	"github.com/nomtstore/nomtstore/commitment/trie"
)

// The next version, before it commits: the changes staged since the last
// commit (Set, Delete, SetVersionRecord) and the working set computed from
// them (WorkingRoots): every tree's new root and the pages, superseded
// values and elided subtrees its update produced, which Commit writes.

// stagedWrites is what the next commit writes. Every field REQUIRES
// DB.writeMu.
//
// Invariants:
//   - working, when set, is the working set of exactly the staged changes:
//     every change drops it;
//   - a huge block's working set holds the block's changes itself and the
//     maps are empty (inWorking): its updates hold the same keys and values
//     sorted by path, so keeping both would double what the block costs
//     while it commits. A change to such a block first puts them back
//     (restage).
type stagedWrites struct {
	byTree  map[*tree]map[string]stagedOp
	record  []byte // the application's record of the version (SetVersionRecord)
	working *workingSet
}

func newStagedWrites() stagedWrites {
	return stagedWrites{byTree: map[*tree]map[string]stagedOp{}}
}

// put stages one change; op.value is the staged writes' own from here on.
func (s *stagedWrites) put(t *tree, key []byte, op stagedOp) {
	s.restage()
	m := s.byTree[t]
	if m == nil {
		m = map[string]stagedOp{}
		s.byTree[t] = m
	}
	m[string(key)] = op
	s.working = nil
}

// clearChanges drops every staged change (not the version record).
func (s *stagedWrites) clearChanges() {
	clear(s.byTree)
	s.working = nil
}

// setWorking keeps the working set of the staged changes; a huge block's
// holds them from here on.
func (s *stagedWrites) setWorking(w *workingSet) {
	s.working = w
	if w.huge {
		// The updates hold every key (the maps' own strings) and value.
		clear(s.byTree)
	}
}

// inWorking reports whether the staged changes are held by the working set
// alone (a huge block's).
func (s *stagedWrites) inWorking() bool { return s.working != nil && s.working.huge }

// restage puts a huge block's staged changes back into the maps from its
// working set, which it drops: the block is changing again.
func (s *stagedWrites) restage() {
	if !s.inWorking() {
		return
	}
	for _, u := range s.working.updates {
		m := make(map[string]stagedOp, len(u.keys))
		for i, key := range u.keys {
			m[string(key)] = stagedOp{value: u.values[i], delete: u.ops[i].Delete}
		}
		s.byTree[u.tree] = m
	}
	s.working = nil
}

// keys counts the staged changes.
func (s *stagedWrites) keys() int {
	n := 0
	if s.inWorking() {
		for _, u := range s.working.updates {
			n += len(u.keys)
		}
		return n
	}
	for _, staged := range s.byTree {
		n += len(staged)
	}
	return n
}

// stagedOp is one staged change: a Set's value, or a Delete.
type stagedOp struct {
	value  []byte
	delete bool
}

// workingSet is the outcome of WorkingRoots for the staged changes.
type workingSet struct {
	roots   map[trie.StoreID]trie.Hash // every tree, changed or not
	updates []*treeUpdate
	table   *bitbox.Table // the table the updates read their buckets from
	// huge is set for a block of more than hugeBlockKeys keys: the value
	// and leaf caches are dropped after it rather than written through,
	// which would hold a copy of every entry it writes until the commit.
	huge bool
}

// hugeBlockKeys is the block size past which a commit drops the caches of
// the latest version instead of writing its entries through them.
var hugeBlockKeys = 1 << 20 // a variable for tests

// treeUpdate is one changed tree's part of the working set: its staged
// changes sorted by key path, the trie update's result and the committed
// values the changes supersede.
type treeUpdate struct {
	tree    *tree
	keys    [][]byte // staged keys in path order, parallel to ops
	ops     []trie.Op
	values  [][]byte
	result  *trie.UpdateResult
	buckets map[trie.PageID]uint64 // of the pages the update read
	priors  []prior                // each key's committed value, parallel to ops
}

// prior is a key's committed value: what a commit supersedes.
type prior struct {
	exists bool
	born   uint64
	value  []byte
}

// workingLocked computes the working set. REQUIRES: writeMu.
func (db *DB) workingLocked() (*workingSet, error) {
	if db.bulk != nil {
		return db.bulkWorkingLocked()
	}
	db.mu.RLock()
	defer db.mu.RUnlock()
	// Checked before the cache: a working set computed before Close must
	// not let a commit run against closed files.
	if db.committed.closed {
		return nil, ErrClosed
	}
	if db.staged.working != nil {
		return db.staged.working, nil
	}
	defer db.opts.observePhase(PhaseWorkingRoots, db.opts.now())
	db.warm.drop()
	w := &workingSet{roots: map[trie.StoreID]trie.Hash{}, table: db.committed.pages.table}
	for _, t := range db.committed.trees {
		w.roots[t.store] = db.committed.record.roots[t.store]
	}
	keys := 0
	for t, staged := range db.staged.byTree {
		if len(staged) > 0 {
			w.updates = append(w.updates, newTreeUpdate(t, staged))
			keys += len(staged)
		}
	}
	w.huge = keys > hugeBlockKeys
	slices.SortFunc(w.updates, func(a, b *treeUpdate) int { return int(a.tree.store) - int(b.tree.store) })
	// Trees hash in parallel; a lone big tree uses every worker inside.
	perTree := max(1, db.opts.Workers/max(1, len(w.updates)))
	errs := make([]error, len(w.updates))
	sem := make(chan struct{}, db.opts.Workers)
	var wg sync.WaitGroup
	for i, u := range w.updates {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = db.updateTree(u, w.roots[u.tree.store], perTree, w.huge)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, u := range w.updates {
		w.roots[u.tree.store] = u.result.Root
	}
	db.staged.setWorking(w)
	return w, nil
}

func newTreeUpdate(t *tree, staged map[string]stagedOp) *treeUpdate {
	n := len(staged)
	u := &treeUpdate{tree: t, keys: make([][]byte, 0, n), ops: make([]trie.Op, 0, n), values: make([][]byte, 0, n)}
	for k, s := range staged {
		// Nothing writes to a staged key: its bytes are shared, not
		// copied, and outlive the map if a huge block drops it.
		key := unsafe.Slice(unsafe.StringData(k), len(k))
		op := trie.Op{Path: trie.PathOf(key), Delete: s.delete}
		if !s.delete {
			op.ValueHash = trie.ValueHash(s.value)
		}
		u.keys, u.ops, u.values = append(u.keys, key), append(u.ops, op), append(u.values, s.value)
	}
	sort.Sort(byPath{u})
	return u
}

// byPath sorts an update's parallel slices by key path in place.
type byPath struct{ *treeUpdate }

func (b byPath) Len() int { return len(b.ops) }
func (b byPath) Less(i, j int) bool {
	return bytes.Compare(b.ops[i].Path[:], b.ops[j].Path[:]) < 0
}
func (b byPath) Swap(i, j int) {
	b.keys[i], b.keys[j] = b.keys[j], b.keys[i]
	b.ops[i], b.ops[j] = b.ops[j], b.ops[i]
	b.values[i], b.values[j] = b.values[j], b.values[i]
}

// updateTree runs one tree's batch update and reads the values it
// supersedes, which history keeps. REQUIRES: mu held (read).
func (db *DB) updateTree(u *treeUpdate, root trie.Hash, workers int, huge bool) error {
	buckets := map[trie.PageID]uint64{}
	view := db.committed.view(u.tree, db.committed.record.version)
	tr, leaves := view.trie(buckets)
	var err error
	if u.priors, err = readPriors(view, u.keys, !huge, workers); err != nil {
		return fmt.Errorf("commitment: tree %q: %w", u.tree.name, err)
	}
	// The priors say which keys exist and with which value: the update
	// need not look their leaves up in the index.
	tr.Leaves = knownLeaves{leavesAt: leaves, ops: u.ops, priors: u.priors}
	res, err := tr.Update(root, u.ops, trie.UpdateOptions{Workers: workers, SkipElidedNotes: huge})
	if err != nil {
		return fmt.Errorf("commitment: tree %q: %w", u.tree.name, err)
	}
	u.result, u.buckets = res, buckets
	return nil
}

// knownLeaves is the leaf index of an update whose keys' committed values
// are known: the leaf of a staged key comes from its prior, any other from
// the index.
type knownLeaves struct {
	leavesAt
	ops    []trie.Op // sorted by path
	priors []prior   // parallel to ops
}

func (k knownLeaves) Leaf(path trie.KeyPath) (trie.Leaf, bool, error) {
	i, found := slices.BinarySearchFunc(k.ops, path, func(op trie.Op, p trie.KeyPath) int { return bytes.Compare(op.Path[:], p[:]) })
	if !found {
		return k.leavesAt.Leaf(path)
	}
	if p := k.priors[i]; p.exists {
		return trie.NewLeaf(path, trie.ValueHash(p.value)), true, nil
	}
	return trie.Leaf{}, false, nil
}

// readPriors reads the committed value of each key a tree update touches,
// through the value cache; cache false leaves out what the cache misses (a
// huge block, after which the cache is purged anyway). The reads are
// independent lookups, each mostly a wait on memory: workers goroutines
// split them, as the update that follows splits its subtrees.
func readPriors(latest treeView, keys [][]byte, cache bool, workers int) ([]prior, error) {
	priors := make([]prior, len(keys))
	parts := max(1, min(workers, len(keys)/minPriorsPerWorker))
	if parts == 1 {
		return priors, readPriorsInto(latest, keys, priors, cache)
	}
	errs := make([]error, parts)
	var wg sync.WaitGroup
	for part := range parts {
		lo, hi := part*len(keys)/parts, (part+1)*len(keys)/parts
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[part] = readPriorsInto(latest, keys[lo:hi], priors[lo:hi], cache)
		}()
	}
	wg.Wait()
	return priors, errors.Join(errs...)
}

// minPriorsPerWorker keeps a small block's reads on one goroutine, where
// starting more would cost what they save.
const minPriorsPerWorker = 256

func readPriorsInto(latest treeView, keys [][]byte, priors []prior, cache bool) error {
	for i, key := range keys {
		r, err := latest.currentEntry(key, cache)
		if err != nil {
			return err
		}
		if r.found {
			born, value, err := splitBorn(r.entry)
			if err != nil {
				return err
			}
			priors[i] = prior{exists: true, born: born, value: value}
		}
	}
	return nil
}

// pageChanges are the working set's page changes as table changes, with
// the buckets of the pages they rewrite (new pages get theirs from
// pageStore.place).
func (w *workingSet) pageChanges() ([]bitbox.Change, error) {
	var changes []bitbox.Change
	for _, u := range w.updates {
		for _, pc := range u.result.Pages {
			c := bitbox.Change{Key: bitbox.PageKey{Store: u.tree.store, ID: pc.ID}, Page: pc.Page, Prior: pc.Prior}
			if pc.Prior != nil {
				b, ok := u.buckets[pc.ID]
				if !ok {
					return nil, fmt.Errorf("commitment: tree %q: page %s changed but was never read", u.tree.name, pc.ID)
				}
				c.Bucket = b
			}
			changes = append(changes, c)
		}
	}
	return changes, nil
}
