package pruning

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// Target is what the worker prunes: the engine.
type Target interface {
	// PruneToContext deletes every version <= to, stopping between two
	// versions once ctx is done (with ctx's error); calling it again after
	// a failure or a stop resumes.
	PruneToContext(ctx context.Context, to uint64) error
	// EarliestVersion is the oldest version still kept.
	EarliestVersion() uint64
}

// WorkerOptions tune the worker; the zero value is ready to use.
type WorkerOptions struct {
	// RetryMin and RetryMax bound the wait before retrying a failed run:
	// it doubles from RetryMin at each failure in a row. Defaults 1 s, 1 min.
	RetryMin, RetryMax time.Duration
	Logger             *slog.Logger
	// OnRun, if set, is called after each run that ended by itself (not
	// stopped by Close or Pause), from the worker's goroutine, with the
	// height it pruned to, how long it took and its error (for metrics).
	OnRun func(to uint64, took time.Duration, err error)
}

// Stats describe the worker: what it was asked, where it is, and how its
// runs went.
type Stats struct {
	// Requested is the highest height asked to prune to (0: none yet).
	Requested uint64
	// Earliest is the target's earliest kept version.
	Earliest uint64
	// Pending is how many versions wait to be deleted.
	Pending uint64
	// Runs and Failures count runs since start; ConsecutiveFailures resets
	// at the first run that succeeds.
	Runs, Failures, ConsecutiveFailures uint64
	// LastRun is when the last run ended, LastDuration how long it took,
	// LastError its error (nil if it succeeded).
	LastRun      time.Time
	LastDuration time.Duration
	LastError    error
}

// Worker deletes old versions in the background, one request at a time,
// newest request winning. A run stops between two versions when the worker
// is closed or paused: a backlog of many versions (an archive node turning
// pruning on) must hold up neither a shutdown nor a rollback.
type Worker struct {
	target Target
	opts   WorkerOptions
	wake   chan struct{}
	stop   chan struct{}
	done   chan struct{}
	// ctx is done once Close is called; every run's context derives from
	// it.
	ctx       context.Context
	closeRuns context.CancelFunc

	mu    sync.Mutex
	stats Stats      // REQUIRES: mu
	idle  *sync.Cond // signalled when a run ends, REQUIRES: mu
	// paused counts Pause calls not yet resumed; running is set while a
	// run is in progress, cancelRun stops it. REQUIRES: mu.
	paused    int
	running   bool
	cancelRun context.CancelFunc
}

// NewWorker starts a worker over target; Close stops it.
func NewWorker(target Target, opts WorkerOptions) *Worker {
	if opts.RetryMin <= 0 {
		opts.RetryMin = time.Second
	}
	if opts.RetryMax < opts.RetryMin {
		opts.RetryMax = max(opts.RetryMin, time.Minute)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	w := &Worker{target: target, opts: opts, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	w.ctx, w.closeRuns = context.WithCancel(context.Background())
	w.idle = sync.NewCond(&w.mu)
	go w.loop()
	return w
}

// Request asks for every version <= to to be deleted. It never blocks.
func (w *Worker) Request(to uint64) {
	w.mu.Lock()
	if to > w.stats.Requested {
		w.stats.Requested = to
	}
	w.mu.Unlock()
	w.wakeUp()
}

func (w *Worker) wakeUp() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Pause stops the run in progress, if any, after the version it is
// deleting, and holds off new runs until resume is called (requests made
// meanwhile are kept). It returns once no run is in progress.
func (w *Worker) Pause() (resume func()) {
	w.mu.Lock()
	w.paused++
	if w.cancelRun != nil {
		w.cancelRun()
	}
	for w.running {
		w.idle.Wait()
	}
	w.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			w.mu.Lock()
			w.paused--
			w.mu.Unlock()
			w.wakeUp()
		})
	}
}

// Stats returns the worker's figures.
func (w *Worker) Stats() Stats {
	w.mu.Lock()
	s := w.stats
	w.mu.Unlock()
	s.Earliest = w.target.EarliestVersion()
	if s.Requested >= s.Earliest && s.Earliest > 0 {
		s.Pending = s.Requested - s.Earliest + 1
	}
	return s
}

// WaitIdle returns once every request so far is done, or the last run
// failed (the worker then retries by itself).
func (w *Worker) WaitIdle() Stats {
	w.mu.Lock()
	for w.stats.LastError == nil && w.stats.Requested > 0 && w.target.EarliestVersion() <= w.stats.Requested && !w.closedLocked() {
		w.idle.Wait()
	}
	w.mu.Unlock()
	return w.Stats()
}

func (w *Worker) closedLocked() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

// Close stops the worker, and the run in progress, if any, after the
// version it is deleting.
func (w *Worker) Close() {
	w.closeRuns()
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
	w.mu.Lock()
	w.idle.Broadcast()
	w.mu.Unlock()
}

func (w *Worker) loop() {
	defer close(w.done)
	retry := time.Duration(0)
	for {
		var timer <-chan time.Time
		if retry > 0 {
			timer = time.After(retry)
		}
		select {
		case <-w.stop:
			return
		case <-w.wake:
		case <-timer:
		}
		w.mu.Lock()
		to := w.stats.Requested
		if to < w.target.EarliestVersion() || w.paused > 0 {
			// Nothing to do, or paused: resuming wakes the loop again.
			w.mu.Unlock()
			retry = 0
			continue
		}
		ctx, cancel := context.WithCancel(w.ctx)
		w.running, w.cancelRun = true, cancel
		w.mu.Unlock()
		start := time.Now()
		err := w.target.PruneToContext(ctx, to)
		took := time.Since(start)
		stopped := err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err())
		cancel()
		if stopped {
			// Not a failure: Close or Pause asked. The next run resumes.
			w.mu.Lock()
			w.running, w.cancelRun = false, nil
			w.idle.Broadcast()
			w.mu.Unlock()
			w.opts.Logger.Debug("nomtstore pruning stopped", "to", to, "earliest", w.target.EarliestVersion(), "took", took)
			retry = 0
			continue
		}
		if w.opts.OnRun != nil {
			w.opts.OnRun(to, took, err)
		}
		w.mu.Lock()
		w.running, w.cancelRun = false, nil
		w.stats.Runs++
		w.stats.LastRun, w.stats.LastDuration, w.stats.LastError = time.Now(), took, err
		if err != nil {
			w.stats.Failures++
			w.stats.ConsecutiveFailures++
			retry = min(w.opts.RetryMax, max(w.opts.RetryMin, 2*retry))
		} else {
			w.stats.ConsecutiveFailures = 0
			retry = 0
		}
		failures := w.stats.ConsecutiveFailures
		w.idle.Broadcast()
		w.mu.Unlock()
		if err != nil {
			w.opts.Logger.Error("nomtstore pruning failed; retrying", "to", to, "earliest", w.target.EarliestVersion(),
				"failures_in_a_row", failures, "retry_in", retry, "err", err)
		} else {
			w.opts.Logger.Debug("nomtstore pruned", "to", to, "took", time.Since(start))
		}
	}
}
