package commitment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/cockroachdb/pebble"
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

// historyCursor walks the entities (keys, or key paths) of a range of
// superseded entries ('w' or 'x') and stops at each entity that has an
// entry live at version u: the one with the smallest orphan version > u,
// if it was born <= u. It costs two seeks per entity, however many versions
// of it are kept.
type historyCursor struct {
	it      *pebble.Iterator
	version uint64
	reverse bool
	// decode turns an entity (without prefix and store) into the key the
	// cursor reports: unescapes raw keys, passes key paths through.
	decode func([]byte) ([]byte, error)

	key, value []byte
	valid      bool
	err        error
}

func newHistoryCursor(snap *pebble.Snapshot, lower, upper []byte, version uint64, reverse bool, decode func([]byte) ([]byte, error)) (*historyCursor, error) {
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, err
	}
	c := &historyCursor{it: it, version: version, reverse: reverse, decode: decode}
	if reverse {
		it.Last()
	} else {
		it.First()
	}
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
			k, err := c.decode(entity[5:])
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

func (c *historyCursor) Valid() bool   { return c.valid }
func (c *historyCursor) Key() []byte   { return c.key }
func (c *historyCursor) Value() []byte { return c.value }
func (c *historyCursor) Next()         { c.settle() }
func (c *historyCursor) Close() error  { return c.it.Close() }

func (c *historyCursor) Error() error {
	if c.err != nil {
		return c.err
	}
	return c.it.Error()
}

// mergeCursor merges the current and the superseded entries live at one
// version. A key is live in at most one of them (a key's versions have
// disjoint lifetimes); a key in both is corruption.
type mergeCursor struct {
	a, b    cursor
	reverse bool
	on      cursor // the one at the current key, nil when done
	err     error
}

func newMergeCursor(a, b cursor, reverse bool) *mergeCursor {
	m := &mergeCursor{a: a, b: b, reverse: reverse}
	m.pick()
	return m
}

func (m *mergeCursor) pick() {
	m.on = nil
	switch av, bv := m.a.Valid(), m.b.Valid(); {
	case av && bv:
		cmp := bytes.Compare(m.a.Key(), m.b.Key())
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
func (m *mergeCursor) Next()         { m.on.Next(); m.pick() }

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
