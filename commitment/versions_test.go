package commitment

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble"
	ics23 "github.com/cosmos/ics23/go"

	"github.com/nomtstore/nomtstore/commitment/trie"
)

// versionModel is the reference for versioned reads: every committed
// version's key sets and roots, and what each version superseded, which is
// what pruning must delete and keep.
type versionModel struct {
	states map[uint64]model
	roots  map[uint64]map[string]trie.Hash
	// per version: values superseded (overwritten with another value or
	// deleted), pages rewritten or cleared, and whether anything changed.
	supersededKeys  map[uint64]int
	deletedKeys     map[uint64]int
	supersededPages map[uint64]int
	changedPages    map[uint64]int
	changed         map[uint64]bool
	// mem is one in-memory trie per tree at the latest version, with the
	// DB's elision: its page changes are the model's count of superseded
	// pages. mems keeps it per version, for rollbacks (a stored page whose
	// keys dwindled stays stored, so a trie rebuilt from a version's keys
	// may store fewer pages than the one that lived through it).
	mem    map[string]*trie.MemStore
	mems   map[uint64]map[string]*trie.MemStore
	latest uint64
}

func newVersionModel(elideBelow int) *versionModel {
	vm := &versionModel{
		states: map[uint64]model{0: newModel()}, roots: map[uint64]map[string]trie.Hash{},
		supersededKeys: map[uint64]int{}, deletedKeys: map[uint64]int{}, supersededPages: map[uint64]int{}, changedPages: map[uint64]int{}, changed: map[uint64]bool{},
		mem: map[string]*trie.MemStore{}, mems: map[uint64]map[string]*trie.MemStore{},
	}
	for _, name := range testTrees {
		vm.mem[name] = trie.NewMemStore(0)
		vm.mem[name].Tree().ElideBelow = elideBelow
	}
	vm.mems[0] = vm.mem
	return vm
}

type vmOp struct {
	tree, key string
	value     []byte // nil: delete
}

// randomVersionOps draws a batch over a small key space, so keys are
// overwritten and deleted often.
func randomVersionOps(rng *rand.Rand, m model) []vmOp {
	n := rng.IntN(40)
	if rng.IntN(10) == 0 {
		n = 0 // an empty version
	} else if rng.IntN(15) == 0 {
		n = 400
	}
	seen := map[string]bool{}
	var ops []vmOp
	for range n {
		tree := testTrees[rng.IntN(len(testTrees))]
		key := fmt.Sprintf("k%04d", rng.IntN(1500))
		if rng.IntN(20) == 0 {
			key = string([]byte{'z', 0, byte(rng.IntN(3)), 0}) // zero bytes exercise the key escaping
		}
		if seen[tree+"/"+key] {
			continue
		}
		seen[tree+"/"+key] = true
		op := vmOp{tree: tree, key: key}
		switch r := rng.IntN(10); {
		case r < 3:
		case r < 4 && m[tree][key] != nil:
			op.value = bytes.Clone(m[tree][key]) // the same value again: no change
		default:
			op.value = fmt.Appendf(nil, "v%d", rng.IntN(4))
		}
		ops = append(ops, op)
	}
	return ops
}

// commit applies ops to db and to the model as version v.
func (vm *versionModel) commit(t testing.TB, db *DB, ops []vmOp) uint64 {
	t.Helper()
	for _, op := range ops {
		var err error
		if op.value == nil {
			err = db.Delete(op.tree, []byte(op.key))
		} else {
			err = db.Set(op.tree, []byte(op.key), op.value)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	res, err := db.Commit()
	if err != nil {
		t.Fatalf("commit: %v", err)
	}
	v := res.Version
	prev := vm.states[vm.latest]
	next := model{}
	for name, kv := range prev {
		next[name] = maps.Clone(kv)
	}
	perTree := map[string][]trie.Change{}
	for _, op := range ops {
		old, had := prev[op.tree][op.key]
		switch {
		case op.value == nil && !had, op.value != nil && had && bytes.Equal(old, op.value):
			continue
		case had:
			vm.supersededKeys[v]++
			if op.value == nil {
				vm.deletedKeys[v]++
			}
		}
		vm.changed[v] = true
		if op.value == nil {
			delete(next[op.tree], op.key)
		} else {
			next[op.tree][op.key] = op.value
		}
		perTree[op.tree] = append(perTree[op.tree], trie.Change{Key: []byte(op.key), Value: op.value, Delete: op.value == nil})
	}
	roots := map[string]trie.Hash{}
	for _, name := range testTrees {
		if changes := perTree[name]; len(changes) > 0 {
			res, err := vm.mem[name].Apply(changes)
			if err != nil {
				t.Fatal(err)
			}
			vm.changedPages[v] += len(res.Pages)
			for _, pc := range res.Pages {
				if pc.Prior != nil {
					vm.supersededPages[v]++
				}
			}
		}
		roots[name] = vm.mem[name].Root()
	}
	vm.states[v], vm.roots[v], vm.latest = next, roots, v
	vm.mems[v] = map[string]*trie.MemStore{}
	for name, ms := range vm.mem {
		vm.mems[v][name] = ms.Clone()
	}
	for name, root := range res.Roots {
		if roots[name] != root {
			t.Fatalf("version %d tree %s: committed root %s, model %s", v, name, root, roots[name])
		}
	}
	return v
}

// rollback forgets the versions after target.
func (vm *versionModel) rollback(target uint64) {
	for v := vm.latest; v > target; v-- {
		delete(vm.states, v)
		delete(vm.roots, v)
		delete(vm.supersededKeys, v)
		delete(vm.deletedKeys, v)
		delete(vm.supersededPages, v)
		delete(vm.changedPages, v)
		delete(vm.changed, v)
	}
	vm.latest = target
	vm.mem = map[string]*trie.MemStore{}
	for name, ms := range vm.mems[target] {
		vm.mem[name] = ms.Clone()
	}
	for v := range vm.mems {
		if v > target {
			delete(vm.mems, v)
		}
	}
}

// checkVersion compares every read at version v with the model: roots,
// full and ranged iteration both ways, point reads, and proofs verified
// with ics23 against the version's root.
func checkVersion(t testing.TB, rng *rand.Rand, db *DB, vm *versionModel, v uint64, full bool) {
	t.Helper()
	m := vm.states[v]
	roots, err := db.RootsAt(v)
	if err != nil {
		t.Fatalf("roots at %d: %v", v, err)
	}
	for _, name := range testTrees {
		if roots[name] != vm.roots[v][name] {
			t.Fatalf("version %d tree %s: root %s, model %s", v, name, roots[name], vm.roots[v][name])
		}
		keys := m.sortedKeys(name)
		ranges := [][2][]byte{{nil, nil}}
		lo, hi := fmt.Sprintf("k%04d", rng.IntN(1500)), fmt.Sprintf("k%04d", rng.IntN(1600))
		ranges = append(ranges, [2][]byte{[]byte(min(lo, hi)), []byte(max(lo, hi))}, [2][]byte{[]byte(lo), nil}, [2][]byte{nil, []byte(hi)})
		for _, r := range ranges {
			var expect []string
			for _, k := range keys {
				if (r[0] == nil || k >= string(r[0])) && (r[1] == nil || k < string(r[1])) {
					expect = append(expect, k)
				}
			}
			for _, reverse := range []bool{false, true} {
				it, err := db.NewIteratorAt(name, r[0], r[1], reverse, v)
				if err != nil {
					t.Fatalf("iterator at %d: %v", v, err)
				}
				var seen []string
				for ; it.Valid(); it.Next() {
					seen = append(seen, string(it.Key()))
					if !bytes.Equal(it.Value(), m[name][string(it.Key())]) {
						t.Fatalf("version %d tree %s: iterated %q=%q, model %q", v, name, it.Key(), it.Value(), m[name][string(it.Key())])
					}
				}
				if err := errors.Join(it.Error(), it.Close()); err != nil {
					t.Fatal(err)
				}
				want := slices.Clone(expect)
				if reverse {
					slices.Reverse(want)
				}
				if !slices.Equal(seen, want) {
					t.Fatalf("version %d tree %s [%q,%q) reverse=%v: iterated %d keys %v, model %d %v", v, name, r[0], r[1], reverse, len(seen), head(seen), len(want), head(want))
				}
			}
		}
		probes := 8
		if full {
			probes = len(keys) + 8
		}
		for i := range probes {
			key := fmt.Sprintf("k%04d", rng.IntN(1600))
			if i < len(keys) && full {
				key = keys[i]
			} else if len(keys) > 0 && rng.IntN(2) == 0 {
				key = keys[rng.IntN(len(keys))]
			}
			got, err := db.GetAt(name, []byte(key), v)
			if err != nil || !bytes.Equal(got, m[name][key]) {
				t.Fatalf("version %d tree %s key %s: %q, %v; model %q", v, name, key, got, err, m[name][key])
			}
			if i >= 3 || len(keys) == 0 {
				continue
			}
			proof, exists, err := db.ProveAt(name, []byte(key), v)
			if err != nil {
				t.Fatalf("version %d: prove %s/%s: %v", v, name, key, err)
			}
			value, present := m[name][key]
			root := vm.roots[v][name]
			ok := exists == present && (exists && ics23.VerifyMembership(ics23.SmtSpec, root[:], proof, []byte(key), value) ||
				!exists && ics23.VerifyNonMembership(ics23.SmtSpec, root[:], proof, []byte(key)))
			if !ok {
				t.Fatalf("version %d: proof of %s/%s (exists=%v, model %v) does not verify", v, name, key, exists, present)
			}
		}
	}
	if full {
		if violations, err := db.CheckAt(v); err != nil || len(violations) > 0 {
			t.Fatalf("check at %d: %v %v", v, err, violations)
		}
	}
}

func head(s []string) []string { return s[:min(len(s), 6)] }

// checkRetained checks the versions db should and should not have.
func checkRetained(t testing.TB, rng *rand.Rand, db *DB, vm *versionModel, earliest uint64, sample int) {
	t.Helper()
	if got := db.EarliestVersion(); got != earliest {
		t.Fatalf("earliest version %d, want %d", got, earliest)
	}
	if earliest > 1 {
		pruned := 1 + rng.Uint64N(earliest-1)
		if _, err := db.GetAt(testTrees[0], []byte("k0001"), pruned); !errors.Is(err, ErrVersionPruned) {
			t.Fatalf("read at pruned version %d: %v", pruned, err)
		}
		if _, err := db.NewIteratorAt(testTrees[0], nil, nil, false, pruned); !errors.Is(err, ErrVersionPruned) {
			t.Fatalf("iterator at pruned version %d: %v", pruned, err)
		}
		if _, _, err := db.ProveAt(testTrees[0], []byte("k0001"), pruned); !errors.Is(err, ErrVersionPruned) {
			t.Fatalf("proof at pruned version %d: %v", pruned, err)
		}
	}
	if _, err := db.GetAt(testTrees[0], []byte("k0001"), vm.latest+1); !errors.Is(err, ErrVersionFuture) {
		t.Fatalf("read at future version: %v", err)
	}
	versions := []uint64{earliest, vm.latest}
	for range sample {
		versions = append(versions, earliest+rng.Uint64N(vm.latest-earliest+1))
	}
	for _, v := range versions {
		checkVersion(t, rng, db, vm, v, false)
	}
}

// TestVersionedModel: 320 versions of random ops over three trees, with
// pruning to random versions, rollbacks and reopens at random; after each
// step every read at a sample of retained versions (and at the earliest and
// latest) equals the model, and pruned versions are refused. At the end the
// history holds exactly what the retained versions need.
func TestVersionedModel(t *testing.T) {
	// Every page stored, and elision of pages under 8 keys (with 1,500
	// keys per tree: the root pages and their children stored, the rest
	// elided).
	for _, elide := range []int{1, 8} {
		t.Run(fmt.Sprintf("elide%d", elide), func(t *testing.T) {
			t.Parallel()
			testVersionedModel(t, elide)
		})
	}
}

func testVersionedModel(t *testing.T, elide int) {
	versions := 320
	if testing.Short() {
		versions = 120
	}
	dir := t.TempDir()
	opts := Options{InitialBuckets: 32, PageCachePages: 128, ElideBelow: elide}
	db, err := Open(dir, testTrees, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	rng := rand.New(rand.NewPCG(41, 42))
	vm := newVersionModel(db.committed.elideBelow)
	earliest := uint64(0)
	events := map[string]int{}
	for vm.latest < uint64(versions) {
		ops := randomVersionOps(rng, vm.states[vm.latest])
		if vm.latest == 0 {
			ops = append(ops, vmOp{tree: "acc", key: "first", value: []byte("version")})
		}
		v := vm.commit(t, db, ops)
		if earliest == 0 {
			earliest = v
		}
		switch r := rng.IntN(40); {
		case r < 4 && vm.latest > earliest+40:
			// Keep a window of 20 versions or more to read.
			to := earliest + rng.Uint64N(vm.latest-earliest-20)
			if rng.IntN(4) == 0 {
				to = earliest - 1 // below the earliest: nothing to do
			}
			if err := db.PruneTo(to); err != nil {
				t.Fatalf("prune to %d: %v", to, err)
			}
			earliest = max(earliest, to+1)
			checkHistoryExact(t, db, vm, earliest)
			events["prune"]++
		case r == 4:
			if err := db.PruneTo(vm.latest); !errors.Is(err, ErrPruneLatest) {
				t.Fatalf("prune to the latest: %v", err)
			}
		case r == 5 && vm.latest > earliest:
			target := vm.latest - 1 - rng.Uint64N(min(8, vm.latest-earliest))
			if err := db.Rollback(target); err != nil {
				t.Fatalf("rollback to %d: %v", target, err)
			}
			vm.rollback(target)
			checkHistoryExact(t, db, vm, earliest)
			events["rollback"]++
		case r == 6:
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if db, err = Open(dir, testTrees, opts); err != nil {
				t.Fatal(err)
			}
			events["reopen"]++
		}
		if db.Version() != vm.latest {
			t.Fatalf("at version %d, model %d", db.Version(), vm.latest)
		}
		if !raceEnabled || vm.latest%4 == 0 {
			checkRetained(t, rng, db, vm, earliest, 2)
		}
	}
	for v := earliest; v <= vm.latest; v++ {
		checkVersion(t, rng, db, vm, v, v%10 == 0 || v == earliest)
	}
	checkHistoryExact(t, db, vm, earliest)
	t.Logf("%d versions, earliest %d; %v; table %d buckets", vm.latest, earliest, events, db.Stats().Table.Buckets)
	if events["prune"] == 0 || events["rollback"] == 0 || events["reopen"] == 0 {
		t.Fatalf("the run missed an event: %v", events)
	}
}

// countPrefix counts the Pebble keys starting with prefix.
func countPrefix(t testing.TB, db *DB, prefix byte) int {
	return countEntries(t, db, prefix, func([]byte) bool { return true })
}

// countEntries counts the entries under prefix whose value passes keep.
func countEntries(t testing.TB, db *DB, prefix byte, keep func(value []byte) bool) int {
	t.Helper()
	it, err := db.pebbleOf(prefix).NewIter(&pebble.IterOptions{LowerBound: []byte{prefix}, UpperBound: []byte{prefix + 1}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for it.First(); it.Valid(); it.Next() {
		if keep(it.Value()) {
			n++
		}
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	return n
}

// checkHistoryExact: the history holds one entry per value and page that a
// retained version superseded (so retained versions can read them), and,
// once a checkpoint ran, nothing that only pruned versions could read.
func checkHistoryExact(t testing.TB, db *DB, vm *versionModel, earliest uint64) {
	t.Helper()
	// Pruned versions' superseded pages go at the checkpoint after the
	// pruning (checkpointTo).
	if err := db.WaitFlushed(); err != nil {
		t.Fatal(err)
	}
	wantKeys, wantDeleted, wantPages, wantPageChanges, wantLists := 0, 0, 0, 0, 0
	if earliest == 1 && vm.changed[1] {
		// The first version's list and page changes go when it is pruned.
		wantLists++
		wantPageChanges += vm.changedPages[1]
	}
	for v := earliest + 1; v <= vm.latest; v++ {
		wantKeys += vm.supersededKeys[v]
		wantDeleted += vm.deletedKeys[v]
		wantPages += vm.supersededPages[v]
		wantPageChanges += vm.changedPages[v]
		if vm.changed[v] {
			wantLists++
		}
	}
	got := map[string][2]int{
		"superseded entries": {countPrefix(t, db, prefixOldEntry), wantKeys},
		"deleted keys":       {countPrefix(t, db, prefixDeleted), wantDeleted},
		"superseded pages":   {countPrefix(t, db, prefixOldPage), wantPages},
		"page changes":       {countPrefix(t, db, prefixOldPageByID), wantPageChanges},
		"change lists":       {countPrefix(t, db, prefixChanges), wantLists},
		"roots records":      {countPrefix(t, db, prefixRoots), int(vm.latest - earliest + 1)},
	}
	for what, n := range got {
		if n[0] != n[1] {
			t.Errorf("%s: %d entries, the retained versions %d..%d need %d", what, n[0], earliest, vm.latest, n[1])
		}
	}
	if testing.Verbose() {
		t.Logf("history entries for versions %d..%d: %v (got, want)", earliest, vm.latest, got)
	}
}

// TestRollbackReplaysToSameRoots: after a rollback to t, committing the
// same batches again gives the same roots at every version, and every
// version reads as before; rolling back to a pruned or future version is
// refused and changes nothing.
func TestRollbackReplaysToSameRoots(t *testing.T) {
	dir := t.TempDir()
	opts := Options{InitialBuckets: 16, ElideBelow: 8}
	db, err := Open(dir, testTrees, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	rng := rand.New(rand.NewPCG(3, 4))
	vm := newVersionModel(db.committed.elideBelow)
	var batches [][]vmOp
	for range 40 {
		ops := randomVersionOps(rng, vm.states[vm.latest])
		batches = append(batches, ops)
		vm.commit(t, db, ops)
	}
	checkHistoryExact(t, db, vm, 1)
	if err := db.PruneTo(10); err != nil {
		t.Fatal(err)
	}
	checkHistoryExact(t, db, vm, 11)
	if err := db.Rollback(5); !errors.Is(err, ErrVersionPruned) || !strings.Contains(err.Error(), "earliest retained is 11") {
		t.Fatalf("rollback to a pruned version: %v", err)
	}
	if err := db.Rollback(41); !errors.Is(err, ErrVersionFuture) {
		t.Fatalf("rollback to a future version: %v", err)
	}
	if db.Version() != 40 {
		t.Fatalf("a refused rollback moved the version to %d", db.Version())
	}
	// Staged changes are dropped by a rollback.
	if err := db.Set("acc", []byte("staged"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := db.Rollback(25); err != nil {
		t.Fatal(err)
	}
	if db.Version() != 25 || db.EarliestVersion() != 11 {
		t.Fatalf("after rollback: version %d earliest %d", db.Version(), db.EarliestVersion())
	}
	if _, err := db.GetAt("acc", []byte("k0001"), 26); !errors.Is(err, ErrVersionFuture) {
		t.Fatalf("read at a rolled-back version: %v", err)
	}
	// Reopen between rollback and replay: the rollback is durable.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if db, err = Open(dir, testTrees, opts); err != nil {
		t.Fatal(err)
	}
	if db.Version() != 25 {
		t.Fatalf("reopened at %d after rollback to 25", db.Version())
	}
	want := vm.roots
	vm.rollback(25)
	checkHistoryExact(t, db, vm, 11)
	for v := 26; v <= 40; v++ {
		vm.commit(t, db, batches[v-1])
		if !maps.Equal(vm.roots[uint64(v)], want[uint64(v)]) {
			t.Fatalf("version %d replayed to roots %v, first time %v", v, vm.roots[uint64(v)], want[uint64(v)])
		}
	}
	if v, err := db.GetAt("acc", []byte("staged"), 40); v != nil || err != nil {
		t.Fatalf("a staged change survived the rollback: %q %v", v, err)
	}
	for v := uint64(11); v <= 40; v++ {
		checkVersion(t, rng, db, vm, v, true)
	}
	checkHistoryExact(t, db, vm, 11)
}

// TestPruneFailureIsReported: a damaged change list stops pruning with a
// corruption error that names the version, counted in Stats; the versions
// not yet pruned stay readable, and nothing else is lost.
func TestPruneFailureIsReported(t *testing.T) {
	db, err := Open(t.TempDir(), testTrees, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	rng := rand.New(rand.NewPCG(5, 6))
	vm := newVersionModel(db.committed.elideBelow)
	for range 8 {
		vm.commit(t, db, append(randomVersionOps(rng, vm.states[vm.latest]), vmOp{tree: "acc", key: "always", value: fmt.Appendf(nil, "%d", vm.latest)}))
	}
	if err := db.pebble.Set(versionKey(prefixChanges, 4), []byte{0xff, 0xff, 0xff}, pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	err = db.PruneTo(6)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "pruning version 3") {
		t.Fatalf("prune over a damaged change list: %v", err)
	}
	st := db.Stats()
	if st.EarliestVersion != 3 || st.PruneFailures != 1 || st.LastPruneError == nil || st.PrunedVersions != 2 {
		t.Fatalf("stats after the failure: %+v", st)
	}
	for v := uint64(3); v <= 8; v++ {
		checkVersion(t, rng, db, vm, v, false)
	}
}

// TestVersionRecords: an application record staged for a version is
// readable at that version, is discarded with the staged changes, goes with
// the version when it is pruned or rolled back, and survives a reopen.
func TestVersionRecords(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, testTrees, Options{})
	if err != nil {
		t.Fatal(err)
	}
	record := func(v uint64) []byte { return fmt.Appendf(nil, "info of %d", v) }
	for v := uint64(1); v <= 10; v++ {
		if err := db.Set("acc", []byte("k"), fmt.Appendf(nil, "%d", v)); err != nil {
			t.Fatal(err)
		}
		if v == 4 {
			db.SetVersionRecord([]byte("discarded"))
			db.Discard()
		} else {
			db.SetVersionRecord(record(v))
		}
		if _, err := db.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.PruneTo(2); err != nil {
		t.Fatal(err)
	}
	if err := db.Rollback(8); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if db, err = Open(dir, testTrees, Options{}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	tests := []struct {
		version uint64
		want    []byte
		err     error
	}{
		{2, nil, ErrVersionPruned},
		{3, record(3), nil},
		{4, nil, nil},
		{8, record(8), nil},
		{9, nil, ErrVersionFuture},
	}
	for _, tc := range tests {
		got, err := db.VersionRecord(tc.version)
		if !errors.Is(err, tc.err) || !bytes.Equal(got, tc.want) {
			t.Errorf("version %d: got %q, %v; want %q, %v", tc.version, got, err, tc.want, tc.err)
		}
	}
	if n := countPrefix(t, db, prefixAppVersion); n != 5 { // 3, 5, 6, 7, 8
		t.Errorf("%d version records on disk, want 5", n)
	}
}

// TestAddTrees: a tree added to an open DB keeps the changes already staged
// in other trees, is empty at the versions before it, and is still there
// after a reopen that names no trees.
func TestAddTrees(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, []string{"acc"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustSet := func(tree, key, value string) {
		t.Helper()
		if err := db.Set(tree, []byte(key), []byte(value)); err != nil {
			t.Fatal(err)
		}
	}
	mustSet("acc", "a", "1")
	if _, err := db.Commit(); err != nil {
		t.Fatal(err)
	}
	mustSet("acc", "b", "2")
	if err := db.AddTrees("acc", "fresh"); err != nil {
		t.Fatal(err)
	}
	mustSet("fresh", "c", "3")
	if _, err := db.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if db, err = Open(dir, nil, Options{}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	if got := db.Trees(); !slices.Equal(got, []string{"acc", "fresh"}) {
		t.Fatalf("trees after reopen: %v", got)
	}
	for _, tc := range []struct {
		tree, key string
		version   uint64
		want      string
	}{
		{"acc", "b", 2, "2"},
		{"fresh", "c", 2, "3"},
		{"fresh", "c", 1, ""},
	} {
		got, err := db.GetAt(tc.tree, []byte(tc.key), tc.version)
		if err != nil || string(got) != tc.want {
			t.Errorf("%s/%s at %d: %q, %v; want %q", tc.tree, tc.key, tc.version, got, err, tc.want)
		}
	}
	if roots, err := db.RootsAt(1); err != nil || roots["fresh"] != (trie.Hash{}) {
		t.Errorf("the new tree's root before it was added: %x, %v", roots["fresh"], err)
	}
	if v, err := db.CheckAt(1); err != nil || len(v["acc"])+len(v["fresh"]) > 0 {
		t.Errorf("check at 1: %v %v", v, err)
	}
}

// TestEmptyValues: an empty value is stored and read back as an empty,
// non-nil value (the SDK's key sets rely on Has), survives history, its
// leaf commits to the stand-in, and proofs that name it verify: its own
// (with the stand-in as value) and an absence proof next to it.
func TestEmptyValues(t *testing.T) {
	db, err := Open(t.TempDir(), []string{"acc"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	if err := db.Set("acc", []byte("k"), []byte{}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := db.Set("acc", []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Commit(); err != nil {
		t.Fatal(err)
	}
	got, err := db.GetAt("acc", []byte("k"), 1)
	if err != nil || got == nil || len(got) != 0 {
		t.Fatalf("empty value at version 1: %v (nil: %t), %v", got, got == nil, err)
	}
	roots, err := db.RootsAt(1)
	if err != nil {
		t.Fatal(err)
	}
	keyHash, valueHash := sha256.Sum256([]byte("k")), sha256.Sum256(trie.EmptyValueStandIn)
	if want := sha256.Sum256(slices.Concat([]byte{0}, keyHash[:], valueHash[:])); roots["acc"] != trie.Hash(want) {
		t.Fatalf("root of one empty-valued key: %x, want %x", roots["acc"], want)
	}
	root := roots["acc"]
	proof, exists, err := db.ProveAt("acc", []byte("k"), 1)
	if err != nil || !exists || !ics23.VerifyMembership(ics23.SmtSpec, root[:], proof, []byte("k"), trie.EmptyValueStandIn) {
		t.Fatalf("proof of the empty value: exists %t, %v", exists, err)
	}
	absent, exists, err := db.ProveAt("acc", []byte("absent"), 1)
	if err != nil || exists || !ics23.VerifyNonMembership(ics23.SmtSpec, root[:], absent, []byte("absent")) {
		t.Fatalf("absence proof next to the empty value: exists %t, %v", exists, err)
	}
	it, err := db.NewIteratorAt("acc", nil, nil, false, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = it.Close() }()
	if !it.Valid() || string(it.Key()) != "k" || it.Value() == nil || len(it.Value()) != 0 {
		t.Fatalf("iterating an empty value: valid %t", it.Valid())
	}
}
