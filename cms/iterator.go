package cms

import (
	"bytes"

	"github.com/nomtstore/nomtstore/commitment"
)

// engineIterator is a dbm.Iterator over an engine iterator.
//
// Key and Value return copies, as cosmos-db's iterators (and IAVL's) do:
// the engine's slices are valid only until the next move (they alias
// Pebble's buffers), but the SDK keeps what iterators return. cachekv
// indexes its cache by unsafe strings of the key slices it is given, so a
// module that Gets a key sliced from an iterator's key (authz's expired
// grant queue in BeginBlock does) left a cache entry whose key changed
// under it when the buffer moved on, and later Gets of other keys found
// the wrong value (found by the SDK simulation, app_test/simulation_test.go).
// The copies are made once per position.
type engineIterator struct {
	it         *commitment.Iterator
	start, end []byte
	// key and value are the copies of the current position's, nil until
	// asked for.
	key, value []byte
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
	e.key, e.value = nil, nil
	e.it.Next()
}

// rawKey is the engine's key at the current position, valid until the next
// move: for comparisons only.
func (e *engineIterator) rawKey() []byte {
	if !e.it.Valid() {
		panic("multistore: Key on an invalid iterator")
	}
	return e.it.Key()
}

func (e *engineIterator) Key() []byte {
	if e.key == nil {
		e.key = bytes.Clone(e.rawKey())
	}
	return e.key
}

func (e *engineIterator) Value() []byte {
	if !e.it.Valid() {
		panic("multistore: Value on an invalid iterator")
	}
	if e.value == nil {
		// Non-nil even when empty, as the value was set.
		e.value = append([]byte{}, e.it.Value()...)
	}
	return e.value
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
			bk := it.base.rawKey()
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
