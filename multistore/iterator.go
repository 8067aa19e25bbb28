package multistore

import (
	"bytes"

	"github.com/nomtstore/nomtstore/commitment"
)

// engineIterator is a dbm.Iterator over an engine iterator.
type engineIterator struct {
	it         *commitment.Iterator
	start, end []byte
}

func newEngineIterator(it *commitment.Iterator, start, end []byte) *engineIterator {
	return &engineIterator{it: it, start: start, end: end}
}

func (e *engineIterator) Domain() (start, end []byte) { return e.start, e.end }
func (e *engineIterator) Valid() bool                 { return e.it.Valid() }
func (e *engineIterator) Error() error                { return e.it.Error() }
func (e *engineIterator) Close() error                { return e.it.Close() }

func (e *engineIterator) Next() {
	if !e.it.Valid() {
		panic("multistore: Next on an invalid iterator")
	}
	e.it.Next()
}

func (e *engineIterator) Key() []byte {
	if !e.it.Valid() {
		panic("multistore: Key on an invalid iterator")
	}
	return e.it.Key()
}

func (e *engineIterator) Value() []byte {
	if !e.it.Valid() {
		panic("multistore: Value on an invalid iterator")
	}
	return e.it.Value()
}

// overlayIterator merges the uncommitted writes of a tree (a sorted copy
// taken when the iterator is made) over the committed state: a pending
// write hides the committed entry with the same key, a pending deletion
// hides it altogether.
type overlayIterator struct {
	base       *engineIterator
	pending    []pendingWrite // in iteration order
	reverse    bool
	start, end []byte
	// fromPending says which side the current key comes from.
	fromPending bool
	valid       bool
}

func newOverlayIterator(base *engineIterator, pending []pendingWrite, start, end []byte, reverse bool) *overlayIterator {
	it := &overlayIterator{base: base, pending: pending, reverse: reverse, start: start, end: end}
	it.settle()
	return it
}

// before reports whether key a comes before key b in iteration order.
func (it *overlayIterator) before(a, b []byte) bool {
	if it.reverse {
		return bytes.Compare(a, b) > 0
	}
	return bytes.Compare(a, b) < 0
}

// settle moves to the next visible key: skips pending deletions and the
// committed entries that pending writes shadow.
func (it *overlayIterator) settle() {
	for {
		baseValid := it.base.Valid()
		if len(it.pending) == 0 {
			it.fromPending, it.valid = false, baseValid
			return
		}
		p := it.pending[0]
		if baseValid {
			bk := it.base.Key()
			if it.before(bk, p.key) {
				it.fromPending, it.valid = false, true
				return
			}
			if bytes.Equal(bk, p.key) {
				it.base.Next() // shadowed by the pending write
			}
		}
		if p.deleted {
			it.pending = it.pending[1:]
			continue
		}
		it.fromPending, it.valid = true, true
		return
	}
}

func (it *overlayIterator) Domain() (start, end []byte) { return it.start, it.end }
func (it *overlayIterator) Valid() bool                 { return it.valid }
func (it *overlayIterator) Error() error                { return it.base.Error() }
func (it *overlayIterator) Close() error                { return it.base.Close() }

func (it *overlayIterator) Next() {
	if !it.valid {
		panic("multistore: Next on an invalid iterator")
	}
	if it.fromPending {
		it.pending = it.pending[1:]
	} else {
		it.base.Next()
	}
	it.settle()
}

func (it *overlayIterator) Key() []byte {
	if !it.valid {
		panic("multistore: Key on an invalid iterator")
	}
	if it.fromPending {
		return it.pending[0].key
	}
	return it.base.Key()
}

func (it *overlayIterator) Value() []byte {
	if !it.valid {
		panic("multistore: Value on an invalid iterator")
	}
	if it.fromPending {
		return it.pending[0].value
	}
	return it.base.Value()
}
