package commitment_test

import (
	"errors"
	"fmt"
	"sync"
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
