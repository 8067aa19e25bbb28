package commitment

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/cespare/xxhash/v2"

	"github.com/nomtstore/nomtstore/commitment/bitbox"
	"github.com/nomtstore/nomtstore/commitment/trie"
	"github.com/nomtstore/nomtstore/commitment/vfs"
)

// The fault tests prove the failure half of the commit protocol (commit.go):
// a fault before the commit point leaves the previous version, a fault after
// it is sticky but loses nothing, damage is reported as corruption with its
// file and offset, and bad input never reaches the store.

func ftCloneModel(m model) model {
	out := model{}
	for tree, kv := range m {
		out[tree] = make(map[string][]byte, len(kv))
		for k, v := range kv {
			out[tree][k] = v
		}
	}
	return out
}

func ftOpen(t *testing.T, dir string, opts Options) *DB {
	t.Helper()
	db, err := Open(dir, testTrees, opts)
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	return db
}

// ftCommit fails the test unless the commit makes exactly version want.
func ftCommit(t *testing.T, db *DB, want uint64) {
	t.Helper()
	res, err := db.Commit()
	if err != nil {
		t.Fatalf("commit %d: %v", want, err)
	}
	if res.Version != want {
		t.Fatalf("commit made version %d, want %d", res.Version, want)
	}
}

// ftWALs lists the sequence numbers of the WAL records an open DB's log
// keeps: after recovery, or after a failed checkpoint, they are part of
// the contract.
func ftWALs(t *testing.T, db *DB) []uint64 {
	t.Helper()
	var seqs []uint64
	for _, s := range ftSegments(t, db.dir) {
		if err := s.scan(vfs.Default, func(seq uint64, _ walLocation) { seqs = append(seqs, seq) }); err != nil {
			t.Fatal(err)
		}
	}
	return seqs
}

// ftSegments lists the log segments in dir, in order.
func ftSegments(t *testing.T, dir string) []*walSegment {
	t.Helper()
	_, found, err := openWALLog(vfs.Default, dir)
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// ftEditWAL lets edit change the bytes of the log segment holding the
// last occurrence of record seq, as damage on the disk would; edit gets
// the segment and the record's offset and length in it.
func ftEditWAL(t *testing.T, dir string, seq uint64, edit func(segment []byte, off, n int) []byte) {
	t.Helper()
	l, found, err := openWALLog(vfs.Default, dir)
	if err != nil {
		t.Fatal(err)
	}
	index, err := l.index(found, seq-1)
	if err != nil {
		t.Fatal(err)
	}
	at, ok := index[seq]
	if !ok {
		t.Fatalf("no WAL record %d in %s", seq, dir)
	}
	data, err := os.ReadFile(at.segment.path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(at.segment.path, edit(data, int(at.offset), int(at.length)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// ftNoMoreCheckpoints opens a new DB in dir with three versions committed
// and checkpointed, after which every checkpoint fails: what commits next
// is only in the log, pages and batches.
func ftNoMoreCheckpoints(t *testing.T, dir string, seed uint64) (*DB, model, *rand.Rand) {
	t.Helper()
	ffs := vfs.NewFaultFS(vfs.Default)
	opts := Options{FS: ffs, InitialBuckets: 1024, PageCachePages: 64, Workers: 2, ElideBelow: 1}
	db, m, rng := ftThreeVersions(t, dir, opts, rand.NewPCG(seed, 2))
	if err := db.WaitFlushed(); err != nil {
		t.Fatal(err)
	}
	ffs.Inject(vfs.Fault{Op: vfs.OpWrite, PathContains: tableFile, Sticky: true})
	return db, m, rng
}

// ftCloseFailing closes a DB of ftNoMoreCheckpoints, whose closing
// checkpoint fails, and returns the log's sequence numbers before it.
func ftCloseFailing(t *testing.T, db *DB) []uint64 {
	t.Helper()
	wals := ftWALs(t, db)
	if err := db.Close(); !errors.Is(err, ErrFlushFailed) {
		t.Fatalf("close: %v, want ErrFlushFailed", err)
	}
	return wals
}

// ftThreeVersions opens a new DB in dir and commits three versions of 40
// random operations each, returning the DB, their model and the random
// source, which goes on from there.
func ftThreeVersions(t *testing.T, dir string, opts Options, src rand.Source) (*DB, model, *rand.Rand) {
	t.Helper()
	rng := rand.New(src)
	db := ftOpen(t, dir, opts)
	m := newModel()
	for v := uint64(1); v <= 3; v++ {
		randomEngineBatch(t, rng, db, m, 40)
		ftCommit(t, db, v)
	}
	return db, m, rng
}

// ftList returns the names in a directory.
func ftList(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// ftReopenAt opens dir, which the caller closed, on the real file system,
// and proves it holds exactly version want with the contents of m and still
// takes commits. No WAL record is left afterwards: recovery replays the
// committed ones and checkpoints them.
func ftReopenAt(t *testing.T, rng *rand.Rand, dir string, opts Options, want uint64, m model) {
	t.Helper()
	opts.FS = vfs.Default
	db := ftOpen(t, dir, opts)
	defer func() { _ = db.Close() }()
	if v := db.Version(); v != want {
		t.Fatalf("reopened at version %d, want %d", v, want)
	}
	checkAgainstModel(t, rng, db, m)
	if left := ftWALs(t, db); len(left) > 0 {
		t.Fatalf("WAL records left after open: %v", left)
	}
	m = ftCloneModel(m)
	randomEngineBatch(t, rng, db, m, 30)
	ftCommit(t, db, want+1)
	checkAgainstModel(t, rng, db, m)
	if err := db.Close(); err != nil {
		t.Fatalf("close after recovery: %v", err)
	}
}

type ftFaultCase struct {
	name  string
	fault vfs.Fault
	// flush: the fault hits the background checkpoint, after the commit
	// point, so the version commits and the error comes later.
	flush bool
	// grow: the failing commit grows the table first; grown: the growth
	// completes and the fault comes after it.
	grow, grown bool
	// sticky: the grown table replaced the old one but may not survive a
	// crash, so no commit is taken until reopen.
	sticky bool
}

func TestCommitFailsCleanlyOnInjectedFaults(t *testing.T) {
	cases := []ftFaultCase{
		// The growth runs before the commit point (after a checkpoint of
		// the dirty pages), so its faults leave the previous version.
		// After the rename, the table the DB holds is no longer the file
		// at pages.ht, so commits must stop until reopen.
		{name: "growth write", grow: true, fault: vfs.Fault{Op: vfs.OpWrite, PathContains: "pages.ht.grow"}},
		{name: "growth disk full", grow: true, fault: vfs.Fault{Op: vfs.OpAllocate, PathContains: "pages.ht.grow", Err: vfs.ENOSPC}},
		{name: "growth rename", grow: true, fault: vfs.Fault{Op: vfs.OpRename, PathContains: "pages.ht"}},
		{name: "growth dir fsync", grow: true, sticky: true, fault: vfs.Fault{Op: vfs.OpSyncDir}},
		// The version's WAL record is appended to the log before the
		// commit point: a failure there leaves the previous version, and
		// the next attempt writes the record again, in a new segment.
		{name: "wal segment create", fault: vfs.Fault{Op: vfs.OpCreate, PathContains: walDir + "/"}},
		{name: "wal segment dir fsync", fault: vfs.Fault{Op: vfs.OpSyncDir, PathContains: "/" + walDir}},
		{name: "wal write", fault: vfs.Fault{Op: vfs.OpWrite, PathContains: walDir + "/"}},
		{name: "wal short write", fault: vfs.Fault{Op: vfs.OpWrite, PathContains: walDir + "/", Skip: 1, Short: true}},
		{name: "wal disk full", fault: vfs.Fault{Op: vfs.OpWrite, PathContains: walDir + "/", Err: vfs.ENOSPC}},
		{name: "wal fsync", fault: vfs.Fault{Op: vfs.OpSync, PathContains: walDir + "/"}},
		// The checkpoint after the commit point writes the version's pages.
		{name: "table write", flush: true, fault: vfs.Fault{Op: vfs.OpWrite, PathContains: "pages.ht"}},
		{name: "table short write", flush: true, fault: vfs.Fault{Op: vfs.OpWrite, PathContains: "pages.ht", Skip: 3, Short: true}},
		{name: "table disk full", flush: true, fault: vfs.Fault{Op: vfs.OpWrite, PathContains: "pages.ht", Err: vfs.ENOSPC}},
		{name: "table fsync", flush: true, fault: vfs.Fault{Op: vfs.OpSync, PathContains: "pages.ht"}},
	}
	for i, tc := range cases {
		// Pre-commit-point faults: the DB is reopened at once, or the same
		// staged changes are committed again in the same session, or they
		// are discarded for other ones. Flush faults: the sticky error is
		// seen by the next commit, or first by Close.
		modes := []string{"reopen", "retry", "discard"}
		if tc.flush {
			modes = []string{"next commit", "close"}
		}
		for j, mode := range modes {
			t.Run(tc.name+"/"+mode, func(t *testing.T) {
				t.Parallel()
				ftRunFaultCase(t, tc, mode, uint64(100*i+j))
			})
		}
	}
}

func ftRunFaultCase(t *testing.T, tc ftFaultCase, mode string, seed uint64) {
	dir := t.TempDir()
	ffs := vfs.NewFaultFS(vfs.Default)
	// Without growth the table is far from its load factor, so a fault on
	// pages.ht can only hit the checkpoint that follows each commit; with
	// it, the first commits stay small and the failing one is big enough
	// to grow the table. Elision is off so that small batches make pages.
	opts := Options{FS: ffs, InitialBuckets: 1024, PageCachePages: 64, Workers: 2, CheckpointInterval: 1, ElideBelow: 1}
	setupOps, failOps := 40, 60
	if tc.grow {
		opts.InitialBuckets, setupOps, failOps = 16, 5, 400
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	db := ftOpen(t, dir, opts)
	defer func() { _ = db.Close() }()
	m := newModel()
	for v := uint64(1); v <= 3; v++ {
		randomEngineBatch(t, rng, db, m, setupOps)
		ftCommit(t, db, v)
	}
	// The last checkpoint must be done, so the fault armed next cannot
	// hit it.
	ftCommit(t, db, 4)
	if err := db.WaitFlushed(); err != nil {
		t.Fatal(err)
	}
	prevVersion, prev := db.Version(), ftCloneModel(m)
	prevGen := db.Stats().Table.Generation

	ffs.Inject(tc.fault)
	randomEngineBatch(t, rng, db, m, failOps)
	wantErr := tc.fault.Err
	if wantErr == nil {
		wantErr = vfs.ErrInjected
	}
	res, err := db.Commit()

	if !tc.flush {
		if err == nil {
			t.Fatalf("commit succeeded (version %d) through the fault", res.Version)
		}
		if !errors.Is(err, wantErr) || errors.Is(err, ErrFlushFailed) {
			t.Fatalf("commit error %v: want the injected %v, before the commit point", err, wantErr)
		}
		if ffs.Hits() == 0 {
			t.Fatal("the fault never fired")
		}
		if gen := db.Stats().Table.Generation; tc.grown != (gen > prevGen) {
			t.Fatalf("table generation %d -> %d, want growth: %v", prevGen, gen, tc.grown)
		}
		if v := db.Version(); v != prevVersion {
			t.Fatalf("failed commit moved the version to %d", v)
		}
		checkAgainstModel(t, rng, db, prev)
		ffs.Reset()
		if tc.sticky {
			if mode == "discard" {
				db.Discard()
				randomEngineBatch(t, rng, db, ftCloneModel(m), 20)
			}
			if mode != "reopen" {
				if _, err := db.Commit(); !errors.Is(err, bitbox.ErrGrowIncomplete) {
					t.Fatalf("commit after an incomplete growth: %v, want bitbox.ErrGrowIncomplete", err)
				}
				if v := db.Version(); v != prevVersion {
					t.Fatalf("commit after an incomplete growth made version %d", v)
				}
			}
			checkAgainstModel(t, rng, db, prev)
			if err := db.Close(); !errors.Is(err, bitbox.ErrGrowIncomplete) {
				t.Fatalf("close: %v, want bitbox.ErrGrowIncomplete", err)
			}
			ftReopenAt(t, rng, dir, opts, prevVersion, prev)
			return
		}
		switch mode {
		case "reopen":
			if err := db.Close(); err != nil {
				t.Fatalf("close after a failed commit: %v", err)
			}
			ftReopenAt(t, rng, dir, opts, prevVersion, prev)
		case "retry":
			// The failed commit left its changes staged.
			ftCommit(t, db, prevVersion+1)
			checkAgainstModel(t, rng, db, m)
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			ftReopenAt(t, rng, dir, opts, prevVersion+1, m)
		case "discard":
			db.Discard()
			m = ftCloneModel(prev)
			randomEngineBatch(t, rng, db, m, 20)
			ftCommit(t, db, prevVersion+1)
			checkAgainstModel(t, rng, db, m)
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			ftReopenAt(t, rng, dir, opts, prevVersion+1, m)
		}
		return
	}

	if err != nil {
		t.Fatalf("commit failed before its commit point: %v", err)
	}
	if gen := db.Stats().Table.Generation; gen != prevGen {
		t.Fatalf("table grew (%d -> %d): the fault could have hit the growth", prevGen, gen)
	}
	// Committed: readers see the new version from memory, whatever the
	// checkpoint does.
	if v := db.Version(); v != prevVersion+1 {
		t.Fatalf("version %d after commit, want %d", v, prevVersion+1)
	}
	checkAgainstModel(t, rng, db, m)
	if mode == "next commit" {
		// The checkpoint runs in the background: a commit that finds it
		// failed reports the failure.
		ftWaitCheckpoint(db)
		if err := db.Set(testTrees[0], []byte("after-failure"), []byte("x")); err != nil {
			t.Fatal(err)
		}
		_, err := db.Commit()
		if !errors.Is(err, ErrFlushFailed) || !errors.Is(err, wantErr) {
			t.Fatalf("next commit: %v, want ErrFlushFailed wrapping %v", err, wantErr)
		}
		if v := db.Version(); v != prevVersion+1 {
			t.Fatalf("commit after a failed flush made version %d", v)
		}
		// Sticky: the failure does not clear once reported.
		if _, err := db.Commit(); !errors.Is(err, ErrFlushFailed) {
			t.Fatalf("second commit after a failed flush: %v", err)
		}
	}
	if err := db.Close(); !errors.Is(err, ErrFlushFailed) || !errors.Is(err, wantErr) {
		t.Fatalf("close: %v, want ErrFlushFailed wrapping %v", err, wantErr)
	}
	if ffs.Hits() == 0 {
		t.Fatal("the fault never fired")
	}
	ffs.Reset()
	ftReopenAt(t, rng, dir, opts, prevVersion+1, m)
}

// ftWaitCheckpoint waits until the background checkpoint, if one runs,
// has ended (without collecting its outcome).
func ftWaitCheckpoint(db *DB) {
	db.writeMu.Lock()
	job := db.committed.pages.job
	db.writeMu.Unlock()
	if job != nil {
		<-job.done
	}
}

// ftTable reads the geometry of a closed DB's page table: its bucket count,
// where bucket 0 starts, and its meta map.
func ftTable(t *testing.T, dir string) (buckets uint64, dataOffset int64, meta []byte) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, tableFile))
	if err != nil {
		t.Fatal(err)
	}
	buckets = binary.BigEndian.Uint64(data[16:])
	if int64(len(data)) != bitbox.FileSize(buckets) {
		t.Fatalf("table of %d bytes for %d buckets", len(data), buckets)
	}
	metaSize := (int64(buckets) + 4095) / 4096 * 4096
	return buckets, 4096 + metaSize, data[4096 : 4096+int64(buckets)]
}

// ftRootBuckets returns the bucket of every tree's root page, by store.
func ftRootBuckets(t *testing.T, dir string) map[trie.StoreID]uint64 {
	t.Helper()
	table, err := bitbox.OpenTable(vfs.Default, filepath.Join(dir, tableFile))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = table.Close() }()
	out := map[trie.StoreID]uint64{}
	for store := trie.StoreID(1); store <= trie.StoreID(len(testTrees)); store++ {
		_, b, found, err := table.Lookup(bitbox.PageKey{Store: store, ID: trie.RootPageID})
		if err != nil {
			t.Fatal(err)
		}
		if found {
			out[store] = b
		}
	}
	return out
}

func ftFlipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x5a
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// ftWantCorrupt checks err is a bitbox corruption naming file and offset.
func ftWantCorrupt(t *testing.T, what string, err error, file string, offset int64) {
	t.Helper()
	if !errors.Is(err, bitbox.ErrCorrupt) {
		t.Fatalf("%s: %v, want bitbox.ErrCorrupt", what, err)
	}
	want := fmt.Sprintf("%s at offset ", file)
	if offset >= 0 {
		want += fmt.Sprint(offset)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("%s: %q does not name %q", what, err, want)
	}
}

// ftUnflushedCommit leaves dir with a committed version whose pages never
// reached the table and whose batch never reached a Pebble flush: every
// checkpoint from then on fails, so only its WAL record and commit frame
// hold them. It returns the version, its model, the model of the version
// before and the record's sequence number (the frame's is the next).
func ftUnflushedCommit(t *testing.T, dir string, seed uint64) (uint64, model, model, uint64) {
	t.Helper()
	db, m, rng := ftNoMoreCheckpoints(t, dir, seed)
	before := ftCloneModel(m)
	randomEngineBatch(t, rng, db, m, 40)
	ftCommit(t, db, 4)
	wals := ftCloseFailing(t, db)
	if len(wals) != 2 || wals[1] != wals[0]+1 {
		t.Fatalf("log after a failed checkpoint: %v, want a WAL record and its commit frame", wals)
	}
	return 4, m, before, wals[0]
}

func TestCorruptionIsDetected(t *testing.T) {
	// Only the first tree gets keys, so every page in the table is its.
	committedTable := func(t *testing.T) (string, Options, model) {
		dir := t.TempDir()
		opts := Options{InitialBuckets: 1024, PageCachePages: 64, Workers: 2}
		db := ftOpen(t, dir, opts)
		m := newModel()
		// Enough keys for pages below the root page (elision stores pages
		// of DefaultElideBelow keys and more).
		for i := range 8000 {
			k, v := fmt.Sprintf("k%05d", i), []byte("v")
			if err := db.Set(testTrees[0], []byte(k), v); err != nil {
				t.Fatal(err)
			}
			m[testTrees[0]][k] = v
		}
		ftCommit(t, db, 1)
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		return dir, opts, m
	}
	// pages maps each page in the table to its bucket's file offset. It
	// goes by the meta map: an empty bucket fails its checksum.
	pages := func(t *testing.T, dir string) map[trie.PageID]int64 {
		_, dataOffset, meta := ftTable(t, dir)
		table, err := bitbox.OpenTable(vfs.Default, filepath.Join(dir, tableFile))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = table.Close() }()
		out := map[trie.PageID]int64{}
		for b, mb := range meta {
			if mb&0x80 == 0 {
				continue
			}
			page, err := table.ReadBucket(uint64(b))
			if err != nil {
				t.Fatal(err)
			}
			_, id, err := page.Label()
			if err != nil {
				t.Fatal(err)
			}
			out[id] = dataOffset + int64(b)*4096
		}
		return out
	}

	t.Run("table root page", func(t *testing.T) {
		t.Parallel()
		dir, opts, _ := committedTable(t)
		offset, ok := pages(t, dir)[trie.RootPageID]
		if !ok {
			t.Fatal("no root page")
		}
		ftFlipByte(t, filepath.Join(dir, tableFile), offset+100)
		// Open reads every root page, so the damage stops it.
		db, err := Open(dir, testTrees, opts)
		if err == nil {
			_ = db.Close()
			t.Fatal("opened over a corrupt root page")
		}
		ftWantCorrupt(t, "open", err, tableFile, offset)
	})

	t.Run("table inner page", func(t *testing.T) {
		t.Parallel()
		dir, opts, m := committedTable(t)
		var (
			victim trie.PageID
			offset int64
		)
		for id, off := range pages(t, dir) {
			if id.Depth() > 0 {
				victim, offset = id, off
				break
			}
		}
		if victim.Depth() == 0 {
			t.Fatal("no page below the root page")
		}
		var key []byte
		for k := range m[testTrees[0]] {
			if path := trie.PathOf([]byte(k)); trie.PageIDOf(&path, victim.Depth()) == victim {
				key = []byte(k)
				break
			}
		}
		if key == nil {
			t.Fatalf("no key under page %s", victim)
		}
		ftFlipByte(t, filepath.Join(dir, tableFile), offset+100)

		db := ftOpen(t, dir, opts)
		defer func() { _ = db.Close() }()
		_, _, err := db.Prove(testTrees[0], key)
		ftWantCorrupt(t, "prove", err, tableFile, offset)
		// Check reports the damaged page as a violation, and goes on.
		violations, err := db.Check()
		if err != nil {
			ftWantCorrupt(t, "check", err, tableFile, offset)
		} else if v := violations[testTrees[0]]; len(v) == 0 || !strings.Contains(fmt.Sprint(v), fmt.Sprint(offset)) {
			t.Fatalf("check found %v, want the page at offset %d", violations, offset)
		}
		if err := db.Set(testTrees[0], key, []byte("w")); err != nil {
			t.Fatal(err)
		}
		_, err = db.Commit()
		ftWantCorrupt(t, "commit", err, tableFile, offset)
		if v := db.Version(); v != 1 {
			t.Fatalf("a commit over a corrupt page made version %d", v)
		}
		// Values live in Pebble, untouched by the damage.
		if v, err := db.Get(testTrees[0], key); err != nil || string(v) != "v" {
			t.Fatalf("get: %q, %v", v, err)
		}
	})

	walDamage := []struct {
		name   string
		damage func(segment []byte, off, n int) []byte
		says   string // what the error names
		offset int64  // within the record, -1 for any, with says
		// undone: the damage cuts the log's tail, which a crash before
		// the commit point leaves too: the version is not committed.
		undone bool
		// frame: the damage is to the commit frame, not the WAL record.
		frame bool
	}{
		{name: "intact"},
		{name: "flipped byte mid-record", offset: -1, damage: func(b []byte, off, n int) []byte {
			b[off+n/2] ^= 0x5a
			return b
		}},
		{name: "flipped header byte", says: "is damaged at byte", damage: func(b []byte, off, n int) []byte {
			b[off+20] ^= 0x5a // the sequence number
			return b
		}},
		{name: "torn tail", undone: true, damage: func(b []byte, off, n int) []byte { return b[:off+n-100] }},
		{name: "segment emptied", undone: true, damage: func(b []byte, off, n int) []byte { return b[:0] }},
		{name: "commit frame's batch flipped", undone: true, frame: true, damage: func(b []byte, off, n int) []byte {
			b[off+n/2] ^= 0x5a
			return b
		}},
		{name: "commit frame torn", undone: true, frame: true, damage: func(b []byte, off, n int) []byte { return b[:off+n-3] }},
	}
	for i, tc := range walDamage {
		t.Run("committed wal/"+tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			version, m, previous, seq := ftUnflushedCommit(t, dir, uint64(i))
			opts := Options{InitialBuckets: 1024, PageCachePages: 64, Workers: 2}
			if tc.damage == nil {
				// The table never got the pages, nor Pebble the batch:
				// only replay can make the version whole.
				ftReopenAt(t, rand.New(rand.NewPCG(uint64(i), 3)), dir, opts, version, m)
				return
			}
			if tc.frame {
				ftEditWAL(t, dir, seq+1, tc.damage)
			} else {
				ftEditWAL(t, dir, seq, tc.damage)
			}
			if tc.undone {
				ftReopenAt(t, rand.New(rand.NewPCG(uint64(i), 3)), dir, opts, version-1, previous)
				return
			}
			before := ftList(t, filepath.Join(dir, walDir))
			db, err := Open(dir, testTrees, opts)
			if err == nil {
				_ = db.Close()
				t.Fatal("opened over a damaged committed WAL record")
			}
			if tc.says == "" {
				ftWantCorrupt(t, "open", err, fmt.Sprintf("WAL record %d", seq), tc.offset)
			} else if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("open: %v, want ErrCorrupt saying %q", err, tc.says)
			}
			// The evidence stays for whoever repairs the directory.
			if after := ftList(t, filepath.Join(dir, walDir)); !slices.Equal(before, after) {
				t.Fatalf("the log changed over a failed open: %v, then %v", before, after)
			}
		})
	}

	t.Run("uncommitted wal", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		opts := Options{InitialBuckets: 1024, PageCachePages: 64, Workers: 2, ElideBelow: 1}
		db, m, _ := ftThreeVersions(t, dir, opts, rand.NewPCG(9, 9))
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		// Well-formed WAL records that would clear every root page if
		// replayed: past the last committed one (as a commit batch that
		// never was would leave), and before the checkpoint (applied long
		// ago); and one that is garbage.
		roots := ftRootBuckets(t, dir)
		table, err := bitbox.OpenTable(vfs.Default, filepath.Join(dir, tableFile))
		if err != nil {
			t.Fatal(err)
		}
		gen := table.Generation()
		_ = table.Close()
		var clears []bitbox.Change
		for store, b := range roots {
			clears = append(clears, bitbox.Change{Key: bitbox.PageKey{Store: store, ID: trie.RootPageID}, Bucket: b})
		}
		if len(clears) == 0 {
			t.Fatal("no root pages")
		}
		// In a segment after the last one, as a process that appended
		// them and died before their commit point would leave.
		var segment []byte
		for _, data := range [][]byte{
			bitbox.EncodeWAL(1000, gen, clears),
			bitbox.EncodeWAL(1, gen, clears),
			[]byte("not a WAL at all, just bytes a crash left behind"),
		} {
			segment = binary.BigEndian.AppendUint32(segment, uint32(len(data)))
			segment = append(segment, data...)
		}
		if err := os.WriteFile(filepath.Join(dir, walDir, segmentName(1<<40)), segment, 0o644); err != nil {
			t.Fatal(err)
		}
		rng2 := rand.New(rand.NewPCG(9, 10))
		opts.FS = vfs.Default
		db = ftOpen(t, dir, opts)
		if v := db.Version(); v != 3 {
			t.Fatalf("reopened at %d", v)
		}
		checkAgainstModel(t, rng2, db, m)
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestOpenRejectsOtherFormats(t *testing.T) {
	listing := ftList
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  error
		says  []string
	}{
		{name: "newer format", files: map[string]string{formatFile: fmt.Sprintf("nomtstore-format %d\n", FormatVersion+1)}, want: ErrFormatVersion,
			says: []string{fmt.Sprintf("format %d", FormatVersion+1), fmt.Sprintf("format %d", FormatVersion)}},
		{name: "older format", files: map[string]string{formatFile: "nomtstore-format 1\n"}, want: ErrFormatVersion,
			says: []string{"format 1", fmt.Sprintf("format %d", FormatVersion)}},
		{name: "previous format", files: map[string]string{formatFile: fmt.Sprintf("nomtstore-format %d\n", FormatVersion-1)}, want: ErrFormatVersion,
			says: []string{fmt.Sprintf("format %d", FormatVersion-1), "resync"}},
		{name: "foreign directory", files: map[string]string{"notes.txt": "hello"}, want: ErrNotNomtstore,
			says: []string{"notes.txt"}},
		{name: "foreign FORMAT file", files: map[string]string{formatFile: "something else\n"}, want: ErrNotNomtstore,
			says: []string{"something else"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			before := listing(t, dir)
			db, err := Open(dir, testTrees, Options{InitialBuckets: 64})
			if err == nil {
				_ = db.Close()
				t.Fatal("opened")
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("open: %v, want %v", err, tc.want)
			}
			for _, s := range tc.says {
				if !strings.Contains(err.Error(), s) {
					t.Fatalf("open: %q does not say %q", err, s)
				}
			}
			// A directory that is not ours is left as it was.
			if after := listing(t, dir); !slices.Equal(before, after) {
				t.Fatalf("open changed the directory: %v -> %v", before, after)
			}
		})
	}

	t.Run("table format", func(t *testing.T) {
		dir := t.TempDir()
		db := ftOpen(t, dir, Options{InitialBuckets: 64})
		if err := db.Set(testTrees[0], []byte("k"), []byte("v")); err != nil {
			t.Fatal(err)
		}
		ftCommit(t, db, 1)
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		// A checksum-valid header of a later table format: a version check,
		// not corruption.
		path := filepath.Join(dir, tableFile)
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		h := make([]byte, 48)
		if _, err := f.ReadAt(h, 0); err != nil {
			t.Fatal(err)
		}
		binary.BigEndian.PutUint32(h[8:], bitbox.TableFormatVersion+1)
		binary.BigEndian.PutUint64(h[40:], xxhash.Sum64(h[:40]))
		if _, err := f.WriteAt(h, 0); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		db, err = Open(dir, testTrees, Options{})
		if err == nil {
			_ = db.Close()
			t.Fatal("opened a table of another format")
		}
		if !errors.Is(err, bitbox.ErrFormat) || errors.Is(err, bitbox.ErrCorrupt) {
			t.Fatalf("open: %v, want bitbox.ErrFormat", err)
		}
		if want := fmt.Sprintf("table format %d", bitbox.TableFormatVersion+1); !strings.Contains(err.Error(), want) {
			t.Fatalf("open: %q does not say %q", err, want)
		}
	})
}

func TestBadInputIsRejected(t *testing.T) {
	dir := t.TempDir()
	db := ftOpen(t, dir, Options{InitialBuckets: 64, Workers: 2})
	m := newModel()
	rng := rand.New(rand.NewPCG(5, 5))
	randomEngineBatch(t, rng, db, m, 50)
	ftCommit(t, db, 1)

	tree := testTrees[0]
	bigKey := make([]byte, MaxKeyLength+1)
	maxKey := make([]byte, MaxKeyLength)
	iter := func(db *DB, tree string, start, end []byte) error {
		it, err := db.NewIterator(tree, start, end, false)
		if err == nil {
			if it.Valid() {
				err = fmt.Errorf("iterator at %q", it.Key())
			}
			_ = it.Close()
		}
		return err
	}
	prove := func(db *DB, tree string, key []byte) error { _, _, err := db.Prove(tree, key); return err }
	get := func(db *DB, tree string, key []byte) error { _, err := db.Get(tree, key); return err }
	cases := []struct {
		name string
		do   func(db *DB) error
		want error
	}{
		{"set nil key", func(db *DB) error { return db.Set(tree, nil, []byte("v")) }, ErrEmptyKey},
		{"set empty key", func(db *DB) error { return db.Set(tree, []byte{}, []byte("v")) }, ErrEmptyKey},
		{"set key too large", func(db *DB) error { return db.Set(tree, bigKey, []byte("v")) }, ErrKeyTooLarge},
		{"set nil value", func(db *DB) error { return db.Set(tree, []byte("k"), nil) }, ErrNilValue},
		{"set unknown tree", func(db *DB) error { return db.Set("nope", []byte("k"), []byte("v")) }, ErrUnknownTree},
		{"delete nil key", func(db *DB) error { return db.Delete(tree, nil) }, ErrEmptyKey},
		{"delete empty key", func(db *DB) error { return db.Delete(tree, []byte{}) }, ErrEmptyKey},
		{"delete key too large", func(db *DB) error { return db.Delete(tree, bigKey) }, ErrKeyTooLarge},
		{"delete unknown tree", func(db *DB) error { return db.Delete("nope", []byte("k")) }, ErrUnknownTree},
		{"get nil key", func(db *DB) error { return get(db, tree, nil) }, ErrEmptyKey},
		{"get empty key", func(db *DB) error { return get(db, tree, []byte{}) }, ErrEmptyKey},
		{"get key too large", func(db *DB) error { return get(db, tree, bigKey) }, ErrKeyTooLarge},
		{"get unknown tree", func(db *DB) error { return get(db, "nope", []byte("k")) }, ErrUnknownTree},
		{"get largest key", func(db *DB) error { return get(db, tree, maxKey) }, nil},
		{"prove nil key", func(db *DB) error { return prove(db, tree, nil) }, ErrEmptyKey},
		{"prove empty key", func(db *DB) error { return prove(db, tree, []byte{}) }, ErrEmptyKey},
		{"prove key too large", func(db *DB) error { return prove(db, tree, bigKey) }, ErrKeyTooLarge},
		{"prove unknown tree", func(db *DB) error { return prove(db, "nope", []byte("k")) }, ErrUnknownTree},
		{"iterator unknown tree", func(db *DB) error { return iter(db, "nope", nil, nil) }, ErrUnknownTree},
		{"iterator empty range", func(db *DB) error { return iter(db, tree, []byte("k1"), []byte("k1")) }, nil},
		{"iterator inverted range", func(db *DB) error { return iter(db, tree, []byte("k2"), []byte("k1")) }, nil},
		{"root unknown tree", func(db *DB) error { _, err := db.Root("nope"); return err }, ErrUnknownTree},
	}
	roots := db.Roots()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := ftNoPanic(t, func() error { return tc.do(db) })
			if !errors.Is(err, tc.want) {
				t.Fatalf("%v, want %v", err, tc.want)
			}
		})
	}
	// Nothing the rejected calls passed was staged.
	working, err := db.WorkingRoots()
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(working, roots) {
		t.Fatalf("working roots %v after rejected input, committed %v", working, roots)
	}
	ftCommit(t, db, 2)
	if got := db.Roots(); !maps.Equal(got, roots) {
		t.Fatalf("roots changed by a commit of rejected input: %v -> %v", roots, got)
	}
	checkAgainstModel(t, rng, db, m)

	// A commit planned before Close must not run after it.
	if err := db.Set(tree, []byte("late"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if _, err := db.WorkingRoots(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	closed := []struct {
		name string
		do   func() error
	}{
		{"set", func() error { return db.Set(tree, []byte("k"), []byte("v")) }},
		{"delete", func() error { return db.Delete(tree, []byte("k")) }},
		{"get", func() error { return get(db, tree, []byte("k")) }},
		{"has", func() error { _, err := db.Has(tree, []byte("k")); return err }},
		{"prove", func() error { return prove(db, tree, []byte("k")) }},
		{"iterator", func() error { return iter(db, tree, nil, nil) }},
		{"working roots", func() error { _, err := db.WorkingRoots(); return err }},
		{"commit", func() error { _, err := db.Commit(); return err }},
		{"check", func() error { _, err := db.Check(); return err }},
		{"close", func() error { return db.Close() }},
	}
	for _, tc := range closed {
		t.Run("closed/"+tc.name, func(t *testing.T) {
			if err := ftNoPanic(t, tc.do); !errors.Is(err, ErrClosed) {
				t.Fatalf("%v, want ErrClosed", err)
			}
		})
	}
	// The closed DB wrote nothing: it reopens at the last version.
	ftReopenAt(t, rng, dir, Options{InitialBuckets: 64, Workers: 2}, 2, m)
}

// ftNoPanic turns a panic into a test failure naming it.
func ftNoPanic(t *testing.T, f func() error) (err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("panic: %v", r)
		}
	}()
	return f()
}

// TestWALRecordOfAFailedAttemptIsNotReplayed: a commit that fails after
// appending its WAL record (here, the free-space check before the commit
// point) leaves that record in the log; the next commit, of other
// changes, reuses its sequence number. Recovery must replay the second.
func TestWALRecordOfAFailedAttemptIsNotReplayed(t *testing.T) {
	dir := t.TempDir()
	ffs := vfs.NewFaultFS(vfs.Default)
	opts := Options{FS: ffs, InitialBuckets: 1024, PageCachePages: 64, Workers: 2, ElideBelow: 1}
	db, m, rng := ftThreeVersions(t, dir, opts, rand.NewPCG(31, 1))
	if err := db.WaitFlushed(); err != nil {
		t.Fatal(err)
	}
	committed := ftCloneModel(m)
	randomEngineBatch(t, rng, db, ftCloneModel(m), 60)
	db.opts.DiskReserveBytes = 1 << 62
	if _, err := db.Commit(); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("commit with no room: %v, want ENOSPC", err)
	}
	db.opts.DiskReserveBytes = -1
	failed := ftWALs(t, db)
	if len(failed) != 1 {
		t.Fatalf("log after the failed attempt: %v, want its record", failed)
	}
	db.Discard()
	m = committed
	randomEngineBatch(t, rng, db, m, 60)
	ftCommit(t, db, 4)
	if got := ftWALs(t, db); !slices.Equal(got, []uint64{failed[0], failed[0], failed[0] + 1}) {
		t.Fatalf("log after the retry: %v, want sequence %d twice, then the commit frame", got, failed[0])
	}
	// Only the log holds version 4's pages.
	ffs.Inject(vfs.Fault{Op: vfs.OpWrite, PathContains: tableFile, Sticky: true})
	if err := db.Close(); !errors.Is(err, ErrFlushFailed) {
		t.Fatalf("close: %v, want ErrFlushFailed", err)
	}
	ftReopenAt(t, rng, dir, opts, 4, m)
}

// TestCommitFramePastAGapIsCorruption: a commit frame is appended only
// after every number before it, so one that the log holds past a missing
// number means committed frames were lost: the open refuses rather than
// stopping at the gap, which would quietly undo the versions after it.
func TestCommitFramePastAGapIsCorruption(t *testing.T) {
	dir := t.TempDir()
	// Versions 4 and 5 live in the log only.
	db, m, rng := ftNoMoreCheckpoints(t, dir, 41)
	for v := uint64(4); v <= 5; v++ {
		randomEngineBatch(t, rng, db, m, 40)
		ftCommit(t, db, v)
	}
	wals := ftCloseFailing(t, db)
	if len(wals) != 4 {
		t.Fatalf("log: %v, want two WAL records and two commit frames", wals)
	}
	lost := wals[1] // version 4's commit frame, renumbered as damage could
	ftEditWAL(t, dir, lost, func(b []byte, off, n int) []byte {
		salt := binary.BigEndian.Uint64(b[8:segmentHeader])
		copy(b[off:], commitFrameHead(lost+1000, n-commitFrameHeader-commitFrameTrailer, salt))
		return b
	})
	db, err := Open(dir, testTrees, Options{InitialBuckets: 1024, PageCachePages: 64, Workers: 2})
	if err == nil {
		_ = db.Close()
		t.Fatal("opened a log missing a committed frame")
	}
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), fmt.Sprintf("not frame %d", lost)) {
		t.Fatalf("open: %v, want ErrCorrupt naming frame %d", err, lost)
	}
}

// TestReplayFinishesChunksBeforeLaterCommits: a large commit's chunks are
// applied after its commit point without a flush, so a power cut can leave
// them, and the commits after it, only in the log. Recovery must finish the
// chunks as it replays that commit's frame, before the next frame: a later
// commit that set one of their keys wins.
func TestReplayFinishesChunksBeforeLaterCommits(t *testing.T) {
	fs := vfs.NewCrashFS(7)
	dir := "/node/store"
	opts := Options{FS: fs, MaxBatchBytes: 8 << 10, InitialBuckets: 64, Workers: 2, ElideBelow: 8}
	db, err := Open(dir, testTrees, opts)
	if err != nil {
		t.Fatal(err)
	}
	key := func(i int) []byte { return fmt.Appendf(nil, "key-%04d", i) }
	for i := range 2000 {
		if err := db.Set(testTrees[0], key(i), fmt.Appendf(nil, "v1-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	ftCommit(t, db, 1)
	if db.Stats().BatchChunks == 0 {
		t.Fatal("version 1 was not written in chunks")
	}
	if err := db.Set(testTrees[0], key(5), []byte("v2")); err != nil {
		t.Fatal(err)
	}
	ftCommit(t, db, 2)
	fs.CutNow()
	_ = db.Close()
	fs.Restart()
	db, err = Open(dir, testTrees, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	if db.Version() != 2 {
		t.Fatalf("reopened at version %d, want 2", db.Version())
	}
	for i, want := range map[int]string{5: "v2", 7: "v1-7", 1999: "v1-1999"} {
		if got, err := db.Get(testTrees[0], key(i)); err != nil || string(got) != want {
			t.Fatalf("key %d after the cut: %q, %v; want %q", i, got, err, want)
		}
	}
}

// TestForgedFrameInAValueIsNotDamage: an application value can hold what
// looks like a commit frame header. When a cut tears the frame whose batch
// holds it, the damage check, which searches past the torn frame, must not
// take it for a synced frame: the salt of the segment, which no value can
// know, is in the header's checksum.
func TestForgedFrameInAValueIsNotDamage(t *testing.T) {
	dir := t.TempDir()
	db, m, _ := ftNoMoreCheckpoints(t, dir, 43)
	previous := ftCloneModel(m)
	const n = 64
	for _, salt := range []uint64{0, 1} {
		forged := binary.BigEndian.AppendUint32(nil, n)
		forged = append(forged, commitFrameHead(1<<40, n-commitFrameHeader-commitFrameTrailer, salt)...)
		forged = append(forged, make([]byte, n-commitFrameHeader)...)
		if err := db.Set(testTrees[0], fmt.Appendf(nil, "forged-%d", salt), forged); err != nil {
			t.Fatal(err)
		}
	}
	ftCommit(t, db, 4)
	wals := ftCloseFailing(t, db)
	// Torn in its last bytes: the forged headers are still in the segment.
	ftEditWAL(t, dir, wals[len(wals)-1], func(b []byte, off, n int) []byte { return b[:off+n-3] })
	ftReopenAt(t, rand.New(rand.NewPCG(43, 3)), dir, Options{InitialBuckets: 1024, PageCachePages: 64, Workers: 2}, 3, previous)
}

// TestLogSizeStartsCheckpoints: with checkpoints by count and by dirty
// pages out of reach, the log's size alone starts them, so wal/ stays near
// CheckpointLogBytes however many blocks commit.
func TestLogSizeStartsCheckpoints(t *testing.T) {
	const limit = 64 << 10
	db := ftOpen(t, t.TempDir(), Options{InitialBuckets: 1024, Workers: 2, CheckpointLogBytes: limit,
		CheckpointInterval: 1 << 20, CheckpointBytes: 1 << 40})
	defer func() { _ = db.Close() }()
	rng := rand.New(rand.NewPCG(47, 1))
	most := uint64(0)
	for v := uint64(1); v <= 100; v++ {
		randomEngineBatch(t, rng, db, newModel(), 100)
		ftCommit(t, db, v)
		db.writeMu.Lock()
		err := db.committed.pages.reap(true)
		db.writeMu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		most = max(most, db.Stats().WALRecordBytes)
	}
	st := db.Stats()
	if st.WALBytes < 10*limit {
		t.Fatalf("the blocks logged %d bytes: too few to pass the limit of %d often", st.WALBytes, limit)
	}
	if most > 3*limit {
		t.Fatalf("the log held up to %d bytes with a checkpoint limit of %d (%d logged in all)", most, limit, st.WALBytes)
	}
}
