package commitment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/nomtstore/nomtstore/commitment/trie"
)

// crashModels rebuilds the model of any version from the deterministic
// batches: a version's state does not depend on rollbacks, since a version
// number always commits the same batch.
type crashModels struct {
	h      *crashHarness
	states []model // states[v]
	roots  []map[string]trie.Hash
}

func (c *crashModels) at(t testing.TB, v uint64) (model, map[string]trie.Hash) {
	if c.states == nil {
		c.states, c.roots = []model{newModel()}, []map[string]trie.Hash{newModel().roots(t)}
	}
	for uint64(len(c.states)) <= v {
		next := model{}
		for name, kv := range c.states[len(c.states)-1] {
			next[name] = maps.Clone(kv)
		}
		applyCrashBatch(next, crashBatch(c.h.seed, uint64(len(c.states)), c.h.maxOps, c.h.growKeys))
		c.states, c.roots = append(c.states, next), append(c.roots, next.roots(t))
	}
	return c.states[v], c.roots[v]
}

// checkNoStaleHistory: every superseded entry is one a retained version
// needs (orphaned after the earliest version), every roots record is a
// retained version's, and change lists are of retained versions.
func checkNoStaleHistory(t testing.TB, db *DB) {
	t.Helper()
	earliest, latest := db.EarliestVersion(), db.Version()
	versionOf := map[byte]func(k []byte) uint64{
		prefixOldEntry:    func(k []byte) uint64 { return binary.BigEndian.Uint64(k[len(k)-8:]) },
		prefixDeleted:     func(k []byte) uint64 { return binary.BigEndian.Uint64(k[len(k)-8:]) },
		prefixOldPageByID: func(k []byte) uint64 { return binary.BigEndian.Uint64(k[len(k)-8:]) },
		prefixOldPage:     func(k []byte) uint64 { return binary.BigEndian.Uint64(k[1:9]) },
		prefixChanges:     func(k []byte) uint64 { return binary.BigEndian.Uint64(k[1:9]) },
		prefixRoots:       func(k []byte) uint64 { return binary.BigEndian.Uint64(k[1:9]) },
	}
	for prefix, version := range versionOf {
		it, err := db.pebbleOf(prefix).NewIter(&pebble.IterOptions{LowerBound: []byte{prefix}, UpperBound: []byte{prefix + 1}})
		if err != nil {
			t.Fatal(err)
		}
		for it.First(); it.Valid(); it.Next() {
			v := version(it.Key())
			lowest := earliest + 1 // orphaned by a version after the earliest
			if prefix == prefixRoots || earliest == 1 && prefix != prefixOldEntry && prefix != prefixDeleted && prefix != prefixOldPage {
				lowest = earliest
			}
			if v < lowest || v > latest {
				t.Fatalf("entry %c of version %d with retained versions %d..%d: %x", prefix, v, earliest, latest, it.Key())
			}
		}
		if err := it.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// sideLines counts the lines of the side file.
func sideLines(t *testing.T, path string) int {
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return bytes.Count(data, []byte("\n"))
}

// TestCrashDuringPruningAndRollback kills a child that prunes after every
// commit and rolls back now and then: at random instants, inside a pruning
// batch, and between the versions a rollback undoes. The reopened store is
// at a version the child reached, every retained version reads as the
// model, and no history entry outlives the versions that need it.
func TestCrashDuringPruningAndRollback(t *testing.T) {
	kills := 60
	if testing.Short() {
		kills = 16
	}
	h := newCrashHarness(t, 64, 200)
	models := &crashModels{h: h}
	rng := rand.New(rand.NewPCG(8, 8))
	landed := map[string]int{}
	var lastGot uint64
	lastReports := 0
	for i := range kills {
		before := h.verdict["killed"]
		mode := []string{"in a pruning batch", "between undone versions", "at a later commit point (rollbacks included)", "at a random instant"}[i%4]
		env := envCrashVersions + "=1"
		switch i % 4 {
		case 0:
			h.runChild(fmt.Sprintf("prune:%d", 1+rng.IntN(12)), 0, env)
		case 1:
			h.runChild(fmt.Sprintf("undo:%d", 2+rng.IntN(4)), 0, env)
		case 2:
			// Commit points 5 and later include rollbacks' undos.
			h.runChild(fmt.Sprintf("after-commit-point:%d", 5+rng.IntN(10)), 0, env)
		default:
			h.runChild("", time.Duration(10+rng.IntN(150))*time.Millisecond, env)
		}
		if h.verdict["killed"] > before {
			landed[mode]++
		}
		reportedAt, _ := reported(t, h.side)
		reports := sideLines(t, h.side)
		if reports == lastReports {
			// The child reported nothing: it was killed before its first
			// report, so it built on the version the last check found.
			reportedAt = lastGot
		}
		db, err := Open(h.dir, testTrees, Options{InitialBuckets: h.buckets})
		if err != nil {
			t.Fatalf("reopen after kill %d (%s): %v", i, h.lastRun, err)
		}
		got, earliest := db.Version(), db.EarliestVersion()
		// Killed during a rollback of 3, or after the commit point of a
		// version not yet reported.
		if got+3 < reportedAt || got > reportedAt+1 || earliest > got {
			t.Fatalf("reopened at %d (earliest %d), last reported %d (%s)", got, earliest, reportedAt, h.lastRun)
		}
		lastGot, lastReports = got, reports
		for v := earliest; v <= got; v++ {
			_, roots := models.at(t, v)
			have, err := db.RootsAt(v)
			if err != nil || !maps.Equal(have, roots) {
				t.Fatalf("version %d (retained %d..%d): roots %v, %v; model %v", v, earliest, got, have, err, roots)
			}
		}
		v := earliest + rng.Uint64N(got-earliest+1)
		m, _ := models.at(t, v)
		for _, name := range testTrees {
			it, err := db.NewIteratorAt(name, nil, nil, false, v)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for ; it.Valid(); it.Next() {
				if !bytes.Equal(it.Value(), m[name][string(it.Key())]) {
					t.Fatalf("version %d %s/%s: %q, model %q", v, name, it.Key(), it.Value(), m[name][string(it.Key())])
				}
				n++
			}
			if err := it.Close(); err != nil || n != len(m[name]) {
				t.Fatalf("version %d %s: %d keys, model %d (%v)", v, name, n, len(m[name]), err)
			}
		}
		checkNoStaleHistory(t, db)
		if i%8 == 0 {
			if violations, err := db.CheckAt(v); err != nil || len(violations) > 0 {
				t.Fatalf("check at %d: %v %v", v, err, violations)
			}
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d kills; verdicts %v; kills landed %v", kills, h.verdict, landed)
	for _, mode := range []string{"in a pruning batch", "between undone versions", "at a later commit point (rollbacks included)"} {
		if landed[mode] == 0 {
			t.Errorf("no kill landed %s", mode)
		}
	}
}
