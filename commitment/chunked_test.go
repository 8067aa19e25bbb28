package commitment_test

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/nomtstore/nomtstore/commitment"
	"github.com/nomtstore/nomtstore/commitment/trie"
	"github.com/nomtstore/nomtstore/internal/procstat"
)

// bigBlock stages n writes over three trees, derived from seed, into db:
// the keys whose index is in [from, to) of n.
func bigBlock(t testing.TB, db *commitment.DB, seed, n, from, to int) {
	t.Helper()
	trees := []string{"acc", "bank", "ibc"}
	for i := from; i < to; i++ {
		key := fmt.Appendf(nil, "k/%d/%d", seed, i*7919%n)
		value := fmt.Appendf(nil, "value-%d-%d", seed, i)
		if err := db.Set(trees[i%3], key, value); err != nil {
			t.Fatal(err)
		}
	}
}

func rootsOf(db *commitment.DB) string {
	var b strings.Builder
	for _, tree := range []string{"acc", "bank", "ibc"} {
		r := db.Roots()[tree]
		fmt.Fprintf(&b, "%s=%s ", tree, r)
	}
	return b.String()
}

// TestLargeCommitInChunks commits blocks far over a small batch limit: each
// is written in chunks (applied after the commit point) and its page
// changes in several WAL records, and the roots, values and checks equal a
// store that commits the same keys in batches under the limit; a reopen
// and a rollback of a chunked version read as they should.
func TestLargeCommitInChunks(t *testing.T) {
	n, limit := 20_000, int64(32<<10)
	if testing.Short() {
		n, limit = 5_000, 8<<10
	}
	trees := []string{"acc", "bank", "ibc"}
	dir := t.TempDir()
	small := commitment.Options{MaxBatchBytes: limit, ElideBelow: 8, InitialBuckets: 8}
	db, err := commitment.Open(dir, trees, small)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := commitment.Open(t.TempDir(), trees, commitment.Options{ElideBelow: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ref.Close() }()

	// Version 1: one block; the reference commits it in 50.
	bigBlock(t, db, 1, n, 0, n)
	if _, err := db.Commit(); err != nil {
		t.Fatal(err)
	}
	for b := range 50 {
		bigBlock(t, ref, 1, n, b*n/50, (b+1)*n/50)
		if _, err := ref.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if rootsOf(db) != rootsOf(ref) {
		t.Fatalf("one chunked block: %s; fifty small ones: %s", rootsOf(db), rootsOf(ref))
	}
	chunks := db.Stats().BatchChunks
	if chunks < 10 {
		t.Fatalf("a block of %d writes over a %d-byte limit was written in %d chunks", n, limit, chunks)
	}
	v1 := rootsOf(db)
	// Version 2: overwrite half, delete a tenth, in one block each side.
	for _, s := range []*commitment.DB{db, ref} {
		bigBlock(t, s, 2, n, 0, n/2)
		for i := 0; i < n; i += 10 {
			if err := s.Delete(trees[i%3], fmt.Appendf(nil, "k/1/%d", i*7919%n)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if rootsOf(db) != rootsOf(ref) {
		t.Fatalf("version 2: %s, reference %s", rootsOf(db), rootsOf(ref))
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if db, err = commitment.Open(dir, trees, small); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	for i := 0; i < n; i += 37 {
		key := fmt.Appendf(nil, "k/1/%d", i*7919%n)
		got, err := db.Get(trees[i%3], key)
		want, err2 := ref.Get(trees[i%3], key)
		if err != nil || err2 != nil || !bytes.Equal(got, want) {
			t.Fatalf("key %s: %q (%v), reference %q (%v)", key, got, err, want, err2)
		}
	}
	if v, err := db.Check(); err != nil || len(v) > 0 {
		t.Fatalf("check: %v %v", v, err)
	}
	// The rollback of a chunked version is chunked too.
	before := db.Stats().BatchChunks
	if err := db.Rollback(1); err != nil {
		t.Fatal(err)
	}
	if rootsOf(db) != v1 || db.Stats().BatchChunks == before {
		t.Fatalf("rolled back to %s (chunks %d -> %d), want %s", rootsOf(db), before, db.Stats().BatchChunks, v1)
	}
	if v, err := db.Check(); err != nil || len(v) > 0 {
		t.Fatalf("check after rollback: %v %v", v, err)
	}
}

// TestHugeBlock commits NOMTSTORE_HUGE_BLOCK writes (e.g. 5000000) in one
// block and the same keys in 50 blocks in another store, and compares the
// roots; it reports the process's peak RSS. make test-long runs it; it is
// skipped otherwise.
func TestHugeBlock(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("NOMTSTORE_HUGE_BLOCK"))
	if n <= 0 {
		t.Skip("set NOMTSTORE_HUGE_BLOCK to the block's writes")
	}
	trees := []string{"acc", "bank", "ibc"}
	var roots [2]map[string]trie.Hash
	for side, blocks := range []int{1, 50} {
		db, err := commitment.Open(t.TempDir(), trees, commitment.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for b := range blocks {
			bigBlock(t, db, 1, n, b*n/blocks, (b+1)*n/blocks)
			if _, err := db.Commit(); err != nil {
				t.Fatal(err)
			}
		}
		roots[side] = db.Roots()
		t.Logf("%d writes in %d block(s): %d batch chunks, peak RSS so far %d MiB", n, blocks, db.Stats().BatchChunks, peakMiB())
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		runtime.GC()
	}
	for _, tree := range trees {
		if roots[0][tree] != roots[1][tree] {
			t.Fatalf("tree %s: one block gives %s, fifty give %s", tree, roots[0][tree], roots[1][tree])
		}
	}
}

func peakMiB() int64 {
	peak, _ := procstat.PeakRSS()
	return peak >> 20
}
