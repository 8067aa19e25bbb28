package migrate

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// readAheadBatch is the keys a reader hands over at once, and
// readAheadDepth the batches it may read ahead: IAVL's iterator then runs
// on its own core while the bulk load (or the verification) uses the other.
const (
	readAheadBatch = 4096
	readAheadDepth = 4
)

type kvPair struct{ key, value []byte }

// reader reads one IAVL store in key order on its own goroutine.
type reader struct {
	batches chan []kvPair
	quit    chan struct{}
	done    chan struct{}
	once    sync.Once
	failure error
}

// readAhead starts reading store name. The caller ranges over batches,
// then checks err; stop ends the reading early (always safe to call).
// With timed, the reader's busy time (not its waits for the consumer)
// adds to m.readTime.
func (m *migration) readAhead(ctx context.Context, name string, timed bool) *reader {
	r := &reader{batches: make(chan []kvPair, readAheadDepth), quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		defer close(r.batches)
		busy, err := r.read(ctx, m.trees[name])
		if err != nil {
			r.failure = fmt.Errorf("migrate: reading IAVL store %q: %w", name, err)
		}
		if timed {
			m.readTime.Add(int64(busy))
		}
	}()
	return r
}

func (r *reader) read(ctx context.Context, tree iavlTree) (busy time.Duration, err error) {
	start := time.Now()
	it, err := tree.Iterator(nil, nil, true)
	if err != nil {
		return time.Since(start), err
	}
	defer func() { err = errors.Join(err, it.Close()) }()
	for it.Valid() {
		batch := make([]kvPair, 0, readAheadBatch)
		var arena []byte
		for ; it.Valid() && len(batch) < readAheadBatch; it.Next() {
			// The iterator's slices are only valid until Next.
			k, v := it.Key(), it.Value()
			if cap(arena)-len(arena) < len(k)+len(v) {
				arena = make([]byte, 0, max(1<<20, len(k)+len(v)))
			}
			at := len(arena)
			arena = append(arena, k...)
			arena = append(arena, v...)
			batch = append(batch, kvPair{key: arena[at : at+len(k) : at+len(k)], value: arena[at+len(k) : len(arena) : len(arena)]})
		}
		busy += time.Since(start)
		select {
		case r.batches <- batch:
		case <-r.quit:
			return busy, nil
		case <-ctx.Done():
			return busy, ctx.Err()
		}
		start = time.Now()
	}
	busy += time.Since(start)
	return busy, it.Error()
}

// stop ends the reading and waits for the reader to go.
func (r *reader) stop() {
	r.once.Do(func() { close(r.quit) })
	for range r.batches { //nolint:revive // drained so the reader is not blocked
	}
	<-r.done
}

// err waits for the reader and returns its error.
func (r *reader) err() error {
	<-r.done
	return r.failure
}
