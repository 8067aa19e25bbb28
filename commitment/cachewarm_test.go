package commitment

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/VictoriaMetrics/fastcache"

	"github.com/nomtstore/nomtstore/commitment/vfs"
)

// TestCachesWarmAtOpen: a reopened DB serves the latest values and its
// elided subtrees' keys from the caches it filled at open, and what it
// serves from them equals the value store.
func TestCachesWarmAtOpen(t *testing.T) {
	dir := t.TempDir()
	db := ftOpen(t, dir, Options{ElideBelow: 8})
	const keys = 5000
	for i := range keys {
		if err := db.Set(testTrees[0], fmt.Appendf(nil, "key%05d", i), fmt.Appendf(nil, "value%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	ftCommit(t, db, 1)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	for _, cold := range []bool{false, true} {
		db := ftOpen(t, dir, Options{ColdCaches: cold})
		hits := 0
		for i := range keys {
			key := fmt.Appendf(nil, "key%05d", i)
			if r, ok := db.committed.values.get(db.committed.trees[testTrees[0]].store, key, db.committed.record.version); ok {
				hits++
				if !r.found || !bytes.Equal(r.entry[bornSize:], fmt.Appendf(nil, "value%d", i)) {
					t.Fatalf("cached %s is %q", key, r.entry)
				}
			}
		}
		if cold && hits != 0 || !cold && hits != keys {
			t.Fatalf("cold=%v: %d of %d values cached after open", cold, hits, keys)
		}
		var st fastcache.Stats
		if db.committed.leaves.c != nil {
			db.committed.leaves.c.UpdateStats(&st)
		}
		subtrees := int(st.EntriesCount)
		if cold != (subtrees == 0) {
			t.Fatalf("cold=%v: %d elided subtrees cached after open", cold, subtrees)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestReadersDuringACommitSeeTheVersionBefore: a commit writes its entries
// through the value and leaf caches before its version becomes the latest;
// until then, reads, proofs and the caches' fills serve the version before
// it, and afterwards the new one.
func TestReadersDuringACommitSeeTheVersionBefore(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	var during func()
	opts := Options{ElideBelow: 8, PageCachePages: 64}
	opts.hook = func(point string) {
		if point == "caches-written" && during != nil {
			during()
		}
	}
	db := ftOpen(t, t.TempDir(), opts)
	defer func() { _ = db.Close() }()
	m := newModel()
	for v := uint64(1); v <= 3; v++ {
		randomEngineBatch(t, rng, db, m, 400)
		ftCommit(t, db, v)
	}
	for v := uint64(4); v <= 8; v++ {
		prev := ftCloneModel(m)
		randomEngineBatch(t, rng, db, m, 200)
		checked := false
		during = func() {
			checked = true
			if got := db.Version(); got != v-1 {
				t.Errorf("version %d during the commit of %d", got, v)
			}
			// Twice: the first pass's misses must not have filled the
			// caches with what the second would then take as current.
			checkAgainstModel(t, rng, db, prev)
			checkAgainstModel(t, rng, db, prev)
		}
		ftCommit(t, db, v)
		during = nil
		if !checked {
			t.Fatal("the commit never reached the caches-written point")
		}
		checkAgainstModel(t, rng, db, m)
	}
}

// TestReadsAfterAFailedCommitPointSeeTheVersionBefore: when the commit
// frame's sync fails, the caches already hold the version's entries; reads
// go on serving the version before it until a reopen decides.
func TestReadsAfterAFailedCommitPointSeeTheVersionBefore(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	dir := t.TempDir()
	ffs := vfs.NewFaultFS(vfs.Default)
	opts := Options{FS: ffs, ElideBelow: 8, PageCachePages: 64}
	db := ftOpen(t, dir, opts)
	defer func() { _ = db.Close() }()
	m := newModel()
	for v := uint64(1); v <= 3; v++ {
		randomEngineBatch(t, rng, db, m, 400)
		ftCommit(t, db, v)
	}
	prev := ftCloneModel(m)
	randomEngineBatch(t, rng, db, m, 200)
	// The version's WAL record is synced first, its frame second.
	ffs.Inject(vfs.Fault{Op: vfs.OpSync, PathContains: walDir + "/", Skip: 1})
	if _, err := db.Commit(); !errors.Is(err, vfs.ErrInjected) {
		t.Fatalf("commit through a failing frame sync: %v", err)
	}
	ffs.Reset()
	if v := db.Version(); v != 3 {
		t.Fatalf("version %d after a failed commit point", v)
	}
	checkAgainstModel(t, rng, db, prev)
	checkAgainstModel(t, rng, db, prev)
	_ = db.Close()
	reopened := ftOpen(t, dir, Options{})
	defer func() { _ = reopened.Close() }()
	switch reopened.Version() {
	case 3:
		checkAgainstModel(t, rng, reopened, prev)
	case 4:
		checkAgainstModel(t, rng, reopened, m)
	default:
		t.Fatalf("reopened at version %d, want 3 or 4", reopened.Version())
	}
}
