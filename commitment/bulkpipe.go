package commitment

import (
	"sync/atomic"

	"github.com/nomtstore/nomtstore/commitment/trie"
)

// bulkPipe runs a bulk load's intake on two more goroutines, so that the
// caller (decoding a snapshot stream) only copies each key and value: one
// hashes them (key path, value and leaf hashes: three SHA-256 per key),
// the next writes the value tables and sorts the leaves. Batches keep the
// order, and a fixed set of them bounds the memory in flight.
type bulkPipe struct {
	load    *bulkLoad
	cur     *bulkBatch
	free    chan *bulkBatch
	toHash  chan *bulkBatch
	toWrite chan *bulkBatch
	done    chan struct{}
	// failed is the writer's first error; later batches are dropped.
	failed atomic.Pointer[error]
	closed bool
}

// bulkBatch is a run of keys and values copied into one arena.
type bulkBatch struct {
	items []bulkItem
	arena []byte
}

type bulkItem struct {
	tree       *bulkTree
	key, value []byte // in the batch's arena
	path       trie.KeyPath
	leaf       trie.Hash
}

const (
	bulkBatches    = 4
	bulkBatchItems = 4096
	bulkBatchBytes = 1 << 20
)

func newBulkPipe(b *bulkLoad) *bulkPipe {
	p := &bulkPipe{load: b, free: make(chan *bulkBatch, bulkBatches), toHash: make(chan *bulkBatch, bulkBatches),
		toWrite: make(chan *bulkBatch, bulkBatches), done: make(chan struct{})}
	for range bulkBatches {
		p.free <- &bulkBatch{items: make([]bulkItem, 0, bulkBatchItems), arena: make([]byte, 0, bulkBatchBytes)}
	}
	go p.hash()
	go p.write()
	return p
}

// push copies a key and value into the pipe. It returns the writer's
// error, if it has failed (the key is then dropped, as is all that follows).
func (p *bulkPipe) push(tree *bulkTree, key, value []byte) error {
	if err := p.err(); err != nil {
		return err
	}
	need := len(key) + len(value)
	if p.cur != nil && (len(p.cur.items) == cap(p.cur.items) || len(p.cur.arena)+need > cap(p.cur.arena)) {
		p.send()
	}
	if p.cur == nil {
		p.cur = <-p.free
		if need > cap(p.cur.arena) {
			p.cur.arena = make([]byte, 0, need)
		}
	}
	c := p.cur
	start := len(c.arena)
	c.arena = append(c.arena, key...)
	c.arena = append(c.arena, value...)
	k := c.arena[start : start+len(key) : start+len(key)]
	v := c.arena[start+len(key) : start+need : start+need]
	c.items = append(c.items, bulkItem{tree: tree, key: k, value: v})
	return nil
}

func (p *bulkPipe) send() {
	p.toHash <- p.cur
	p.cur = nil
}

func (p *bulkPipe) err() error {
	if e := p.failed.Load(); e != nil {
		return *e
	}
	return nil
}

func (p *bulkPipe) fail(err error) {
	p.failed.CompareAndSwap(nil, &err)
}

// finish sends what is left, waits for the writer to end (with the last
// tree's value tables closed) and returns its error.
func (p *bulkPipe) finish() error {
	if p.closed {
		return p.err()
	}
	p.closed = true
	if p.cur != nil && len(p.cur.items) > 0 {
		p.send()
	}
	close(p.toHash)
	<-p.done
	return p.err()
}

func (p *bulkPipe) hash() {
	defer close(p.toWrite)
	for batch := range p.toHash {
		for i := range batch.items {
			it := &batch.items[i]
			it.path = trie.PathOf(it.key)
			it.leaf = trie.LeafHash(it.path, trie.ValueHash(it.value))
		}
		p.toWrite <- batch
	}
}

func (p *bulkPipe) write() {
	defer close(p.done)
	var current *bulkTree
	for batch := range p.toWrite {
		for i := range batch.items {
			if p.err() != nil {
				break
			}
			it := &batch.items[i]
			if it.tree != current {
				if current != nil {
					if err := current.values.close(); err != nil {
						p.fail(err)
						break
					}
				}
				current = it.tree
			}
			if err := p.load.writeItem(it); err != nil {
				p.fail(err)
			}
		}
		clear(batch.items) // drop the tree references
		batch.items, batch.arena = batch.items[:0], batch.arena[:0]
		if cap(batch.arena) > bulkBatchBytes {
			batch.arena = make([]byte, 0, bulkBatchBytes)
		}
		p.free <- batch
	}
	if current != nil && p.err() == nil {
		if err := current.values.close(); err != nil {
			p.fail(err)
		}
	}
}
