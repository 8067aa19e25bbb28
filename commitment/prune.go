package commitment

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/nomtstore/nomtstore/commitment/trie"
)

// ErrPruneLatest is returned when asked to prune the latest version, which is always kept.
var ErrPruneLatest = errors.New("commitment: the latest version cannot be pruned")

// PruneTo deletes every version <= to, oldest first, one version per Pebble
// batch: deleting version e removes exactly the entries that version e+1
// orphaned (only e and older could read them), e's roots and the change
// lists of e and e+1 (only a rollback to e or older needs them), and moves the
// earliest version to e+1 in the same batch, so a crash leaves the store
// consistent at whatever version pruning had reached.
//
// It runs alongside commits and reads: it waits while a commit syncs,
// readers of a retained version never see its deletions (they read a
// snapshot), and readers of a deleted version get ErrVersionPruned. Pruning
// below the earliest version does nothing; to >= the latest version is
// ErrPruneLatest. A failure is returned and counted in Stats; calling again
// resumes where it stopped.
func (db *DB) PruneTo(to uint64) error {
	return db.PruneToContext(context.Background(), to)
}

// Compact writes a checkpoint and then rewrites every key-value table (of
// both Pebbles) to the last level, so what pruning deleted leaves the disk now: Pebble's own
// compactions run once several flushes have gathered, and until then the
// deleted entries and their tombstones both take space (a sawtooth of up to
// a dozen memtables). For an operator after a large prune (`nomtstore prune
// --compact`), and for measuring the disk pruning settles at. Commits wait
// until it returns; reads and pruning run beside it.
func (db *DB) Compact() error {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	if db.isClosed() {
		return ErrClosed
	}
	if err := db.protocol.sticky(); err != nil {
		return err
	}
	if err := db.committed.pages.checkpointNow(); err != nil {
		return err
	}
	// Every key starts with a printable prefix (keys.go): [0x00, 0xff)
	// holds them all.
	for _, pdb := range []*pebble.DB{db.pebble, db.history.DB} {
		if err := pdb.Compact([]byte{0}, []byte{0xff}, true); err != nil {
			return fmt.Errorf("commitment: compacting: %w", err)
		}
	}
	// Pebble deletes the replaced tables in the background: the disk is
	// freed once they are gone, which a caller measuring it waits for.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if db.pebble.Metrics().Table.ObsoleteCount == 0 && db.history.Metrics().Table.ObsoleteCount == 0 {
			break
		}
	}
	return nil
}

// PruneToContext is PruneTo that stops between two versions once ctx is
// done, returning ctx's error: a long run (an archive node turning pruning
// on has a backlog of every version it kept) must not hold up a shutdown
// or a rollback. What it deleted stays deleted; calling again resumes. A
// stop is not a failure: Stats does not count it.
func (db *DB) PruneToContext(ctx context.Context, to uint64) error {
	db.pruneMu.Lock()
	defer db.pruneMu.Unlock()
	err := db.pruneTo(ctx, to)
	if err != nil && !errors.Is(err, ErrClosed) && (ctx.Err() == nil || !errors.Is(err, ctx.Err())) {
		db.stats.pruneFailures.Add(1)
		db.stats.lastPruneError.Store(&err)
		db.opts.Logger.Error("nomtstore pruning failed", "to", to, "earliest", db.committed.earliest.Load(), "err", err)
	} else if err == nil {
		db.stats.lastPruneError.Store(nil)
	}
	return err
}

// pruneTo does PruneToContext. REQUIRES: pruneMu.
func (db *DB) pruneTo(ctx context.Context, to uint64) error {
	db.mu.RLock()
	latest, closed := db.committed.record.version, db.committed.closed
	db.mu.RUnlock()
	switch {
	case closed:
		return ErrClosed
	case to >= latest:
		return fmt.Errorf("%w: asked to prune to %d, the latest is %d", ErrPruneLatest, to, latest)
	}
	for e := db.committed.earliest.Load(); e <= to; e = db.committed.earliest.Load() {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("commitment: pruning stopped before version %d (asked to prune to %d): %w", e, to, err)
		}
		db.protocol.gate.waitIdle()
		if err := db.pruneVersion(e); err != nil {
			return fmt.Errorf("commitment: pruning version %d: %w", e, err)
		}
	}
	return nil
}

// pruneVersion deletes version e, the earliest. REQUIRES: pruneMu.
func (db *DB) pruneVersion(e uint64) error {
	// Held for the batch: Close waits for it.
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.committed.closed {
		return ErrClosed
	}
	orphaner := e + 1
	batch := db.pebble.NewBatch()
	defer func() { _ = batch.Close() }()
	// e's own list is there only if e is the first version (the others
	// went with the version before them); no rollback may undo e now.
	if err := errors.Join(
		dropVersionHistory(db.pebble, batch, e),
		dropVersionHistory(db.pebble, batch, orphaner),
		batch.Delete(versionKey(prefixRoots, e), nil),
		batch.Delete(versionKey(prefixAppVersion, e), nil),
		batch.Set(keyEarliest, binary.BigEndian.AppendUint64(nil, orphaner), nil),
	); err != nil {
		return err
	}
	// Readers are refused e before its entries go.
	db.committed.earliest.Store(orphaner)
	db.opts.hookAt("prune")
	// Not synced: a batch lost in a crash takes its earliest record with
	// it, and the next pruning run deletes the version again.
	if err := batch.Commit(pebble.NoSync); err != nil {
		db.committed.earliest.Store(e)
		return err
	}
	// The superseded pages only versions up to e read go once this batch
	// is durable: history keeps a log of its own, and a deletion there
	// must not outlive a crash that takes the batch (and the earliest
	// version it moved) with it. Pebble makes it durable at its next
	// flush (every few blocks, or the next checkpoint): what the flushed
	// tables say is the earliest version may go now.
	db.committed.pages.pruned.Store(true)
	durable, err := readDurableEarliest(db.pebble)
	if err == nil {
		err = db.history.dropBefore(durable)
	}
	if err != nil {
		return fmt.Errorf("commitment: deleting the page history of pruned versions: %w", err)
	}
	db.stats.prunedVersions.Add(1)
	return nil
}

// dropVersionHistory adds to batch the deletion of everything version o
// superseded and its change list (read from pdb), which names it; the
// superseded pages themselves are in the page history's Pebble, which its
// callers delete from after the batch.
func dropVersionHistory(pdb *pebble.DB, batch batchWriter, o uint64) error {
	raw, found, err := getMeta(pdb, versionKey(prefixChanges, o), "a change list")
	if err != nil || !found {
		return err
	}
	changed, err := decodeChangeList(raw)
	if err != nil {
		return fmt.Errorf("version %d: %w", o, err)
	}
	var errs []error
	del := func(key []byte) { errs = append(errs, batch.Delete(key, nil)) }
	for _, p := range changed.pages {
		del(oldPageIndexKey(p.store, p.id, o))
	}
	for _, k := range changed.keys {
		if k.hadPrior {
			del(oldEntryKey(k.store, trie.PathOf(k.key), o))
		}
		if k.deleted {
			del(deletedKey(k.store, k.key, o))
		}
	}
	del(versionKey(prefixChanges, o))
	return errors.Join(errs...)
}

// commitGate lets pruning stand aside while a commit syncs: the commit's
// fsyncs should not queue behind pruning's writes.
type commitGate struct {
	mu     sync.Mutex
	idle   *sync.Cond
	active int // REQUIRES: mu
}

func newCommitGate() *commitGate {
	g := &commitGate{}
	g.idle = sync.NewCond(&g.mu)
	return g
}

func (g *commitGate) enter() {
	g.mu.Lock()
	g.active++
	g.mu.Unlock()
}

func (g *commitGate) exit() {
	g.mu.Lock()
	if g.active--; g.active == 0 {
		g.idle.Broadcast()
	}
	g.mu.Unlock()
}

// waitIdle returns once no commit is syncing.
func (g *commitGate) waitIdle() {
	g.mu.Lock()
	for g.active > 0 {
		g.idle.Wait()
	}
	g.mu.Unlock()
}
