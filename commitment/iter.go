package commitment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/cockroachdb/pebble"

	"github.com/nomtstore/nomtstore/commitment/trie"
)

// cursor is an ordered walk over one kind of entry of one store at one
// version. Keys are without the prefix and store; values without born.
type cursor interface {
	Valid() bool
	Key() []byte
	Value() []byte
	Next()
	Error() error
	Close() error
}

// currentCursor walks current entries ('v' or 'l'). Reading a past version
// u, it skips entries born after u: those keys were absent at u or held a
// value that is now a superseded entry.
type currentCursor struct {
	it      *pebble.Iterator
	version uint64
	filter  bool // false at the latest version: every entry is live
	reverse bool
	valid   bool
	err     error
}

func newCurrentCursor(snap *pebble.Snapshot, lower, upper []byte, version uint64, filter, reverse bool) (*currentCursor, error) {
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, err
	}
	c := &currentCursor{it: it, version: version, filter: filter, reverse: reverse}
	if reverse {
		c.valid = it.Last()
	} else {
		c.valid = it.First()
	}
	c.skipUnborn()
	return c, nil
}

func (c *currentCursor) skipUnborn() {
	for ; c.valid; c.step() {
		if len(c.it.Value()) < bornSize || len(c.it.Key()) < 5 {
			c.valid, c.err = false, fmt.Errorf("%w: entry %x of %d bytes", ErrCorrupt, c.it.Key(), len(c.it.Value()))
			return
		}
		if !c.filter || binary.BigEndian.Uint64(c.it.Value()) <= c.version {
			return
		}
	}
}

func (c *currentCursor) step() {
	if c.reverse {
		c.valid = c.it.Prev()
	} else {
		c.valid = c.it.Next()
	}
}

func (c *currentCursor) Valid() bool   { return c.valid }
func (c *currentCursor) Key() []byte   { return c.it.Key()[5:] }
func (c *currentCursor) Value() []byte { return c.it.Value()[bornSize:] }
func (c *currentCursor) Next()         { c.step(); c.skipUnborn() }
func (c *currentCursor) Close() error  { return c.it.Close() }

func (c *currentCursor) Error() error {
	if c.err != nil {
		return c.err
	}
	return c.it.Error()
}

// settled is the position of a cursor that settles on entries by seeking
// (history, past values, deleted keys): the key and value it stopped at,
// which outlive the iterator's moves, and the accessors they share.
type settled struct {
	it         *pebble.Iterator
	key, value []byte
	valid      bool
	err        error
}

func (c *settled) Valid() bool   { return c.valid }
func (c *settled) Key() []byte   { return c.key }
func (c *settled) Value() []byte { return c.value }
func (c *settled) Close() error  { return c.it.Close() }

func (c *settled) Error() error {
	if c.err != nil {
		return c.err
	}
	return c.it.Error()
}

// first puts the iterator at the first (or, reverse, last) entry.
func (c *settled) first(reverse bool) {
	if reverse {
		c.it.Last()
	} else {
		c.it.First()
	}
}

// historyDecoder turns a history cursor's entities (without prefix and
// store) into the keys it reports, and the live entries (without born)
// into the values it reports.
type historyDecoder struct {
	key   func(entity []byte) ([]byte, error)
	value func(entity, rest []byte) ([]byte, error)
}

// historyCursor walks the entities (key paths) of a range of superseded
// entries ('x') and stops at each entity that has an entry live at version
// u: the one with the smallest orphan version > u, if it was born <= u. It
// costs two seeks per entity, however many versions of it are kept.
type historyCursor struct {
	settled
	version uint64
	reverse bool
	decode  historyDecoder
}

func newHistoryCursor(snap *pebble.Snapshot, lower, upper []byte, version uint64, reverse bool, decode historyDecoder) (*historyCursor, error) {
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, err
	}
	c := &historyCursor{settled: settled{it: it}, version: version, reverse: reverse, decode: decode}
	c.first(reverse)
	c.settle()
	return c, nil
}

// afterEntity is a key past every entry of entity and before any later
// entity's (entities are prefix-free and entries add 8 bytes).
func afterEntity(entity []byte) []byte {
	return append(bytes.Clone(entity), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
}

// settle moves from the iterator's position to the first entity, in the
// cursor's direction, with an entry live at the cursor's version, and leaves
// the iterator past that entity.
func (c *historyCursor) settle() {
	c.valid = false
	for c.it.Valid() {
		key := c.it.Key()
		if len(key) < 5+8 {
			c.err = fmt.Errorf("%w: superseded entry key %x", ErrCorrupt, key)
			return
		}
		entity := bytes.Clone(key[:len(key)-8])
		var live []byte
		if c.it.SeekGE(binary.BigEndian.AppendUint64(bytes.Clone(entity), c.version+1)) && isEntryOf(c.it.Key(), entity) {
			v := c.it.Value()
			if len(v) < bornSize {
				c.err = fmt.Errorf("%w: superseded entry %x of %d bytes", ErrCorrupt, c.it.Key(), len(v))
				return
			}
			if binary.BigEndian.Uint64(v) <= c.version {
				live = bytes.Clone(v[bornSize:])
			}
		}
		if c.reverse {
			c.it.SeekLT(entity)
		} else {
			c.it.SeekGE(afterEntity(entity))
		}
		if live != nil {
			k, err := c.decode.key(entity[5:])
			if err == nil {
				live, err = c.decode.value(entity[5:], live)
			}
			if err != nil {
				c.err = err
				return
			}
			c.key, c.value, c.valid = k, live, true
			return
		}
	}
}

func isEntryOf(key, entity []byte) bool {
	return len(key) == len(entity)+8 && bytes.HasPrefix(key, entity)
}

func (c *historyCursor) Next() { c.settle() }

// pastValueCursor walks a store's current values ('v') at a past version u:
// an entry born after u stands for what its key held at u, read from its
// superseded entries, and is skipped if the key was absent then.
type pastValueCursor struct {
	settled
	snap    *pebble.Snapshot
	store   trie.StoreID
	version uint64
	reverse bool
}

func newPastValueCursor(snap *pebble.Snapshot, store trie.StoreID, lower, upper []byte, version uint64, reverse bool) (*pastValueCursor, error) {
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, err
	}
	c := &pastValueCursor{settled: settled{it: it}, snap: snap, store: store, version: version, reverse: reverse}
	c.first(reverse)
	c.settle()
	return c, nil
}

func (c *pastValueCursor) settle() {
	c.valid = false
	for ; c.it.Valid(); c.step() {
		key, entry := c.it.Key(), c.it.Value()
		if len(entry) < bornSize || len(key) < 6 {
			c.err = fmt.Errorf("%w: entry %x of %d bytes", ErrCorrupt, key, len(entry))
			return
		}
		if binary.BigEndian.Uint64(entry) <= c.version {
			c.key, c.value, c.valid = key[5:], entry[bornSize:], true
			return
		}
		value, err := valueAt(c.snap, c.store, key[5:], c.version, c.version+1)
		if err != nil {
			c.err = err
			return
		}
		if value != nil {
			c.key, c.value, c.valid = bytes.Clone(key[5:]), value, true
			return
		}
	}
}

func (c *pastValueCursor) step() {
	if c.reverse {
		c.it.Prev()
	} else {
		c.it.Next()
	}
}

func (c *pastValueCursor) Next() { c.step(); c.settle() }

// deletedCursor walks the keys of a store deleted after a past version u
// ('d' records with an orphan version > u), in key order, and stops at
// those that held a value at u: the keys a walk of the current values
// cannot find.
type deletedCursor struct {
	settled
	snap    *pebble.Snapshot
	store   trie.StoreID
	version uint64
	reverse bool
}

func newDeletedCursor(snap *pebble.Snapshot, store trie.StoreID, lower, upper []byte, version uint64, reverse bool) (*deletedCursor, error) {
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, err
	}
	c := &deletedCursor{settled: settled{it: it}, snap: snap, store: store, version: version, reverse: reverse}
	c.first(reverse)
	c.settle()
	return c, nil
}

func (c *deletedCursor) settle() {
	c.valid = false
	for c.it.Valid() {
		k := c.it.Key()
		if len(k) < 5+8 {
			c.err = fmt.Errorf("%w: deleted-key record %x", ErrCorrupt, k)
			return
		}
		entity := bytes.Clone(k[:len(k)-8])
		after := c.it.SeekGE(binary.BigEndian.AppendUint64(bytes.Clone(entity), c.version+1)) && isEntryOf(c.it.Key(), entity)
		if c.reverse {
			c.it.SeekLT(entity)
		} else {
			c.it.SeekGE(afterEntity(entity))
		}
		if !after {
			continue
		}
		key, err := unescapeKey(entity[5:])
		if err != nil {
			c.err = err
			return
		}
		value, err := valueAt(c.snap, c.store, key, c.version, c.version+1)
		if err != nil {
			c.err = err
			return
		}
		if value != nil {
			c.key, c.value, c.valid = key, value, true
			return
		}
	}
}

func (c *deletedCursor) Next() { c.settle() }

// mergeCursor merges two walks of one version's keys. For the leaf index
// (current and superseded entries) a key is live in at most one of them,
// and one in both is corruption; for values (current values, deleted keys)
// both may find a key, with the same value, and it is reported once
// (shared).
type mergeCursor struct {
	a, b    cursor
	reverse bool
	shared  bool
	on      cursor // the one at the current key, nil when done
	both    bool   // a and b are at the same key (shared)
	err     error
}

func newMergeCursor(a, b cursor, reverse bool) *mergeCursor {
	m := &mergeCursor{a: a, b: b, reverse: reverse}
	m.pick()
	return m
}

func newSharedMergeCursor(a, b cursor, reverse bool) *mergeCursor {
	m := &mergeCursor{a: a, b: b, reverse: reverse, shared: true}
	m.pick()
	return m
}

func (m *mergeCursor) pick() {
	m.on, m.both = nil, false
	switch av, bv := m.a.Valid(), m.b.Valid(); {
	case av && bv:
		cmp := bytes.Compare(m.a.Key(), m.b.Key())
		if cmp == 0 && m.shared {
			m.on, m.both = m.a, true
			return
		}
		if cmp == 0 {
			m.err = fmt.Errorf("%w: key %x is both current and superseded at one version", ErrCorrupt, m.a.Key())
			return
		}
		if (cmp < 0) != m.reverse {
			m.on = m.a
		} else {
			m.on = m.b
		}
	case av:
		m.on = m.a
	case bv:
		m.on = m.b
	}
}

func (m *mergeCursor) Valid() bool   { return m.on != nil && m.err == nil }
func (m *mergeCursor) Key() []byte   { return m.on.Key() }
func (m *mergeCursor) Value() []byte { return m.on.Value() }
func (m *mergeCursor) Next() {
	m.on.Next()
	if m.both {
		m.b.Next()
	}
	m.pick()
}

func (m *mergeCursor) Error() error {
	if m.err != nil {
		return m.err
	}
	if err := m.a.Error(); err != nil {
		return err
	}
	return m.b.Error()
}

func (m *mergeCursor) Close() error {
	return errors.Join(m.a.Close(), m.b.Close())
}

// Iterator walks a tree's keys in [start, end) (nil = unbounded) in raw-key
// order, forward or reverse, at one version. It reads the state committed
// when it was made, whatever commits or pruning happen meanwhile, and must
// be closed.
type Iterator struct {
	cur  cursor
	snap *snapshot
	open *atomic.Int64 // the DB's count of open iterators
}

// Valid reports whether the iterator is at a key.
func (i *Iterator) Valid() bool { return i.snap != nil && i.cur.Valid() }

// Next moves to the next key in the iterator's direction.
func (i *Iterator) Next() { i.cur.Next() }

// Key returns the current raw key; it is valid until the next move.
func (i *Iterator) Key() []byte { return i.cur.Key() }

// Value returns the current value; it is valid until the next move.
func (i *Iterator) Value() []byte { return i.cur.Value() }

// Error returns the iteration error, if any.
func (i *Iterator) Error() error { return i.cur.Error() }

// Close releases the iterator.
func (i *Iterator) Close() error {
	if i.snap == nil {
		return nil
	}
	err := i.cur.Close()
	i.snap.release()
	i.open.Add(-1)
	i.snap = nil
	return err
}
