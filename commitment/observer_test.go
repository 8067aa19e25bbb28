package commitment

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// recordingObserver keeps what the engine reports.
type recordingObserver struct {
	mu      sync.Mutex
	phases  map[string]int
	commits []CommitStats
}

func (r *recordingObserver) CommitPhase(phase string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if d < 0 {
		panic(fmt.Sprintf("phase %s took %v", phase, d))
	}
	r.phases[phase]++
}

func (r *recordingObserver) Committed(stats CommitStats) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.commits = append(r.commits, stats)
}

// TestObserver: every commit reports its phases and figures; an empty
// commit reports no WAL record or page.
func TestObserver(t *testing.T) {
	obs := &recordingObserver{phases: map[string]int{}}
	// A small table, so that the first commit grows it.
	// Elision off and a checkpoint after every commit, so that each one
	// writes pages.
	db := ftOpen(t, t.TempDir(), Options{InitialBuckets: 16, Observer: obs, ElideBelow: 1, CheckpointInterval: 1})
	const blocks, keys = 4, 300
	for v := 1; v <= blocks; v++ {
		for i := range keys {
			if err := db.Set(testTrees[i%2], fmt.Appendf(nil, "k%d-%d", v, i), []byte("value")); err != nil {
				t.Fatal(err)
			}
		}
		if v == 2 {
			// WorkingRoots before Commit: the trie update is reported once.
			if _, err := db.WorkingRoots(); err != nil {
				t.Fatal(err)
			}
		}
		ftCommit(t, db, uint64(v))
	}
	ftCommit(t, db, blocks+1) // empty
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	obs.mu.Lock()
	defer obs.mu.Unlock()
	if len(obs.commits) != blocks+1 {
		t.Fatalf("%d commits reported, want %d", len(obs.commits), blocks+1)
	}
	for i, c := range obs.commits[:blocks] {
		if c.Version != uint64(i+1) || c.Keys != keys || c.Pages == 0 || c.WALBytes == 0 || c.Duration <= 0 {
			t.Fatalf("commit %d reported %+v", i+1, c)
		}
		if lf := c.Table.LoadFactor; lf <= 0 || lf >= 1 || c.Table.Full == 0 || c.Table.Buckets <= 16 {
			t.Fatalf("commit %d: table %+v", i+1, c.Table)
		}
	}
	// An empty commit's frame holds its commit record and roots.
	if c := obs.commits[blocks]; c.Keys != 0 || c.Pages != 0 || c.WALBytes == 0 || c.WALBytes > 1024 {
		t.Fatalf("empty commit reported %+v", c)
	}
	want := map[string]int{
		PhaseWorkingRoots: blocks + 1, // the empty commit's too
		PhasePlan:         blocks + 1,
		PhaseBatch:        blocks + 1,
		PhaseCommitPoint:  blocks + 1,
	}
	for phase, n := range want {
		if obs.phases[phase] != n {
			t.Errorf("phase %s reported %d times, want %d (all: %v)", phase, obs.phases[phase], n, obs.phases)
		}
	}
	if obs.phases[PhaseTableGrow] == 0 {
		t.Errorf("no table growth reported from a 16-bucket table (phases %v)", obs.phases)
	}
	// A checkpoint after every commit that wrote pages (some are those of
	// growths), and one at Close.
	if n := obs.phases[PhaseCheckpoint]; n < blocks {
		t.Errorf("checkpoint reported %d times, want at least %d", n, blocks)
	}
}
