package commitment_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ics23 "github.com/cosmos/ics23/go"

	"github.com/nomtstore/nomtstore/commitment"
	"github.com/nomtstore/nomtstore/commitment/trie"
	"github.com/nomtstore/nomtstore/commitment/vfs"
	"github.com/nomtstore/nomtstore/pruning"
)

var soakFor = flag.Duration("soak", 0, "TestSoak: how long to run (0: 5s, 2s with -short)")

// TestSoak runs a writer committing, the pruning worker deleting old
// versions behind it, readers at the latest and at past versions (point
// reads, iteration both ways, proofs verified with ics23) and a checker
// walking versions, all at once, and checks every answer against the
// model: an answer at the latest version must be the model's at one of the
// versions that were latest during the read, an answer at a past version
// the model's at that version, and a refusal (ErrVersionPruned) only of a
// version pruning had deleted. Run it with -race; -soak sets how long
// (make test-long runs minutes).
func TestSoak(t *testing.T) {
	duration := 5 * time.Second
	if testing.Short() {
		duration = 2 * time.Second
	}
	if *soakFor > 0 {
		duration = *soakFor
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	// In memory (a CrashFS that is never cut): the soak is about
	// concurrency, and commits that wait for no disk interleave with the
	// readers and the pruning worker many more times a minute.
	db, err := commitment.Open("/soak", modelTrees, commitment.Options{FS: vfs.NewCrashFS(seed), InitialBuckets: 256, PageCachePages: 512, PebbleCacheBytes: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	s := &soak{db: db, models: map[uint64]*version{0: newVersion(t, newState())}, readingFrom: map[uint64]int{}, tries: newIncrementalModel()}
	worker := pruning.NewWorker(db, pruning.WorkerOptions{RetryMin: time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	var wg sync.WaitGroup
	run := func(name string, rng *rand.Rand, f func(*rand.Rand) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if err := f(rng); err != nil {
					s.fail(fmt.Errorf("%s: %w", name, err))
					cancel()
					return
				}
			}
		}()
	}
	run("writer", rand.New(rand.NewPCG(seed, 0)), func(rng *rand.Rand) error { return s.commit(t, rng, worker) })
	for i := range 3 {
		run(fmt.Sprintf("reader %d", i), rand.New(rand.NewPCG(seed, uint64(1+i))), s.read)
	}
	run("checker", rand.New(rand.NewPCG(seed, 9)), func(rng *rand.Rand) error {
		// A walk holds the store's read lock throughout, which a commit's
		// swap waits for: once a second, not back to back.
		time.Sleep(time.Second)
		return s.check(rng)
	})
	wg.Wait()
	worker.Close()
	if err := s.firstErr(); err != nil {
		t.Fatal(err)
	}
	if violations, err := db.Check(); err != nil || len(violations) > 0 {
		t.Fatalf("final check: %v %v", err, violations)
	}
	st := worker.Stats()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%v: %d versions committed, kept %d..%d; %d reads at the latest, %d at past versions, %d iterations, %d proofs, %d checks; %d reads refused as pruned; pruning: %d runs, %d failures",
		duration, s.commits.Load(), st.Earliest, s.latest.Load(), s.latestReads.Load(), s.pastReads.Load(), s.iterations.Load(),
		s.proofs.Load(), s.checks.Load(), s.refused.Load(), st.Runs, st.Failures)
	if st.Failures > 0 || s.pastReads.Load() == 0 || s.latestReads.Load() == 0 || st.Runs == 0 {
		t.Fatalf("the soak did not exercise everything, or pruning failed: %+v", st)
	}
}

type soak struct {
	db *commitment.DB

	mu sync.RWMutex
	// models holds the model of every version that may be read: the
	// writer adds a version's before committing it and drops the pruned.
	// REQUIRES: mu.
	models map[uint64]*version
	// readingFrom counts the reads at the latest in flight by the version
	// that was latest when each began: a read may go on at that version
	// after pruning has passed it (its snapshot keeps it readable), so its
	// model stays until the read ends. REQUIRES: mu.
	readingFrom map[uint64]int
	err         error // REQUIRES: mu

	// tries and nextKey are the writer's.
	tries                                                       incrementalModel
	nextKey                                                     int
	latest, commits, latestReads, pastReads, iterations, proofs atomic.Uint64
	checks, refused                                             atomic.Uint64
}

func (s *soak) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
}

func (s *soak) firstErr() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.err
}

func (s *soak) model(u uint64) *version {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.models[u]
}

// commit stages a random batch and commits it, the model of the new version
// recorded first (a reader may see it as soon as Commit swaps it in), then
// asks the worker to prune all but the last few versions.
func (s *soak) commit(t *testing.T, rng *rand.Rand, worker *pruning.Worker) error {
	v := s.db.Version()
	next := s.model(v).st.clone()
	touched := stageRandom(t, rng, s.db, next, 1+rng.IntN(150), soakKeys, rng.IntN(5), &s.nextKey)
	m := s.tries.next(t, next, touched)
	s.mu.Lock()
	s.models[v+1] = m
	s.mu.Unlock()
	res, err := s.db.Commit()
	if err != nil {
		return err
	}
	for name, root := range m.roots {
		if res.Version != v+1 || res.Roots[name] != root {
			return fmt.Errorf("commit made version %d with %s's root %s; the model is at %d with %s", res.Version, name, res.Roots[name], v+1, root)
		}
	}
	s.latest.Store(res.Version)
	s.commits.Add(1)
	if keep := 2 + rng.Uint64N(10); res.Version > keep {
		worker.Request(res.Version - keep)
	}
	e := s.db.EarliestVersion()
	s.mu.Lock()
	for from := range s.readingFrom {
		e = min(e, from)
	}
	for u := range s.models {
		if u < e {
			delete(s.models, u)
		}
	}
	s.mu.Unlock()
	return nil
}

// pruned tells whether an error at version u is a refusal of a version
// pruning deleted, which is an answer, not a failure.
func (s *soak) pruned(err error, u uint64) bool {
	if errors.Is(err, commitment.ErrVersionPruned) && s.db.EarliestVersion() > u {
		s.refused.Add(1)
		return true
	}
	return false
}

// read checks one read: at a past version (a random retained one) or at
// the latest.
func (s *soak) read(rng *rand.Rand) error {
	v := s.db.Version()
	if v == 0 {
		time.Sleep(time.Millisecond)
		return nil
	}
	if rng.IntN(2) == 0 {
		return s.readLatest(rng)
	}
	e := s.db.EarliestVersion()
	u := e + rng.Uint64N(v-e+1)
	want := s.model(u)
	if want == nil {
		if s.db.EarliestVersion() > u {
			return nil // pruned meanwhile
		}
		return fmt.Errorf("no model of retained version %d", u)
	}
	s.pastReads.Add(1)
	// Now and then the whole version (every key, both ways); otherwise a
	// few keys, a range and a proof of one tree.
	var err error
	if rng.IntN(8) == 0 {
		err = checkVersion(rng, s.db, u, want, 1)
		s.iterations.Add(2 * uint64(len(modelTrees)))
		s.proofs.Add(2 * uint64(len(modelTrees)))
	} else {
		err = s.readPast(rng, u, want)
	}
	if err != nil && !s.pruned(err, u) {
		return err
	}
	return nil
}

// readPast reads a few keys of one tree at version u, iterates a range of
// it and proves one key.
func (s *soak) readPast(rng *rand.Rand, u uint64, want *version) error {
	tree := modelTrees[rng.IntN(len(modelTrees))]
	for range 4 {
		key := fmt.Sprintf("k%05d", rng.IntN(soakKeys))
		value, present := want.st[tree][key]
		got, err := s.db.GetAt(tree, []byte(key), u)
		if err != nil {
			return fmt.Errorf("get %s/%s at %d: %w", tree, key, u, err)
		}
		if (got != nil) != present || !bytes.Equal(got, []byte(value)) {
			return fmt.Errorf("get %s/%s at %d: %q; the model has %q (present %v)", tree, key, u, got, value, present)
		}
	}
	lo, hi := fmt.Sprintf("k%05d", rng.IntN(soakKeys)), fmt.Sprintf("k%05d", rng.IntN(soakKeys))
	if lo > hi {
		lo, hi = hi, lo
	}
	var inRange []string
	for _, k := range want.st.sortedKeys(tree) {
		if k >= lo && k < hi {
			inRange = append(inRange, k)
		}
	}
	if err := checkRange(s.db, tree, u, want.st[tree], inRange, []byte(lo), []byte(hi), rng.IntN(2) == 0); err != nil {
		return err
	}
	s.iterations.Add(1)
	if len(want.st[tree]) == 0 {
		return nil
	}
	key := fmt.Sprintf("k%05d", rng.IntN(soakKeys))
	value, present := want.st[tree][key]
	proof, exists, err := s.db.ProveAt(tree, []byte(key), u)
	if err != nil {
		return fmt.Errorf("prove %s/%s at %d: %w", tree, key, u, err)
	}
	root, proven := want.roots[tree], []byte(value)
	if len(proven) == 0 {
		proven = trie.EmptyValueStandIn
	}
	if exists != present || present && !ics23.VerifyMembership(ics23.SmtSpec, root[:], proof, []byte(key), proven) ||
		!present && !ics23.VerifyNonMembership(ics23.SmtSpec, root[:], proof, []byte(key)) {
		return fmt.Errorf("proof of %s/%s at %d (exists %v, the model %v) does not verify against root %s", tree, key, u, exists, present, root)
	}
	s.proofs.Add(1)
	return nil
}

// soakKeys is the soak's key space per tree.
const soakKeys = 1500

// readLatest reads at the latest version, which may move during the read:
// the answer must be the model's at one of the versions latest meanwhile.
func (s *soak) readLatest(rng *rand.Rand) error {
	tree := modelTrees[rng.IntN(len(modelTrees))]
	s.mu.Lock()
	from := s.db.Version()
	s.readingFrom[from]++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.readingFrom[from]--; s.readingFrom[from] == 0 {
			delete(s.readingFrom, from)
		}
		s.mu.Unlock()
	}()
	key := fmt.Sprintf("k%05d", rng.IntN(soakKeys))
	var got []byte
	var proof *ics23.CommitmentProof
	var exists bool
	var iterated []string
	var err error
	kind, reverse := rng.IntN(3), rng.IntN(2) == 0
	switch kind {
	case 0:
		got, err = s.db.Get(tree, []byte(key))
	case 1:
		proof, exists, err = s.db.Prove(tree, []byte(key))
	default:
		iterated, err = iterate(s.db, tree, []byte(key), reverse)
	}
	to := s.db.Version()
	if errors.Is(err, trie.ErrEmptyTrie) {
		for u := from; u <= to; u++ {
			if want := s.model(u); want != nil && len(want.st[tree]) == 0 {
				return nil // an empty tree has no proofs
			}
		}
	}
	if err != nil {
		return fmt.Errorf("read of %s/%s at the latest (%d..%d): %w", tree, key, from, to, err)
	}
	s.latestReads.Add(1)
	for u := from; u <= to; u++ {
		want := s.model(u)
		if want == nil {
			continue
		}
		value, present := want.st[tree][key]
		switch kind {
		case 0:
			if (got != nil) == present && bytes.Equal(got, []byte(value)) {
				return nil
			}
		case 1:
			root := want.roots[tree]
			proven := []byte(value)
			if len(proven) == 0 {
				proven = trie.EmptyValueStandIn
			}
			if exists == present && (present && ics23.VerifyMembership(ics23.SmtSpec, root[:], proof, []byte(key), proven) ||
				!present && ics23.VerifyNonMembership(ics23.SmtSpec, root[:], proof, []byte(key))) {
				s.proofs.Add(1)
				return nil
			}
		default:
			if slices.Equal(iterated, want.window(tree, key, reverse)) {
				s.iterations.Add(1)
				return nil
			}
		}
	}
	return fmt.Errorf("read %d of %s/%s at the latest matches the model at none of versions %d..%d (got %q, exists %v, proof root %s, %v); the models: %s",
		kind, tree, key, from, to, got, exists, proofRoot(proof, []byte(key)), iterated, s.describeModels(tree, key, from, to))
}

// proofRoot is the root a proof computes to, for a failure's message.
func proofRoot(proof *ics23.CommitmentProof, key []byte) string {
	if proof == nil {
		return "none"
	}
	root, err := proof.Calculate()
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	if ex := proof.GetExist(); ex != nil && !bytes.Equal(ex.Key, key) {
		return fmt.Sprintf("%X (an existence proof of %q)", root, ex.Key)
	}
	return fmt.Sprintf("%X", root)
}

// describeModels says, for a failure's message, what the models of
// versions from..to hold for one key and their roots.
func (s *soak) describeModels(tree, key string, from, to uint64) string {
	var out []string
	for u := from; u <= to; u++ {
		want := s.model(u)
		if want == nil {
			out = append(out, fmt.Sprintf("%d: none", u))
			continue
		}
		value, present := want.st[tree][key]
		root := want.roots[tree]
		out = append(out, fmt.Sprintf("%d: present %v value %q root %X", u, present, value, root[:]))
	}
	return strings.Join(out, "; ")
}

// iterate reads up to 20 key=value pairs from key on, forward or back.
func iterate(db *commitment.DB, tree string, key []byte, reverse bool) ([]string, error) {
	start, end := key, []byte(nil)
	if reverse {
		start, end = nil, key
	}
	it, err := db.NewIterator(tree, start, end, reverse)
	if err != nil {
		return nil, err
	}
	var out []string
	for ; it.Valid() && len(out) < 20; it.Next() {
		out = append(out, string(it.Key())+"="+string(it.Value()))
	}
	return out, errors.Join(it.Error(), it.Close())
}

// window is what iterate reads at this version: up to 20 pairs from key
// on, or before key backwards.
func (v *version) window(tree, key string, reverse bool) []string {
	keys := v.st.sortedKeys(tree)
	if reverse {
		slices.Reverse(keys)
	}
	var out []string
	for _, k := range keys {
		if (k >= key) != reverse && len(out) < 20 {
			out = append(out, k+"="+v.st[tree][k])
		}
	}
	return out
}

// check walks a retained version's pages, leaf index and values.
func (s *soak) check(rng *rand.Rand) error {
	v := s.db.Version()
	if v == 0 {
		return nil
	}
	e := s.db.EarliestVersion()
	u := e + rng.Uint64N(v-e+1)
	violations, err := s.db.CheckAt(u)
	if err != nil {
		if s.pruned(err, u) {
			return nil
		}
		return fmt.Errorf("check at %d: %w", u, err)
	}
	if len(violations) > 0 {
		return fmt.Errorf("check at %d: %v", u, violations)
	}
	s.checks.Add(1)
	return nil
}
