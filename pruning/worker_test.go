package pruning

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cosmossdk.io/store/pruning/types"

	"github.com/nomtstore/nomtstore/commitment"
)

// flakyTarget prunes in memory and fails its first failures runs.
type flakyTarget struct {
	mu       sync.Mutex
	earliest uint64
	failures int
	calls    []uint64
}

func (f *flakyTarget) PruneToContext(_ context.Context, to uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, to)
	if f.failures > 0 {
		f.failures--
		return errors.New("injected: disk full")
	}
	f.earliest = max(f.earliest, to+1)
	return nil
}

func (f *flakyTarget) EarliestVersion() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.earliest
}

// TestWorkerRetriesAndReports: a failing run is logged, counted and
// retried with backoff until it succeeds; it never stops silently.
func TestWorkerRetriesAndReports(t *testing.T) {
	target := &flakyTarget{earliest: 1, failures: 3}
	var logs bytes.Buffer
	w := NewWorker(target, WorkerOptions{RetryMin: time.Millisecond, RetryMax: 4 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	defer w.Close()
	w.Request(50)
	st := w.WaitIdle()
	if st.LastError == nil || st.Failures != 1 || st.Pending != 50 {
		t.Fatalf("after the first failure: %+v", st)
	}
	deadline := time.Now().Add(10 * time.Second)
	for w.Stats().Earliest != 51 {
		if time.Now().After(deadline) {
			t.Fatalf("pruning never recovered: %+v", w.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	st = w.WaitIdle()
	if st.Failures != 3 || st.ConsecutiveFailures != 0 || st.LastError != nil || st.Runs != 4 || st.Pending != 0 {
		t.Fatalf("after recovering: %+v", st)
	}
	if n := strings.Count(logs.String(), "nomtstore pruning failed"); n != 3 {
		t.Fatalf("%d failures logged, want 3:\n%s", n, logs.String())
	}
}

// TestWorkerCoalescesRequests: requests made while a run is going are
// served by one later run to the highest of them; a request below the
// earliest version does nothing.
func TestWorkerCoalescesRequests(t *testing.T) {
	target := &flakyTarget{earliest: 1}
	w := NewWorker(target, WorkerOptions{})
	for to := uint64(10); to <= 100; to += 10 {
		w.Request(to)
	}
	w.Request(5)
	if st := w.WaitIdle(); st.Earliest != 101 || st.Requested != 100 {
		t.Fatalf("stats %+v", st)
	}
	w.Close()
	target.mu.Lock()
	defer target.mu.Unlock()
	if len(target.calls) > 10 || target.calls[len(target.calls)-1] != 100 {
		t.Fatalf("calls %v", target.calls)
	}
}

// TestWorkerPrunesEngine: an engine committing under "everything" with the
// worker pruning behind it keeps the SDK's window of versions, reads at
// kept versions work, and pruned ones are refused.
func TestWorkerPrunesEngine(t *testing.T) {
	db, err := commitment.Open(t.TempDir(), []string{"bank"}, commitment.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	m := NewManager(db, nil)
	m.SetOptions(fromSDK(types.NewPruningOptions(types.PruningEverything)))
	if err := m.LoadSnapshotHeights(); err != nil {
		t.Fatal(err)
	}
	w := NewWorker(db, WorkerOptions{})
	defer w.Close()
	for h := 1; h <= 205; h++ {
		for i := range 20 {
			if err := db.Set("bank", fmt.Appendf(nil, "k%03d", (h*7+i)%300), fmt.Appendf(nil, "v%d", h)); err != nil {
				t.Fatal(err)
			}
		}
		res, err := db.Commit()
		if err != nil {
			t.Fatal(err)
		}
		if to := m.PruneHeight(int64(res.Version)); to > 0 {
			w.Request(uint64(to))
		}
	}
	st := w.WaitIdle()
	// At 200, "everything" prunes to 200 - 1 - 2 = 197.
	if st.LastError != nil || st.Earliest != 198 || db.EarliestVersion() != 198 {
		t.Fatalf("stats %+v", st)
	}
	if _, err := db.GetAt("bank", []byte("k001"), 197); !errors.Is(err, commitment.ErrVersionPruned) {
		t.Fatalf("read at a pruned version: %v", err)
	}
	for v := uint64(198); v <= 205; v++ {
		if _, err := db.GetAt("bank", []byte("k001"), v); err != nil {
			t.Fatalf("read at kept version %d: %v", v, err)
		}
	}
}

// TestWorkerOnRun: every run is reported, failed or not.
func TestWorkerOnRun(t *testing.T) {
	target := &flakyTarget{earliest: 1, failures: 2}
	var mu sync.Mutex
	var runs []error
	w := NewWorker(target, WorkerOptions{RetryMin: time.Millisecond, RetryMax: time.Millisecond,
		OnRun: func(to uint64, took time.Duration, err error) {
			if to != 9 || took < 0 {
				t.Errorf("run reported to %d, took %v", to, took)
			}
			mu.Lock()
			runs = append(runs, err)
			mu.Unlock()
		}})
	defer w.Close()
	w.Request(9)
	deadline := time.Now().Add(10 * time.Second)
	for w.Stats().Earliest != 10 {
		if time.Now().After(deadline) {
			t.Fatalf("pruning never recovered: %+v", w.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	w.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(runs) != 3 || runs[0] == nil || runs[1] == nil || runs[2] != nil {
		t.Fatalf("runs reported %v, want two failures then a success", runs)
	}
}

// slowTarget deletes one version at a time, each taking perVersion, and
// stops between two once its context is done, as the engine does.
type slowTarget struct {
	earliest   atomic.Uint64
	perVersion time.Duration
}

func (s *slowTarget) PruneToContext(ctx context.Context, to uint64) error {
	for s.earliest.Load() <= to {
		if err := ctx.Err(); err != nil {
			return err
		}
		time.Sleep(s.perVersion)
		s.earliest.Add(1)
	}
	return nil
}

func (s *slowTarget) EarliestVersion() uint64 { return s.earliest.Load() }

// waitPruning waits until target's earliest version passes v.
func waitPruning(t *testing.T, target Target, v uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for target.EarliestVersion() <= v {
		if time.Now().After(deadline) {
			t.Fatalf("pruning did not pass version %d", v)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestWorkerCloseStopsARun: Close stops a long run between two versions
// instead of waiting for the backlog (an archive node turning pruning on
// must still stop on SIGTERM); the stopped run is not reported as a run.
func TestWorkerCloseStopsARun(t *testing.T) {
	target := &slowTarget{perVersion: 5 * time.Millisecond}
	target.earliest.Store(1)
	var reported atomic.Int64
	w := NewWorker(target, WorkerOptions{OnRun: func(uint64, time.Duration, error) { reported.Add(1) }})
	w.Request(2000) // 10 s of pruning
	waitPruning(t, target, 3)
	start := time.Now()
	w.Close()
	if took := time.Since(start); took > time.Second {
		t.Fatalf("Close waited %v for the pruning backlog", took)
	}
	if e := target.EarliestVersion(); e > 1000 {
		t.Fatalf("the run went on to version %d", e)
	}
	if n := reported.Load(); n != 0 {
		t.Fatalf("a stopped run was reported as %d runs", n)
	}
	if st := w.Stats(); st.Failures != 0 || st.LastError != nil {
		t.Fatalf("a stopped run counted as a failure: %+v", st)
	}
}

// TestWorkerPause: Pause stops the run in progress between two versions
// and holds off runs until resumed, keeping the requests made meanwhile.
func TestWorkerPause(t *testing.T) {
	target := &slowTarget{perVersion: time.Millisecond}
	target.earliest.Store(1)
	w := NewWorker(target, WorkerOptions{})
	defer w.Close()
	w.Request(100000)
	waitPruning(t, target, 3)
	start := time.Now()
	resume := w.Pause()
	if took := time.Since(start); took > time.Second {
		t.Fatalf("Pause waited %v for the pruning backlog", took)
	}
	paused := target.EarliestVersion()
	w.Request(200000)
	time.Sleep(50 * time.Millisecond)
	if e := target.EarliestVersion(); e != paused {
		t.Fatalf("pruning went on from %d to %d while paused", paused, e)
	}
	resume()
	resume() // a second call does nothing
	waitPruning(t, target, paused+5)
	if st := w.Stats(); st.Requested != 200000 || st.Failures != 0 {
		t.Fatalf("after resuming: %+v", st)
	}
}
