package commitment

import (
	"sync/atomic"

	"github.com/nomtstore/nomtstore/commitment/trie"
)

// warmQueue bounds the keys waiting to be warmed; past it, keys are not
// warmed and the update reads their pages itself.
const warmQueue = 1 << 15

// warmer reads, while a block executes, the pages its staged keys lead to,
// so that the commit's trie update finds them in the page cache instead of
// reading the page table one page at a time on its critical path (NOMT's
// warm-up). An SDK block executes on one goroutine, leaving a core to it.
// It only reads: what it caches is the committed version's pages, under
// DB.mu like any reader.
//
// It also reads the keys of the elided subtree each key lands in, which the
// leaf cache keeps for the update. Once the update starts, what is still
// queued is dropped (the epoch moves on): the update would otherwise read
// the same subtrees at the same time as the warmer, twice the work on the
// two cores the update now uses.
//
// It warms only while warming finds page table reads to do: those are
// reads of the table file, which the update would wait on one page at a
// time. Once the page table fits in the page cache (1M keys on the
// defaults), every page a key leads to is in memory after the first
// blocks, and walking to them again takes a core from the block for
// nothing. So after warmIdleKeys keys in a row that read no page, it warms
// one key in warmSample, and every key again as soon as one of those reads.
// Reading a subtree's keys from the leaf index does not count: that is a
// Pebble lookup served from memory once the index is in Pebble's block
// cache or the OS page cache, work the update does as fast on its own
// workers, and on two cores counting it kept the warmer busy through the
// first thousand blocks at 1M keys, competing with the block (W1 at 1M:
// 5-11% fewer writes/s with warming than without, four runs each).
type warmer struct {
	keys  chan warmKey
	done  chan struct{}
	epoch atomic.Uint64
	pace  warmPace // the warmer goroutine's own
}

// The warmer's sampling once idle.
const (
	warmIdleKeys = 4096
	warmSample   = 16
)

// warmPace decides which keys the warmer warms, from whether the keys it
// warmed needed reads.
type warmPace struct {
	idle int // keys warmed in a row that read nothing
	seen int // keys offered
}

// next tells whether to warm the next key offered.
func (p *warmPace) next() bool {
	p.seen++
	return p.idle < warmIdleKeys || p.seen%warmSample == 0
}

// warmed records whether warming a key read anything.
func (p *warmPace) warmed(read bool) {
	if read {
		p.idle = 0
	} else {
		p.idle++
	}
}

type warmKey struct {
	t     *tree
	key   string
	epoch uint64
}

// startWarmer starts the warmer if the options ask for one.
func (db *DB) startWarmer() {
	if db.opts.WarmUp != WarmUpOn {
		return
	}
	w := &warmer{keys: make(chan warmKey, warmQueue), done: make(chan struct{})}
	db.warm = w
	go func() {
		defer close(w.done)
		for k := range w.keys {
			if k.epoch != w.epoch.Load() {
				continue
			}
			if w.pace.next() {
				w.pace.warmed(db.warmKey(k))
			}
		}
	}()
}

// warmKey reads the pages toward one key and the keys of the elided
// subtree it lands in, and tells whether that read a page from the table
// (other readers' reads meanwhile count too, which only warms more).
// Errors are left to the update, which reads the same pages and reports
// them.
func (db *DB) warmKey(k warmKey) bool {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.committed.closed {
		return false
	}
	before := db.committed.pages.tableReads.Load()
	tr, _ := db.committed.view(k.t, db.committed.record.version).trie(nil)
	_ = tr.Touch(db.committed.record.roots[k.t.store], trie.PathOf([]byte(k.key)))
	return db.committed.pages.tableReads.Load() != before
}

// warmLater queues a staged key for warming, unless the queue is full or
// there is no warmer.
func (w *warmer) warmLater(t *tree, key []byte) {
	if w == nil {
		return
	}
	select {
	case w.keys <- warmKey{t: t, key: string(key), epoch: w.epoch.Load()}:
	default:
	}
}

// drop makes the warmer skip what is queued: the update is starting.
func (w *warmer) drop() {
	if w != nil {
		w.epoch.Add(1)
	}
}

// stop ends the warmer, if any, once it has drained its queue.
func (w *warmer) stop() {
	if w == nil {
		return
	}
	close(w.keys)
	<-w.done
}
