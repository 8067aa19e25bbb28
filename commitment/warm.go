package commitment

import (
	"runtime"
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
// It warms only while warming finds reads to do. Once what a key leads to
// is in memory (the stored pages in the page cache, and with four cores or
// more the elided subtrees in the leaf cache), walking to it again takes a
// core from the block for nothing. So after warmIdleKeys keys in a row that
// read nothing, it warms one key in warmSample, and every key again as soon
// as one of those reads.
//
// What counts as a read: a page read from the table file, which the update
// would wait on one page at a time; and, with four cores or more, a
// subtree's keys read from the leaf index instead of the leaf cache. On two
// cores the leaf index is left to the update's workers: the block and
// Pebble's compactions hold both cores, and warming it there cost more than
// it saved (W1 at 1M keys: 5-11% fewer writes/s than without warming, four
// runs each; at 10M the block took as long either way). A lookup of an absent
// page (an elided subtree's; the table's metadata in memory says so) never
// counts: at 1M keys every key ends in one, and counting it kept the warmer
// warming every key.
type warmer struct {
	keys  chan warmKey
	done  chan struct{}
	epoch atomic.Uint64
	pace  warmPace // the warmer goroutine's own
	// leafReads makes reads of the leaf index count as reads to do.
	leafReads bool
}

// warmsLeafIndex tells whether a warmer on a machine of that many cores
// counts leaf-index reads as reads to do: with a core to spare beside the
// block's and Pebble's.
func warmsLeafIndex(cores int) bool { return cores >= 4 }

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
	w := &warmer{keys: make(chan warmKey, warmQueue), done: make(chan struct{}), leafReads: warmsLeafIndex(runtime.GOMAXPROCS(0))}
	db.warm = w
	go func() {
		defer close(w.done)
		for k := range w.keys {
			if k.epoch != w.epoch.Load() {
				continue
			}
			if w.pace.next() {
				w.pace.warmed(db.warmKey(k, w.leafReads))
			}
		}
	}()
}

// warmKey reads the pages toward one key and the keys of the elided
// subtree it lands in, and tells whether that read a page from the table,
// or, with leafReads, a subtree from the leaf index (other readers' reads
// meanwhile count too, which only warms more). Errors are left to the
// update, which reads the same pages and reports them.
func (db *DB) warmKey(k warmKey, leafReads bool) bool {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.committed.closed {
		return false
	}
	reads := func() uint64 {
		n := db.committed.pages.tableReads.Load()
		if leafReads {
			n += db.committed.leaves.scans.Load()
		}
		return n
	}
	before := reads()
	tr, _ := db.committed.view(k.t, db.committed.record.version).trie(nil)
	_ = tr.Touch(db.committed.record.roots[k.t.store], trie.PathOf([]byte(k.key)))
	return reads() != before
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
