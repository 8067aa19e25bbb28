package commitment

import (
	"sync"

	"github.com/nomtstore/nomtstore/commitment/trie"
)

// recentReadsLimit bounds the bytes recentReads keeps between two commits:
// far more than a block's reads, small next to the caches.
const recentReadsLimit = 64 << 20

// recentReads holds the current entries (born version and value, or
// absence) read at the latest version since it was committed. An SDK block
// reads nearly every key it writes, so the next commit finds most of what
// it supersedes here instead of reading Pebble a second time. It is cleared
// whenever the committed version changes (commitDurably swaps it under
// DB.mu), so what it holds is always the latest version's.
type recentReads struct {
	mu      sync.Mutex
	entries map[string]recentRead // REQUIRES: mu; key: store u32 | raw key
	bytes   int                   // REQUIRES: mu
}

type recentRead struct {
	entry []byte // born u64 | value; nil when absent
	found bool
}

func newRecentReads() *recentReads { return &recentReads{entries: map[string]recentRead{}} }

func recentKey(store trie.StoreID, key []byte) string {
	return string(valueKey(store, key)[1:])
}

func (r *recentReads) get(store trie.StoreID, key []byte) (recentRead, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.entries[recentKey(store, key)]
	return e, ok
}

// put keeps an entry the caller will not change, while there is room.
func (r *recentReads) put(store trie.StoreID, key []byte, e recentRead) {
	size := 4 + len(key) + len(e.entry) + 64 // map and string overhead, roughly
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.bytes+size > recentReadsLimit {
		return
	}
	k := recentKey(store, key)
	if _, ok := r.entries[k]; !ok {
		r.entries[k] = e
		r.bytes += size
	}
}

func (r *recentReads) clear() {
	r.mu.Lock()
	clear(r.entries)
	r.bytes = 0
	r.mu.Unlock()
}
