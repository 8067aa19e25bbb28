package commitment_test

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	ics23 "github.com/cosmos/ics23/go"

	"github.com/nomtstore/nomtstore/commitment"
	"github.com/nomtstore/nomtstore/commitment/trie"
)

// The model of the black-box tests (power cuts, soak): what every version
// holds, checked through the engine's public API only, so that the tests
// hold for any engine behind it.

var modelTrees = []string{"acc", "bank", "staking"}

// state is one version's content: tree -> key -> value. A state is never
// changed once a version holds it.
type state map[string]map[string]string

func newState() state {
	s := state{}
	for _, name := range modelTrees {
		s[name] = map[string]string{}
	}
	return s
}

func (s state) clone() state {
	out := state{}
	for name, kv := range s {
		out[name] = maps.Clone(kv)
	}
	return out
}

func (s state) sortedKeys(tree string) []string {
	return slices.Sorted(maps.Keys(s[tree]))
}

// version is a committed version of the model: its state, roots and the
// application's record of it (SetVersionRecord; "" for none).
type version struct {
	st     state
	roots  map[string]trie.Hash
	record string
}

func newVersion(t testing.TB, st state) *version {
	t.Helper()
	roots := map[string]trie.Hash{}
	for name, kv := range st {
		ms := trie.NewMemStore(0)
		if _, err := ms.Apply(changesOf(kv, slices.Collect(maps.Keys(kv)))); err != nil {
			t.Fatal(err)
		}
		roots[name] = ms.Root()
	}
	return &version{st: st, roots: roots}
}

// changesOf turns keys of a tree's state into trie changes: a set of the
// key's value, or its deletion when kv lacks it.
func changesOf(kv map[string]string, keys []string) []trie.Change {
	changes := make([]trie.Change, 0, len(keys))
	for _, k := range keys {
		v, ok := kv[k]
		if !ok {
			changes = append(changes, trie.Change{Key: []byte(k), Delete: true})
			continue
		}
		value := []byte(v)
		if len(value) == 0 {
			// The engine commits an empty value as the stand-in.
			value = trie.EmptyValueStandIn
		}
		changes = append(changes, trie.Change{Key: []byte(k), Value: value})
	}
	return changes
}

// incrementalModel keeps one in-memory trie per tree, for a model whose
// versions only move forward (no rollback): each version's roots cost its
// changes, not the whole state.
type incrementalModel map[string]*trie.MemStore

func newIncrementalModel() incrementalModel {
	m := incrementalModel{}
	for _, name := range modelTrees {
		m[name] = trie.NewMemStore(0)
	}
	return m
}

// next returns the version of st, whose changes from the last one are the
// keys in touched.
func (m incrementalModel) next(t testing.TB, st state, touched map[string]map[string]bool) *version {
	t.Helper()
	roots := map[string]trie.Hash{}
	for name, ms := range m {
		if keys := touched[name]; len(keys) > 0 {
			if _, err := ms.Apply(changesOf(st[name], slices.Collect(maps.Keys(keys)))); err != nil {
				t.Fatal(err)
			}
		}
		roots[name] = ms.Root()
	}
	return &version{st: st, roots: roots}
}

// stageRandom stages size random sets and deletes on db and applies them
// to st: existing and new keys, empty values now and then. fresh names keys
// never used before (g-prefixed, from *next), which grow the trie. It
// returns the keys it touched, per tree.
func stageRandom(t testing.TB, rng *rand.Rand, db *commitment.DB, st state, size, keySpace, fresh int, next *int) map[string]map[string]bool {
	t.Helper()
	touched := map[string]map[string]bool{}
	touch := func(tree, key string) {
		if touched[tree] == nil {
			touched[tree] = map[string]bool{}
		}
		touched[tree][key] = true
	}
	for range size {
		tree := modelTrees[rng.IntN(len(modelTrees))]
		key := fmt.Sprintf("k%05d", rng.IntN(keySpace))
		if rng.IntN(4) == 0 {
			if err := db.Delete(tree, []byte(key)); err != nil {
				t.Fatal(err)
			}
			delete(st[tree], key)
			touch(tree, key)
			continue
		}
		value := fmt.Sprintf("v%x", rng.Uint32())
		if rng.IntN(25) == 0 {
			value = ""
		}
		if err := db.Set(tree, []byte(key), []byte(value)); err != nil {
			t.Fatal(err)
		}
		st[tree][key] = value
		touch(tree, key)
	}
	for range fresh {
		tree := modelTrees[rng.IntN(len(modelTrees))]
		*next++
		key, value := fmt.Sprintf("g%07d", *next), fmt.Sprintf("f%x", rng.Uint32())
		if err := db.Set(tree, []byte(key), []byte(value)); err != nil {
			t.Fatal(err)
		}
		st[tree][key] = value
		touch(tree, key)
	}
	return touched
}

// checkVersion compares a retained version u of db with the model: its
// roots, every key in iteration order both ways, point reads (of present
// and absent keys) and proofs verified against the roots with ics23. It
// returns the first difference, or nil.
func checkVersion(rng *rand.Rand, db *commitment.DB, u uint64, want *version, proofs int) error {
	roots, err := db.RootsAt(u)
	if err != nil {
		return fmt.Errorf("roots at %d: %w", u, err)
	}
	if !maps.Equal(roots, want.roots) {
		return fmt.Errorf("roots at %d are %v, the model's %v", u, roots, want.roots)
	}
	record, err := db.VersionRecord(u)
	if err != nil {
		return fmt.Errorf("record of %d: %w", u, err)
	}
	if string(record) != want.record {
		return fmt.Errorf("record of %d is %q, the model's %q", u, record, want.record)
	}
	for _, name := range modelTrees {
		keys := want.st.sortedKeys(name)
		if err := checkRange(db, name, u, want.st[name], keys, nil, nil, false); err != nil {
			return err
		}
		if len(keys) > 0 {
			lo, hi := keys[rng.IntN(len(keys))], keys[rng.IntN(len(keys))]
			if lo > hi {
				lo, hi = hi, lo
			}
			i, j := slices.Index(keys, lo), slices.Index(keys, hi)
			if err := checkRange(db, name, u, want.st[name], keys[i:j], []byte(lo), []byte(hi), true); err != nil {
				return err
			}
		}
		probe := []string{fmt.Sprintf("absent%d", rng.IntN(1000))}
		for range min(8, len(keys)) {
			probe = append(probe, keys[rng.IntN(len(keys))])
		}
		for i, key := range probe {
			value, present := want.st[name][key]
			got, err := db.GetAt(name, []byte(key), u)
			if err != nil {
				return fmt.Errorf("get %s/%s at %d: %w", name, key, u, err)
			}
			if (got != nil) != present || !bytes.Equal(got, []byte(value)) {
				return fmt.Errorf("get %s/%s at %d: %q; the model has %q (present %v)", name, key, u, got, value, present)
			}
			if i > proofs || len(keys) == 0 {
				// ICS23 has no proof against an empty tree.
				continue
			}
			proof, exists, err := db.ProveAt(name, []byte(key), u)
			if err != nil {
				return fmt.Errorf("prove %s/%s at %d: %w", name, key, u, err)
			}
			if exists != present {
				return fmt.Errorf("prove %s/%s at %d: exists %v; the model has present %v", name, key, u, exists, present)
			}
			root := want.roots[name]
			proven := []byte(value)
			if len(proven) == 0 {
				proven = trie.EmptyValueStandIn
			}
			if present && !ics23.VerifyMembership(ics23.SmtSpec, root[:], proof, []byte(key), proven) ||
				!present && !ics23.VerifyNonMembership(ics23.SmtSpec, root[:], proof, []byte(key)) {
				return fmt.Errorf("proof of %s/%s at %d (present %v) does not verify against root %s", name, key, u, present, root)
			}
		}
	}
	return nil
}

// checkRange iterates [start, end) of a tree at u and compares it with the
// model's keys (sorted, within the range).
func checkRange(db *commitment.DB, tree string, u uint64, kv map[string]string, keys []string, start, end []byte, reverse bool) error {
	it, err := db.NewIteratorAt(tree, start, end, reverse, u)
	if err != nil {
		return fmt.Errorf("iterator over %s at %d: %w", tree, u, err)
	}
	want := keys
	if reverse {
		want = slices.Clone(keys)
		slices.Reverse(want)
	}
	i := 0
	for ; it.Valid(); it.Next() {
		if i >= len(want) || string(it.Key()) != want[i] || string(it.Value()) != kv[want[i]] {
			_ = it.Close()
			next := "(end)"
			if i < len(want) {
				next = want[i]
			}
			return fmt.Errorf("iteration of %s at %d (reverse %v) gives %q=%q at position %d; the model has %s", tree, u, reverse, it.Key(), it.Value(), i, next)
		}
		i++
	}
	if err := it.Error(); err != nil {
		_ = it.Close()
		return fmt.Errorf("iteration of %s at %d: %w", tree, u, err)
	}
	if err := it.Close(); err != nil {
		return err
	}
	if i != len(want) {
		return fmt.Errorf("iteration of %s at %d (reverse %v) gives %d keys; the model has %d", tree, u, reverse, i, len(want))
	}
	return nil
}

// checkClean runs Check at the latest version and CheckAt at u.
func checkClean(db *commitment.DB, u uint64) error {
	violations, err := db.Check()
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	if len(violations) > 0 {
		return fmt.Errorf("check: %v", violations)
	}
	if u == 0 || u == db.Version() {
		return nil
	}
	if violations, err = db.CheckAt(u); err != nil {
		return fmt.Errorf("check at %d: %w", u, err)
	}
	if len(violations) > 0 {
		return fmt.Errorf("check at %d: %v", u, violations)
	}
	return nil
}
