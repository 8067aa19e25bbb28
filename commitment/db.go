package commitment

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble"

	"github.com/nomtstore/nomtstore/commitment/trie"
	"github.com/nomtstore/nomtstore/commitment/vfs"
)

// FormatVersion is the directory format this build reads and writes.
//
// Changelog: 1, the first (bitbox table v1, WAL v1, Pebble layout of
// keys.go); 2, versions: born versions in current entries, superseded
// values, leaves and pages, change lists, roots per version; 3, superseded
// pages as deltas with a whole copy every 16 changes (pagehistory.go), the
// page history byte, WAL v2; 4, page elision (pages of subtrees with fewer
// keys than the directory's elide-below parameter are not stored), the
// leaf index holds leaf hashes, WAL records live in the commit batch and
// pages reach the table at checkpoints ('W', "checkpoint", "params"); 5,
// bulk loads ("bulk": an unfinished one is wiped at open) and large
// commits in chunks applied after their commit point ('B', "pending"),
// which a format 4 build would not know to finish or wipe; 6, WAL records
// in log segments (wal/, wallog.go) instead of Pebble ('W'), which a
// format 5 build would not replay; 7, Pebble without its own log, every
// commit's batch in the log as its commit frame; 8, superseded pages ('h')
// in a Pebble of their own (history/), which a format 7 build would not
// read.
const FormatVersion = 8

const (
	formatFile = "FORMAT"
	tableFile  = "pages.ht"
	pebbleDir  = "pebble"
	historyDir = "history"
	// historyDeletionFile is a deletion of page history on its way into
	// history/ (historyStore.deleteRange).
	historyDeletionFile = "history-deletion.sst"
)

// Errors. Test with errors.Is.
var (
	// ErrCorrupt marks damaged data: a checksum, a record or a page that
	// does not parse or contradicts the rest. Errors from bitbox and trie
	// carry their own corruption marks as well.
	// It is trie.ErrCorrupt, which bitbox uses too.
	ErrCorrupt = trie.ErrCorrupt
	// ErrFormatVersion: the directory was written by another format version.
	ErrFormatVersion = errors.New("commitment: unsupported directory format version")
	// ErrNotNomtstore: the directory holds something else.
	ErrNotNomtstore = errors.New("commitment: not a nomtstore directory")
	// ErrUnknownTree: no tree of that name was opened.
	ErrUnknownTree = errors.New("commitment: unknown tree")
	// ErrEmptyKey: keys must have at least one byte.
	ErrEmptyKey = errors.New("commitment: empty key")
	// ErrKeyTooLarge: keys are limited to MaxKeyLength bytes, as in the SDK.
	ErrKeyTooLarge = errors.New("commitment: key too large")
	// ErrNilValue: a value must not be nil (the SDK panics on it).
	ErrNilValue = errors.New("commitment: nil value")
	// ErrValueTooLarge: values are limited to MaxValueLength bytes.
	ErrValueTooLarge = errors.New("commitment: value too large")
	// ErrClosed: the DB is closed.
	ErrClosed = errors.New("commitment: closed")
	// ErrIteratorsOpen: Close was called with iterators still open; close
	// them and call Close again (nothing was closed).
	ErrIteratorsOpen = errors.New("commitment: iterators still open")
	// ErrFlushFailed: a checkpoint failed to write committed pages to the
	// page table; every version is durable (its WAL record is), so close
	// and reopen to recover.
	ErrFlushFailed = errors.New("commitment: writing committed pages failed; close and reopen to recover from the WAL")
)

// Key and value limits, the same as cosmossdk.io/store/types.
const (
	MaxKeyLength   = 1<<17 - 1
	MaxValueLength = 1<<31 - 1
)

// Options configure a DB. The zero value gives sane defaults.
type Options struct {
	// FS is where the page table is written. Pebble's files go to
	// vfs.PebbleFS(FS): the same in-memory FS for a vfs.CrashFS, whose
	// power cuts must hit the whole store, the disk otherwise. Tests use a
	// vfs.FaultFS or a vfs.CrashFS.
	FS vfs.FS
	// InitialBuckets sizes a new page table; it grows by itself. Default
	// 1,024 buckets (4 MiB): with elision a store of a few thousand keys
	// has no page, and one of 1M keys about 4,000.
	InitialBuckets uint64
	// MaxLoadFactor is the (full + tombstone) share of buckets past which
	// the table grows before a commit. Default 0.75.
	MaxLoadFactor float64
	// PageCachePages bounds the page cache (4 KiB each), beyond the pinned
	// top two page levels of each tree. Default 32768 (128 MiB): with
	// elision the table holds about 4,000 pages per million keys of the
	// top three levels.
	PageCachePages int
	// PebbleCacheBytes sizes Pebble's block cache. Default 256 MiB: a
	// block's reads and its commit's priors are point lookups of random
	// keys, and a cache smaller than the current values and leaf index
	// makes each of them a read, a checksum and a decompression (at 1M
	// keys, 64 MiB made W1's reads 6x slower).
	PebbleCacheBytes int64
	// ValueCacheBytes bounds the cache of the latest version's values,
	// which serves a block's reads and its commit's superseded values
	// without a Pebble lookup. Default 512 MiB; negative turns it off.
	ValueCacheBytes int64
	// LeafCacheBytes bounds the cache of elided subtrees' keys at the
	// latest version, which serves their rebuilds without a range scan of
	// the leaf index. Default 1 GiB: about 64 bytes a key, so it holds
	// every elided subtree of a store of 10M keys (at 512 MiB, ~60% of
	// them, and the trie update there took a third longer). Its memory
	// grows to the budget as commits rewrite entries, whatever the state's
	// size (the cache appends). Negative turns it off.
	LeafCacheBytes int64
	// CheckpointBytes bounds the committed pages held in memory until a
	// checkpoint writes them to the page table: a checkpoint starts once
	// they pass it, and commits wait for it past twice it. Default 256 MiB.
	CheckpointBytes int64
	// CheckpointInterval starts a checkpoint after this many commits,
	// whatever their size: it bounds the log a reopen replays. Default 100.
	CheckpointInterval int
	// CheckpointLogBytes starts a checkpoint once the log (wal/) holds
	// this much: the log holds every commit since the last checkpoint,
	// page changes and batches, and takes disk until one covers it.
	// Default 64 MiB.
	CheckpointLogBytes int64
	// ElideBelow is the page elision threshold of a new directory: the
	// pages of subtrees holding fewer keys are not stored but rebuilt from
	// the leaf index when needed (trie.Tree.ElideBelow). It is fixed when
	// the directory is created; later values are ignored. Default
	// DefaultElideBelow.
	ElideBelow int
	// DiskReserveBytes is the free space a commit leaves on the value
	// store's disk: a commit that would leave less fails before its commit
	// point with ENOSPC and changes nothing. Pebble cannot fail a write
	// cleanly on a full disk (it stops the process), and its memtable
	// flushes and compactions need room beside the commits. Default
	// 256 MiB; negative turns the check off.
	DiskReserveBytes int64
	// ColdCaches skips filling the value and leaf caches at open (from the
	// latest version, read in order, up to their budgets): a faster open,
	// and slower first blocks until the caches warm by themselves.
	ColdCaches bool
	// MaxBatchBytes bounds the Pebble batch of one commit: a larger one (a
	// block rewriting millions of keys) is written in chunks of this size
	// before the commit point and applied after it (chunked.go), so no
	// buffer grows with the block. Default 64 MiB, far above an ordinary
	// block's few MiB; at most 1 GiB (the log's frames have 32-bit
	// lengths).
	MaxBatchBytes int64
	// BulkSortBytes bounds the memory a bulk load (BeginBulk) sorts a
	// tree's leaves in; a bigger tree is sorted in runs spilled to disk and
	// merged. Default 256 MiB (about 2M keys per run).
	BulkSortBytes int64
	// BulkProgress, if set, receives a bulk load's progress every second
	// (it is logged every five).
	BulkProgress func(BulkProgress)
	// Workers bounds the goroutines hashing; 0 means GOMAXPROCS.
	Workers int
	// SyncFlush checkpoints at every commit, before Commit returns, instead
	// of in the background every few commits.
	SyncFlush bool
	// WarmUp reads the pages of staged keys while the block executes
	// (warm.go); on by default. It pays once the page table outgrows what
	// the OS caches, because it overlaps the block's page reads from disk
	// with its execution: W1 with 10M keys on 2 cores ran at 7.5k against
	// 5.2k writes/s without it, commit p50 661 against 1,209 ms. While
	// every page is in the OS cache it competes with the block for the
	// cores instead (2 cores, 1M keys: 20.3k against 22.9k writes/s), so
	// it warms only a sample of the keys while warming reads nothing
	// (warm.go).
	WarmUp WarmUp
	// Logger receives start-up, recovery and growth messages.
	Logger *slog.Logger
	// Observer, if set, receives each commit's phase durations and
	// figures, for metrics.
	Observer Observer

	// hook, when set, is called at each named point of the commit
	// protocol; crash tests kill the process there.
	hook func(point string)
}

// DefaultElideBelow is the elision threshold of new directories: a page is
// stored when its subtree holds at least this many keys. Bigger saves page
// table space and page writes; smaller saves the leaf-index reads and
// hashing of rebuilding an elided subtree, which costs about 2 node hashes
// per key in it.
const DefaultElideBelow = 64

// WarmUp is Options.WarmUp.
type WarmUp int

// The warm-up settings; the zero value is on.
const (
	WarmUpOn WarmUp = iota
	WarmUpOff
)

func (o *Options) withDefaults() Options {
	out := *o
	if out.FS == nil {
		out.FS = vfs.Default
	}
	if out.InitialBuckets == 0 {
		out.InitialBuckets = 1 << 10
	}
	if out.MaxLoadFactor <= 0 || out.MaxLoadFactor >= 1 {
		out.MaxLoadFactor = 0.75
	}
	if out.PageCachePages <= 0 {
		out.PageCachePages = 1 << 15
	}
	if out.PebbleCacheBytes <= 0 {
		out.PebbleCacheBytes = 256 << 20
	}
	if out.ValueCacheBytes == 0 {
		out.ValueCacheBytes = 512 << 20
	}
	if out.DiskReserveBytes == 0 {
		out.DiskReserveBytes = 256 << 20
	}
	if out.LeafCacheBytes == 0 {
		out.LeafCacheBytes = 1 << 30
	}
	if out.CheckpointBytes <= 0 {
		out.CheckpointBytes = 256 << 20
	}
	if out.CheckpointInterval <= 0 {
		out.CheckpointInterval = 100
	}
	if out.CheckpointLogBytes <= 0 {
		out.CheckpointLogBytes = 64 << 20
	}
	out.MaxBatchBytes = min(out.MaxBatchBytes, 1<<30)
	if out.MaxBatchBytes <= 0 {
		out.MaxBatchBytes = 64 << 20
	}
	if out.BulkSortBytes <= 0 {
		out.BulkSortBytes = 256 << 20
	}
	if out.ElideBelow <= 0 {
		out.ElideBelow = DefaultElideBelow
	}
	if out.Workers <= 0 {
		out.Workers = runtime.GOMAXPROCS(0)
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return out
}

func (o *Options) hookAt(point string) {
	if o.hook != nil {
		o.hook(point)
	}
}

// tree is one named tree.
type tree struct {
	name  string
	store trie.StoreID
}

// DB is an open engine directory: a facade over the next version's staged
// changes and working set (working.go), the commit protocol (commit.go),
// the committed state readers see (state.go), the page store (pages.go:
// page table, dirty pages, checkpoints), the value store (Pebble's
// keyspaces of keys.go and the caches of valuecache.go), reads of one tree
// at one version (view.go) and history (history.go, pagehistory.go,
// iter.go).
//
// Concurrency: one writer (Set, Delete, WorkingRoots, Commit) at a time,
// serialized by writeMu; any number of readers alongside it. Readers see the
// last committed version: the commit swaps the committed state under mu.
type DB struct {
	dir        string
	opts       Options
	pebble     *pebble.DB
	pebbleOpts *pebble.Options // as opened: a bulk load writes tables with them
	// history holds the superseded pages ('h'), appended by version: in
	// a Pebble of their own, its flushes never overlap what it holds and
	// its compactions move files, where among the random keys of pebble
	// every compaction rewrote them (keys.go, historyOptions).
	history *historyStore

	writeMu sync.Mutex
	// staged is the next version: its changes, its record and its working
	// set (working.go). REQUIRES: writeMu.
	staged stagedWrites
	// bulk is the running bulk load, if any (bulk.go). REQUIRES: writeMu.
	bulk *bulkLoad
	// protocol runs the commit protocol (commit.go). REQUIRES: writeMu.
	protocol commitProtocol
	// pruneMu serializes pruning and rollback.
	pruneMu sync.Mutex

	mu sync.RWMutex
	// committed is the latest version as readers see it (state.go).
	// REQUIRES: mu (but for what its invariants exempt).
	committed committedState
	// warm reads the pages of staged keys ahead of the commit.
	warm *warmer

	stats engineStats
	// iterators counts open iterators: Close refuses to pull Pebble from
	// under them.
	iterators atomic.Int64
}

// maxBatchHint caps the room a commit batch starts with.
const maxBatchHint = 64 << 20

type engineStats struct {
	commits, pagesWritten, walBytes atomic.Uint64
	batchChunks                     atomic.Uint64
	prunedVersions, pruneFailures   atomic.Uint64
	lastPruneError                  atomic.Pointer[error]
}

// AddTrees registers trees that do not exist yet, durably; existing names
// are left as they are. A new tree is empty at every version, including
// the versions before it was added.
func (db *DB) AddTrees(names ...string) error {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.committed.closed {
		return ErrClosed
	}
	registry := make(map[string]trie.StoreID, len(db.committed.trees)+len(names))
	for name, t := range db.committed.trees {
		registry[name] = t.store
	}
	return db.register(registry, names)
}

// Close writes the committed pages held in memory to the page table (a
// last checkpoint, so the next open replays nothing) and closes the DB. It
// returns the error of that write, if any: the versions stay durable.
func (db *DB) Close() error {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	if db.isClosed() {
		return ErrClosed
	}
	if n := db.iterators.Load(); n > 0 {
		return fmt.Errorf("%w: %d iterators still open", ErrIteratorsOpen, n)
	}
	if b := db.bulk; b != nil {
		// Left for the next open to wipe, as a crash would leave it.
		_ = b.pipe.finish()
		for _, bt := range b.trees {
			_ = bt.values.close()
		}
		db.bulk = nil
	}
	var flushErr error
	if db.protocol.sticky() == nil {
		flushErr = db.committed.pages.checkpointNow()
		if flushErr == nil {
			// What ran outside commits since (pruning) is in memtables,
			// which Pebble, keeping no log, does not write at close.
			flushErr = db.pebble.Flush()
		}
	} else {
		flushErr = errors.Join(db.protocol.failed, db.committed.pages.reap(true))
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	if n := db.iterators.Load(); n > 0 {
		return fmt.Errorf("%w: %d iterators still open", ErrIteratorsOpen, n)
	}
	db.committed.closed = true
	// The warmer reads under mu: it drains (each key now a no-op) with mu
	// free, and nothing can queue more while writeMu is held.
	db.mu.Unlock()
	db.warm.stop()
	db.mu.Lock()
	db.committed.snap.release()
	// The caches' arenas go back to fastcache's free list for the next DB.
	db.committed.values.purge()
	db.committed.leaves.purge()
	db.committed.pages.wal.close()
	err := errors.Join(flushErr, db.committed.pages.table.Close(), db.pebble.Close(), db.history.Close())
	if err != nil {
		return fmt.Errorf("commitment: closing %s: %w", db.dir, err)
	}
	return nil
}

// isClosed reports whether Close has run.
func (db *DB) isClosed() bool {
	db.mu.RLock()
	defer db.mu.RUnlock()
	return db.committed.closed
}

// Trees returns the names of the DB's trees, sorted.
func (db *DB) Trees() []string {
	db.mu.RLock()
	defer db.mu.RUnlock()
	names := make([]string, 0, len(db.committed.trees))
	for name := range db.committed.trees {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

func sortedStores(m map[trie.StoreID]trie.Hash) []trie.StoreID {
	ids := make([]trie.StoreID, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func sortedNames(m map[string]trie.StoreID) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// SetInitialVersion makes the first commit version v instead of 1, as a
// chain starting at a height other than 1 needs. It fails once a version is
// committed.
func (db *DB) SetInitialVersion(v uint64) error {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	db.mu.RLock()
	latest := db.committed.record.version
	db.mu.RUnlock()
	if latest > 0 {
		return fmt.Errorf("commitment: initial version %d: version %d is already committed", v, latest)
	}
	if db.bulk != nil {
		return fmt.Errorf("commitment: initial version %d: a bulk load of version %d is running", v, db.bulk.version)
	}
	db.protocol.initialVersion = v
	return nil
}

// PutMeta durably stores an application record under name, outside any
// version (for example the heights snapshots hold back from pruning).
func (db *DB) PutMeta(name string, value []byte) error {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.committed.closed {
		return ErrClosed
	}
	if err := setDurably(db.pebble, append(bytes.Clone(keyAppMeta), name...), value); err != nil {
		return fmt.Errorf("commitment: storing %q: %w", name, err)
	}
	return nil
}

// GetMeta returns the application record stored under name, or nil.
func (db *DB) GetMeta(name string) ([]byte, error) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.committed.closed {
		return nil, ErrClosed
	}
	v, _, err := getMeta(db.pebble, append(bytes.Clone(keyAppMeta), name...), name)
	return v, err
}
