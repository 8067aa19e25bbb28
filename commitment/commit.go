package commitment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/nomtstore/nomtstore/commitment/bitbox"
	"github.com/nomtstore/nomtstore/commitment/trie"
)

// The commit protocol. A commit of version v is one sync of every tree:
//
//  1. Begin: the new roots (WorkingRoots) and the pages they change; buckets
//     for new pages (growing the table first if it would pass its load
//     factor); the WAL of the page changes; the Pebble batch of values, leaf
//     index entries, what the version supersedes (values, leaves and pages,
//     keyed by the version that orphaned them: keys.go), the version's
//     change list and roots, and the commit record.
//  2. The WAL is written to wal/<seq>.wal, fsynced, and its directory fsynced.
//  3. The commit point: the Pebble batch, with the commit record naming v and
//     seq, is committed with sync. Before it v does not exist; after it v is
//     committed, whatever happens next.
//  4. The new pages are written to their buckets with the meta map, the table
//     is fsynced, and the WAL removed. This runs in the background, while the
//     next block executes; reads meanwhile get the new pages from memory. The
//     next commit waits for it before writing its own WAL.
//
// Ordering rules, each load-bearing:
//   - no table page is written before the WAL naming it is durable (2 < 4);
//   - a WAL is replayed only if the commit record names its seq (recoverWAL);
//   - at most one WAL is live: commit v+1 writes its WAL after v's flush;
//   - the table grows only when no WAL is live, and a WAL records the table
//     generation it planned buckets for, so a stale WAL is never replayed into
//     a grown table.
//
// Rollback undoes a version with the same steps (rollback.go): its WAL puts
// superseded pages back, its batch restores superseded values and names
// v-1 in the commit record.
//
// A failure before the commit point leaves the DB at v-1 with the changes
// still staged; a failure of step 4 is sticky (ErrFlushFailed): the version
// is durable in its WAL, and reopening replays it. So is a growth that
// failed after its rename (bitbox.ErrGrowIncomplete): the DB stays at v-1
// but takes no commit until reopened.

type stagedOp struct {
	value  []byte
	delete bool
}

// workingSet is the outcome of WorkingRoots for the staged changes.
type workingSet struct {
	roots   map[trie.StoreID]trie.Hash // every tree, changed or not
	updates []*treeUpdate
	table   *bitbox.Table // the table the updates read their buckets from
}

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

func validateKey(key []byte) error {
	switch {
	case len(key) == 0:
		return ErrEmptyKey
	case len(key) > MaxKeyLength:
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrKeyTooLarge, len(key), MaxKeyLength)
	}
	return nil
}

// Set stages key = value in a tree, for the next commit.
//
// An empty value is a value, as in the SDK (collections' key sets and
// indexes store them): its leaf commits to trie.EmptyValueStandIn, which
// its proofs carry as the value (ICS23 cannot hash an empty one).
func (db *DB) Set(treeName string, key, value []byte) error {
	if err := validateKey(key); err != nil {
		return err
	}
	switch {
	case value == nil:
		return ErrNilValue
	case len(value) > MaxValueLength:
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrValueTooLarge, len(value), MaxValueLength)
	}
	return db.stage(treeName, key, stagedOp{value: bytes.Clone(value)})
}

// Delete stages the removal of key from a tree, for the next commit.
func (db *DB) Delete(treeName string, key []byte) error {
	if err := validateKey(key); err != nil {
		return err
	}
	return db.stage(treeName, key, stagedOp{delete: true})
}

func (db *DB) stage(treeName string, key []byte, op stagedOp) error {
	// Checked under writeMu, which Close holds while it closes: a writer
	// that checked before could queue to the warmer after Close stopped it.
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	db.mu.RLock()
	t, err := db.treeLocked(treeName)
	closed := db.closed
	db.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	if err != nil {
		return err
	}
	m := db.staged[t]
	if m == nil {
		m = map[string]stagedOp{}
		db.staged[t] = m
	}
	m[string(key)] = op
	db.working = nil
	db.warm.warmLater(t, key)
	return nil
}

// Discard drops every staged change.
func (db *DB) Discard() {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	clear(db.staged)
	db.stagedRecord = nil
	db.working = nil
}

// SetVersionRecord stages the application's record of the next version
// (for a multistore, its commit info): the commit writes it in the same
// atomic batch as the version, pruning deletes it with the version and a
// rollback with the versions it undoes. Nil stages none.
func (db *DB) SetVersionRecord(record []byte) {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	db.stagedRecord = bytes.Clone(record)
}

// WorkingRoots computes the root every tree will have once the staged
// changes commit, without writing anything. Calling it again before the next
// change is free and returns the same roots.
func (db *DB) WorkingRoots() (map[string]trie.Hash, error) {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	w, err := db.workingLocked()
	if err != nil {
		return nil, err
	}
	db.mu.RLock()
	defer db.mu.RUnlock()
	roots := make(map[string]trie.Hash, len(w.roots))
	for id, root := range w.roots {
		roots[db.byStore[id].name] = root
	}
	return roots, nil
}

// workingLocked computes the working set. REQUIRES: writeMu.
func (db *DB) workingLocked() (*workingSet, error) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	// Checked before the cache: a working set computed before Close must
	// not let a commit run against closed files.
	if db.closed {
		return nil, ErrClosed
	}
	if db.working != nil {
		return db.working, nil
	}
	defer db.opts.observePhase(PhaseWorkingRoots, db.opts.now())
	w := &workingSet{roots: map[trie.StoreID]trie.Hash{}, table: db.table}
	for _, t := range db.trees {
		w.roots[t.store] = db.record.roots[t.store]
	}
	for t, staged := range db.staged {
		if len(staged) > 0 {
			w.updates = append(w.updates, newTreeUpdate(t, staged))
		}
	}
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
			errs[i] = db.updateTree(u, w.roots[u.tree.store], perTree)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, u := range w.updates {
		w.roots[u.tree.store] = u.result.Root
	}
	db.working = w
	return w, nil
}

func newTreeUpdate(t *tree, staged map[string]stagedOp) *treeUpdate {
	u := &treeUpdate{tree: t}
	type item struct {
		key  []byte
		op   trie.Op
		data []byte
	}
	items := make([]item, 0, len(staged))
	for k, s := range staged {
		it := item{key: []byte(k), op: trie.Op{Path: trie.PathOf([]byte(k)), Delete: s.delete}, data: s.value}
		if !s.delete {
			it.op.ValueHash = trie.ValueHash(s.value)
		}
		items = append(items, it)
	}
	slices.SortFunc(items, func(a, b item) int { return bytes.Compare(a.op.Path[:], b.op.Path[:]) })
	for _, it := range items {
		u.keys = append(u.keys, it.key)
		u.ops = append(u.ops, it.op)
		u.values = append(u.values, it.data)
	}
	return u
}

// updateTree runs one tree's batch update and reads the values it
// supersedes, which history keeps. REQUIRES: mu held (read).
func (db *DB) updateTree(u *treeUpdate, root trie.Hash, workers int) error {
	buckets := map[trie.PageID]uint64{}
	tr, leaves := db.committedTree(u.tree, buckets)
	var err error
	if u.priors, err = db.readPriors(u); err != nil {
		return fmt.Errorf("commitment: tree %q: %w", u.tree.name, err)
	}
	// The priors say which keys exist and with which value: the update
	// need not look their leaves up in the index.
	tr.Leaves = knownLeaves{leavesAt: leaves, ops: u.ops, priors: u.priors}
	res, err := tr.Update(root, u.ops, trie.UpdateOptions{Workers: workers})
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
		return trie.Leaf{Path: path, ValueHash: trie.ValueHash(p.value)}, true, nil
	}
	return trie.Leaf{}, false, nil
}

// readPriors reads the committed value of each key a tree update touches.
// REQUIRES: mu held (read).
func (db *DB) readPriors(u *treeUpdate) ([]prior, error) {
	priors := make([]prior, len(u.keys))
	for i, key := range u.keys {
		r, err := db.currentEntry(u.tree.store, key)
		if err != nil {
			return nil, err
		}
		if r.found {
			born, value, err := splitBorn(r.entry)
			if err != nil {
				return nil, err
			}
			priors[i] = prior{exists: true, born: born, value: value}
		}
	}
	return priors, nil
}

// CommitResult is what a commit made durable.
type CommitResult struct {
	Version uint64
	Roots   map[string]trie.Hash
}

// Commit makes the staged changes of every tree durable as version
// Version()+1, in one sync (see the protocol above). An empty commit still
// creates a version.
func (db *DB) Commit() (*CommitResult, error) {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	start := db.opts.now()
	waitFlush := db.flush != nil
	if err := db.waitFlushLocked(); err != nil {
		return nil, err
	}
	if waitFlush {
		db.opts.observePhase(PhaseFlushWait, start)
	}
	w, err := db.workingLocked()
	if err != nil {
		return nil, err
	}
	db.opts.hookAt("begin")
	planStart := db.opts.now()
	changes, err := db.planPages(w)
	if err != nil {
		return nil, err
	}
	db.opts.observePhase(PhasePlan, planStart)
	db.mu.RLock()
	prev := db.record
	db.mu.RUnlock()
	version := prev.version + 1
	if prev.version == 0 && db.initialVersion > 0 {
		version = db.initialVersion
	}
	// The superseded pages' entries set the new pages' history bytes,
	// which the WAL records: they come first.
	pageEntries := supersededPages(w)
	record := &commitRecord{version: version, lastSeq: prev.lastSeq, roots: w.roots}
	appRecord := db.stagedRecord
	walBytes, err := db.commitDurably(record, changes, db.pebble.NewBatch(), func(batch *pebble.Batch) error {
		return writeVersion(batch, w, pageEntries, version, prev.version == 0, appRecord)
	})
	if err != nil {
		return nil, err
	}
	keys, hashes := 0, 0
	for _, staged := range db.staged {
		keys += len(staged)
	}
	for _, u := range w.updates {
		hashes += u.result.NodeHashes
	}
	clear(db.staged)
	db.stagedRecord = nil
	db.working = nil
	db.stats.commits.Add(1)
	db.mu.RLock()
	roots := db.namedRoots(record.roots)
	table := db.table
	db.mu.RUnlock()
	if o := db.opts.Observer; o != nil {
		o.Committed(CommitStats{Version: record.version, Duration: time.Since(start), Keys: keys,
			Pages: len(changes), WALBytes: walBytes, NodeHashes: hashes, Table: table.Stats()})
	}
	return &CommitResult{Version: record.version, Roots: roots}, nil
}

// writeVersion adds version's changes to the commit batch: current values
// and leaves, the superseded values, leaves and pages with the version that
// orphaned them, the version's change list, its roots and the application's
// record of it, if any.
func writeVersion(batch *pebble.Batch, w *workingSet, pageEntries [][][]byte, version uint64, first bool, appRecord []byte) error {
	var changed changeList
	var errs []error
	set := func(key, value []byte) { errs = append(errs, batch.Set(key, value, nil)) }
	for ui, u := range w.updates {
		store := u.tree.store
		for i, key := range u.keys {
			op, was := u.ops[i], u.priors[i]
			if op.Delete && !was.exists || !op.Delete && was.exists && bytes.Equal(was.value, u.values[i]) {
				continue // nothing changes, so nothing is superseded
			}
			if was.exists {
				set(oldValueKey(store, key, version), bornValue(was.born, was.value))
				set(oldLeafKey(store, op.Path, version), leafValue(was.born, trie.ValueHash(was.value), key))
			}
			if op.Delete {
				errs = append(errs, batch.Delete(valueKey(store, key), nil), batch.Delete(leafKey(store, op.Path), nil))
			} else {
				set(valueKey(store, key), bornValue(version, u.values[i]))
				set(leafKey(store, op.Path), leafValue(version, op.ValueHash, key))
			}
			changed.keys = append(changed.keys, changedKey{store: store, key: key, hadPrior: was.exists})
		}
		for pi, pc := range u.result.Pages {
			entry := pageEntries[ui][pi]
			if entry[0] != pageCreated {
				set(oldPageKey(version, store, pc.ID), entry)
			}
			set(oldPageIndexKey(store, pc.ID, version), entry[:1])
			changed.pages = append(changed.pages, changedPage{store: store, id: pc.ID, hadPrior: pc.Prior != nil})
		}
	}
	if !changed.empty() {
		set(versionKey(prefixChanges, version), changed.encode())
	}
	set(versionKey(prefixRoots, version), appendRoots(nil, w.roots))
	if appRecord != nil {
		set(versionKey(prefixAppVersion, version), appRecord)
	}
	if first {
		set(keyEarliest, binary.BigEndian.AppendUint64(nil, version))
	}
	return errors.Join(errs...)
}

// supersededPages returns each update's superseded page entries, parallel
// to its page changes, setting the new pages' history bytes.
func supersededPages(w *workingSet) [][][]byte {
	entries := make([][][]byte, len(w.updates))
	for i, u := range w.updates {
		entries[i] = make([][]byte, len(u.result.Pages))
		for j, pc := range u.result.Pages {
			entries[i][j] = supersededPage(pc)
		}
	}
	return entries
}

// commitDurably runs steps 2 to 4 of the protocol for a prepared version:
// the WAL of its page changes, the commit point (batch, plus the record),
// the swap of the committed state and the background page flush. Commit and
// rollback share it. fill, if set, adds to batch while the WAL is written
// and synced (building the batch is CPU, the sync is waiting). It consumes
// batch and returns the WAL's size. REQUIRES: writeMu, no flush running.
func (db *DB) commitDurably(record *commitRecord, changes []bitbox.Change, batch *pebble.Batch, fill func(*pebble.Batch) error) (int, error) {
	// Pruning waits while a commit syncs.
	db.gate.enter()
	defer db.gate.exit()
	db.mu.RLock()
	table := db.table
	db.mu.RUnlock()
	var walPath string
	var walBytes int
	var walErr error
	walDone := make(chan struct{})
	if len(changes) > 0 {
		record.lastSeq++
		record.walSeq = record.lastSeq
		go func() {
			defer close(walDone)
			walStart := db.opts.now()
			data := bitbox.EncodeWAL(record.walSeq, table.Generation(), changes)
			if walPath, walErr = bitbox.WriteWAL(db.opts.FS, filepath.Join(db.dir, walDir), data, record.walSeq); walErr != nil {
				walErr = fmt.Errorf("commitment: commit %d: %w", record.version, walErr)
				return
			}
			walBytes = len(data)
			db.stats.walBytes.Add(uint64(walBytes))
			db.opts.observePhase(PhaseWALSync, walStart)
		}()
	} else {
		close(walDone)
	}
	var fillErr error
	if fill != nil {
		fillErr = fill(batch)
	}
	<-walDone
	if err := errors.Join(walErr, fillErr); err != nil {
		return 0, db.abandon(batch, walPath, err)
	}
	db.opts.hookAt("wal-durable")

	if err := batch.Set(keyCommit, record.encode(), nil); err != nil {
		return 0, db.abandon(batch, walPath, err)
	}
	db.opts.hookAt("before-commit-point")
	pointStart := db.opts.now()
	if err := batch.Commit(pebble.Sync); err != nil {
		// The record may or may not be durable: keep the WAL, which the
		// record names if it is, and take no commit until a reopen decides.
		_ = batch.Close()
		db.failed = fmt.Errorf("commitment: commit point of version %d failed; reopen to learn whether it committed: %w", record.version, err)
		return 0, db.failed
	}
	_ = batch.Close()
	db.opts.observePhase(PhaseCommitPoint, pointStart)
	db.opts.hookAt("after-commit-point")

	db.mu.Lock()
	db.table.Apply(changes)
	for _, c := range changes {
		if c.Page == nil {
			db.cache.remove(c.Key)
		} else {
			db.cache.add(c.Key, cachedPage{page: c.Page, bucket: c.Bucket})
		}
	}
	db.record = record
	db.recent.clear()
	if db.earliest.Load() == 0 {
		db.earliest.Store(record.version)
	}
	db.snap.release()
	db.snap = newSnapshot(db.pebble)
	db.mu.Unlock()
	db.stats.pagesWritten.Add(uint64(len(changes)))

	if len(changes) > 0 {
		db.flush = db.startFlush(table, changes, walPath)
		if db.opts.SyncFlush {
			return walBytes, db.waitFlushLocked()
		}
	}
	return walBytes, nil
}

// abandon undoes a commit that failed before its commit point: the WAL,
// which names no committed version, is removed (a leftover would be
// discarded at the next open anyway).
func (db *DB) abandon(batch *pebble.Batch, walPath string, err error) error {
	_ = batch.Close()
	if walPath != "" {
		_ = db.opts.FS.Remove(walPath)
	}
	return err
}

// planPages turns the working set's page changes into table changes with
// buckets. REQUIRES: writeMu, and no flush running.
func (db *DB) planPages(w *workingSet) ([]bitbox.Change, error) {
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
	return changes, db.placePages(changes, w.table)
}

// placePages assigns buckets to the new pages among changes, growing the
// table first if they would overload it. The buckets of the other pages
// were found in table, and are found again if the table has grown since.
// REQUIRES: writeMu, and no flush running.
func (db *DB) placePages(changes []bitbox.Change, foundIn *bitbox.Table) error {
	newPages := uint64(0)
	for _, c := range changes {
		if c.Prior == nil && c.Page != nil {
			newPages++
		}
	}
	db.mu.RLock()
	table := db.table
	db.mu.RUnlock()
	size, grow := table.NeedsGrowth(newPages, db.opts.MaxLoadFactor)
	for attempt := 0; ; attempt++ {
		if grow {
			if err := db.growTable(size); err != nil {
				return err
			}
			db.mu.RLock()
			table = db.table
			db.mu.RUnlock()
		}
		// Buckets moved if the table grew, now or in an earlier attempt of
		// this commit that failed before its commit point: find the
		// rewritten pages again.
		if table != foundIn {
			if err := relocate(table, changes); err != nil {
				return err
			}
			foundIn = table
		}
		err := table.Assign(changes)
		if !errors.Is(err, bitbox.ErrProbeLimit) || attempt == 8 {
			return err
		}
		// A cluster of pages fills some probe window: a bigger table
		// spreads them out.
		size, grow = 2*table.Stats().Buckets, true
	}
}

// relocate finds the buckets of the pages a commit rewrites in table.
func relocate(table *bitbox.Table, changes []bitbox.Change) error {
	for i := range changes {
		c := &changes[i]
		if c.Prior == nil {
			continue
		}
		_, b, found, err := table.Lookup(c.Key)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("%w: %s vanished while the table grew", ErrCorrupt, c.Key)
		}
		c.Bucket = b
	}
	return nil
}

// growTable grows the page table to at least buckets. Readers go on with
// the old table while the new one is written; the swap takes mu.
// REQUIRES: writeMu, and no flush running.
func (db *DB) growTable(buckets uint64) error {
	db.mu.RLock()
	table := db.table
	db.mu.RUnlock()
	old := table.Stats()
	db.opts.hookAt("grow")
	defer db.opts.observePhase(PhaseTableGrow, db.opts.now())
	var grown *bitbox.Table
	var err error
	for range 8 {
		if grown, err = table.Grow(buckets); !errors.Is(err, bitbox.ErrProbeLimit) {
			break
		}
		buckets *= 2
	}
	if err != nil {
		err = fmt.Errorf("commitment: growing the page table to %d buckets: %w", buckets, err)
		if errors.Is(err, bitbox.ErrGrowIncomplete) {
			// The old table still reads this version, but pages written
			// to it would be lost at reopen: no more commits until then.
			db.failed = err
		}
		return err
	}
	db.mu.Lock()
	db.table = grown
	db.cache.purge()
	db.mu.Unlock()
	// Readers use the table under mu, so none holds the old one any more.
	_ = table.Close()
	db.opts.Logger.Info("nomtstore page table grew", "from_buckets", old.Buckets, "to_buckets", buckets, "pages", old.Full)
	return nil
}

type flushJob struct {
	done chan struct{}
	err  error
}

// startFlush writes a committed version's pages in the background.
func (db *DB) startFlush(table *bitbox.Table, changes []bitbox.Change, walPath string) *flushJob {
	job := &flushJob{done: make(chan struct{})}
	go func() {
		defer close(job.done)
		start := db.opts.now()
		if err := table.Flush(changes); err != nil {
			job.err = err
			return
		}
		db.opts.hookAt("pages-durable")
		if err := db.opts.FS.Remove(walPath); err != nil {
			job.err = fmt.Errorf("commitment: removing applied WAL: %w", err)
			return
		}
		db.opts.observePhase(PhasePageFlush, start)
	}()
	return job
}

// WaitFlushed waits until the last commit's pages are in the page table
// and its WAL is gone, and returns the store's sticky failure, if any. A
// commit is durable without it (recovery replays the WAL); it is for a
// caller that needs the background work finished, such as one about to
// change process-wide settings the flush reads (telemetry) or to copy the
// directory's files.
func (db *DB) WaitFlushed() error {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	return db.waitFlushLocked()
}

// waitFlushLocked waits for the running flush and returns the sticky
// failure, if any. REQUIRES: writeMu.
func (db *DB) waitFlushLocked() error {
	if db.flush != nil {
		<-db.flush.done
		if db.flush.err != nil && db.failed == nil {
			db.failed = fmt.Errorf("%w: %w", ErrFlushFailed, db.flush.err)
			db.opts.Logger.Error("nomtstore page flush failed", "err", db.flush.err)
		}
		db.flush = nil
	}
	return db.failed
}
