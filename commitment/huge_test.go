package commitment

import (
	"errors"
	"math/rand/v2"
	"syscall"
	"testing"
)

// TestHugeBlockStagedInWorkingSet runs blocks past hugeBlockKeys, whose
// staged maps are dropped once the working set holds their changes: the
// changes must survive every way a block goes on from there (more writes,
// a discard, a commit refused before its commit point and retried), and
// every committed state must equal the model's.
func TestHugeBlockStagedInWorkingSet(t *testing.T) {
	defer func(prev int) { hugeBlockKeys = prev }(hugeBlockKeys)
	hugeBlockKeys = 100
	rng := rand.New(rand.NewPCG(7, 7))
	db, err := Open(t.TempDir(), testTrees, Options{ElideBelow: 8, InitialBuckets: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	m := newModel()
	stageHuge := func(t *testing.T, next model) {
		t.Helper()
		randomEngineBatch(t, rng, db, next, 400)
		if _, err := db.WorkingRoots(); err != nil {
			t.Fatal(err)
		}
		if !db.staged.inWorking() || db.staged.keys() == 0 {
			t.Fatalf("a block of %d keys kept its staged maps", db.staged.keys())
		}
	}
	commit := func(t *testing.T) {
		t.Helper()
		if _, err := db.Commit(); err != nil {
			t.Fatal(err)
		}
		checkAgainstModel(t, rng, db, m)
	}

	t.Run("more writes after the working roots", func(t *testing.T) {
		stageHuge(t, m)
		randomEngineBatch(t, rng, db, m, 30)
		if db.staged.inWorking() {
			t.Fatal("a write after the working roots left the changes in the working set")
		}
		commit(t)
	})
	t.Run("discarded", func(t *testing.T) {
		scratch := model{}
		for tree, kv := range m {
			scratch[tree] = map[string][]byte{}
			for k, v := range kv {
				scratch[tree][k] = v
			}
		}
		stageHuge(t, scratch)
		db.Discard()
		if n := db.staged.keys(); n != 0 {
			t.Fatalf("%d keys staged after a discard", n)
		}
		commit(t)
	})
	t.Run("refused before the commit point, then retried", func(t *testing.T) {
		stageHuge(t, m)
		db.opts.DiskReserveBytes = 1 << 62
		if _, err := db.Commit(); !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("commit with no disk to spare: %v", err)
		}
		db.opts.DiskReserveBytes = -1
		commit(t)
	})
	t.Run("deletes after the working roots", func(t *testing.T) {
		stageHuge(t, m)
		for _, tree := range testTrees {
			for i, k := range m.sortedKeys(tree) {
				if i%3 == 0 {
					if err := db.Delete(tree, []byte(k)); err != nil {
						t.Fatal(err)
					}
					delete(m[tree], k)
				}
			}
		}
		commit(t)
	})
}
