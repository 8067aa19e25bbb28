package commitment_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/nomtstore/nomtstore/commitment"
	"github.com/nomtstore/nomtstore/commitment/trie"
	"github.com/nomtstore/nomtstore/commitment/vfs"
)

var bulkTrees = []string{"acc", "bank", "empty", "ibc"}

var bulkCuts = flag.Int("bulk-cuts", 0, "TestBulkLoadPowerCut: power cuts (0: 40, 8 with -short)")

// bulkState is a whole version to load: per tree, its keys in order.
type bulkState map[string][]kv

type kv struct{ key, value []byte }

// newBulkState makes keys of every size class per tree (one tree empty,
// one with a single key) with empty, small and large values.
func newBulkState(seed uint64, keys int) bulkState {
	rng := rand.New(rand.NewPCG(seed, 7))
	s := bulkState{}
	sizes := map[string]int{"acc": keys, "bank": keys / 3, "empty": 0, "ibc": 1}
	for tree, n := range sizes {
		seen := map[string]bool{}
		for len(seen) < n {
			key := fmt.Appendf(nil, "%s/%x", tree, rng.Uint64N(uint64(n)*8+1))
			if rng.IntN(50) == 0 {
				key = append(key, 0, 0xff, byte(rng.IntN(256))) // binary keys too
			}
			if seen[string(key)] {
				continue
			}
			seen[string(key)] = true
			var value []byte
			switch rng.IntN(20) {
			case 0:
				value = []byte{}
			case 1:
				value = bytes.Repeat([]byte{byte(rng.IntN(256))}, 3000+rng.IntN(3000))
			default:
				value = fmt.Appendf(nil, "v%d", rng.Uint64())
			}
			s[tree] = append(s[tree], kv{key, value})
		}
		slices.SortFunc(s[tree], func(a, b kv) int { return bytes.Compare(a.key, b.key) })
	}
	return s
}

// load bulk-loads the state into db (tree by tree, in order) and commits.
func (s bulkState) load(db *commitment.DB) (*commitment.CommitResult, error) {
	if err := db.BeginBulk(); err != nil {
		return nil, err
	}
	for _, tree := range bulkTrees {
		for _, e := range s[tree] {
			if err := db.Set(tree, e.key, e.value); err != nil {
				return nil, err
			}
		}
	}
	if _, err := db.WorkingRoots(); err != nil {
		return nil, err
	}
	return db.Commit()
}

// commitPlainly commits the state the ordinary way, in batches.
func (s bulkState) commitPlainly(t *testing.T, db *commitment.DB, batches int) {
	t.Helper()
	for b := range batches {
		for _, tree := range bulkTrees {
			for i, e := range s[tree] {
				if i%batches == b {
					if err := db.Set(tree, e.key, e.value); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		if _, err := db.Commit(); err != nil {
			t.Fatal(err)
		}
	}
}

func bulkOptions() commitment.Options {
	// Small sort runs and checkpoints: a few thousand keys spill several
	// runs and write their pages in several chunks.
	return commitment.Options{BulkSortBytes: 64 << 10, CheckpointBytes: 64 << 10, InitialBuckets: 8, ElideBelow: 8}
}

// checkLoaded checks db's latest version against the state: every value,
// a sample of proofs, iteration of each tree, and Check.
func checkLoaded(t *testing.T, db *commitment.DB, s bulkState, roots map[string]trie.Hash) {
	t.Helper()
	if got := db.Roots(); !rootsEqual(got, roots) {
		t.Fatalf("roots %v, want %v", got, roots)
	}
	for _, tree := range bulkTrees {
		it, err := db.NewIterator(tree, nil, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		i := 0
		for ; it.Valid(); it.Next() {
			if i >= len(s[tree]) || !bytes.Equal(it.Key(), s[tree][i].key) || !bytes.Equal(it.Value(), s[tree][i].value) {
				t.Fatalf("tree %s: iteration differs at %d (%x)", tree, i, it.Key())
			}
			i++
		}
		if err := errors.Join(it.Error(), it.Close()); err != nil {
			t.Fatal(err)
		}
		if i != len(s[tree]) {
			t.Fatalf("tree %s: iterated %d keys of %d", tree, i, len(s[tree]))
		}
		for j, e := range s[tree] {
			v, err := db.Get(tree, e.key)
			if err != nil || !bytes.Equal(v, e.value) || v == nil {
				t.Fatalf("tree %s: get %x = %x, %v", tree, e.key, v, err)
			}
			if j%97 == 0 {
				if _, exists, err := db.Prove(tree, e.key); err != nil || !exists {
					t.Fatalf("tree %s: prove %x: %v %v", tree, e.key, exists, err)
				}
			}
		}
	}
	violations, err := db.Check()
	if err != nil {
		t.Fatal(err)
	}
	for tree, v := range violations {
		if len(v) > 0 {
			t.Fatalf("tree %s: %v", tree, v[0])
		}
	}
}

func rootsEqual(a, b map[string]trie.Hash) bool {
	for _, tree := range bulkTrees {
		if a[tree] != b[tree] {
			return false
		}
	}
	return true
}

// referenceRoots commits the state the ordinary way in a fresh store.
func referenceRoots(t *testing.T, s bulkState, batches int) map[string]trie.Hash {
	t.Helper()
	db, err := commitment.Open(t.TempDir(), bulkTrees, commitment.Options{ElideBelow: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	s.commitPlainly(t, db, batches)
	return db.Roots()
}

// TestBulkLoadEqualsCommits: a bulk load that spills several sort runs
// and writes its pages in chunks gives the roots of the same keys
// committed in one or in many blocks, reads, proves and checks as they do,
// survives a reopen, and takes ordinary commits, rollback and pruning on
// top.
func TestBulkLoadEqualsCommits(t *testing.T) {
	keys := 6000
	if testing.Short() {
		keys = 1500 // still several sort runs and page chunks
	}
	s := newBulkState(1, keys)
	want := referenceRoots(t, s, 1)
	if many := referenceRoots(t, s, 7); !rootsEqual(many, want) {
		t.Fatalf("one block and seven give different roots")
	}
	dir := t.TempDir()
	db, err := commitment.Open(dir, bulkTrees, bulkOptions())
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SetInitialVersion(40); err != nil {
		t.Fatal(err)
	}
	res, err := s.load(db)
	if err != nil {
		t.Fatal(err)
	}
	if res.Version != 40 || db.EarliestVersion() != 40 {
		t.Fatalf("loaded as version %d (earliest %d), want 40", res.Version, db.EarliestVersion())
	}
	checkLoaded(t, db, s, want)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = commitment.Open(dir, bulkTrees, bulkOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	checkLoaded(t, db, s, want)

	// Ordinary blocks on top: overwrite, delete and add in the loaded
	// trees, checked against the same blocks in the reference store.
	ref, err := commitment.Open(t.TempDir(), bulkTrees, commitment.Options{ElideBelow: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ref.Close() }()
	if err := ref.SetInitialVersion(40); err != nil {
		t.Fatal(err)
	}
	s.commitPlainly(t, ref, 1)
	rng := rand.New(rand.NewPCG(3, 3))
	for range 3 {
		seed := rng.Uint64()
		for _, store := range []*commitment.DB{db, ref} {
			r := rand.New(rand.NewPCG(seed, 0))
			for range 300 {
				tree := bulkTrees[r.IntN(len(bulkTrees))]
				var key []byte
				if n := len(s[tree]); n > 0 && r.IntN(2) == 0 {
					key = s[tree][r.IntN(n)].key
				} else {
					key = fmt.Appendf(nil, "%s/new/%d", tree, r.IntN(1000))
				}
				if r.IntN(3) == 0 {
					err = store.Delete(tree, key)
				} else {
					err = store.Set(tree, key, fmt.Appendf(nil, "w%d", r.Uint64()))
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if _, err := store.Commit(); err != nil {
				t.Fatal(err)
			}
		}
		if !rootsEqual(db.Roots(), ref.Roots()) {
			t.Fatalf("version %d: roots differ from the reference after ordinary commits", db.Version())
		}
	}
	if v, err := db.Check(); err != nil || len(v) > 0 {
		t.Fatalf("check after commits: %v %v", v, err)
	}
	if err := db.Rollback(40); err != nil {
		t.Fatal(err)
	}
	checkLoaded(t, db, s, want)
	// The loaded version has no change list (it supersedes nothing):
	// pruning it away under a later version works as for any other.
	if err := db.Set("acc", []byte("after"), []byte("prune")); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := db.PruneTo(40); err != nil {
		t.Fatal(err)
	}
	if db.EarliestVersion() != 41 {
		t.Fatalf("earliest %d after pruning 40", db.EarliestVersion())
	}
	if v, err := db.Check(); err != nil || len(v) > 0 {
		t.Fatalf("check after pruning the loaded version: %v %v", v, err)
	}
}

// TestBulkLoadRefuses: a bulk load only starts on an empty store, takes
// each tree's keys together and in order, never deletes, and takes nothing
// once built; each refusal is a clear error and a Discard leaves the store
// empty and ready for another load.
func TestBulkLoadRefuses(t *testing.T) {
	s := newBulkState(2, 500)
	want := referenceRoots(t, s, 1)
	acc := s["acc"]
	cases := []struct {
		name string
		feed func(db *commitment.DB) error
		want error
	}{
		{"key out of order late", func(db *commitment.DB) error {
			for i := range acc {
				j := i
				if i == len(acc)-2 {
					j = i + 1
				} else if i == len(acc)-1 {
					j = i - 1
				}
				if err := db.Set("acc", acc[j].key, acc[j].value); err != nil {
					return err
				}
			}
			return nil
		}, commitment.ErrBulkOrder},
		{"repeated key", func(db *commitment.DB) error {
			for _, e := range append(acc[:10:10], acc[9:]...) {
				if err := db.Set("acc", e.key, e.value); err != nil {
					return err
				}
			}
			return nil
		}, commitment.ErrBulkOrder},
		{"tree revisited", func(db *commitment.DB) error {
			return errors.Join(db.Set("acc", acc[0].key, acc[0].value), db.Set("bank", []byte("b"), []byte("1")),
				db.Set("acc", acc[1].key, acc[1].value))
		}, commitment.ErrBulkOrder},
		{"delete", func(db *commitment.DB) error { return db.Delete("acc", acc[0].key) }, commitment.ErrBulkDelete},
		{"set after build", func(db *commitment.DB) error {
			if err := db.Set("acc", acc[0].key, acc[0].value); err != nil {
				return err
			}
			if _, err := db.WorkingRoots(); err != nil {
				return err
			}
			return db.Set("acc", acc[1].key, acc[1].value)
		}, commitment.ErrBulkBuilt},
		{"oversized key", func(db *commitment.DB) error {
			return db.Set("acc", make([]byte, commitment.MaxKeyLength+1), []byte("v"))
		}, commitment.ErrKeyTooLarge},
		{"nil value", func(db *commitment.DB) error { return db.Set("acc", []byte("k"), nil) }, commitment.ErrNilValue},
		{"unknown tree", func(db *commitment.DB) error { return db.Set("nope", []byte("k"), []byte("v")) }, commitment.ErrUnknownTree},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			db, err := commitment.Open(dir, bulkTrees, bulkOptions())
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = db.Close() }()
			if err := db.BeginBulk(); err != nil {
				t.Fatal(err)
			}
			if err := c.feed(db); !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			db.Discard()
			if db.Version() != 0 {
				t.Fatalf("version %d after discard", db.Version())
			}
			if v, err := db.Get("acc", acc[0].key); v != nil || err != nil {
				t.Fatalf("a discarded load's key reads %x, %v", v, err)
			}
			if _, err := s.load(db); err != nil {
				t.Fatalf("a load after the discard: %v", err)
			}
			checkLoaded(t, db, s, want)
		})
	}

	t.Run("store not empty", func(t *testing.T) {
		db, err := commitment.Open(t.TempDir(), bulkTrees, bulkOptions())
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = db.Close() }()
		if err := db.Set("acc", []byte("k"), []byte("v")); err != nil {
			t.Fatal(err)
		}
		if err := db.BeginBulk(); !errors.Is(err, commitment.ErrBulkNotEmpty) {
			t.Fatalf("with a change staged: %v", err)
		}
		if _, err := db.Commit(); err != nil {
			t.Fatal(err)
		}
		if err := db.BeginBulk(); !errors.Is(err, commitment.ErrBulkNotEmpty) {
			t.Fatalf("with a version committed: %v", err)
		}
	})
}

// TestBulkLoadPowerCut cuts the power at a random operation of a bulk load
// (writing runs and tables, ingesting, writing pages, the commit point, or
// cleaning up), restarts, and reopens: the store is empty, or the load's
// version with its roots if the cut came after the commit point; an empty
// store then takes the load again and gets the same roots.
func TestBulkLoadPowerCut(t *testing.T) {
	cuts := 40
	if testing.Short() {
		cuts = 8
	}
	if *bulkCuts > 0 {
		cuts = *bulkCuts
	}
	keys := 3000
	if testing.Short() {
		keys = 1000
	}
	s := newBulkState(5, keys)
	want := referenceRoots(t, s, 1)
	opts := bulkOptions()
	open := func(fs *vfs.CrashFS, log *strings.Builder) *commitment.DB {
		o := opts
		o.FS = fs
		o.Logger = slog.New(slog.NewTextHandler(log, nil))
		db, err := commitment.Open("/store", bulkTrees, o)
		if err != nil {
			t.Fatalf("open: %v\n%s", err, log)
		}
		return db
	}
	// One uncut load counts the operations a cut can aim at.
	fs := vfs.NewCrashFS(1)
	var log strings.Builder
	db := open(fs, &log)
	before := fs.Ops()
	if _, err := s.load(db); err != nil {
		t.Fatal(err)
	}
	ops := fs.Ops() - before
	_ = db.Close()
	rng := rand.New(rand.NewPCG(9, 9))
	outcomes := map[string]int{}
	for i := range cuts {
		fs := vfs.NewCrashFS(rng.Uint64())
		var log strings.Builder
		db := open(fs, &log)
		at := 1 + rng.Int64N(ops+ops/10)
		fs.CutAfter(at)
		_, loadErr := s.load(db)
		cut := fs.Cut()
		_ = db.Close()
		fs.Restart()
		db = open(fs, &log)
		switch db.Version() {
		case 0:
			outcomes["empty"]++
			if v, _ := db.Get("acc", s["acc"][0].key); v != nil {
				t.Fatalf("cut %d at %v: an empty store reads a loaded key", i, cut)
			}
			if _, err := s.load(db); err != nil {
				t.Fatalf("cut %d at %v: the retried load: %v\n%s", i, cut, err, log.String())
			}
		case 1:
			outcomes["loaded"]++
		default:
			t.Fatalf("cut %d at %v: version %d", i, cut, db.Version())
		}
		if loadErr != nil {
			t.Logf("cut %d: the load itself failed: %v", i, loadErr)
		}
		checkLoaded(t, db, s, want)
		_ = db.Close()
	}
	t.Logf("%d cuts over %d operations: %v", cuts, ops, outcomes)
}
