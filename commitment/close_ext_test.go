package commitment_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nomtstore/nomtstore/commitment"
	"github.com/nomtstore/nomtstore/commitment/vfs"
)

// TestSetRacingClose: writers staging while another goroutine closes the
// store get ErrClosed, never a panic (the warm-up queue is closed by Close,
// and a writer that passed its closed check before Close must not send to
// it after).
func TestSetRacingClose(t *testing.T) {
	rounds := 40
	if testing.Short() {
		rounds = 10
	}
	for round := range rounds {
		fs := vfs.NewCrashFS(uint64(round))
		db, err := commitment.Open("/store", modelTrees, commitment.Options{FS: fs, InitialBuckets: 64, PebbleCacheBytes: 1 << 20, WarmUp: commitment.WarmUpOn})
		if err != nil {
			t.Fatal(err)
		}
		var wg, ready sync.WaitGroup
		errs := make(chan error, 4)
		for w := range 4 {
			wg.Add(1)
			ready.Add(1)
			go func() {
				defer wg.Done()
				once := sync.OnceFunc(ready.Done)
				defer once()
				for i := 0; ; i++ {
					key := []byte(fmt.Sprintf("w%d-%d", w, i))
					var err error
					if i%3 == 0 {
						err = db.Delete("bank", key)
					} else {
						err = db.Set("bank", key, key)
					}
					if i == 10 {
						once()
					}
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		// Close once every writer is in full swing.
		ready.Wait()
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if !errors.Is(err, commitment.ErrClosed) {
				t.Fatalf("round %d: a write racing Close failed with %v, want ErrClosed", round, err)
			}
		}
	}
}

// stopAfter is a context that is done once Err has been asked n times: a
// deterministic "stop" in the middle of a pruning run.
type stopAfter struct {
	context.Context
	n atomic.Int64
}

func (s *stopAfter) Err() error {
	if s.n.Add(-1) < 0 {
		return context.Canceled
	}
	return nil
}

// TestPruneToContextStopsBetweenVersions: a pruning run asked to stop
// stops after the version it is deleting, keeps what it deleted, is not
// counted as a failure, and a later run resumes.
func TestPruneToContextStopsBetweenVersions(t *testing.T) {
	db, err := commitment.Open("/store", modelTrees, commitment.Options{FS: vfs.NewCrashFS(1), InitialBuckets: 64, PebbleCacheBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	for v := range 30 {
		if err := db.Set("bank", []byte("k"), []byte(fmt.Sprint(v))); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	ctx := &stopAfter{Context: context.Background()}
	ctx.n.Store(3)
	err = db.PruneToContext(ctx, 20)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("a stopped run returned %v, want context.Canceled", err)
	}
	if e := db.EarliestVersion(); e != 4 {
		t.Fatalf("stopped after 3 versions, the earliest is %d, want 4", e)
	}
	if st := db.Stats(); st.PruneFailures != 0 || st.LastPruneError != nil || st.PrunedVersions != 3 {
		t.Fatalf("a stop counted as a failure: %+v", st)
	}
	if _, err := db.GetAt("bank", []byte("k"), 3); !errors.Is(err, commitment.ErrVersionPruned) {
		t.Fatalf("read of a version the stopped run deleted: %v", err)
	}
	if v, err := db.GetAt("bank", []byte("k"), 4); err != nil || string(v) != "3" {
		t.Fatalf("read of the earliest version: %q, %v", v, err)
	}
	if err := db.PruneTo(20); err != nil || db.EarliestVersion() != 21 {
		t.Fatalf("resumed run: %v, earliest %d", err, db.EarliestVersion())
	}
}
