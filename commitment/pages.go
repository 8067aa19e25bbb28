package commitment

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble"
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/nomtstore/nomtstore/commitment/bitbox"
	"github.com/nomtstore/nomtstore/commitment/trie"
)

// pageStore holds every tree's committed pages: the bitbox page table on
// disk, the pages committed since its last checkpoint in memory (the
// table's dirty pages), and a cache of clean pages.
//
// Invariants:
//   - The table file holds each page as of the checkpoint record's WAL
//     sequence number; the WAL records after it, in the log (wallog.go),
//     hold every later change, and a reopen replays them in order.
//   - A page reaches the file only in a checkpoint, which writes pages
//     already applied, that is committed: no page is written before the WAL
//     record naming it is durable.
//   - Reads see the latest committed version's pages (dirty ones from
//     memory). An applied page is never modified again.
//   - The table grows only with no dirty page, right after a checkpoint, so
//     a WAL record is never replayed into a table of another generation.
//   - Dirty memory is bounded by the checkpoint budget: a commit waits for
//     the running checkpoint once the dirty pages pass twice the budget.
//
// Locking: the table pointer and what apply changes are the committed
// state, guarded by DB.mu (lookups under its read lock, apply and grow
// under its write lock); placing pages, growth and checkpoints are the
// writer's (DB.writeMu).
type pageStore struct {
	table *bitbox.Table // REQUIRES: mu
	cache *pageCache
	mu    *sync.RWMutex // DB.mu
	// pebble holds the checkpoint record; lastSeq is the committed WAL
	// sequence number (read under mu), which a checkpoint records. A
	// checkpoint deletes from history the superseded pages pruning left.
	pebble  *pebble.DB
	history *historyStore
	wal     *walLog
	lastSeq func() uint64
	opts    *Options

	// job is the running background checkpoint, nil when none runs.
	// REQUIRES: DB.writeMu.
	job *checkpointJob
	// sinceCheckpoint counts commits applied since the last checkpoint
	// started, empty ones too: each adds a frame to the log.
	// REQUIRES: DB.writeMu.
	sinceCheckpoint int
	// loggedAtStart is what the log had taken when the last checkpoint
	// started (walLog.appended). REQUIRES: DB.writeMu.
	loggedAtStart int64
	// checkpointed is the WAL sequence number the file holds.
	checkpointed atomic.Uint64
	// pruned is set when pruning deleted versions since the last
	// checkpoint started, whose superseded pages the next one deletes.
	pruned atomic.Bool
	// tableReads counts the pages read from the table, which the cache
	// missed: the warmer watches it to learn whether warming still finds
	// anything to read. A lookup of an absent page (an elided subtree's,
	// where every key ends once the store has a few thousand) probes only
	// the table's metadata in memory, and does not count.
	tableReads atomic.Uint64
	// failed is sticky once a checkpoint failed, or a growth past its
	// rename: the store takes no commit until reopened. REQUIRES:
	// DB.writeMu.
	failed error
}

// current returns the table under mu.
func (ps *pageStore) current() *bitbox.Table {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	return ps.table
}

// pinnedPageDepth: pages this shallow (the root page and its 64 children,
// per tree) are never evicted; every lookup passes through them.
const pinnedPageDepth = 1

// cachedPage is a committed page and the bucket holding it.
type cachedPage struct {
	page   *trie.Page
	bucket uint64
}

// pageCache holds committed pages: the top levels pinned, the rest in an
// LRU of bounded size. Entries are added by readers and the writer under
// DB.mu (read), and replaced by a commit under DB.mu (write), so a reader
// never caches a page older than the version it reads.
type pageCache struct {
	mu     sync.Mutex
	pinned map[bitbox.PageKey]cachedPage // REQUIRES: mu
	lru    *lru.Cache[bitbox.PageKey, cachedPage]
}

func newPageCache(size int) *pageCache {
	c, _ := lru.New[bitbox.PageKey, cachedPage](size) // size > 0 by Options
	return &pageCache{pinned: map[bitbox.PageKey]cachedPage{}, lru: c}
}

func (c *pageCache) get(key bitbox.PageKey) (cachedPage, bool) {
	if key.ID.Depth() <= pinnedPageDepth {
		c.mu.Lock()
		defer c.mu.Unlock()
		cp, ok := c.pinned[key]
		return cp, ok
	}
	return c.lru.Get(key)
}

func (c *pageCache) add(key bitbox.PageKey, cp cachedPage) {
	if key.ID.Depth() <= pinnedPageDepth {
		c.mu.Lock()
		c.pinned[key] = cp
		c.mu.Unlock()
		return
	}
	c.lru.Add(key, cp)
}

func (c *pageCache) remove(key bitbox.PageKey) {
	c.mu.Lock()
	delete(c.pinned, key)
	c.mu.Unlock()
	c.lru.Remove(key)
}

func (c *pageCache) purge() {
	c.mu.Lock()
	clear(c.pinned)
	c.mu.Unlock()
	c.lru.Purge()
}

// lookup reads a committed page, through the cache. REQUIRES: DB.mu (read).
func (ps *pageStore) lookup(key bitbox.PageKey) (cachedPage, bool, error) {
	if cp, ok := ps.cache.get(key); ok {
		return cp, true, nil
	}
	page, bucket, found, err := ps.table.Lookup(key)
	if err != nil || !found {
		return cachedPage{}, false, err
	}
	ps.tableReads.Add(1)
	cp := cachedPage{page: page, bucket: bucket}
	ps.cache.add(key, cp)
	return cp, true, nil
}

// apply makes a committed version's page changes the latest.
// REQUIRES: DB.mu (write).
func (ps *pageStore) apply(changes []bitbox.Change) {
	ps.table.Apply(changes)
	for _, c := range changes {
		if c.Page == nil {
			ps.cache.remove(c.Key)
		} else {
			ps.cache.add(c.Key, cachedPage{page: c.Page, bucket: c.Bucket})
		}
	}
}

// place assigns buckets to the new pages among changes, growing the table
// first if they would overload it. The buckets of the other pages were
// found in table, and are found again if the table has grown since.
// REQUIRES: DB.writeMu.
func (ps *pageStore) place(changes []bitbox.Change, foundIn *bitbox.Table) error {
	newPages := uint64(0)
	for _, c := range changes {
		if c.Prior == nil && c.Page != nil {
			newPages++
		}
	}
	table := ps.current()
	size, grow := table.NeedsGrowth(newPages, ps.opts.MaxLoadFactor)
	for attempt := 0; ; attempt++ {
		if grow {
			if err := ps.grow(size); err != nil {
				return err
			}
			table = ps.current()
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

// grow grows the page table to at least buckets, right after a
// checkpoint (no page may be dirty). Readers go on with the old table while
// the new one is written; the swap takes mu. REQUIRES: DB.writeMu.
func (ps *pageStore) grow(buckets uint64) error {
	if err := ps.checkpointNow(); err != nil {
		return err
	}
	table := ps.current()
	old := table.Stats()
	ps.opts.hookAt("grow")
	defer ps.opts.observePhase(PhaseTableGrow, ps.opts.now())
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
			ps.failed = err
		}
		return err
	}
	ps.mu.Lock()
	ps.table = grown
	ps.cache.purge()
	ps.mu.Unlock()
	// Readers use the table under mu, so none holds the old one any more.
	_ = table.Close()
	ps.opts.Logger.Info("nomtstore page table grew", "from_buckets", old.Buckets, "to_buckets", buckets, "pages", old.Full)
	return nil
}

// afterCommit starts a background checkpoint when the dirty pages pass
// the budget or enough commits went by since the last one, unless one runs
// (or, with SyncFlush, checkpoints right away). REQUIRES: DB.writeMu.
func (ps *pageStore) afterCommit() error {
	if ps.opts.SyncFlush {
		return ps.checkpointNow()
	}
	if err := ps.reap(false); err != nil || ps.job != nil {
		return err
	}
	ps.mu.RLock()
	table, seq := ps.table, ps.lastSeq()
	ps.mu.RUnlock()
	dirty := int64(table.Dirty()) * trie.PageSize
	// What the log took since the last checkpoint started, not its size: a
	// segment that cannot be removed must not start one at every commit.
	logged := ps.wal.appended - ps.loggedAtStart
	if dirty < ps.opts.CheckpointBytes && ps.sinceCheckpoint < ps.opts.CheckpointInterval && logged < ps.opts.CheckpointLogBytes {
		return nil
	}
	if dirty == 0 && ps.checkpointed.Load() == seq {
		return nil
	}
	ps.start(table, seq)
	return nil
}

// start writes the dirty pages of table in the background and records the
// checkpoint at seq. REQUIRES: DB.writeMu, no checkpoint running.
func (ps *pageStore) start(table *bitbox.Table, seq uint64) {
	job := &checkpointJob{done: make(chan struct{})}
	ps.job = job
	ps.sinceCheckpoint = 0
	ps.pruned.Store(false)
	ps.loggedAtStart = ps.wal.appended
	// Every record up to seq is in the segments sealed now; the next
	// commit's go to a new one.
	ps.wal.seal()
	go func() {
		defer close(job.done)
		start := ps.opts.now()
		if job.err = checkpointTo(table, ps.pebble, ps.history, seq); job.err != nil {
			return
		}
		ps.checkpointed.Store(seq)
		ps.opts.hookAt("checkpoint-durable")
		ps.opts.observePhase(PhaseCheckpoint, start)
	}()
}

// reap collects the running checkpoint if it is done (or waits for it when
// wait is set) and returns the sticky failure, if any. REQUIRES: DB.writeMu.
func (ps *pageStore) reap(wait bool) error {
	if job := ps.job; job != nil {
		if !wait {
			select {
			case <-job.done:
			default:
				return ps.failed
			}
		}
		<-job.done
		if job.err != nil && ps.failed == nil {
			ps.failed = fmt.Errorf("%w: %w", ErrFlushFailed, job.err)
			ps.opts.Logger.Error("nomtstore checkpoint failed", "err", job.err)
		}
		ps.job = nil
		if job.err == nil {
			if err := ps.wal.removeThrough(ps.checkpointed.Load()); err != nil {
				ps.opts.Logger.Error("nomtstore could not remove checkpointed WAL segments; the next checkpoint tries again", "err", err)
			}
		}
	}
	return ps.failed
}

// checkpointNow waits for a running checkpoint, then writes every dirty
// page and records the checkpoint before returning. REQUIRES: DB.writeMu.
func (ps *pageStore) checkpointNow() error {
	if err := ps.reap(true); err != nil {
		return err
	}
	ps.mu.RLock()
	table, seq := ps.table, ps.lastSeq()
	ps.mu.RUnlock()
	if table.Dirty() == 0 && ps.checkpointed.Load() == seq && !ps.pruned.Load() {
		return nil
	}
	ps.start(table, seq)
	return ps.reap(true)
}

// backpressure makes a commit wait for the running checkpoint while the
// dirty pages are over twice the budget: memory stays bounded by
// configuration, whatever the commit rate. REQUIRES: DB.writeMu.
func (ps *pageStore) backpressure() error {
	if ps.job == nil {
		return nil
	}
	if int64(ps.current().Dirty())*trie.PageSize < 2*ps.opts.CheckpointBytes {
		return ps.reap(false)
	}
	defer ps.opts.observePhase(PhaseCheckpointWait, ps.opts.now())
	return ps.reap(true)
}

// recover replays, in order, the page-change records of the versions
// committed since the last checkpoint (exactly those after the checkpoint
// record, up to the commit record's sequence number: the last occurrence
// of each in at, the index of the log segments found at open), checkpoints
// them, so the table holds the latest version's pages again, and removes
// the segments.
func (ps *pageStore) recover(record *commitRecord, found []*walSegment, at map[uint64]walLocation) error {
	ckpt := checkpointRecord{}
	if v, ok, err := getMeta(ps.pebble, keyCheckpoint, "the checkpoint record"); err != nil {
		return err
	} else if ok {
		if ckpt, err = decodeCheckpointRecord(v); err != nil {
			return err
		}
	}
	last := record.lastSeq
	if ckpt.seq > last {
		return fmt.Errorf("%w: checkpoint at WAL %d is past the last committed WAL %d", ErrCorrupt, ckpt.seq, last)
	}
	table := ps.table
	ps.checkpointed.Store(ckpt.seq)
	replayed, records := 0, 0
	// last is the commit frame of the latest version, which Pebble may
	// have flushed before the frame was synced: the log need not hold it.
	for seq := ckpt.seq + 1; seq < last; seq++ {
		name := fmt.Sprintf("WAL record %d", seq)
		loc, ok := at[seq]
		if !ok {
			return fmt.Errorf("%w: the %s of a committed version is missing from %s (%d segments; %s)", ErrCorrupt, name, ps.wal.dir, len(found), describeTails(found))
		}
		if loc.commit {
			continue // in Pebble (replayCommits)
		}
		data, err := ps.wal.read(loc)
		if err != nil {
			return err
		}
		w, err := bitbox.DecodeWAL(name, data)
		if err != nil {
			return fmt.Errorf("commitment: the %s of a committed version (%s, byte %d): %w", name, loc.segment.path, loc.offset, err)
		}
		if w.Seq != seq {
			return fmt.Errorf("%w: %s holds sequence %d", ErrCorrupt, name, w.Seq)
		}
		if w.Generation < table.Generation() {
			// Committed before the table last grew, which it did right
			// after checkpointing them: already in the table.
			continue
		}
		if err := table.Replay(w); err != nil {
			return fmt.Errorf("commitment: replaying %s: %w", name, err)
		}
		replayed++
		records += len(w.Records)
	}
	// Pebble read at open holds only what it flushed (it keeps no log of
	// its own), so the checkpoint record read is durable; a checkpoint of
	// the recovered pages flushes the batches replayed into it.
	if ckpt.seq < last {
		if err := checkpointTo(table, ps.pebble, ps.history, last); err != nil {
			return fmt.Errorf("commitment: checkpointing recovered pages: %w", err)
		}
		ps.checkpointed.Store(last)
	}
	if err := ps.wal.removeFound(found); err != nil {
		ps.opts.Logger.Error("nomtstore could not remove checkpointed WAL segments; the next open tries again", "err", err)
	}
	if replayed > 0 {
		ps.opts.Logger.Info("nomtstore recovered committed pages from the WAL", "version", record.version,
			"wal_records", replayed, "pages", records, "from_seq", ckpt.seq+1, "to_seq", last)
	}
	return nil
}

// checkpointJob is one background checkpoint.
type checkpointJob struct {
	done chan struct{}
	err  error
}

// checkpointTo writes the dirty pages of the table, records that the file
// holds every page change up to seq, and flushes Pebble, which makes the
// record and every batch applied before it durable: the log segments
// holding only frames up to seq may go. Pruning's batches are among them,
// so the superseded pages of the versions they pruned may go from history
// then, not before: history keeps a log of its own, and a deletion there
// could outlive a crash that took the pruning batch (and so the earliest
// version it moved) with it.
func checkpointTo(table *bitbox.Table, db *pebble.DB, history *historyStore, seq uint64) error {
	if err := table.Checkpoint(); err != nil {
		return err
	}
	rec := checkpointRecord{seq: seq, generation: table.Generation()}
	if err := setDurably(db, keyCheckpoint, rec.encode()); err != nil {
		return fmt.Errorf("commitment: recording checkpoint %d: %w", seq, err)
	}
	earliest, err := readDurableEarliest(db)
	if err == nil {
		err = history.dropBefore(earliest)
	}
	if err != nil {
		return fmt.Errorf("commitment: deleting the page history of pruned versions: %w", err)
	}
	return nil
}
