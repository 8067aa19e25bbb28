package commitment_test

import (
	"bytes"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nomtstore/nomtstore/commitment"
	"github.com/nomtstore/nomtstore/commitment/vfs"
)

var (
	powerCuts = flag.Int("power-cuts", 0, "TestPowerCut: power cuts to simulate (0: 300, 16 with -short)")
	powerSeed = flag.Uint64("power-seed", 0, "TestPowerCut: seed (0: from the clock; the log names it)")
)

// The phases a power cut can hit, by the call in progress (growth: any
// operation on the table being rebuilt).
const (
	phaseCommit   = "commit"
	phaseGrowth   = "growth"
	phasePruning  = "pruning"
	phaseRollback = "rollback"
	phaseRecovery = "recovery"
	// Between calls: the background flush of the last commit, Pebble's
	// own flushes and compactions.
	phaseBackground = "between calls"
	// A cut forced after 40 calls in which the aimed one did not land.
	phaseIdle = "idle"
)

var powerPhases = []string{phaseCommit, phaseGrowth, phasePruning, phaseRollback, phaseRecovery}

// TestPowerCut runs the store on a vfs.CrashFS (engine files and Pebble's)
// and cuts the power at random operations while it commits, grows its page
// table, prunes, rolls back and recovers: every unsynced write, create,
// rename and remove is lost, kept or torn at a sector, as a power cut or a
// kernel panic leaves a disk. After each cut the machine restarts and the
// store reopens (a cut during that recovery too, sometimes several in a
// row), and then:
//
//   - the version is the last one whose Commit (or Rollback) returned, or
//     the one in flight (for a rollback, any version it was passing
//     through);
//   - every retained version's roots, keys both ways, point reads and
//     proofs equal the model, and Check is clean;
//   - the earliest version is no lower than it was at the last synced
//     commit (pruning's batches are not synced on their own: a cut may
//     undo the last ones, and the versions they deleted must then read as
//     before).
//
// Each life aims its cut at one phase (a random operation within what that
// phase took last time); the log counts where the cuts landed. It uses only
// the engine's public API, so it holds for any engine behind it.
// -power-cuts sets the number of cuts (make test-long runs thousands).
func TestPowerCut(t *testing.T) {
	cuts := 300
	if testing.Short() {
		// make test's race run: the race detector slows the store ~15x.
		cuts = 16
	}
	if *powerCuts > 0 {
		cuts = *powerCuts
	}
	seed := *powerSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (-power-seed repeats its choices; the background flush and Pebble's goroutines make the operations a cut hits vary)", seed)
	r := &powerRun{t: t, rng: rand.New(rand.NewPCG(seed, 1)), landed: map[string]int{}, verdicts: map[string]int{},
		est: map[string]int64{"open": 40, phaseCommit: 40, phaseGrowth: 300, phasePruning: 8, phaseRollback: 60}}
	start := time.Now()
	for r.cuts < cuts {
		r.life()
	}
	took := time.Since(start)
	t.Logf("%d power cuts in %v (%d stores, %d lives, %d versions committed); cuts landed in %v; after them %v",
		r.cuts, took.Round(time.Millisecond), r.stores, r.lives, r.committed, r.landed, r.verdicts)
	t.Logf("0 committed versions lost, 0 model mismatches (either fails the test at once)")
	for _, phase := range powerPhases {
		// A few cuts (-short) may all miss one phase.
		if r.landed[phase] == 0 && cuts >= 100 {
			t.Errorf("no power cut landed in %s: %v", phase, r.landed)
		}
	}
}

// powerRun is the state of TestPowerCut across lives and stores.
type powerRun struct {
	t   *testing.T
	rng *rand.Rand

	fs   *vfs.CrashFS
	dir  string
	opts commitment.Options
	log  *syncBuffer
	db   *commitment.DB

	// models holds the model of every version the store may hold: the
	// current line of history, pruned versions included (a cut may bring
	// them back).
	models map[uint64]*version
	// acked is the version of the last Commit or Rollback that returned
	// before a cut; after a cut the store may be anywhere in [lo, hi].
	acked, lo, hi uint64
	// The earliest version after a cut is within [minEarliest,
	// maxEarliest]: pruning is durable once Pebble flushes (a checkpoint,
	// a full memtable), which the store does not tell, so any pruning
	// since the last reopen may be undone, never what the reopen read.
	minEarliest, maxEarliest uint64
	keySpace, nextKey        int

	// est is how many file-system operations each kind of call took last
	// time, to aim a cut inside one.
	est map[string]int64
	// lastCut describes the last cut, for failure messages.
	lastCut string

	stores, lives, livesInStore, cuts, committed int
	landed, verdicts                             map[string]int
}

// syncBuffer collects the engine's log lines (Pebble logs from its own
// goroutines).
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) take() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	b.buf.Reset()
	return s
}

// newStore starts over with a fresh machine: a store is created by its
// first Open (which a cut may hit too), its table starts small and grows.
func (r *powerRun) newStore() {
	r.stores++
	r.livesInStore = 0
	r.fs = vfs.NewCrashFS(r.rng.Uint64())
	// The store's parent exists, durably, as a node's home does.
	if err := r.fs.MkdirAll("/node", 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := r.fs.SyncDir("/"); err != nil {
		r.t.Fatal(err)
	}
	r.dir = "/node/store"
	r.log = &syncBuffer{}
	r.opts = commitment.Options{
		FS: r.fs, InitialBuckets: 8, PageCachePages: 32, PebbleCacheBytes: 16 << 20, Workers: 2,
		SyncFlush: r.rng.IntN(4) == 0,
		Logger:    slog.New(slog.NewTextHandler(r.log, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
	if r.rng.IntN(2) == 0 {
		r.opts.WarmUp = commitment.WarmUpOff
	}
	// Every page stored (the table grows often), or small subtrees elided
	// (rebuilt from the key index): both layouts are cut. Checkpoints come
	// every few commits, so cuts land in them and recovery replays several
	// commits' WAL records.
	r.opts.ElideBelow = []int{1, 1, 4, 8}[r.rng.IntN(4)]
	r.opts.CheckpointInterval = 1 + r.rng.IntN(6)
	// Now and then commits (and rollbacks) outgrow a tiny batch limit and
	// are written in chunks applied after their commit point.
	if r.rng.IntN(3) == 0 {
		r.opts.MaxBatchBytes = 2 << 10
	}
	r.models = map[uint64]*version{0: newVersion(r.t, newState())}
	r.acked, r.lo, r.hi, r.minEarliest, r.maxEarliest = 0, 0, 0, 0, 0
	r.keySpace, r.nextKey = 200+r.rng.IntN(400), 0
	if testing.Short() {
		r.keySpace = 100 + r.rng.IntN(100)
	}
}

// life is one boot of the machine: open (recover), check everything
// against the model, then run operations until the power is cut.
func (r *powerRun) life() {
	if r.fs == nil || r.livesInStore >= 6 {
		r.newStore()
	}
	r.lives++
	r.livesInStore++
	target := powerPhases[r.lives%len(powerPhases)]
	r.open(target == phaseRecovery)
	r.verify()
	r.runUntilCut(target)
	if err := r.db.Close(); err != nil {
		r.t.Fatalf("close after the cut (%s): %v", r.lastCut, err)
	}
	r.db = nil
	r.fs.Restart()
}

// open opens the store, with a cut armed within recovery if asked (and
// again, now and then, within the recovery after that cut).
func (r *powerRun) open(cutRecovery bool) {
	for {
		if cutRecovery {
			r.fs.CutAfter(1 + r.rng.Int64N(r.est["open"]+1))
		}
		before := r.fs.Ops()
		db, err := commitment.Open(r.dir, modelTrees, r.opts)
		if err != nil {
			r.t.Fatalf("open after %s: %v\nengine log:\n%s", r.lastCut, err, r.log.take())
		}
		r.noteLog()
		cut := r.fs.Cut()
		if cut == nil {
			r.fs.Disarm()
			r.est["open"] = max(1, r.fs.Ops()-before)
			r.db = db
			return
		}
		r.landed[phaseRecovery]++
		r.cuts++
		r.lastCut = fmt.Sprintf("a cut in recovery at %v", cut)
		if err := db.Close(); err != nil {
			r.t.Fatalf("close after %s: %v", r.lastCut, err)
		}
		r.fs.Restart()
		cutRecovery = r.rng.IntN(2) == 0
	}
}

// noteLog counts what recovery reported.
func (r *powerRun) noteLog() {
	log := r.log.take()
	if strings.Contains(log, "recovered committed pages from the WAL") {
		r.verdicts["replayed committed WAL records"]++
	}
	if strings.Contains(log, "applied the chunks of a large commit") {
		r.verdicts["applied a committed operation's chunks"]++
	}
}

// verify checks the reopened store against the model and makes what it
// holds the new acknowledged state.
func (r *powerRun) verify() {
	t, db := r.t, r.db
	v, e := db.Version(), db.EarliestVersion()
	switch {
	case v < r.lo || v > r.hi:
		t.Fatalf("reopened at version %d after %s; the last acknowledged is %d, in flight %d..%d: a committed version was lost",
			v, r.lastCut, r.acked, r.lo, r.hi)
	case v == r.acked:
		r.verdicts["at the acknowledged version"]++
	case v > r.acked:
		r.verdicts["the commit in flight survived"]++
	default:
		r.verdicts["a rollback in flight stopped at a version it passed"]++
	}
	for u := range r.models {
		if u > v {
			delete(r.models, u)
		}
	}
	r.acked, r.lo, r.hi = v, v, v
	if v == 0 {
		if e != 0 || !maps.Equal(db.Roots(), r.models[0].roots) {
			t.Fatalf("empty store after %s: earliest %d, roots %v", r.lastCut, e, db.Roots())
		}
		return
	}
	// The first commit makes version 1 the earliest.
	lowE := max(1, r.minEarliest)
	if highE := max(lowE, r.maxEarliest); e < lowE || e > highE || e > v {
		t.Fatalf("earliest version %d after %s: want %d..%d (latest %d)", e, r.lastCut, lowE, highE, v)
	}
	if e < r.maxEarliest {
		r.verdicts["pruning undone (its unsynced batches lost)"]++
	}
	r.minEarliest, r.maxEarliest = e, e
	for u := e; u <= v; u++ {
		want := r.models[u]
		if want == nil {
			t.Fatalf("retained version %d after %s has no model (earliest %d, latest %d)", u, r.lastCut, e, v)
		}
		if err := checkVersion(r.rng, db, u, want, 1); err != nil {
			t.Fatalf("after %s: %v", r.lastCut, err)
		}
	}
	// Check at the latest version every time, at a past one (a walk over
	// superseded pages, the slowest check) every fourth; under -short
	// (make test's race run, ~15x slower) only the latest, every fourth.
	past := v
	if r.rng.IntN(4) == 0 {
		past = e + r.rng.Uint64N(v-e+1)
	} else if testing.Short() {
		return
	}
	if testing.Short() {
		past = v
	}
	if err := checkClean(db, past); err != nil {
		t.Fatalf("after %s: %v", r.lastCut, err)
	}
}

// runUntilCut runs random operations, aiming a cut at target, until the
// power goes.
func (r *powerRun) runUntilCut(target string) {
	armed := target == phaseRecovery
	if armed {
		// The recovery phase was the open; cut anywhere next.
		r.fs.CutAfter(1 + r.rng.Int64N(200))
	}
	for calls := 0; ; calls++ {
		if calls == 40 {
			// The aim was off: cut now.
			r.fs.CutNow()
			r.land(phaseIdle, r.fs.Cut())
			return
		}
		if c := r.fs.Cut(); c != nil {
			r.land(phaseBackground, c)
			return
		}
		kind := r.pick(target, armed)
		if !armed && kind == target {
			armed = true
			span := r.est[kind]
			switch kind {
			case phaseCommit:
				// And its page flush, which runs after Commit returns.
				span *= 2
			case phaseGrowth:
				// Growth comes first in the commit and writes every page.
				span = int64(r.db.Stats().Table.Full) + 8
			}
			r.fs.CutAfter(1 + r.rng.Int64N(span))
		}
		if r.call(kind) {
			return
		}
	}
}

// pick chooses the next call: the target's preparation, then the target,
// then anything.
func (r *powerRun) pick(target string, armed bool) string {
	v, e := r.acked, r.db.EarliestVersion()
	if !armed {
		switch target {
		case phaseGrowth:
			if st := r.db.Stats().Table; st.LoadFactor < 0.65 && r.rng.IntN(20) != 0 {
				return "fill"
			}
		case phasePruning:
			// Many versions at once: pruning's batches are written to
			// Pebble's WAL in the background, one per version, so a short
			// run is over before its writes are.
			if v < e+6+uint64(r.rng.IntN(10)) {
				return phaseCommit
			}
		case phaseRollback:
			if v < e+3 || v < 3 {
				return phaseCommit
			}
		}
		return target
	}
	switch n := r.rng.IntN(20); {
	case n < 3 && v > e+1:
		return phasePruning
	case n < 4 && v > e+1:
		return phaseRollback
	case n < 6:
		return phaseGrowth
	}
	return phaseCommit
}

// call runs one call and reports whether the power was cut during it.
func (r *powerRun) call(kind string) bool {
	db := r.db
	before := r.fs.Ops()
	// end is the operation count when the call returned.
	var end int64
	var cutPhase string
	switch kind {
	case phaseCommit, phaseGrowth, "fill":
		table := db.Stats().Table
		size, fresh := 1+r.rng.IntN(120), r.rng.IntN(4)
		switch kind {
		case "fill":
			size, fresh = r.rng.IntN(20), 30+r.rng.IntN(120)
		case phaseGrowth:
			// Enough new pages to pass the load factor, most likely.
			size, fresh = r.rng.IntN(20), int(table.Buckets)+r.rng.IntN(60)
		}
		gen := table.Generation
		next := r.models[r.acked].st.clone()
		stageRandom(r.t, r.rng, db, next, size, r.keySpace, fresh, &r.nextKey)
		// The application's record of the version (a multistore's commit
		// info) commits in the same batch.
		record := ""
		if r.rng.IntN(4) != 0 {
			record = fmt.Sprintf("record of %d: %x", r.acked+1, r.rng.Uint32())
			db.SetVersionRecord([]byte(record))
		}
		if r.rng.IntN(4) == 0 {
			if _, err := db.WorkingRoots(); err != nil {
				r.t.Fatal(err)
			}
		}
		res, err := db.Commit()
		end = r.fs.Ops()
		if err != nil {
			r.t.Fatalf("commit of version %d: %v", r.acked+1, err)
		}
		m := newVersion(r.t, next)
		m.record = record
		if res.Version != r.acked+1 || !maps.Equal(res.Roots, m.roots) {
			r.t.Fatalf("commit made version %d with roots %v; the model is at %d with %v", res.Version, res.Roots, r.acked+1, m.roots)
		}
		r.models[res.Version] = m
		r.committed++
		if db.Stats().Table.Generation != gen {
			kind = phaseGrowth
		} else if kind != phaseCommit {
			kind = phaseCommit
		}
		cutPhase = phaseCommit
		if r.cutBy(end) {
			r.lo, r.hi = r.acked, res.Version
		} else {
			// Returned before any cut: acknowledged, it must survive.
			r.acked, r.lo, r.hi = res.Version, res.Version, res.Version
		}
	case phasePruning:
		to := r.acked - 1 - r.rng.Uint64N(min(2, r.acked-db.EarliestVersion()))
		if err := db.PruneTo(to); err != nil {
			r.t.Fatalf("prune to %d (latest %d): %v", to, r.acked, err)
		}
		r.maxEarliest = max(r.maxEarliest, to+1)
		cutPhase = phasePruning
		r.settle()
		end = r.fs.Ops()
	case phaseRollback:
		from := r.acked
		to := from - 1 - r.rng.Uint64N(min(3, from-db.EarliestVersion()))
		err := db.Rollback(to)
		end = r.fs.Ops()
		if err != nil {
			r.t.Fatalf("rollback from %d to %d: %v", from, to, err)
		}
		if roots := db.Roots(); !maps.Equal(roots, r.models[to].roots) {
			r.t.Fatalf("rollback to %d gives roots %v; the model %v", to, roots, r.models[to].roots)
		}
		cutPhase = phaseRollback
		if r.cutBy(end) {
			r.lo, r.hi = to, from
		} else {
			r.acked, r.lo, r.hi = to, to, to
			for u := range r.models {
				if u > to {
					delete(r.models, u)
				}
			}
		}
	}
	c := r.fs.Cut()
	if c == nil {
		r.est[kind] = max(1, r.fs.Ops()-before)
		return false
	}
	if c.N > end {
		// After the call returned: its page flush, Pebble's own work.
		cutPhase = phaseBackground
	}
	r.land(cutPhase, c)
	return true
}

// cutBy reports whether the power was cut at or before operation end: for
// end read as a call returns, during the call (or before it).
func (r *powerRun) cutBy(end int64) bool {
	c := r.fs.Cut()
	return c != nil && c.N <= end
}

// settle waits for Pebble to write what was committed without a sync:
// its log writer writes pruning's batches from its own goroutine, right
// after they commit, so that a cut aimed at pruning lands among them.
func (r *powerRun) settle() {
	for range 100 {
		n := r.fs.Ops()
		time.Sleep(100 * time.Microsecond)
		if r.fs.Ops() == n {
			return
		}
	}
}

// land counts a cut in the phase it hit: the call's, or growth for an
// operation on the table being rebuilt.
func (r *powerRun) land(phase string, c *vfs.Cut) {
	if strings.Contains(c.Path, "pages.ht.grow") {
		phase = phaseGrowth
	}
	r.landed[phase]++
	r.cuts++
	r.lastCut = fmt.Sprintf("a cut in %s at %v (version %d acknowledged, %d..%d possible)", phase, c, r.acked, r.lo, r.hi)
}

// TestPowerCutKeepsNewStore: a store created in a directory that did not
// exist, and then committed to, survives a power cut: the directory's own
// entry in its parent (and each new parent's) is durable before a commit
// can be. Without it a cut takes the whole store, committed versions
// included.
func TestPowerCutKeepsNewStore(t *testing.T) {
	tests := []struct{ name, dir string }{
		{"in an existing directory", "/node/store"},
		{"with new parents", "/node/data/nomtstore/store"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for seed := range uint64(24) {
				fs := vfs.NewCrashFS(seed)
				if err := fs.MkdirAll("/node", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := fs.SyncDir("/"); err != nil {
					t.Fatal(err)
				}
				opts := commitment.Options{FS: fs, InitialBuckets: 64, PebbleCacheBytes: 1 << 20}
				db, err := commitment.Open(tc.dir, modelTrees, opts)
				if err != nil {
					t.Fatal(err)
				}
				if err := db.Set("bank", []byte("k"), []byte("v")); err != nil {
					t.Fatal(err)
				}
				res, err := db.Commit()
				if err != nil {
					t.Fatal(err)
				}
				fs.CutNow()
				if err := db.Close(); err != nil {
					t.Fatal(err)
				}
				fs.Restart()
				db, err = commitment.Open(tc.dir, modelTrees, opts)
				if err != nil {
					t.Fatalf("seed %d: reopen: %v", seed, err)
				}
				v, err := db.Get("bank", []byte("k"))
				if db.Version() != res.Version || err != nil || string(v) != "v" {
					t.Fatalf("seed %d: after the cut the store is at version %d with k=%q (%v); version %d had committed",
						seed, db.Version(), v, err, res.Version)
				}
				if err := db.Close(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
