package commitment

import (
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
type warmer struct {
	keys chan warmKey
	done chan struct{}
}

type warmKey struct {
	t   *tree
	key string
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
			db.warmKey(k)
		}
	}()
}

// warmKey reads the pages toward one key. Errors are left to the update,
// which reads the same pages and reports them.
func (db *DB) warmKey(k warmKey) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.closed {
		return
	}
	tr, _ := db.committedTree(k.t, nil)
	_ = tr.Touch(db.record.roots[k.t.store], trie.PathOf([]byte(k.key)))
}

// warmLater queues a staged key for warming, unless the queue is full or
// there is no warmer.
func (w *warmer) warmLater(t *tree, key []byte) {
	if w == nil {
		return
	}
	select {
	case w.keys <- warmKey{t: t, key: string(key)}:
	default:
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
