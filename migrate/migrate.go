package migrate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"runtime/debug"
	"sync/atomic"
	"time"

	idb "github.com/cosmos/iavl/db"

	"github.com/nomtstore/nomtstore/commitment"
)

var (
	// ErrNotEmpty is the error for a nomtstore directory that already
	// holds a state that is not this migration's.
	ErrNotEmpty = errors.New("migrate: the nomtstore directory already holds state")
	// ErrMismatch is the error of a verification that found nomtstore and
	// IAVL disagreeing.
	ErrMismatch = errors.New("migrate: nomtstore and IAVL differ")
)

// Options tune a migration.
type Options struct {
	// SkipVerify skips the key-for-key comparison with IAVL that follows
	// the commit.
	SkipVerify bool
	// Engine opens the nomtstore engine (the node's [nomtstore] settings);
	// its BulkProgress is the migration's.
	Engine commitment.Options
	// Progress, if set, is called from the migrating goroutine about every
	// ProgressEvery (default one second) and at the end of each phase.
	Progress      func(Progress)
	ProgressEvery time.Duration
}

// Progress is where a migration stands.
type Progress struct {
	// Phase is "copy" (IAVL's leaves streaming into the bulk load),
	// "build" (nomtstore building and writing its pages) or "verify".
	Phase string
	Store string
	// Keys counts the keys done in the phase, of TotalKeys (every store).
	Keys, TotalKeys int64
	Bytes           int64 // key and value bytes copied, in "copy"
	Elapsed         time.Duration
}

// Result reports a migration.
type Result struct {
	Height  int64
	AppHash []byte // IAVL's, which the migrated store answers at Height
	Stores  int
	Keys    int64
	Bytes   int64 // key and value bytes
	// Resumed: the directory already held this migration, committed by an
	// earlier run that did not finish verifying; only verification ran.
	Resumed bool
	// CopyTime is the copy of IAVL's leaves into the bulk load, during
	// which IAVL was read for ReadTime (on its own goroutine, overlapped);
	// BuildTime is nomtstore's build and commit after it; VerifyTime the
	// comparison with IAVL (both read at once).
	CopyTime, ReadTime, BuildTime, VerifyTime time.Duration
	// DiskBytes is the size of the nomtstore directory afterwards.
	DiskBytes int64
}

// FromIAVL writes the state of src, an IAVL application database at one
// height, into the nomtstore directory dir as that height's version, through
// the engine's bulk load, then (unless opts.SkipVerify) compares every store
// key for key with IAVL.
//
// The version's commit record is IAVL's commit info, byte for byte, so the
// migrated store reports IAVL's app hash at that height: CometBFT's
// handshake finds the app hash it recorded, and the next block commits
// nomtstore's roots. The IAVL database is only read.
//
// dir must hold no version. A run that fails or is killed before its commit
// leaves it empty, ready for another; after its commit, a new run finds its
// own version there and only verifies it.
func FromIAVL(ctx context.Context, src *Source, dir string, opts Options) (res *Result, err error) {
	m := &migration{src: src, opts: opts, start: time.Now()}
	if m.opts.ProgressEvery <= 0 {
		m.opts.ProgressEvery = time.Second
	}
	res = &Result{Height: src.height, AppHash: src.AppHash, Stores: len(src.Info.Stores)}
	if err := m.openTrees(); err != nil {
		return nil, err
	}
	engineOpts := opts.Engine
	engineOpts.BulkProgress = m.buildProgress
	// The migration serves no blocks: caches of the latest values and
	// leaves would only hold memory (the node fills its own when it opens).
	engineOpts.ValueCacheBytes, engineOpts.LeafCacheBytes, engineOpts.ColdCaches = -1, -1, true
	db, err := commitment.Open(dir, nil, engineOpts)
	if err != nil {
		return nil, fmt.Errorf("migrate: opening nomtstore in %s: %w", dir, err)
	}
	m.db = db
	defer func() {
		if cerr := m.db.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("migrate: closing nomtstore: %w", cerr)
		}
	}()

	switch v := db.Version(); {
	case v == 0:
		if err := m.copy(ctx, res); err != nil {
			return nil, err
		}
		// Verification reads a freshly opened engine: what the bulk load
		// built and wrote goes with the one that ran it, instead of
		// staying live beside the verification's reads (at 10M keys the
		// two together peaked at 2.8 GiB, each alone at 1.4 GiB).
		if err := m.db.Close(); err != nil {
			return nil, fmt.Errorf("migrate: closing nomtstore after the load: %w", err)
		}
		debug.FreeOSMemory()
		if m.db, err = commitment.Open(dir, nil, engineOpts); err != nil {
			return nil, fmt.Errorf("migrate: reopening nomtstore in %s: %w", dir, err)
		}
	case v == uint64(src.height) && m.holdsThisMigration():
		res.Resumed = true
		res.Keys = m.total
	default:
		return nil, fmt.Errorf("%w: %s is at version %d (earliest %d); migrating needs an empty store: move it away or delete it",
			ErrNotEmpty, dir, v, db.EarliestVersion())
	}
	if !opts.SkipVerify {
		verifyStart := time.Now()
		if err := m.verify(ctx); err != nil {
			return nil, err
		}
		res.VerifyTime = time.Since(verifyStart)
	}
	if err := m.db.WaitFlushed(); err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	res.DiskBytes = DirBytes(dir)
	return res, nil
}

type migration struct {
	src   *Source
	opts  Options
	db    *commitment.DB
	start time.Time
	names []string
	trees map[string]iavlTree
	total int64
	// readTime sums the IAVL readers' busy time while copying.
	readTime atomic.Int64
	// phase and lastReport pace progress reports.
	phase      string
	lastReport time.Time
}

// iavlTree is what the migration needs of an IAVL tree.
type iavlTree interface {
	Size() int64
	Iterator(start, end []byte, ascending bool) (idb.Iterator, error)
}

func (m *migration) openTrees() error {
	m.names = m.src.Stores()
	m.trees = make(map[string]iavlTree, len(m.names))
	for _, name := range m.names {
		tree, err := m.src.Tree(name)
		if err != nil {
			return err
		}
		m.trees[name] = tree
		m.total += tree.Size()
	}
	return nil
}

// holdsThisMigration: the store's only version is the source's height and
// carries the source's commit info.
func (m *migration) holdsThisMigration() bool {
	record, err := m.db.VersionRecord(uint64(m.src.height))
	return err == nil && bytes.Equal(record, m.src.RawInfo) && m.db.EarliestVersion() == uint64(m.src.height)
}

func (m *migration) copy(ctx context.Context, res *Result) (err error) {
	if err := m.db.AddTrees(m.names...); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := m.db.SetInitialVersion(uint64(m.src.height)); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := m.db.BeginBulk(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer func() {
		if err != nil {
			m.db.Discard() // the store is empty again
		}
	}()
	copyStart := time.Now()
	var keys, bytes int64
	m.phase = "copy"
	for _, name := range m.names {
		// IAVL is read on its own goroutine, a batch ahead of the load.
		pairs := m.readAhead(ctx, name, true)
		for batch := range pairs.batches {
			for _, kv := range batch {
				if err := m.db.Set(name, kv.key, kv.value); err != nil {
					pairs.stop()
					return fmt.Errorf("migrate: store %q, key %X: %w", name, kv.key, err)
				}
				keys++
				bytes += int64(len(kv.key) + len(kv.value))
			}
			if err := ctx.Err(); err != nil {
				pairs.stop()
				return err
			}
			m.report(Progress{Store: name, Keys: keys, Bytes: bytes}, false)
		}
		if err := pairs.err(); err != nil {
			return err
		}
	}
	if keys != m.total {
		return fmt.Errorf("%w: IAVL's trees say %d keys but their iterators gave %d: the IAVL database is corrupt", ErrMismatch, m.total, keys)
	}
	m.report(Progress{Keys: keys, Bytes: bytes}, true)
	buildStart := time.Now()
	m.phase = "build"
	m.db.SetVersionRecord(m.src.RawInfo)
	if _, err := m.db.WorkingRoots(); err != nil {
		return fmt.Errorf("migrate: building nomtstore's trees: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	committed, err := m.db.Commit()
	if err != nil {
		return fmt.Errorf("migrate: committing version %d: %w", m.src.height, err)
	}
	if committed.Version != uint64(m.src.height) {
		return fmt.Errorf("migrate: committed version %d, not %d", committed.Version, m.src.height)
	}
	m.report(Progress{Keys: keys}, true)
	res.Keys, res.Bytes = keys, bytes
	res.ReadTime = time.Duration(m.readTime.Load())
	res.CopyTime = buildStart.Sub(copyStart)
	res.BuildTime = time.Since(buildStart)
	return nil
}

// buildProgress forwards the engine's build progress.
func (m *migration) buildProgress(p commitment.BulkProgress) {
	if p.Phase != "build" {
		return
	}
	m.report(Progress{Store: p.Tree, Keys: p.Built}, false)
}

// verify compares every store of nomtstore's version with IAVL's tree,
// key for key, value for value.
func (m *migration) verify(ctx context.Context) error {
	m.phase = "verify"
	if trees := m.db.Trees(); len(trees) != len(m.names) {
		return fmt.Errorf("%w: nomtstore has the stores %v, IAVL %v", ErrMismatch, trees, m.names)
	}
	var done int64
	for _, name := range m.names {
		n, err := m.verifyStore(ctx, name, done)
		if err != nil {
			return err
		}
		if want := m.trees[name].Size(); n != want {
			return fmt.Errorf("%w: store %q: IAVL's tree says %d keys, nomtstore has %d", ErrMismatch, name, want, n)
		}
		done += n
	}
	m.report(Progress{Keys: done}, true)
	return nil
}

func (m *migration) verifyStore(ctx context.Context, name string, done int64) (n int64, err error) {
	got, err := m.db.NewIteratorAt(name, nil, nil, false, uint64(m.src.height))
	if err != nil {
		return 0, fmt.Errorf("migrate: store %q: %w", name, err)
	}
	defer func() { err = errors.Join(err, got.Close()) }()
	want := m.readAhead(ctx, name, false)
	defer want.stop()
	for batch := range want.batches {
		for _, kv := range batch {
			switch {
			case !got.Valid():
				return n, fmt.Errorf("%w: store %q: nomtstore ends before IAVL's key %X", ErrMismatch, name, kv.key)
			case !bytes.Equal(got.Key(), kv.key):
				return n, fmt.Errorf("%w: store %q: IAVL's next key is %X, nomtstore's %X", ErrMismatch, name, kv.key, got.Key())
			case !bytes.Equal(got.Value(), kv.value):
				return n, fmt.Errorf("%w: store %q: key %X: IAVL's value is %X, nomtstore's %X", ErrMismatch, name, kv.key, kv.value, got.Value())
			}
			n++
			got.Next()
		}
		if err := ctx.Err(); err != nil {
			return n, err
		}
		m.report(Progress{Store: name, Keys: done + n}, false)
	}
	if err := want.err(); err != nil {
		return n, err
	}
	if got.Valid() {
		return n, fmt.Errorf("%w: store %q: nomtstore has key %X after IAVL's last", ErrMismatch, name, got.Key())
	}
	if err := got.Error(); err != nil {
		return n, fmt.Errorf("migrate: verifying store %q: %w", name, err)
	}
	return n, nil
}

func (m *migration) report(p Progress, final bool) {
	if m.opts.Progress == nil {
		return
	}
	now := time.Now()
	if !final && now.Sub(m.lastReport) < m.opts.ProgressEvery {
		return
	}
	m.lastReport = now
	p.Phase, p.TotalKeys, p.Elapsed = m.phase, m.total, now.Sub(m.start)
	m.opts.Progress(p)
}

// DirBytes is the size of a directory's files (a symlinked directory's).
func DirBytes(dir string) int64 {
	if resolved, err := filepath.EvalSymlinks(dir); err == nil {
		dir = resolved
	}
	var total int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if info, err := d.Info(); err == nil {
			total += info.Size()
		}
		return nil
	})
	return total
}
