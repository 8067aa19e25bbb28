package commitment

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/bloom"

	"github.com/nomtstore/nomtstore/commitment/bitbox"
	"github.com/nomtstore/nomtstore/commitment/trie"
	"github.com/nomtstore/nomtstore/commitment/vfs"
)

// Opening a directory: its format file, Pebble tuned for the engine, and
// recovery (load): the commits in the log that Pebble had not flushed are
// replayed, an interrupted large commit is finished and an unfinished bulk
// load wiped, the page table is brought to the last commit (pages.go's
// recover), and each tree's top is checked against its committed root
// before anything reads it.

// Open opens (or creates) the engine directory dir with the named trees.
// Trees already in the directory but not named stay as they are; new names
// are registered. Open recovers from a crash: it replays the WAL of the last
// commit if its pages were not all written, and discards any other WAL.
func Open(dir string, treeNames []string, opts Options) (*DB, error) {
	o := opts.withDefaults()
	if err := prepareDir(o.FS, dir); err != nil {
		return nil, err
	}
	db := &DB{dir: dir, opts: o, staged: newStagedWrites()}
	db.committed.values, db.committed.leaves = newValueCache(o.ValueCacheBytes), newLeafCache(o.LeafCacheBytes)
	var err error
	db.pebbleOpts = pebbleOptions(o)
	db.pebble, err = pebble.Open(filepath.Join(dir, pebbleDir), db.pebbleOpts)
	if err != nil {
		return nil, fmt.Errorf("commitment: opening Pebble in %s: %w", dir, err)
	}
	db.history, err = openHistory(dir, historyOptions(o, db.pebbleOpts.Cache))
	if err != nil {
		_ = db.pebble.Close()
		return nil, fmt.Errorf("commitment: opening the page history's Pebble in %s: %w", dir, err)
	}
	db.protocol = commitProtocol{dir: dir, opts: &db.opts, pebble: db.pebble, history: db.history.DB, stats: &db.stats,
		mu: &db.mu, state: &db.committed, gate: newCommitGate()}
	if err := db.load(treeNames); err != nil {
		_ = db.pebble.Close()
		_ = db.history.Close()
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
		FS:     vfs.Coalescing(vfs.PebbleFS(o.FS)),
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
		// Every flush spans the whole key space (values, leaf index and
		// history all change each block), so each L0 compaction rewrites
		// nearly all of the level below: its cost is that level's size,
		// whatever L0 holds. Compacting once per 12 flushes instead of 4
		// takes two thirds of those rewrites away (W1 at 1M keys over 200
		// blocks: CPU -17%, bytes written -27%; W3 over 500: +23% writes/s)
		// for a few flushes more on disk and in a point lookup's filters.
		L0CompactionThreshold:    12,
		L0StopWritesThreshold:    36,
		LBaseMaxBytes:            256 << 20,
		MaxConcurrentCompactions: func() int { return max(1, o.Workers/2) },
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

// historyOptions tunes the page history's Pebble: keys arrive in version
// order, each flush holds versions after everything already there, so its
// tables do not overlap and compactions move them down a level without
// rewriting them. Their one write is the flush: compressed there. It keeps
// its own log, synced before each commit frame (commit.go): a version is
// committed only with its history durable. The log takes on disk only what
// it holds (vfs.Unreserved).
func historyOptions(o Options, cache *pebble.Cache) *pebble.Options {
	opts := &pebble.Options{
		FS:     vfs.Coalescing(vfs.Unreserved(vfs.PebbleFS(o.FS))),
		Cache:  cache,
		Logger: quietPebbleLogger{o.Logger},
		// Its log holds what the memtable holds: a small memtable keeps
		// the log small on disk (~2 MiB of history a block at 1M keys).
		MemTableSize:                8 << 20,
		MemTableStopWritesThreshold: 2,
		MaxConcurrentCompactions:    func() int { return 1 },
	}
	opts.Levels = make([]pebble.LevelOptions, 7)
	for i := range opts.Levels {
		l := &opts.Levels[i]
		l.BlockSize = 4 << 10
		l.Compression = pebble.SnappyCompression
		if i < len(opts.Levels)-1 {
			l.FilterPolicy = bloom.FilterPolicy(10)
			l.FilterType = pebble.TableFilter
		}
		l.TargetFileSize = 32 << 20
	}
	return opts
}

// readCommitRecord reads the commit record Pebble holds: the empty
// version's if none.
func readCommitRecord(pdb *pebble.DB) (*commitRecord, error) {
	v, ok, err := getMeta(pdb, keyCommit, "the commit record")
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
			// pebble/ and history/ (empty) and FORMAT.tmp are what a
			// first Open cut before writing FORMAT leaves;
			// writeFormatFile starts over.
			if e.Name() != pebbleDir && e.Name() != historyDir && e.Name() != formatFile+".tmp" {
				return fmt.Errorf("%w: %s has no %s file but holds %q", ErrNotNomtstore, dir, formatFile, e.Name())
			}
		}
		// Before the format file, whose directory sync makes its entry
		// durable: Pebble syncs the directories inside its own, never its
		// own entry in dir.
		for _, sub := range []string{pebbleDir, historyDir} {
			if err := fs.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
				return fmt.Errorf("commitment: creating %s: %w", filepath.Join(dir, sub), err)
			}
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
	flushed, err := readCommitRecord(db.pebble)
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
	record, err := readCommitRecord(db.pebble)
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
	earliest, err := readEarliest(db.pebble)
	if err != nil {
		return err
	}
	db.committed.earliest.Store(earliest)
	if e := db.committed.earliest.Load(); (e == 0) != (record.version == 0) || e > record.version {
		return fmt.Errorf("%w: earliest version %d with latest %d", ErrCorrupt, e, record.version)
	}
	if err := db.history.dropStray(db.committed.earliest.Load(), record.version); err != nil {
		return fmt.Errorf("commitment: deleting the page history of versions not retained: %w", err)
	}

	registry := map[string]trie.StoreID{}
	if v, ok, err := getMeta(db.pebble, keyTrees, "the tree registry"); err != nil {
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
	db.committed.snap = newSnapshot(db.pebble, db.history.DB)
	return db.checkRootPages()
}

// loadParams reads the directory's fixed parameters, writing them from the
// options into a new directory.
func (db *DB) loadParams() error {
	v, ok, err := getMeta(db.pebble, keyParams, "the directory parameters")
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
	db.committed.pages = &pageStore{table: table, cache: newPageCache(db.opts.PageCachePages), mu: &db.mu, pebble: db.pebble, history: db.history,
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
