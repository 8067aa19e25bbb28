package bitbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"

	"github.com/nomtstore/nomtstore/commitment/trie"
	"github.com/nomtstore/nomtstore/commitment/vfs"
)

// randomPage returns a page of store with a few random nodes.
func randomPage(rng *rand.Rand, key PageKey) *trie.Page {
	p := trie.NewPage(key.Store, key.ID)
	for range 1 + rng.IntN(10) {
		var h trie.Hash
		for i := range h {
			h[i] = byte(rng.UintN(256))
		}
		p.SetNode(rng.IntN(trie.PageNodes), trie.Node{Hash: h, Leaf: rng.IntN(2) == 0})
	}
	return p
}

func randomKeys(rng *rand.Rand, n int) []PageKey {
	seen := map[PageKey]bool{}
	var keys []PageKey
	for len(keys) < n {
		id := trie.RootPageID
		for range rng.IntN(4) {
			id = id.Child(rng.IntN(trie.PageFanout))
		}
		k := PageKey{Store: trie.StoreID(1 + rng.IntN(3)), ID: id}
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	return keys
}

// newTestTable creates an empty table in a temporary directory, closed when
// the test ends, and returns it with its path.
func newTestTable(t *testing.T, buckets, seed uint64) (*Table, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pages.ht")
	tbl, err := CreateTable(vfs.Default, path, buckets, seed)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tbl.Close() })
	return tbl, path
}

// commit runs one commit's table steps: plan, apply, checkpoint.
func commit(t *testing.T, tbl *Table, changes []Change) {
	t.Helper()
	if err := tbl.Assign(changes); err != nil {
		t.Fatal(err)
	}
	tbl.Apply(changes)
	if err := tbl.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if n := tbl.Dirty(); n != 0 {
		t.Fatalf("%d pages dirty after a checkpoint", n)
	}
}

func lookupAll(t *testing.T, tbl *Table, want map[PageKey]*trie.Page, absent []PageKey) {
	t.Helper()
	for k, p := range want {
		got, _, found, err := tbl.Lookup(k)
		if err != nil || !found {
			t.Fatalf("%s: found=%v err=%v", k, found, err)
		}
		if [trie.ChecksumOffset]byte(got[:trie.ChecksumOffset]) != [trie.ChecksumOffset]byte(p[:trie.ChecksumOffset]) {
			t.Fatalf("%s: content differs", k)
		}
	}
	for _, k := range absent {
		if _, _, found, err := tbl.Lookup(k); found || err != nil {
			t.Fatalf("cleared %s: found=%v err=%v", k, found, err)
		}
	}
}

// TestTableLifecycle stores, rewrites and clears pages over several commits,
// reopening and growing the table, and checks every lookup and count.
func TestTableLifecycle(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	path := filepath.Join(t.TempDir(), "pages.ht")
	tbl, err := CreateTable(vfs.Default, path, 64, 42)
	if err != nil {
		t.Fatal(err)
	}
	keys := randomKeys(rng, 120)
	live := map[PageKey]*trie.Page{}
	buckets := map[PageKey]uint64{}
	var cleared []PageKey
	for round := range 8 {
		var changes []Change
		for _, k := range keys[round*15 : round*15+15] {
			changes = append(changes, Change{Key: k, Page: randomPage(rng, k)})
		}
		for k, p := range live {
			switch rng.IntN(4) {
			case 0:
				changes = append(changes, Change{Key: k, Prior: p, Bucket: buckets[k]})
			case 1:
				changes = append(changes, Change{Key: k, Page: randomPage(rng, k), Prior: p, Bucket: buckets[k]})
			}
		}
		newPages := uint64(0)
		for _, c := range changes {
			if c.Prior == nil {
				newPages++
			}
		}
		if size, grow := tbl.NeedsGrowth(newPages, 0.75); grow {
			old := tbl
			if tbl, err = tbl.Grow(size); err != nil {
				t.Fatal(err)
			}
			_ = old.Close()
			for k := range live {
				_, b, _, _ := tbl.Lookup(k)
				buckets[k] = b
			}
			for i := range changes {
				if changes[i].Prior != nil {
					changes[i].Bucket = buckets[changes[i].Key]
				}
			}
		}
		commit(t, tbl, changes)
		for _, c := range changes {
			if c.Page == nil {
				delete(live, c.Key)
				cleared = append(cleared, c.Key)
			} else {
				live[c.Key] = c.Page
				buckets[c.Key] = c.Bucket
			}
		}
		lookupAll(t, tbl, live, cleared[:0:0])
		if err := tbl.Close(); err != nil {
			t.Fatal(err)
		}
		if tbl, err = OpenTable(vfs.Default, path); err != nil {
			t.Fatal(err)
		}
		st := tbl.Stats()
		if st.Full != uint64(len(live)) {
			t.Fatalf("round %d: %d full buckets, %d live pages", round, st.Full, len(live))
		}
	}
	var stillCleared []PageKey
	for _, k := range cleared {
		if live[k] == nil {
			stillCleared = append(stillCleared, k)
		}
	}
	lookupAll(t, tbl, live, stillCleared)
	st := tbl.Stats()
	t.Logf("%d buckets, generation %d, %d full, %d tombstones, mean probe %.2f", st.Buckets, st.Generation, st.Full, st.Tombstones, st.MeanProbe)
	if st.Generation == 0 {
		t.Fatal("the table never grew")
	}
	_ = tbl.Close()
}

func TestAssignReusesTombstones(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	tbl, _ := newTestTable(t, 8, 1)
	keys := randomKeys(rng, 16)
	var changes []Change
	for _, k := range keys[:6] {
		changes = append(changes, Change{Key: k, Page: randomPage(rng, k)})
	}
	commit(t, tbl, changes)
	var clears []Change
	for _, c := range changes {
		clears = append(clears, Change{Key: c.Key, Prior: c.Page, Bucket: c.Bucket})
	}
	commit(t, tbl, clears)
	if st := tbl.Stats(); st.Full != 0 || st.Tombstones != 6 {
		t.Fatalf("after clearing: %+v", st)
	}
	// Six new pages fit in 8 buckets only by reusing the tombstones.
	var again []Change
	for _, k := range keys[6:12] {
		again = append(again, Change{Key: k, Page: randomPage(rng, k)})
	}
	commit(t, tbl, again)
	if st := tbl.Stats(); st.Full != 6 || st.Tombstones > 2 {
		t.Fatalf("tombstones not reused: %+v", st)
	}
	var full []Change
	for _, k := range keys[12:16] {
		full = append(full, Change{Key: k, Page: randomPage(rng, k)})
	}
	if err := tbl.Assign(full); err == nil {
		t.Fatal("assigning 10 pages to 8 buckets succeeded")
	}
}

func walChanges(rng *rand.Rand, n int) []Change {
	var changes []Change
	for i, k := range randomKeys(rng, n) {
		c := Change{Key: k}
		switch i % 3 {
		case 0:
			c.Page = randomPage(rng, k)
		case 1:
			c.Prior = randomPage(rng, k)
			c.Page = c.Prior.Clone()
			c.Page.SetNode(5, trie.Node{Hash: trie.ValueHash([]byte{byte(i)})})
		default:
			c.Prior = randomPage(rng, k)
		}
		changes = append(changes, c)
	}
	return changes
}

// TestWALRoundTripAndReplay: a WAL decodes to its changes, and replaying it
// onto a table holding the prior pages yields the new ones.
func TestWALRoundTripAndReplay(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	tbl, _ := newTestTable(t, 64, 9)
	changes := walChanges(rng, 30)
	var priors []Change
	for _, c := range changes {
		if c.Prior != nil {
			priors = append(priors, Change{Key: c.Key, Page: c.Prior})
		}
	}
	commit(t, tbl, priors)
	at := map[PageKey]uint64{}
	for _, c := range priors {
		at[c.Key] = c.Bucket
	}
	for i := range changes {
		changes[i].Bucket = at[changes[i].Key]
	}
	if err := tbl.Assign(changes); err != nil {
		t.Fatal(err)
	}
	data := EncodeWAL(77, tbl.Generation(), changes)
	w, err := DecodeWAL("test.wal", data)
	if err != nil {
		t.Fatal(err)
	}
	if w.Seq != 77 || len(w.Records) != len(changes) {
		t.Fatalf("decoded seq %d, %d records", w.Seq, len(w.Records))
	}
	for range 2 { // replay is idempotent
		if err := tbl.Replay(w); err != nil {
			t.Fatal(err)
		}
		for _, c := range changes {
			got, _, found, err := tbl.Lookup(c.Key)
			switch {
			case err != nil:
				t.Fatal(err)
			case c.Page == nil && found:
				t.Fatalf("%s: cleared page still found", c.Key)
			case c.Page != nil && (!found || [trie.ChecksumOffset]byte(got[:trie.ChecksumOffset]) != [trie.ChecksumOffset]byte(c.Page[:trie.ChecksumOffset])):
				t.Fatalf("%s: replayed page differs (found=%v)", c.Key, found)
			}
		}
	}
	w.Generation++
	if err := tbl.Replay(w); !errors.Is(err, ErrWALGeneration) {
		t.Fatalf("replay of another generation: %v", err)
	}
}

// TestWALDetectsDamage: every single flipped byte and every truncation of a
// WAL is reported as corruption (or, for the version field, as a format
// error), never decoded.
func TestWALDetectsDamage(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	data := EncodeWAL(5, 0, walChanges(rng, 6))
	for i := range data {
		damaged := append([]byte(nil), data...)
		damaged[i] ^= 1 << uint(rng.IntN(8))
		if _, err := DecodeWAL("x.wal", damaged); !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrFormat) {
			t.Fatalf("flip at offset %d: %v", i, err)
		}
	}
	for n := range len(data) {
		if _, err := DecodeWAL("x.wal", data[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d bytes: %v", n, err)
		}
	}
}

func TestTableRejectsDamage(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	path := filepath.Join(t.TempDir(), "pages.ht")
	tbl, err := CreateTable(vfs.Default, path, 16, 3)
	if err != nil {
		t.Fatal(err)
	}
	k := randomKeys(rng, 1)[0]
	changes := []Change{{Key: k, Page: randomPage(rng, k)}}
	commit(t, tbl, changes)
	b := changes[0].Bucket
	_ = tbl.Close()

	flip := func(off int64) {
		f, err := vfs.Default.OpenFile(path, 2, 0)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1)
		_, _ = f.ReadAt(buf, off)
		buf[0] ^= 0x20
		_, _ = f.WriteAt(buf, off)
		_ = f.Close()
	}
	bucketOff := blockSize + metaSizeFor(16) + int64(b)*blockSize
	flip(bucketOff + 100)
	tbl, err = OpenTable(vfs.Default, path)
	if err != nil {
		t.Fatal(err)
	}
	_, _, _, err = tbl.Lookup(k)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), fmt.Sprint(bucketOff)) {
		t.Fatalf("damaged page: %v", err)
	}
	_ = tbl.Close()
	flip(20) // the header
	if _, err := OpenTable(vfs.Default, path); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("damaged header: %v", err)
	}
}

// TestGrowRefusesTooSmall: growing into fewer buckets than pages cannot
// place every page within the probe limit, and leaves the table untouched.
func TestGrowRefusesTooSmall(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 6))
	tbl, path := newTestTable(t, 32, 4)
	var changes []Change
	live := map[PageKey]*trie.Page{}
	for _, k := range randomKeys(rng, 12) {
		p := randomPage(rng, k)
		changes = append(changes, Change{Key: k, Page: p})
		live[k] = p
	}
	commit(t, tbl, changes)
	if _, err := tbl.Grow(8); !errors.Is(err, ErrProbeLimit) {
		t.Fatalf("growing 12 pages into 8 buckets: %v", err)
	}
	lookupAll(t, tbl, live, nil)
	if _, err := vfs.Default.Stat(path + ".grow"); err == nil {
		t.Fatal("the failed growth left its file")
	}
}

// TestDamagedCountsAreRefused: a header whose checksum was recomputed over
// a damaged bucket or record count is refused before any size arithmetic
// or allocation depends on it.
func TestDamagedCountsAreRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pages.ht")
	for _, buckets := range []uint64{0, 1 << 62} {
		header := encodeHeader(buckets, 1, 0)
		if err := os.WriteFile(path, append(header, make([]byte, blockSize)...), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := OpenTable(vfs.Default, path); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%d buckets: %v", buckets, err)
		}
	}
	data := EncodeWAL(1, 0, nil)
	binary.BigEndian.PutUint32(data[12:], 1<<30)
	binary.BigEndian.PutUint64(data[32:], xxhash.Sum64(data[:32]))
	end := len(data) - walTrailerSize
	binary.BigEndian.PutUint64(data[end+8:], xxhash.Sum64(data[:end+8]))
	if _, err := DecodeWAL("x.wal", data); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a WAL claiming 2^30 records: %v", err)
	}
}

// TestReplayOverTornCheckpoint: pages committed in several WALs since the
// last checkpoint, then a checkpoint cut short with every sector of every
// bucket it wrote either old or new (and some buckets reused by another
// page in the meantime): replaying the WALs in order over the file gives
// exactly the committed pages.
func TestReplayOverTornCheckpoint(t *testing.T) {
	for trial := range 20 {
		rng := rand.New(rand.NewPCG(uint64(trial), 11))
		dir := t.TempDir()
		path := filepath.Join(dir, "pages.ht")
		tbl, err := CreateTable(vfs.Default, path, 64, 5)
		if err != nil {
			t.Fatal(err)
		}
		keys := randomKeys(rng, 24)
		live := map[PageKey]*trie.Page{}
		var first []Change
		for _, k := range keys[:12] {
			p := randomPage(rng, k)
			first = append(first, Change{Key: k, Page: p})
			live[k] = p
		}
		commit(t, tbl, first)
		before := map[uint64][]byte{} // bucket bytes at the checkpoint
		for b := range uint64(64) {
			raw, _ := tbl.readRaw(b)
			before[b] = append([]byte(nil), raw[:]...)
		}
		metaBefore := make([]byte, blockSize)
		if _, err := tbl.file.ReadAt(metaBefore, blockSize); err != nil {
			t.Fatal(err)
		}
		// Three commits after the checkpoint: rewrite, clear, create.
		var wals []*WAL
		for seq := uint64(1); seq <= 3; seq++ {
			var changes []Change
			for _, k := range keys {
				cur := live[k]
				switch r := rng.IntN(6); {
				case cur != nil && r < 3:
					next := cur.Clone()
					for range 1 + rng.IntN(5) {
						s := rng.IntN(trie.PageNodes)
						var h trie.Hash
						h[0], h[1] = byte(rng.Uint32()), 1
						next.SetNode(s, trie.Node{Hash: h, Leaf: rng.IntN(2) == 0})
					}
					_, b, _, _ := tbl.Lookup(k)
					changes = append(changes, Change{Key: k, Page: next, Prior: cur, Bucket: b})
					live[k] = next
				case cur != nil && r == 3:
					_, b, _, _ := tbl.Lookup(k)
					changes = append(changes, Change{Key: k, Prior: cur, Bucket: b})
					delete(live, k)
				case cur == nil && r == 4:
					p := randomPage(rng, k)
					changes = append(changes, Change{Key: k, Page: p})
					live[k] = p
				}
			}
			if err := tbl.Assign(changes); err != nil {
				t.Fatal(err)
			}
			w, err := DecodeWAL("w", EncodeWAL(seq, tbl.Generation(), changes))
			if err != nil {
				t.Fatal(err)
			}
			wals = append(wals, w)
			tbl.Apply(changes)
		}
		if err := tbl.Checkpoint(); err != nil {
			t.Fatal(err)
		}
		// Tear: each 512-byte sector of each data bucket goes back to
		// what it held at the first checkpoint, or stays new.
		for b, old := range before {
			raw, _ := tbl.readRaw(b)
			for s := 0; s < blockSize; s += 512 {
				if rng.IntN(2) == 0 {
					copy(raw[s:s+512], old[s:s+512])
				}
			}
			if _, err := tbl.file.WriteAt(raw[:], tbl.bucketOffset(b)); err != nil {
				t.Fatal(err)
			}
		}
		metaAfter := make([]byte, blockSize)
		if _, err := tbl.file.ReadAt(metaAfter, blockSize); err != nil {
			t.Fatal(err)
		}
		for s := 0; s < blockSize; s += 512 {
			if rng.IntN(2) == 0 {
				copy(metaAfter[s:s+512], metaBefore[s:s+512])
			}
		}
		if _, err := tbl.file.WriteAt(metaAfter, blockSize); err != nil {
			t.Fatal(err)
		}
		_ = tbl.Close()
		reopened, err := OpenTable(vfs.Default, path)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range wals {
			if err := reopened.Replay(w); err != nil {
				t.Fatal(err)
			}
		}
		if err := reopened.Checkpoint(); err != nil {
			t.Fatal(err)
		}
		_ = reopened.Close()
		final, err := OpenTable(vfs.Default, path)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			got, _, found, err := final.Lookup(k)
			if err != nil {
				t.Fatalf("trial %d: %s: %v", trial, k, err)
			}
			want := live[k]
			if found != (want != nil) || found && [trie.ChecksumOffset]byte(got[:trie.ChecksumOffset]) != [trie.ChecksumOffset]byte(want[:trie.ChecksumOffset]) {
				t.Fatalf("trial %d: %s: found=%v, want present=%v, or content differs", trial, k, found, want != nil)
			}
		}
		_ = final.Close()
	}
}
