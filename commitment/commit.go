package commitment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/nomtstore/nomtstore/commitment/bitbox"
	"github.com/nomtstore/nomtstore/commitment/trie"
	"github.com/nomtstore/nomtstore/commitment/vfs"
)

// The commit protocol. A commit of version v is one commit point for every
// tree:
//
//  1. Begin: the new roots (WorkingRoots) and the pages they change; buckets
//     for new pages (growing the table first, after a checkpoint, if it
//     would pass its load factor); the Pebble batch of values, leaf index
//     entries, what the version supersedes (values, leaves and pages, keyed
//     by the version that orphaned them: keys.go), the version's change list
//     and roots, and the commit record naming v and the sequence number of
//     its commit frame; the WAL records of its page changes (bitbox/wal.go)
//     under the numbers before it, appended to the log (wallog.go) and
//     synced.
//  2. The commit point: once the records are synced, the batch is appended
//     to the log as the commit frame and synced. Before that sync v does
//     not exist; after it v is committed, whatever happens next. The batch
//     then goes to Pebble, which keeps no log of its own: until a flush,
//     the frame is the batch's only durable copy. A WAL record that no
//     commit frame follows belongs to no version: recovery ignores it, and
//     the next commit reuses its sequence number.
//  3. The new pages are applied to the page table in memory (pages.go): they
//     are dirty, served from memory, until a checkpoint writes them.
//  4. A checkpoint, in the background every CheckpointInterval commits,
//     once the dirty pages pass CheckpointBytes or once the log passes
//     CheckpointLogBytes, writes every dirty page once (a page changed by K
//     commits is written once, not K times) with the meta map, syncs the
//     table, then records in Pebble that the file holds every WAL record up
//     to its sequence number and flushes Pebble, which makes the record and
//     every batch before it durable, and removes the log segments holding
//     only those.
//
// Ordering rules, each load-bearing:
//   - no table page is written before the WAL record naming it is durable
//     (checkpoints write applied, hence committed, pages);
//   - no commit frame is appended before the WAL records it follows are
//     synced, and no batch reaches Pebble before its frame is synced;
//   - what Pebble holds durably is a prefix of what it was given (it
//     flushes memtables in order; a write outside commits that must last is
//     flushed at once, an ingestion flushes first): recovery applies the
//     commit frames after the commit record it reads, in order;
//   - recovery replays, in order, exactly the WAL records after the
//     checkpoint record and up to the last commit frame, the last
//     occurrence of each in the log (an earlier one is a failed attempt's);
//   - the checkpoint record is written only after the table file is synced,
//     and a log segment removed only after the Pebble flush that follows
//     the checkpoint record covers every frame in it;
//   - the table grows only right after a checkpoint, with no dirty page,
//     and a WAL record names the table generation it planned buckets for;
//     records of an older generation were in the table it grew from.
//
// Rollback undoes a version with the same steps (rollback.go): its WAL
// record puts superseded pages back, its batch (in its commit frame)
// restores superseded values and names v-1 in the commit record.
//
// A failure before the commit point leaves the DB at v-1 with the changes
// still staged; a failed commit point or checkpoint is sticky: the DB takes
// no commit until it is reopened, which replays the WAL records of whatever
// committed. So is a growth that failed after its rename
// (bitbox.ErrGrowIncomplete).

// commitProtocol is the writer's side of the protocol above: it numbers
// versions, plans a version's WAL records, builds its batch (in chunks past
// MaxBatchBytes), runs its commit point and swaps the committed state to
// it. Commit and rollback both end in it.
//
// Invariants: used under DB.writeMu only, and what it changes of the
// committed state it changes under DB.mu too; gate alone is shared, with
// pruning, and locks itself. Once failed is set no commit or rollback runs
// until a reopen, which decides from the log what committed.
type commitProtocol struct {
	dir     string
	opts    *Options
	pebble  *pebble.DB
	history *pebble.DB
	stats   *engineStats
	// mu and state are the DB's: a commit ends by swapping state to its
	// version under mu.
	mu    *sync.RWMutex
	state *committedState
	// gate tells pruning when a commit is syncing.
	gate *commitGate
	// failed is sticky once a commit point, a checkpoint, or a growth past
	// its rename failed.
	failed error
	// initialVersion is the first commit's version when nothing is
	// committed yet (0: version 1).
	initialVersion uint64
	// batchSize is the last commit batch's size: the next batch starts
	// with room for a block like it (up to maxBatchHint, so that one huge
	// block does not make every next batch huge) instead of doubling its
	// way there, copying everything at each step.
	batchSize int
}

// nextVersion is the version a commit after latest makes.
func (p *commitProtocol) nextVersion(latest uint64) uint64 {
	if latest == 0 && p.initialVersion > 0 {
		return p.initialVersion
	}
	return latest + 1
}

// newCommitBatch starts a commit's batch with room for a block like the
// last one, or for what estimate says this one holds if that is more (the
// first commit after an open, a block bigger than the last).
func (p *commitProtocol) newCommitBatch(estimate int) *chunkedBatch {
	room := max(p.batchSize, estimate)
	return p.newChunkedBatch(min(room+room/8, maxBatchHint))
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
	return db.stage(treeName, key, stagedOp{value: value})
}

// Delete stages the removal of key from a tree, for the next commit.
func (db *DB) Delete(treeName string, key []byte) error {
	if err := validateKey(key); err != nil {
		return err
	}
	return db.stage(treeName, key, stagedOp{delete: true})
}

// stage stages a change; op.value is the caller's (stage copies it).
func (db *DB) stage(treeName string, key []byte, op stagedOp) error {
	// Checked under writeMu, which Close holds while it closes: a writer
	// that checked before could queue to the warmer after Close stopped it.
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	db.mu.RLock()
	t, err := db.committed.lookupTree(treeName)
	closed := db.committed.closed
	db.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	if err != nil {
		return err
	}
	if db.bulk != nil {
		return db.bulk.add(t, key, op)
	}
	if !op.delete {
		// The caller may reuse its slice once Set returns; a bulk load
		// copies it as it writes it.
		op.value = bytes.Clone(op.value)
	}
	db.staged.put(t, key, op)
	db.warm.warmLater(t, key)
	return nil
}

// Discard drops every staged change.
//
// It ends a bulk load (BeginBulk) without committing it, wiping what it
// wrote; if that fails, the store takes no commit until reopened, and the
// reopen wipes it.
func (db *DB) Discard() {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	if db.bulk != nil {
		if err := db.abortBulk(); err != nil {
			db.protocol.failed = fmt.Errorf("commitment: discarding a bulk load failed; reopen the store to finish: %w", err)
			db.opts.Logger.Error("nomtstore bulk load discard failed", "err", err)
		}
	}
	db.staged.clearChanges()
	db.staged.record = nil
}

// SetVersionRecord stages the application's record of the next version
// (for a multistore, its commit info): the commit writes it in the same
// atomic batch as the version, pruning deletes it with the version and a
// rollback with the versions it undoes. Nil stages none.
func (db *DB) SetVersionRecord(record []byte) {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	db.staged.record = bytes.Clone(record)
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
		roots[db.committed.byStore[id].name] = root
	}
	return roots, nil
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
	if err := db.protocol.sticky(); err != nil {
		return nil, err
	}
	if err := db.committed.pages.backpressure(); err != nil {
		return nil, err
	}
	w, err := db.workingLocked()
	if err != nil {
		return nil, err
	}
	db.opts.hookAt("begin")
	planStart := db.opts.now()
	changes, err := w.pageChanges()
	if err == nil {
		err = db.committed.pages.place(changes, w.table)
	}
	if err != nil {
		return nil, err
	}
	db.opts.observePhase(PhasePlan, planStart)
	db.mu.RLock()
	prev := db.committed.record
	db.mu.RUnlock()
	version := db.protocol.nextVersion(prev.version)
	batchStart := db.opts.now()
	// The superseded pages' entries set the new pages' history bytes,
	// which the WAL record carries: they come first.
	pageEntries := supersededPages(w)
	// The page history goes to its own Pebble, synced, on the other core
	// while the batch is built and the WAL records appended: durable
	// before the commit frame. Waited for on every path out: it reads the
	// working set.
	history := startHistory(db.history.DB, w, pageEntries, version, int(db.opts.MaxBatchBytes))
	defer func() { _ = history.wait() }()
	record := &commitRecord{version: version, lastSeq: prev.lastSeq, roots: w.roots}
	wal := db.protocol.planWAL(record, changes)
	batch := db.protocol.newCommitBatch(batchEstimate(w, pageEntries))
	latest, err := writeVersion(batch, w, pageEntries, version, prev.version == 0, db.staged.record, !w.huge)
	if err == nil && db.bulk != nil {
		err = db.bulk.finishCommit(batch)
	}
	if err != nil {
		_ = batch.Close()
		wal.appended(db.committed.pages.wal) // not named by any commit record
		return nil, err
	}
	db.opts.observePhase(PhaseBatch, batchStart)
	walBytes, err := db.protocol.commitDurably(record, wal, changes, batch, history, func() {
		if w.huge || db.bulk != nil {
			// Not written through (writeVersion kept no entries, the
			// update no elided subtrees), or holding reads of the empty
			// version beside a bulk load: they fill again as read.
			db.committed.values.purge()
			db.committed.leaves.purge()
			return
		}
		for _, e := range latest {
			db.committed.values.put(e.store, e.key, e.read, record.version)
		}
		for _, u := range w.updates {
			db.committed.leaves.apply(u.tree.store, u.result.Elided, record.version)
		}
	})
	if err != nil {
		return nil, err
	}
	if b := db.bulk; b != nil {
		db.bulk = nil
		b.cleanup()
		elapsed := time.Since(b.started)
		if f := db.opts.BulkProgress; f != nil {
			f(BulkProgress{Phase: "committed", Keys: b.keys, Bytes: b.bytes, Built: b.placed, Elapsed: elapsed})
		}
		db.opts.Logger.Info("nomtstore bulk load committed", "version", record.version, "keys", b.keys, "bytes", b.bytes,
			"elapsed", elapsed.Round(time.Millisecond))
	}
	keys, hashes := db.staged.keys(), 0
	for _, u := range w.updates {
		hashes += u.result.NodeHashes
	}
	db.staged.clearChanges()
	db.staged.record = nil
	db.stats.commits.Add(1)
	db.mu.RLock()
	roots := db.committed.namedRoots(record.roots)
	table := db.committed.pages.table
	db.mu.RUnlock()
	if o := db.opts.Observer; o != nil {
		o.Committed(CommitStats{Version: record.version, Duration: time.Since(start), Keys: keys,
			Pages: len(changes), WALBytes: walBytes, NodeHashes: hashes, Table: table.Stats(), Dirty: table.Dirty()})
	}
	if err := db.committed.pages.afterCommit(); err != nil {
		return nil, err
	}
	return &CommitResult{Version: record.version, Roots: roots}, nil
}

// latestEntry is a key's current entry once a version commits, for the
// value cache.
type latestEntry struct {
	store trie.StoreID
	key   []byte
	read  recentRead
}

// writeVersion adds version's changes to the commit batch: current values
// and leaves, the superseded values, leaves and pages with the version that
// orphaned them, the version's change list, its roots and the application's
// record of it, if any. It returns the keys' new current entries.
func writeVersion(batch batchWriter, w *workingSet, pageEntries [][][]byte, version uint64, first bool, appRecord []byte, cached bool) ([]latestEntry, error) {
	var changed changeListBuilder
	var latest []latestEntry
	var err error // the first failure; a huge block makes millions of calls
	set := func(key, value []byte) {
		if e := batch.Set(key, value, nil); err == nil {
			err = e
		}
	}
	del := func(key []byte) {
		if e := batch.Delete(key, nil); err == nil {
			err = e
		}
	}
	for ui, u := range w.updates {
		store := u.tree.store
		for i, key := range u.keys {
			op, was := u.ops[i], u.priors[i]
			if op.Delete && !was.exists || !op.Delete && was.exists && bytes.Equal(was.value, u.values[i]) {
				continue // nothing changes, so nothing is superseded
			}
			if was.exists {
				set(oldEntryKey(store, op.Path, version), supersededEntry(was.born, key, was.value))
			}
			if op.Delete {
				set(deletedKey(store, key, version), nil)
				del(valueKey(store, key))
				del(leafKey(store, op.Path))
				if cached {
					latest = append(latest, latestEntry{store: store, key: key})
				}
			} else {
				entry := bornValue(version, u.values[i])
				set(valueKey(store, key), entry)
				set(leafKey(store, op.Path), leafValue(version, trie.LeafHash(op.Path, op.ValueHash), key))
				if cached {
					latest = append(latest, latestEntry{store: store, key: key, read: recentRead{entry: entry, found: true}})
				}
			}
			changed.addKey(changedKey{store: store, key: key, hadPrior: was.exists, deleted: op.Delete})
		}
		for pi, pc := range u.result.Pages {
			// The superseded page itself is in the page history's
			// Pebble (writeHistory); its kind here.
			set(oldPageIndexKey(store, pc.ID, version), pageEntries[ui][pi][:1])
			changed.addPage(changedPage{store: store, id: pc.ID, hadPrior: pc.Prior != nil})
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
	return latest, err
}

// batchEstimate is about the size of what writeVersion writes for w: each
// key's current value, leaf, superseded value and change-list entry, each
// page's change entry (the superseded pages go to the page history's
// Pebble). Too little only costs the batch's growing (each
// step a copy of everything so far, into memory the process touches for
// the first time); the estimate errs on the high side.
func batchEstimate(w *workingSet, pageEntries [][][]byte) int {
	n := 0
	for ui, u := range w.updates {
		for i, key := range u.keys {
			n += 3*len(key) + len(u.values[i]) + len(u.priors[i].value) + perKeyBatchBytes
		}
		n += len(pageEntries[ui]) * perPageBatchBytes
	}
	return n
}

// What a key and a page add to a commit batch beyond their raw key, values
// and history entry: entry keys (store, paths, versions), born versions,
// a leaf hash and Pebble's record headers.
const (
	perKeyBatchBytes  = 200
	perPageBatchBytes = 96
)

// supersededPages returns each update's superseded page entries, parallel
// to its page changes, setting the new pages' history bytes.
func supersededPages(w *workingSet) [][][]byte {
	entries := make([][][]byte, len(w.updates))
	for i, u := range w.updates {
		entries[i] = make([][]byte, len(u.result.Pages))
		for j, pc := range u.result.Pages {
			entries[i][j] = supersededPage(u.tree.store, pc)
		}
	}
	return entries
}

// versionWAL are the WAL records of a version's page changes, under the
// next sequence numbers (planWAL takes them in the version's record): one
// record, or, for a version whose batch is written in chunks (chunked.go),
// several that fit its pieces; none when no page changes. A single record
// is encoded and appended to the log ahead, on the other core while the
// batch is built; several are encoded one at a time as the log takes them,
// so that a version changing a million pages never holds all their
// records at once.
type versionWAL struct {
	firstSeq, generation uint64
	commitSeq            uint64 // of the commit frame, after the records
	parts                [][]bitbox.Change
	ahead                chan walAppend // the single record's append, when run ahead
	done                 *walAppend
}

// walAppend is the outcome of appending a version's records to the log.
type walAppend struct {
	bytes int
	err   error
}

// planWAL plans the WAL records of a version's page changes and starts
// appending a single one. REQUIRES: DB.writeMu, until the records are
// appended (appended).
func (p *commitProtocol) planWAL(record *commitRecord, changes []bitbox.Change) *versionWAL {
	p.mu.RLock()
	generation := p.state.pages.table.Generation()
	p.mu.RUnlock()
	w := &versionWAL{firstSeq: record.lastSeq + 1, generation: generation}
	if len(changes) == 0 {
		record.lastSeq++
		w.commitSeq = record.lastSeq
		return w
	}
	w.parts = splitChanges(changes, int(p.opts.MaxBatchBytes))
	if len(w.parts) > 1 {
		w.parts = splitChanges(changes, int(min(p.opts.MaxBatchBytes, chunkPieceBytes)))
	}
	record.lastSeq += uint64(len(w.parts)) + 1
	w.commitSeq = record.lastSeq
	if len(w.parts) == 1 {
		w.ahead = make(chan walAppend, 1)
		log := p.state.pages.wal
		go func() {
			rec := bitbox.EncodeWAL(w.firstSeq, generation, w.parts[0])
			n, err := log.append(w.firstSeq, 1, func(int) []byte { return rec })
			w.ahead <- walAppend{bytes: n, err: err}
		}()
	}
	return w
}

// appended appends the records to the log, or waits for the append run
// ahead, and returns its outcome; once appended (and synced), the records
// may be named by a commit record. Every planned version calls it, whether
// it commits or not, before its writer lets go of writeMu.
func (w *versionWAL) appended(log *walLog) walAppend {
	switch {
	case w.done != nil:
	case w.ahead != nil:
		r := <-w.ahead
		w.done = &r
	case len(w.parts) == 0:
		w.done = &walAppend{}
	default:
		n, err := log.append(w.firstSeq, len(w.parts), func(i int) []byte {
			return bitbox.EncodeWAL(w.firstSeq+uint64(i), w.generation, w.parts[i])
		})
		w.done = &walAppend{bytes: n, err: err}
	}
	return *w.done
}

// commitDurably runs steps 2 and 3 of the protocol for a prepared version:
// once the WAL records of its page changes (planWAL) are durable in the
// log, the commit record joins its batch, the batch is appended to the log
// as the commit frame and synced (the commit point) and applied to Pebble
// while writeCaches brings the caches of the latest version to it
// (valuecache.go: readers of the version before it skip its entries), the
// chunks of a large batch are applied (chunked.go), and the committed
// state swaps to the new version under mu. Commit and rollback share it.
// It consumes batch and returns the WAL records' size. REQUIRES: DB.writeMu.
func (p *commitProtocol) commitDurably(record *commitRecord, wal *versionWAL, changes []bitbox.Change, batch *chunkedBatch, history *historyWrite, writeCaches func()) (int, error) {
	// Pruning waits while a commit syncs.
	p.gate.enter()
	defer p.gate.exit()
	pointStart := p.opts.now()
	appended := wal.appended(p.state.pages.wal)
	if appended.err != nil {
		_ = batch.Close()
		return 0, appended.err
	}
	walBytes := appended.bytes
	p.stats.walBytes.Add(uint64(walBytes))
	if err := errors.Join(batch.seal(), batch.Batch.Set(keyCommit, record.encode(), nil)); err != nil {
		_ = batch.Close()
		return 0, err
	}
	p.batchSize = int(min(batch.size(), maxBatchHint))
	if err := checkDiskSpace(p.opts, p.dir, record.version, batch.size()); err != nil {
		_ = batch.Close()
		return 0, err
	}
	if batch.chunks > 0 {
		// The chunks' records are in memtables: durable before the frame
		// that makes the version committed.
		if err := p.pebble.Flush(); err != nil {
			_ = batch.Close()
			return 0, fmt.Errorf("commitment: flushing the chunks of version %d: %w", record.version, err)
		}
	}
	if err := history.wait(); err != nil {
		_ = batch.Close()
		return 0, fmt.Errorf("commitment: writing the page history of version %d: %w", record.version, err)
	}
	p.opts.hookAt("before-commit-point")
	log := p.state.pages.wal
	frameBytes, err := log.writeCommit(wal.commitSeq, batch.Repr())
	if err != nil {
		// The frame may or may not be durable: take no commit until a
		// reopen decides.
		_ = batch.Close()
		p.failed = fmt.Errorf("commitment: commit point of version %d failed; reopen to learn whether it committed: %w", record.version, err)
		return 0, p.failed
	}
	walBytes += frameBytes
	p.stats.walBytes.Add(uint64(frameBytes))
	// The batch goes into the memtable while the frame syncs, as Pebble's
	// own commit pipeline overlaps the two, and the caches take the
	// version's entries beside them: readers read the snapshot of the
	// previous version until the swap below, and should a flush make the
	// batch durable before its frame, the version is committed there, its
	// WAL records being synced already. Should the sync fail, the caches'
	// entries of this version stay invisible to the readers of the one
	// before it, the latest.
	p.mu.Lock()
	p.state.cachesAhead = true
	p.mu.Unlock()
	synced, cached := make(chan error, 1), make(chan struct{})
	go func() { synced <- log.syncActive() }()
	go func() {
		writeCaches()
		close(cached)
	}()
	applyErr := batch.Commit(pebble.NoSync)
	_ = batch.Close()
	<-cached
	p.opts.hookAt("caches-written")
	if err := <-synced; err != nil {
		err = log.failActive(err)
		p.failed = fmt.Errorf("commitment: commit point of version %d failed; reopen to learn whether it committed: %w", record.version, err)
		return 0, p.failed
	}
	if applyErr != nil {
		p.failed = fmt.Errorf("commitment: version %d committed but applying its batch failed; reopen to finish: %w", record.version, applyErr)
		return 0, p.failed
	}
	p.opts.observePhase(PhaseCommitPoint, pointStart)
	p.opts.hookAt("after-commit-point")
	if batch.chunks > 0 {
		if err := applyPending(p.pebble, batch.tag, batch.chunks); err != nil {
			p.failed = fmt.Errorf("commitment: version %d committed but applying its chunks failed; reopen to finish: %w", record.version, err)
			return 0, p.failed
		}
	}

	p.mu.Lock()
	p.state.pages.apply(changes)
	p.state.record = record
	p.state.cachesAhead = false
	if p.state.earliest.Load() == 0 {
		p.state.earliest.Store(record.version)
	}
	p.state.snap.release()
	p.state.snap = newSnapshot(p.pebble, p.history)
	p.mu.Unlock()
	p.stats.pagesWritten.Add(uint64(len(changes)))
	p.state.pages.sinceCheckpoint++
	return walBytes, nil
}

// checkDiskSpace refuses a commit of size bytes that would leave less than
// the reserve free where Pebble writes: a write Pebble cannot complete is
// fatal to it, so a full disk must be caught before the batch. An unknown
// free space (the file system cannot say) is not checked.
func checkDiskSpace(opts *Options, dir string, version uint64, size int64) error {
	if opts.DiskReserveBytes < 0 {
		return nil
	}
	usage, err := vfs.PebbleFS(opts.FS).GetDiskUsage(filepath.Join(dir, pebbleDir))
	if err != nil {
		return nil
	}
	need := uint64(2*size + opts.DiskReserveBytes)
	if usage.AvailBytes < need {
		return fmt.Errorf("commitment: commit of version %d: %d bytes free on the disk of %s, a commit needs %d (its %d bytes twice and a reserve of %d for the value store's flushes); nothing was committed: %w",
			version, usage.AvailBytes, dir, need, size, opts.DiskReserveBytes, syscall.ENOSPC)
	}
	return nil
}

// WaitFlushed writes every committed page into the page table (a
// checkpoint) and returns the store's sticky failure, if any. A commit is
// durable without it (recovery replays the WAL records); it is for a
// caller that needs the background work finished, such as one about to
// change process-wide settings the checkpoint reads (telemetry) or to copy
// the directory's files.
func (db *DB) WaitFlushed() error {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	if db.isClosed() {
		return ErrClosed
	}
	return db.committed.pages.checkpointNow()
}

// sticky returns the failure that stops commits until a reopen: a failed
// commit point, checkpoint, or growth past its rename. REQUIRES: DB.writeMu.
func (p *commitProtocol) sticky() error {
	if p.failed != nil {
		return p.failed
	}
	return p.state.pages.failed
}
