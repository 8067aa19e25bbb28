package commitment

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/bloom"

	"github.com/nomtstore/nomtstore/commitment/bitbox"
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
// format 5 build would not replay.
const FormatVersion = 7

const (
	formatFile = "FORMAT"
	tableFile  = "pages.ht"
	pebbleDir  = "pebble"
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
	// the leaf index. Default 512 MiB; negative turns it off.
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
		out.LeafCacheBytes = 512 << 20
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

	writeMu sync.Mutex
	// staged is the next version: its changes, its record and its working
	// set (working.go). REQUIRES: writeMu.
	staged stagedWrites
	// bulk is the running bulk load, if any (bulk.go). REQUIRES: writeMu.
	bulk *bulkLoad
	// failed is sticky once a commit point, a checkpoint, or a growth past
	// its rename failed. REQUIRES: writeMu.
	failed error
	// initialVersion is the first commit's version when nothing is
	// committed yet (0: version 1). REQUIRES: writeMu.
	initialVersion uint64
	// batchSize is the last commit batch's size: the next batch starts
	// with room for a block like it (up to maxBatchHint, so that one huge
	// block does not make every next batch huge) instead of doubling its
	// way there, copying everything at each step. REQUIRES: writeMu.
	batchSize int

	// pruneMu serializes pruning and rollback.
	pruneMu sync.Mutex
	// gate tells pruning when a commit is syncing.
	gate *commitGate

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

// Open opens (or creates) the engine directory dir with the named trees.
// Trees already in the directory but not named stay as they are; new names
// are registered. Open recovers from a crash: it replays the WAL of the last
// commit if its pages were not all written, and discards any other WAL.
func Open(dir string, treeNames []string, opts Options) (*DB, error) {
	o := opts.withDefaults()
	if err := prepareDir(o.FS, dir); err != nil {
		return nil, err
	}
	db := &DB{dir: dir, opts: o, staged: newStagedWrites(), gate: newCommitGate()}
	db.committed.values, db.committed.leaves = newValueCache(o.ValueCacheBytes), newLeafCache(o.LeafCacheBytes)
	var err error
	db.pebbleOpts = pebbleOptions(o)
	db.pebble, err = pebble.Open(filepath.Join(dir, pebbleDir), db.pebbleOpts)
	if err != nil {
		return nil, fmt.Errorf("commitment: opening Pebble in %s: %w", dir, err)
	}
	if err := db.load(treeNames); err != nil {
		_ = db.pebble.Close()
		if db.committed.pages != nil && db.committed.pages.table != nil {
			_ = db.committed.pages.table.Close()
		}
		return nil, err
	}
	st := db.committed.pages.table.Stats()
	if !o.ColdCaches {
		db.warmCaches()
	}
	db.startWarmer()
	o.Logger.Info("nomtstore engine open", "dir", dir, "version", db.committed.record.version, "earliest", db.committed.earliest.Load(), "trees", len(db.committed.trees),
		"table_buckets", st.Buckets, "table_pages", st.Full, "table_load", fmt.Sprintf("%.3f", st.LoadFactor), "elide_below", db.committed.elideBelow)
	return db, nil
}

// pebbleOptions tunes Pebble for the engine's load: keys arrive in random
// order (hashed paths, random accounts), every commit is a synced batch, and
// point lookups (values, leaves) dominate reads.
func pebbleOptions(o Options) *pebble.Options {
	opts := &pebble.Options{
		FS:     vfs.PebbleFS(o.FS),
		Cache:  pebble.NewCache(o.PebbleCacheBytes),
		Logger: quietPebbleLogger{o.Logger},
		// The engine's log holds every commit's batch until a flush:
		// Pebble's own would write them again (and kept four preallocated
		// files of a memtable each).
		DisableWAL: true,
		// A memtable absorbs several blocks before a flush; fewer, larger
		// L0 files mean fewer compactions of random keys (16 MiB cost a
		// fifth of W1's speed at 1M keys in compactions).
		MemTableSize:                32 << 20,
		MemTableStopWritesThreshold: 2,
		L0CompactionThreshold:       4,
		L0StopWritesThreshold:       24,
		LBaseMaxBytes:               256 << 20,
		MaxConcurrentCompactions:    func() int { return max(1, o.Workers/2) },
	}
	opts.Levels = make([]pebble.LevelOptions, 7)
	for i := range opts.Levels {
		l := &opts.Levels[i]
		// Point lookups read a whole block on a cache miss: small blocks.
		l.BlockSize = 4 << 10
		// Flushes and the first compactions run every few blocks and write
		// mostly hashes, page deltas and WAL records, which barely
		// compress: snappy there is CPU for little. The last two levels,
		// where the data rests, stay compressed.
		if i < len(opts.Levels)-2 {
			l.Compression = pebble.NoCompression
		}
		// Point lookups skip the files without their key. The last level
		// holds most keys and a lookup there usually finds its key: its
		// filter would take cache for little.
		if i < len(opts.Levels)-1 {
			l.FilterPolicy = bloom.FilterPolicy(10)
			l.FilterType = pebble.TableFilter
		}
		// Files of at most 64 MiB: a table's filter is one block, which a
		// cache miss reads whole.
		l.TargetFileSize = 8 << 20
		if i > 0 {
			l.TargetFileSize = min(opts.Levels[i-1].TargetFileSize*2, 64<<20)
		}
	}
	return opts
}

// readCommitRecord reads the commit record Pebble holds: the empty
// version's if none.
func (db *DB) readCommitRecord() (*commitRecord, error) {
	v, ok, err := db.getMeta(keyCommit, "the commit record")
	if err != nil || !ok {
		return &commitRecord{roots: map[trie.StoreID]trie.Hash{}}, err
	}
	return decodeCommitRecord(v)
}

// setDurably writes one record outside any commit. Pebble keeps no log
// (the engine's log holds the commits' batches): a flush is what makes the
// write, and everything before it, durable.
func setDurably(pdb *pebble.DB, key, value []byte) error {
	if err := pdb.Set(key, value, pebble.NoSync); err != nil {
		return err
	}
	return pdb.Flush()
}

// prepareDir creates a new directory with its FORMAT file, or checks the
// format of an existing one.
func prepareDir(fs vfs.FS, dir string) error {
	// Nothing is created inside dir before its format is known: a
	// directory that is not ours, or of another format, is left as it is.
	if err := mkdirDurably(fs, dir); err != nil {
		return err
	}
	path := filepath.Join(dir, formatFile)
	f, err := fs.OpenFile(path, os.O_RDONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		entries, err := fs.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("commitment: reading %s: %w", dir, err)
		}
		for _, e := range entries {
			// pebble/ (empty) and FORMAT.tmp are what a first Open cut
			// before writing FORMAT leaves; writeFormatFile starts over.
			if e.Name() != pebbleDir && e.Name() != formatFile+".tmp" {
				return fmt.Errorf("%w: %s has no %s file but holds %q", ErrNotNomtstore, dir, formatFile, e.Name())
			}
		}
		// Before the format file, whose directory sync makes its entry
		// durable: Pebble syncs the directories inside its own, never its
		// own entry in dir.
		if err := fs.MkdirAll(filepath.Join(dir, pebbleDir), 0o755); err != nil {
			return fmt.Errorf("commitment: creating %s: %w", filepath.Join(dir, pebbleDir), err)
		}
		return writeFormatFile(fs, dir)
	}
	if err != nil {
		return fmt.Errorf("commitment: opening %s: %w", path, err)
	}
	defer func() { _ = f.Close() }()
	buf := make([]byte, 64)
	n, _ := f.ReadAt(buf, 0)
	var version int
	if _, err := fmt.Sscanf(string(buf[:n]), "nomtstore-format %d\n", &version); err != nil {
		return fmt.Errorf("%w: %s does not say a nomtstore format (%q)", ErrNotNomtstore, path, bytes.TrimSpace(buf[:n]))
	}
	if version != FormatVersion {
		hint := ""
		if version < FormatVersion {
			hint = "; this build cannot read older directories: restore the node from a state-sync snapshot or resync it"
		}
		return fmt.Errorf("%w: %s is format %d, this build reads format %d%s", ErrFormatVersion, dir, version, FormatVersion, hint)
	}
	return nil
}

// mkdirDurably creates dir and its missing parents, and makes each one's
// entry in its parent durable: otherwise a power cut could take the whole
// store, commits and all, with the entry. dir's own entry is synced even
// when dir exists, since an earlier Open may have stopped before syncing it.
func mkdirDurably(fs vfs.FS, dir string) error {
	dir = filepath.Clean(dir)
	toSync := []string{filepath.Dir(dir)}
	for d := dir; filepath.Dir(d) != d; d = filepath.Dir(d) {
		if _, err := fs.Stat(d); err == nil {
			break
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("commitment: %s: %w", d, err)
		}
		if d != dir {
			toSync = append(toSync, filepath.Dir(d))
		}
	}
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("commitment: creating %s: %w", dir, err)
	}
	for _, d := range toSync {
		if err := fs.SyncDir(d); err != nil {
			return fmt.Errorf("commitment: syncing %s, which holds the store directory %s: %w", d, dir, err)
		}
	}
	return nil
}

func writeFormatFile(fs vfs.FS, dir string) error {
	tmp := filepath.Join(dir, formatFile+".tmp")
	f, err := fs.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("commitment: creating %s: %w", tmp, err)
	}
	_, err = fmt.Fprintf(f, "nomtstore-format %d\n", FormatVersion)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fs.Rename(tmp, filepath.Join(dir, formatFile))
	}
	if err == nil {
		err = fs.SyncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("commitment: writing %s: %w", formatFile, err)
	}
	return nil
}

// load reads the committed state, recovers the page table and registers trees.
func (db *DB) load(treeNames []string) error {
	// First: the commits synced in the log whose batches Pebble had not
	// flushed, which hold the commit record everything below reads.
	wal, found, err := openWALLog(db.opts.FS, db.dir)
	if err != nil {
		return err
	}
	at, err := wal.index(found, 0)
	if err != nil {
		return err
	}
	flushed, err := db.readCommitRecord()
	if err != nil {
		return err
	}
	durable := flushed.lastSeq
	// A large commit interrupted after its commit point (its pending
	// record flushed) is finished before the commits after it are
	// replayed, which may set the keys its chunks set; a replayed one is
	// finished as its frame is applied. Its chunks hold some of its
	// records (the earliest version, roots), which everything below reads.
	applied, err := finishPending(db.pebble)
	if err != nil {
		return fmt.Errorf("commitment: finishing the last commit's chunks: %w", err)
	}
	replayedTo, replayed, err := replayCommits(db.pebble, wal, at, durable, found)
	if err != nil {
		return err
	}
	if err := dropOrphanChunks(db.pebble); err != nil {
		return fmt.Errorf("commitment: deleting the chunks of a commit that never happened: %w", err)
	}
	record, err := db.readCommitRecord()
	if err != nil {
		return err
	}
	db.committed.record = record
	if replayed > 0 {
		db.opts.Logger.Info("nomtstore replayed commits from the log", "versions", replayed, "from_seq", durable+1, "to_seq", replayedTo, "version", record.version)
	}
	if applied > 0 {
		db.opts.Logger.Info("nomtstore applied the chunks of a large commit interrupted after its commit point", "version", record.version, "chunks", applied)
	}
	if v, ok, err := db.getMeta(keyEarliest, "the earliest version"); err != nil {
		return err
	} else if ok {
		if len(v) != 8 {
			return fmt.Errorf("%w: earliest version record of %d bytes", ErrCorrupt, len(v))
		}
		db.committed.earliest.Store(binary.BigEndian.Uint64(v))
	}
	if e := db.committed.earliest.Load(); (e == 0) != (record.version == 0) || e > record.version {
		return fmt.Errorf("%w: earliest version %d with latest %d", ErrCorrupt, e, record.version)
	}

	registry := map[string]trie.StoreID{}
	if v, ok, err := db.getMeta(keyTrees, "the tree registry"); err != nil {
		return err
	} else if ok {
		if registry, err = decodeRegistry(v); err != nil {
			return err
		}
	}

	if err := db.loadParams(); err != nil {
		return err
	}
	if err := db.discardUnfinishedBulk(); err != nil {
		return err
	}

	if err := db.openTable(); err != nil {
		return err
	}
	if err := db.register(registry, treeNames); err != nil {
		return err
	}
	db.committed.pages.wal = wal
	if err := db.committed.pages.recover(db.committed.record, found, at); err != nil {
		return err
	}
	db.committed.snap = newSnapshot(db.pebble)
	return db.checkRootPages()
}

// loadParams reads the directory's fixed parameters, writing them from the
// options into a new directory.
func (db *DB) loadParams() error {
	v, ok, err := db.getMeta(keyParams, "the directory parameters")
	if err != nil {
		return err
	}
	if !ok {
		if db.committed.record.version > 0 {
			return fmt.Errorf("%w: version %d is committed but the directory has no parameters record", ErrCorrupt, db.committed.record.version)
		}
		db.committed.elideBelow = db.opts.ElideBelow
		params := binary.BigEndian.AppendUint32(nil, uint32(db.committed.elideBelow))
		if err := setDurably(db.pebble, keyParams, params); err != nil {
			return fmt.Errorf("commitment: saving the directory parameters: %w", err)
		}
		return nil
	}
	if len(v) != 4 {
		return fmt.Errorf("%w: parameters record of %d bytes", ErrCorrupt, len(v))
	}
	db.committed.elideBelow = int(binary.BigEndian.Uint32(v))
	if db.committed.elideBelow < 1 || db.committed.elideBelow > 1<<16 {
		return fmt.Errorf("%w: elision threshold %d in the parameters record", ErrCorrupt, db.committed.elideBelow)
	}
	return nil
}

// checkRootPages checks that each tree's top agrees with its committed
// root: a page table that lags the commit record (lost WAL records, a
// restored backup of one file but not the other) is refused here rather
// than read.
func (db *DB) checkRootPages() error {
	for _, t := range db.committed.trees {
		tr, _ := db.committed.view(t, db.committed.record.version).trie(nil)
		if err := tr.CheckRoot(db.committed.record.roots[t.store]); err != nil {
			return fmt.Errorf("commitment: tree %q at version %d: %w", t.name, db.committed.record.version, err)
		}
	}
	return nil
}

// getMeta reads one of the engine's own Pebble records, if present.
func (db *DB) getMeta(key []byte, what string) ([]byte, bool, error) {
	return getMeta(db.pebble, key, what)
}

// getMeta reads one record of a Pebble instance, if present.
func getMeta(pdb *pebble.DB, key []byte, what string) ([]byte, bool, error) {
	v, closer, err := pdb.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("commitment: reading %s: %w", what, err)
	}
	defer func() { _ = closer.Close() }()
	return bytes.Clone(v), true, nil
}

func (db *DB) openTable() error {
	fs, path := db.opts.FS, filepath.Join(db.dir, tableFile)
	if err := bitbox.RemoveLeftovers(fs, path); err != nil {
		return err
	}
	var table *bitbox.Table
	_, err := fs.Stat(path)
	switch {
	case err == nil:
		table, err = bitbox.OpenTable(fs, path)
	case errors.Is(err, os.ErrNotExist):
		if db.committed.record.version > 0 {
			return fmt.Errorf("%w: %s is missing but version %d is committed", ErrCorrupt, path, db.committed.record.version)
		}
		var seed [8]byte
		_, _ = rand.Read(seed[:])
		table, err = bitbox.CreateTable(fs, path, db.opts.InitialBuckets, binary.BigEndian.Uint64(seed[:]))
	}
	if err != nil {
		return fmt.Errorf("commitment: page table: %w", err)
	}
	db.committed.pages = &pageStore{table: table, cache: newPageCache(db.opts.PageCachePages), mu: &db.mu, pebble: db.pebble,
		lastSeq: func() uint64 { return db.committed.record.lastSeq }, opts: &db.opts}
	return nil
}

// register assigns store ids to new tree names and persists the registry.
func (db *DB) register(registry map[string]trie.StoreID, names []string) error {
	next := trie.StoreID(1)
	for _, id := range registry {
		next = max(next, id+1)
	}
	changed := false
	for _, name := range names {
		if name == "" {
			return errors.New("commitment: a tree needs a name")
		}
		if _, ok := registry[name]; !ok {
			registry[name] = next
			next++
			changed = true
		}
	}
	if changed {
		if err := setDurably(db.pebble, keyTrees, encodeRegistry(registry)); err != nil {
			return fmt.Errorf("commitment: saving the tree registry: %w", err)
		}
	}
	if db.committed.trees == nil {
		db.committed.trees = map[string]*tree{}
		db.committed.byStore = map[trie.StoreID]*tree{}
	}
	// Existing trees keep their objects: staged changes are keyed by them.
	for name, id := range registry {
		if _, ok := db.committed.trees[name]; !ok {
			t := &tree{name: name, store: id}
			db.committed.trees[name] = t
			db.committed.byStore[id] = t
		}
	}
	return nil
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
	db.mu.RLock()
	closed := db.committed.closed
	db.mu.RUnlock()
	if closed {
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
	if db.sticky() == nil {
		flushErr = db.committed.pages.checkpointNow()
		if flushErr == nil {
			// What ran outside commits since (pruning) is in memtables,
			// which Pebble, keeping no log, does not write at close.
			flushErr = db.pebble.Flush()
		}
	} else {
		flushErr = errors.Join(db.failed, db.committed.pages.reap(true))
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
	err := errors.Join(flushErr, db.committed.pages.table.Close(), db.pebble.Close())
	if err != nil {
		return fmt.Errorf("commitment: closing %s: %w", db.dir, err)
	}
	return nil
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

// quietPebbleLogger sends Pebble's chatter to the engine's logger at debug
// level, and its fatal errors as errors.
type quietPebbleLogger struct{ l *slog.Logger }

func (q quietPebbleLogger) Infof(format string, args ...any) {
	q.l.Debug(strings.TrimSpace(fmt.Sprintf(format, args...)), "component", "pebble")
}

func (q quietPebbleLogger) Errorf(format string, args ...any) {
	q.l.Error(strings.TrimSpace(fmt.Sprintf(format, args...)), "component", "pebble")
}

func (q quietPebbleLogger) Fatalf(format string, args ...any) {
	q.l.Error(strings.TrimSpace(fmt.Sprintf(format, args...)), "component", "pebble")
	panic(fmt.Sprintf(format, args...))
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
	db.initialVersion = v
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
	v, _, err := db.getMeta(append(bytes.Clone(keyAppMeta), name...), name)
	return v, err
}
