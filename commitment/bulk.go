package commitment

import (
	"bytes"
	"container/heap"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"path/filepath"
	"slices"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/sstable"
	pebblevfs "github.com/cockroachdb/pebble/vfs"

	"github.com/nomtstore/nomtstore/commitment/bitbox"
	"github.com/nomtstore/nomtstore/commitment/trie"
	"github.com/nomtstore/nomtstore/commitment/vfs"
)

// A bulk load fills an empty store with a whole version at once (a
// snapshot restore) in memory bounded by configuration, whatever the
// number of keys:
//
//   - Set appends: each tree's keys arrive together and in increasing
//     order (a snapshot's order). Values go straight into sorted tables
//     (Pebble's sstables) as they arrive; each key's leaf (path, leaf
//     hash, key) into a buffer of BulkSortBytes, which is sorted by path
//     and spilled to a run file when full.
//   - WorkingRoots builds: per tree, the runs merge into path order, which
//     writes the leaf index as sorted tables and feeds a trie.Builder; its
//     pages go to the page table in chunks, each checkpointed (written and
//     synced) before the next. The tree's tables are then ingested into
//     Pebble, where they land in the bottom level and are never compacted.
//   - Commit writes the version's commit record, roots and record in one
//     synced batch, as any commit: before it the version does not exist.
//
// Nothing of the load is reachable before the commit point, but it is on
// disk: a marker ("bulk" in keys.go), written durably before the first
// byte, says so. A reopen that finds it, or Discard, wipes what the load
// wrote (the page table is recreated empty, the values and leaf index
// deleted by range, the marker last), which is always right because a bulk
// load only starts on an empty store. A crash at any point therefore leaves
// the store empty and ready for another attempt.

// Bulk load errors. Test with errors.Is.
var (
	// ErrBulkNotEmpty: a bulk load starts only on a store without any
	// version and with nothing staged.
	ErrBulkNotEmpty = errors.New("commitment: a bulk load needs an empty store")
	// ErrBulkOrder: a bulk load takes each tree's keys together and in
	// strictly increasing order.
	ErrBulkOrder = errors.New("commitment: bulk load keys out of order")
	// ErrBulkDelete: a bulk load only sets keys.
	ErrBulkDelete = errors.New("commitment: a bulk load cannot delete")
	// ErrBulkBuilt: the load was built (WorkingRoots); only Commit or
	// Discard may follow.
	ErrBulkBuilt = errors.New("commitment: the bulk load is built; commit or discard it")
)

// bulkDir holds a load's run files and tables until they are ingested.
const bulkDir = "bulk"

// bulkTableBytes bounds the sstables a load writes, as Pebble's own bottom
// level files are bounded (pebbleOptions).
const bulkTableBytes = 64 << 20

// bulkBuildWindow is the lookahead of the trie build, in leaves.
const bulkBuildWindow = 1 << 16

// bulkPageChunkBytes bounds the built pages held until a checkpoint writes
// them (two chunks at most: one written while the next fills).
const bulkPageChunkBytes = 16 << 20

// BulkProgress is what a bulk load reports as it goes (Options.BulkProgress).
type BulkProgress struct {
	// Phase is "load" while keys arrive, "build" while pages are built, and
	// "committed" once, when the load has committed.
	Phase string
	Tree  string
	Keys  int64 // keys taken so far, all trees
	Bytes int64 // key and value bytes taken so far
	// Built is the keys whose leaves are placed in the trie, in "build".
	Built   int64
	Elapsed time.Duration
}

type bulkLoad struct {
	db      *DB
	version uint64
	fs      pebblevfs.FS
	dir     string
	writer  sstable.WriterOptions
	files   int // names the next temporary file
	trees   []*bulkTree
	cur     *bulkTree
	loaded  map[*tree]bool
	built   bool

	keys, bytes, placed          int64
	started, reported, callbacks time.Time
	pipe                         *bulkPipe
	// scratch holds the table entry being written (the writer copies it):
	// pipe* the pipe's writer's, scratch* the build's.
	pipeKey, pipeValue       []byte
	scratchKey, scratchValue []byte
}

// bulkTree is one tree's part of a load.
type bulkTree struct {
	t       *tree
	keys    int64
	lastKey []byte
	values  *tableWriter
	leaves  *leafSorter
	root    trie.Hash
}

// BeginBulk starts a bulk load into the empty store: until Commit or
// Discard, Set appends to it (see the top of bulk.go) and Delete is
// refused. The version it commits is the initial version
// (SetInitialVersion), or 1.
func (db *DB) BeginBulk() error {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	if err := db.protocol.sticky(); err != nil {
		return err
	}
	db.mu.RLock()
	closed, version := db.committed.closed, db.committed.record.version
	db.mu.RUnlock()
	switch {
	case closed:
		return ErrClosed
	case db.bulk != nil:
		return errors.New("commitment: a bulk load is already running")
	case version != 0:
		return fmt.Errorf("%w: version %d is committed", ErrBulkNotEmpty, version)
	}
	if db.staged.keys() > 0 {
		return fmt.Errorf("%w: changes are staged", ErrBulkNotEmpty)
	}
	b := &bulkLoad{db: db, version: db.protocol.nextVersion(0), fs: vfs.PebbleFS(db.opts.FS),
		dir: filepath.Join(db.dir, bulkDir), loaded: map[*tree]bool{}, started: time.Now()}
	b.reported, b.callbacks = b.started, b.started
	popts := db.pebbleOpts
	b.writer = popts.MakeWriterOptions(len(popts.Levels)-1, db.pebble.FormatMajorVersion().MaxTableFormat())
	if err := b.fs.RemoveAll(b.dir); err != nil {
		return fmt.Errorf("commitment: bulk load: %w", err)
	}
	if err := b.fs.MkdirAll(b.dir, 0o755); err != nil {
		return fmt.Errorf("commitment: bulk load: %w", err)
	}
	// Durable before anything of the load is: a reopen must know to wipe.
	if err := setDurably(db.pebble, keyBulk, binary.BigEndian.AppendUint64(nil, b.version)); err != nil {
		return fmt.Errorf("commitment: bulk load: %w", err)
	}
	b.pipe = newBulkPipe(b)
	db.bulk = b
	db.staged.working = nil
	db.opts.Logger.Info("nomtstore bulk load started", "version", b.version)
	return nil
}

// bulkWorkingLocked is workingLocked during a bulk load: the first call
// builds the load, later ones return what it built. REQUIRES: writeMu.
func (db *DB) bulkWorkingLocked() (*workingSet, error) {
	if db.isClosed() {
		return nil, ErrClosed
	}
	if db.staged.working != nil {
		return db.staged.working, nil
	}
	if db.bulk.built {
		return nil, fmt.Errorf("%w, as its build failed", ErrBulkBuilt)
	}
	w, err := db.bulk.build()
	if err != nil {
		return nil, err
	}
	db.staged.setWorking(w)
	return w, nil
}

// discardUnfinishedBulk wipes, at open, a bulk load that never reached its
// commit point. It runs before the page table is opened.
func (db *DB) discardUnfinishedBulk() error {
	v, found, err := getMeta(db.pebble, keyBulk, "the bulk load marker")
	if err != nil {
		return err
	}
	if !found {
		// A load that committed but stopped before removing its files
		// leaves them (its tables hard-linked into Pebble's directory).
		if err := vfs.PebbleFS(db.opts.FS).RemoveAll(filepath.Join(db.dir, bulkDir)); err != nil {
			return fmt.Errorf("commitment: removing a bulk load's files: %w", err)
		}
		return nil
	}
	if db.committed.record.version != 0 {
		return fmt.Errorf("%w: a bulk load marker with version %d committed", ErrCorrupt, db.committed.record.version)
	}
	table, err := wipeBulk(db.opts, db.pebble, db.dir)
	if err != nil {
		return err
	}
	db.opts.Logger.Warn("nomtstore discarded an unfinished bulk load (a restore interrupted by a crash or a close): the store is empty",
		"marker", fmt.Sprintf("%x", v))
	return table.Close()
}

// add takes the next key of a tree. REQUIRES: writeMu.
func (b *bulkLoad) add(t *tree, key []byte, op stagedOp) error {
	switch {
	case b.built:
		return ErrBulkBuilt
	case op.delete:
		return ErrBulkDelete
	}
	bt := b.cur
	if bt == nil || bt.t != t {
		if b.loaded[t] {
			return fmt.Errorf("%w: tree %q again after another tree's keys", ErrBulkOrder, t.name)
		}
		bt = &bulkTree{t: t, values: b.newTableWriter(true), leaves: newLeafSorter(b, b.db.opts.BulkSortBytes)}
		b.loaded[t] = true
		b.trees = append(b.trees, bt)
		b.cur = bt
	}
	if bt.lastKey != nil && bytes.Compare(key, bt.lastKey) <= 0 {
		return fmt.Errorf("%w: tree %q: key %X after %X", ErrBulkOrder, t.name, key, bt.lastKey)
	}
	bt.lastKey = append(bt.lastKey[:0], key...)
	if err := b.pipe.push(bt, key, op.value); err != nil {
		return err
	}
	b.keys++
	b.bytes += int64(len(key) + len(op.value))
	if b.keys%4096 == 0 {
		b.report("load", t.name)
	}
	return nil
}

// writeItem writes a key's value into its tree's tables and its leaf into
// the sorter: the pipe's last stage.
func (b *bulkLoad) writeItem(it *bulkItem) error {
	bt := it.tree
	b.pipeKey = appendStoreKey(b.pipeKey[:0], prefixValue, bt.t.store, it.key)
	b.pipeValue = append(binary.BigEndian.AppendUint64(b.pipeValue[:0], b.version), it.value...)
	if err := bt.values.set(b.pipeKey, b.pipeValue); err != nil {
		return err
	}
	bt.keys++
	return bt.leaves.add(it.path, it.leaf, it.key)
}

// report hands the progress to the options' callback every second and
// logs it every five.
func (b *bulkLoad) report(phase, tree string) {
	now := time.Now()
	f := b.db.opts.BulkProgress
	toCallback, toLog := f != nil && now.Sub(b.callbacks) >= time.Second, now.Sub(b.reported) >= 5*time.Second
	if !toCallback && !toLog {
		return
	}
	p := BulkProgress{Phase: phase, Tree: tree, Keys: b.keys, Bytes: b.bytes, Built: b.placed, Elapsed: now.Sub(b.started)}
	if toCallback {
		b.callbacks = now
		f(p)
	}
	if !toLog {
		return
	}
	b.reported = now
	rate := float64(b.keys) / max(p.Elapsed.Seconds(), 1e-9)
	if phase == "build" {
		rate = float64(b.placed) / max(p.Elapsed.Seconds(), 1e-9)
	}
	b.db.opts.Logger.Info("nomtstore bulk load", "phase", phase, "tree", tree, "keys", b.keys, "built", b.placed,
		"bytes", b.bytes, "keys_per_s", int64(rate), "elapsed", p.Elapsed.Round(time.Second))
}

// build builds every loaded tree and ingests its tables, and returns the
// working set of the version: the roots, and no update (the pages are in
// the page table already). REQUIRES: writeMu.
func (b *bulkLoad) build() (*workingSet, error) {
	b.built = true
	b.cur = nil
	if err := b.pipe.finish(); err != nil {
		return nil, err
	}
	db := b.db
	w := &workingSet{roots: map[trie.StoreID]trie.Hash{}}
	db.mu.RLock()
	for _, t := range db.committed.trees {
		w.roots[t.store] = db.committed.record.roots[t.store]
	}
	w.table = db.committed.pages.table
	db.mu.RUnlock()
	// The table grows once, to what the trees will need, rather than
	// several times as their pages arrive (each growth rewrites it).
	expected := 0.0
	for _, bt := range b.trees {
		expected += expectedPages(bt.keys, db.committed.elideBelow)
	}
	if size, grow := db.committed.pages.current().NeedsGrowth(uint64(expected*1.1)+64, db.opts.MaxLoadFactor); grow {
		if err := db.committed.pages.grow(size); err != nil {
			return nil, err
		}
	}
	for _, bt := range b.trees {
		if err := b.buildTree(bt); err != nil {
			return nil, fmt.Errorf("commitment: bulk load of tree %q: %w", bt.t.name, err)
		}
		w.roots[bt.t.store] = bt.root
	}
	// Every page durable before the commit point can name them.
	if err := db.committed.pages.checkpointNow(); err != nil {
		return nil, err
	}
	db.mu.RLock()
	w.table = db.committed.pages.table
	db.mu.RUnlock()
	return w, nil
}

// buildTree merges a tree's leaf runs into the leaf index and its trie,
// writes the trie's pages and ingests the tree's tables.
func (b *bulkLoad) buildTree(bt *bulkTree) error {
	db := b.db
	start := time.Now()
	defer db.opts.observePhase(PhaseBulkBuild, db.opts.now())
	leaves, err := bt.leaves.merge()
	if err != nil {
		return err
	}
	defer leaves.close()
	index := b.newTableWriter(false)
	var pages []bitbox.Change
	chunk := int(max(min(db.opts.CheckpointBytes, bulkPageChunkBytes)/trie.PageSize, 64))
	builder := &trie.Builder{Store: bt.t.store, ElideBelow: db.committed.elideBelow, Window: bulkBuildWindow,
		Emit: func(id trie.PageID, p *trie.Page) error {
			p[trie.HistoryOffset] = historyStart(bt.t.store, id)
			pages = append(pages, bitbox.Change{Key: bitbox.PageKey{Store: bt.t.store, ID: id}, Page: p})
			if len(pages) < chunk {
				return nil
			}
			err := b.writePages(pages)
			pages = pages[:0]
			return err
		}}
	feed := b.feedLeaves(bt, leaves, index)
	res, err := builder.Build(feed.next)
	if err = errors.Join(err, feed.close()); err != nil {
		return err
	}
	if res.Leaves != int(bt.keys) {
		return fmt.Errorf("commitment: %d keys were loaded but %d leaves came out of the sort", bt.keys, res.Leaves)
	}
	if len(pages) > 0 {
		if err := b.writePages(pages); err != nil {
			return err
		}
	}
	if err := index.close(); err != nil {
		return err
	}
	files := slices.Concat(bt.values.files, index.files)
	if len(files) > 0 {
		// An ingestion is durable at once: whatever Pebble holds unflushed
		// goes first, so that what is durable stays a prefix of the writes.
		if err := db.pebble.Flush(); err != nil {
			return fmt.Errorf("flushing before ingesting: %w", err)
		}
		if err := db.pebble.Ingest(files); err != nil {
			return fmt.Errorf("ingesting %d tables: %w", len(files), err)
		}
	}
	bt.root = res.Root
	db.opts.Logger.Info("nomtstore bulk load built a tree", "tree", bt.t.name, "keys", bt.keys, "pages", res.Pages,
		"leaf_runs", len(bt.leaves.runs), "took", time.Since(start).Round(time.Millisecond), "root", res.Root)
	return nil
}

// expectedPages estimates the pages of a trie of n keys with pages of
// fewer than elideBelow keys elided: the 64^k subtrees at page depth k hold
// Poisson(n/64^k) keys each, and a page is stored when its subtree holds at
// least elideBelow (every page when elision is off).
func expectedPages(n int64, elideBelow int) float64 {
	if n < 2 {
		return 0
	}
	total := 0.0
	for k, subtrees := 0, 1.0; k <= trie.MaxPageDepth; k, subtrees = k+1, subtrees*trie.PageFanout {
		lambda := float64(n) / subtrees
		threshold := max(elideBelow, 2)
		if lambda < 0.01 {
			break
		}
		// P(X >= threshold) = 1 - sum of the first terms of the Poisson.
		term, below := math.Exp(-lambda), 0.0
		for i := range threshold {
			if i > 0 {
				term *= lambda / float64(i)
			}
			below += term
		}
		total += subtrees * max(0, 1-below)
	}
	return total
}

// leafFeed merges a tree's leaves on a goroutine of its own, writing the
// leaf index's tables as it goes, and hands the leaves to the trie build
// (on the caller's goroutine) in batches.
type leafFeed struct {
	batches chan []trie.Leaf
	free    chan []trie.Leaf
	stop    chan struct{}
	done    chan struct{}
	err     error // the producer's, read once done is closed
	cur     []trie.Leaf
	i       int
	stopped bool
}

const feedBatch = 4096

func (b *bulkLoad) feedLeaves(bt *bulkTree, merge *leafMerge, index *tableWriter) *leafFeed {
	f := &leafFeed{batches: make(chan []trie.Leaf, 4), free: make(chan []trie.Leaf, 6),
		stop: make(chan struct{}), done: make(chan struct{})}
	for range 6 {
		f.free <- make([]trie.Leaf, 0, feedBatch)
	}
	go func() {
		defer close(f.done)
		defer close(f.batches)
		f.err = f.produce(b, bt, merge, index)
	}()
	return f
}

func (f *leafFeed) produce(b *bulkLoad, bt *bulkTree, merge *leafMerge, index *tableWriter) error {
	var batch []trie.Leaf
	for {
		if batch == nil {
			select {
			case batch = <-f.free:
			case <-f.stop:
				return nil
			}
		}
		l, ok, err := merge.next()
		if err != nil {
			return err
		}
		if ok {
			b.scratchKey = appendStoreKey(b.scratchKey[:0], prefixLeaf, bt.t.store, l.path[:])
			b.scratchValue = binary.BigEndian.AppendUint64(b.scratchValue[:0], b.version)
			b.scratchValue = append(append(b.scratchValue, l.hash[:]...), l.key...)
			if err := index.set(b.scratchKey, b.scratchValue); err != nil {
				return err
			}
			batch = append(batch, trie.Leaf{Path: l.path, Hash: l.hash})
			b.placed++
			if b.placed%4096 == 0 {
				b.report("build", bt.t.name)
			}
		}
		if len(batch) == cap(batch) || !ok && len(batch) > 0 {
			select {
			case f.batches <- batch:
			case <-f.stop:
				return nil
			}
			batch = nil
		}
		if !ok {
			return nil
		}
	}
}

// next is the build's leaf source.
func (f *leafFeed) next() (trie.Leaf, bool, error) {
	if f.i == len(f.cur) {
		if f.cur != nil {
			f.free <- f.cur[:0]
		}
		var ok bool
		if f.cur, ok = <-f.batches; !ok {
			<-f.done
			f.cur = nil
			return trie.Leaf{}, false, f.err
		}
		f.i = 0
	}
	f.i++
	return f.cur[f.i-1], true, nil
}

// close stops the producer, if it still runs, and returns its error.
func (f *leafFeed) close() error {
	if !f.stopped {
		f.stopped = true
		close(f.stop)
	}
	<-f.done
	return f.err
}

// writePages places a chunk of new pages in the page table and starts a
// checkpoint writing them, once the previous chunk's is done: memory holds
// two chunks at most, and the build goes on while the disk writes. The
// table holds them before the commit point, unreachable: version 0 has no
// root. REQUIRES: writeMu.
func (b *bulkLoad) writePages(changes []bitbox.Change) error {
	db := b.db
	if err := db.committed.pages.place(changes, db.committed.pages.current()); err != nil {
		return err
	}
	if err := db.committed.pages.reap(true); err != nil {
		return err
	}
	db.mu.Lock()
	db.committed.pages.apply(changes)
	table, seq := db.committed.pages.table, db.committed.record.lastSeq
	db.mu.Unlock()
	db.committed.pages.start(table, seq)
	return nil
}

// finishCommit adds the end of the load to its commit batch: the marker
// goes with the commit record.
func (b *bulkLoad) finishCommit(batch batchWriter) error {
	return batch.Delete(keyBulk, nil)
}

// cleanup removes the load's temporary files.
func (b *bulkLoad) cleanup() {
	for _, bt := range b.trees {
		bt.leaves.release()
	}
	if err := b.fs.RemoveAll(b.dir); err != nil {
		b.db.opts.Logger.Error("nomtstore bulk load: removing its temporary files", "dir", b.dir, "err", err)
	}
}

// abortBulk wipes an unfinished load and leaves the store empty.
// REQUIRES: writeMu.
func (db *DB) abortBulk() error {
	b := db.bulk
	db.bulk = nil
	db.staged.working = nil
	_ = b.pipe.finish()
	for _, bt := range b.trees {
		_ = bt.values.close()
	}
	b.cleanup()
	// A failed checkpoint of the load's pages does not outlive it: its
	// table is replaced. (The store was clean when the load began.)
	_ = db.committed.pages.reap(true)
	db.mu.Lock()
	defer db.mu.Unlock()
	table := db.committed.pages.table
	path := table.Path()
	fresh, err := wipeBulk(db.opts, db.pebble, db.dir)
	if err != nil {
		return err
	}
	_ = table.Close()
	db.committed.pages.table = fresh
	db.committed.pages.failed = nil
	db.committed.pages.cache.purge()
	db.committed.pages.checkpointed.Store(0)
	db.committed.values.purge()
	db.committed.leaves.purge()
	db.committed.snap.release()
	db.committed.snap = newSnapshot(db.pebble, db.history.DB)
	db.opts.Logger.Info("nomtstore discarded a bulk load", "keys", b.keys, "table", path)
	return nil
}

// wipeBulk removes what an unfinished bulk load wrote into an empty store,
// in an order a crash can repeat: a new empty page table first, then the
// values and leaf index, the checkpoint record and the marker in one
// synced batch. It returns the new table.
func wipeBulk(o Options, pdb *pebble.DB, dir string) (*bitbox.Table, error) {
	_ = vfs.PebbleFS(o.FS).RemoveAll(filepath.Join(dir, bulkDir))
	var seed [8]byte
	_, _ = rand.Read(seed[:])
	table, err := bitbox.CreateTable(o.FS, filepath.Join(dir, tableFile), o.InitialBuckets, binary.BigEndian.Uint64(seed[:]))
	if err != nil {
		return nil, fmt.Errorf("commitment: wiping a bulk load: new page table: %w", err)
	}
	batch := pdb.NewBatch()
	defer func() { _ = batch.Close() }()
	err = errors.Join(
		batch.DeleteRange([]byte{prefixValue}, []byte{prefixValue + 1}, nil),
		batch.DeleteRange([]byte{prefixLeaf}, []byte{prefixLeaf + 1}, nil),
		batch.Delete(keyCheckpoint, nil),
		batch.Delete(keyBulk, nil),
	)
	if err == nil {
		err = batch.Commit(pebble.NoSync)
	}
	if err == nil {
		err = pdb.Flush() // durable: Pebble keeps no log
	}
	if err != nil {
		_ = table.Close()
		return nil, fmt.Errorf("commitment: wiping a bulk load: %w", err)
	}
	return table, nil
}

// tableWriter writes sorted keys into sstables for ingestion, starting a
// new one every bulkTableBytes.
type tableWriter struct {
	load  *bulkLoad
	opts  sstable.WriterOptions
	w     *sstable.Writer
	files []string
}

// newTableWriter writes tables as Pebble's bottom level would; compress
// off is for tables of hashes (the leaf index, in path order: its keys
// are hashes and its raw keys in random order), which snappy would spend
// CPU on for nothing.
func (b *bulkLoad) newTableWriter(compress bool) *tableWriter {
	tw := &tableWriter{load: b, opts: b.writer}
	if !compress {
		tw.opts.Compression = sstable.NoCompression
	}
	return tw
}

func (b *bulkLoad) tempFile(kind string) string {
	b.files++
	return filepath.Join(b.dir, fmt.Sprintf("%06d.%s", b.files, kind))
}

func (tw *tableWriter) set(key, value []byte) error {
	if tw.w == nil {
		name := tw.load.tempFile("sst")
		f, err := tw.load.fs.Create(name)
		if err != nil {
			return fmt.Errorf("commitment: bulk load: %w", err)
		}
		tw.w = sstable.NewWriter(objstorageprovider.NewFileWritable(f), tw.opts)
		tw.files = append(tw.files, name)
	}
	if err := tw.w.Set(key, value); err != nil {
		return fmt.Errorf("commitment: bulk load: %w", err)
	}
	if tw.w.EstimatedSize() >= bulkTableBytes {
		return tw.close()
	}
	return nil
}

// close finishes the current table (synced, as ingestion wants).
func (tw *tableWriter) close() error {
	if tw.w == nil {
		return nil
	}
	err := tw.w.Close()
	tw.w = nil
	if err != nil {
		return fmt.Errorf("commitment: bulk load: %w", err)
	}
	return nil
}

// bulkLeaf is a key's leaf on its way to the index: path, leaf hash, key.
type bulkLeaf struct {
	path trie.KeyPath
	hash trie.Hash
	key  []byte
}

// leafSorter sorts a tree's leaves by path in memory bounded by its
// budget. Leaves gather in chunks of leafChunkLeaves, each sorted when
// full (so no buffer is one big slice, regrown and copied as it fills);
// once the budget is used, the chunks merge into a run file spilled to disk,
// and their memory is reused. The chunks left and the runs merge at the
// end.
type leafSorter struct {
	load   *bulkLoad
	budget int64
	used   int64
	chunks [][]bulkLeaf // the last one filling, the others sorted
	arena  []byte       // the current block of the chunks' keys
	// free chunks and key blocks, for reuse after a spill.
	freeChunks [][]bulkLeaf
	freeBlocks [][]byte
	blocks     [][]byte // key blocks in use
	runs       []leafRun
}

// leafChunkLeaves is the leaves of one chunk (88 bytes each, 2.75 MiB).
const leafChunkLeaves = 1 << 15

// keyBlockBytes is the size of the blocks the sorter keeps keys in.
const keyBlockBytes = 1 << 20

// leafRun is a spilled run: records of path [32] | leaf hash [32] | key
// length uvarint | key, in path order, checked by their count and CRC-32C
// when read back.
type leafRun struct {
	name  string
	count int
	crc   uint32
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func newLeafSorter(b *bulkLoad, budget int64) *leafSorter {
	return &leafSorter{load: b, budget: budget}
}

// leafOverhead is a buffered leaf's memory beyond its key.
const leafOverhead = 64 + 24

func (s *leafSorter) add(path trie.KeyPath, hash trie.Hash, key []byte) error {
	if len(s.arena)+len(key) > cap(s.arena) {
		s.newBlock(len(key))
	}
	start := len(s.arena)
	s.arena = append(s.arena, key...)
	n := len(s.chunks)
	if n == 0 || len(s.chunks[n-1]) == cap(s.chunks[n-1]) {
		if n > 0 {
			sortLeaves(s.chunks[n-1])
		}
		s.chunks = append(s.chunks, s.newChunk())
		n++
	}
	s.chunks[n-1] = append(s.chunks[n-1], bulkLeaf{path: path, hash: hash, key: s.arena[start:len(s.arena):len(s.arena)]})
	s.used += int64(leafOverhead + len(key))
	if s.used < s.budget {
		return nil
	}
	return s.spill()
}

func (s *leafSorter) newBlock(need int) {
	if need <= keyBlockBytes && len(s.freeBlocks) > 0 {
		s.arena = s.freeBlocks[len(s.freeBlocks)-1][:0]
		s.freeBlocks = s.freeBlocks[:len(s.freeBlocks)-1]
	} else {
		s.arena = make([]byte, 0, max(keyBlockBytes, need))
	}
	s.blocks = append(s.blocks, s.arena)
}

func (s *leafSorter) newChunk() []bulkLeaf {
	if n := len(s.freeChunks); n > 0 {
		c := s.freeChunks[n-1]
		s.freeChunks = s.freeChunks[:n-1]
		return c
	}
	return make([]bulkLeaf, 0, leafChunkLeaves)
}

func sortLeaves(leaves []bulkLeaf) {
	slices.SortFunc(leaves, func(a, b bulkLeaf) int { return comparePaths(&a.path, &b.path) })
}

// comparePaths orders key paths; paths are hashes, so their first eight
// bytes almost always decide.
func comparePaths(a, b *trie.KeyPath) int {
	x, y := binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(b[:8])
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return bytes.Compare(a[8:], b[8:])
}

// sources sorts the filling chunk and returns every chunk as a merge input.
func (s *leafSorter) sources() []leafSource {
	if n := len(s.chunks); n > 0 {
		sortLeaves(s.chunks[n-1])
	}
	out := make([]leafSource, 0, len(s.chunks))
	for _, c := range s.chunks {
		out = append(out, &bufferSource{leaves: c})
	}
	return out
}

// spill merges the chunks into a run file and frees them for reuse.
func (s *leafSorter) spill() error {
	m, err := newLeafMerge(s.sources())
	if err != nil {
		return err
	}
	run := leafRun{name: s.load.tempFile("run")}
	f, err := s.load.fs.Create(run.name)
	if err != nil {
		return fmt.Errorf("commitment: bulk load: %w", err)
	}
	w := newRunWriter(f)
	for {
		l, ok, err := m.next()
		if err != nil {
			_ = f.Close()
			return err
		}
		if !ok {
			break
		}
		w.write(&l)
		run.count++
	}
	run.crc = w.crc
	err = errors.Join(w.flush(), f.Close())
	if err != nil {
		return fmt.Errorf("commitment: bulk load: writing run %s: %w", run.name, err)
	}
	s.runs = append(s.runs, run)
	for _, c := range s.chunks {
		clear(c) // drop the key references before reuse
		s.freeChunks = append(s.freeChunks, c[:0])
	}
	s.freeBlocks = append(s.freeBlocks, s.blocks...)
	s.chunks, s.blocks, s.arena, s.used = nil, nil, nil, 0
	return nil
}

func (s *leafSorter) release() {
	s.chunks, s.freeChunks, s.blocks, s.freeBlocks, s.arena = nil, nil, nil, nil, nil
}

// merge returns the leaves of every run and chunk in path order.
func (s *leafSorter) merge() (*leafMerge, error) {
	sources := s.sources()
	for _, run := range s.runs {
		f, err := s.load.fs.Open(run.name)
		if err != nil {
			for _, src := range sources {
				src.close()
			}
			return nil, fmt.Errorf("commitment: bulk load: %w", err)
		}
		sources = append(sources, newRunReader(f, run))
	}
	return newLeafMerge(sources)
}

// newLeafMerge merges sorted sources; it owns them.
func newLeafMerge(sources []leafSource) (*leafMerge, error) {
	m := &leafMerge{sources: sources}
	for _, src := range m.sources {
		ok, err := src.advance()
		if err != nil {
			m.close()
			return nil, err
		}
		if ok {
			m.heap = append(m.heap, src)
		}
	}
	heap.Init(&m.heap)
	return m, nil
}

// leafSource is one sorted input of the merge; current is valid after an
// advance that returned true.
type leafSource interface {
	advance() (bool, error)
	current() *bulkLeaf
	close()
}

type bufferSource struct {
	leaves []bulkLeaf
	i      int
}

func (b *bufferSource) advance() (bool, error) {
	b.i++
	return b.i <= len(b.leaves), nil
}
func (b *bufferSource) current() *bulkLeaf { return &b.leaves[b.i-1] }
func (b *bufferSource) close()             {}

type leafMerge struct {
	sources []leafSource
	heap    sourceHeap
	out     bulkLeaf
}

// next returns the next leaf in path order; it is valid until the next call.
func (m *leafMerge) next() (bulkLeaf, bool, error) {
	if len(m.heap) == 0 {
		return bulkLeaf{}, false, nil
	}
	top := m.heap[0]
	c := top.current()
	m.out.path, m.out.hash = c.path, c.hash
	m.out.key = append(m.out.key[:0], c.key...)
	ok, err := top.advance()
	if err != nil {
		return bulkLeaf{}, false, err
	}
	if ok {
		heap.Fix(&m.heap, 0)
	} else {
		heap.Pop(&m.heap)
	}
	return m.out, true, nil
}

func (m *leafMerge) close() {
	for _, s := range m.sources {
		s.close()
	}
}

type sourceHeap []leafSource

func (h sourceHeap) Len() int { return len(h) }
func (h sourceHeap) Less(i, j int) bool {
	return comparePaths(&h[i].current().path, &h[j].current().path) < 0
}
func (h sourceHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *sourceHeap) Push(x any)   { *h = append(*h, x.(leafSource)) }
func (h *sourceHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// runWriter writes a run's records through a buffer, summing their CRC.
type runWriter struct {
	f   io.Writer
	buf []byte
	crc uint32
	err error
}

func newRunWriter(f io.Writer) *runWriter { return &runWriter{f: f, buf: make([]byte, 0, 1<<20)} }

func (w *runWriter) write(l *bulkLeaf) {
	start := len(w.buf)
	w.buf = append(w.buf, l.path[:]...)
	w.buf = append(w.buf, l.hash[:]...)
	w.buf = binary.AppendUvarint(w.buf, uint64(len(l.key)))
	w.buf = append(w.buf, l.key...)
	w.crc = crc32.Update(w.crc, castagnoli, w.buf[start:])
	if len(w.buf) >= 1<<20 {
		_ = w.flush()
	}
}

func (w *runWriter) flush() error {
	if w.err == nil && len(w.buf) > 0 {
		_, w.err = w.f.Write(w.buf)
	}
	w.buf = w.buf[:0]
	return w.err
}

// runReader reads a run back, checking its records' count and CRC.
type runReader struct {
	f    pebblevfs.File
	run  leafRun
	r    *byteReader
	read int
	crc  uint32
	cur  bulkLeaf
}

func newRunReader(f pebblevfs.File, run leafRun) *runReader {
	return &runReader{f: f, run: run, r: &byteReader{f: f, buf: make([]byte, 0, 1<<20)}}
}

func (r *runReader) current() *bulkLeaf { return &r.cur }
func (r *runReader) close()             { _ = r.f.Close() }

func (r *runReader) advance() (bool, error) {
	if r.read == r.run.count {
		if r.crc != r.run.crc || !r.r.atEOF() {
			return false, fmt.Errorf("%w: bulk load run %s does not read back as written", ErrCorrupt, r.run.name)
		}
		return false, nil
	}
	fixed, err := r.r.take(64)
	if err != nil {
		return false, r.fail(err)
	}
	r.crc = crc32.Update(r.crc, castagnoli, fixed)
	copy(r.cur.path[:], fixed[:32])
	copy(r.cur.hash[:], fixed[32:64])
	n, lenBytes, err := r.r.uvarint()
	if err != nil {
		return false, r.fail(err)
	}
	r.crc = crc32.Update(r.crc, castagnoli, lenBytes)
	if n > MaxKeyLength {
		return false, r.fail(fmt.Errorf("a key of %d bytes", n))
	}
	key, err := r.r.take(int(n))
	if err != nil {
		return false, r.fail(err)
	}
	r.crc = crc32.Update(r.crc, castagnoli, key)
	r.cur.key = append(r.cur.key[:0], key...)
	r.read++
	return true, nil
}

func (r *runReader) fail(err error) error {
	return fmt.Errorf("%w: bulk load run %s, record %d: %w", ErrCorrupt, r.run.name, r.read, err)
}

// byteReader is a buffered reader whose reads return views of its buffer.
type byteReader struct {
	f   io.Reader
	buf []byte
	off int
	eof bool
}

// fillTo makes n bytes available past off, unless the file ends first.
func (r *byteReader) fillTo(n int) error {
	if len(r.buf)-r.off >= n || r.eof {
		return nil
	}
	rest := copy(r.buf[:cap(r.buf)], r.buf[r.off:])
	r.buf, r.off = r.buf[:rest], 0
	if n > cap(r.buf) {
		r.buf = append(make([]byte, 0, n), r.buf...)
	}
	for len(r.buf) < n && !r.eof {
		m, err := r.f.Read(r.buf[len(r.buf):cap(r.buf)])
		r.buf = r.buf[:len(r.buf)+m]
		if errors.Is(err, io.EOF) {
			r.eof = true
		} else if err != nil {
			return err
		}
	}
	return nil
}

func (r *byteReader) take(n int) ([]byte, error) {
	if err := r.fillTo(n); err != nil {
		return nil, err
	}
	if len(r.buf)-r.off < n {
		return nil, io.ErrUnexpectedEOF
	}
	b := r.buf[r.off : r.off+n]
	r.off += n
	return b, nil
}

func (r *byteReader) uvarint() (uint64, []byte, error) {
	if err := r.fillTo(binary.MaxVarintLen64); err != nil {
		return 0, nil, err
	}
	v, n := binary.Uvarint(r.buf[r.off:])
	if n <= 0 {
		return 0, nil, errors.New("a bad key length")
	}
	b := r.buf[r.off : r.off+n]
	r.off += n
	return v, b, nil
}

func (r *byteReader) atEOF() bool {
	if err := r.fillTo(1); err != nil {
		return false
	}
	return len(r.buf) == r.off
}
