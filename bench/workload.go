package bench

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
)

// The W1 shape (docs/benchmarks.md): bank balance keys, a 1-byte prefix, a
// 20-byte address and the denom, with values about the size of an encoded
// balance.
const (
	bankTree         = "bank"
	accountValueSize = 40
	// initialBalance keeps balances far from zero for any run length, so
	// the uint64 arithmetic of transfers never wraps.
	initialBalance = 1 << 50
)

var denom = []byte("stake")

// accounts generates W1's accounts and transfers: the same seed gives the
// same accounts, transfers and new accounts in the same order.
type accounts struct {
	rng   *rand.Rand
	addrs [][20]byte // every account, in creation order
}

func newAccounts(seed uint64) *accounts {
	return &accounts{rng: rand.New(rand.NewPCG(seed, 0xacc0))}
}

// key is account i's balance key: prefix 0x02, the address, the denom
// (the SDK's layout without its address length byte).
func (a *accounts) key(i int) []byte {
	k := make([]byte, 0, 1+20+len(denom))
	k = append(k, 0x02)
	k = append(k, a.addrs[i][:]...)
	return append(k, denom...)
}

// add creates an account and returns its key and first value.
func (a *accounts) add() (key, value []byte) {
	var addr [20]byte
	fillRandom(a.rng, addr[:])
	a.addrs = append(a.addrs, addr)
	value = make([]byte, accountValueSize)
	binary.BigEndian.PutUint64(value, initialBalance+a.rng.Uint64N(1<<40))
	fillRandom(a.rng, value[8:])
	return a.key(len(a.addrs) - 1), value
}

// pair picks two distinct accounts uniformly.
func (a *accounts) pair() (from, to int) {
	from = a.rng.IntN(len(a.addrs))
	to = a.rng.IntN(len(a.addrs) - 1)
	if to >= from {
		to++
	}
	return from, to
}

func fillRandom(rng *rand.Rand, b []byte) {
	var u [8]byte
	for i := 0; i < len(b); i += 8 {
		binary.LittleEndian.PutUint64(u[:], rng.Uint64())
		copy(b[i:], u[:])
	}
}

// blockWork is what a block's execution did, for the figures.
type blockWork struct {
	writes, reads, iterated int
}

// transferBlock executes one W1 block: t transfers (2 reads + 2 writes of
// random existing accounts) and t/100 new accounts. Reads see the block's
// own writes, as in an SDK block.
func transferBlock(s Store, a *accounts, t int) (blockWork, error) {
	var w blockWork
	for range t {
		from, to := a.pair()
		amount := 1 + a.rng.Uint64N(1000)
		fromKey, toKey := a.key(from), a.key(to)
		fromValue, err := readBalance(s, bankTree, fromKey)
		if err != nil {
			return w, err
		}
		toValue, err := readBalance(s, bankTree, toKey)
		if err != nil {
			return w, err
		}
		binary.BigEndian.PutUint64(fromValue, binary.BigEndian.Uint64(fromValue)-amount)
		binary.BigEndian.PutUint64(toValue, binary.BigEndian.Uint64(toValue)+amount)
		s.Set(bankTree, fromKey, fromValue)
		s.Set(bankTree, toKey, toValue)
		w.reads += 2
		w.writes += 2
	}
	for range t / 100 {
		key, value := a.add()
		s.Set(bankTree, key, value)
		w.writes++
	}
	return w, nil
}

// readBalance reads an account that must exist, as a copy the caller may
// change.
func readBalance(s Store, tree string, key []byte) ([]byte, error) {
	v := s.Get(tree, key)
	if len(v) < 8 {
		return nil, fmt.Errorf("store %s: key %x: read %d bytes, want an existing account", tree, key, len(v))
	}
	return append([]byte(nil), v...), nil
}

// W2's module stores: sizes very different, like an SDK app's (bank big,
// params tiny), values of the sizes those modules store.
type moduleSpec struct {
	name      string
	share     float64 // of N
	valueSize int
}

var w2Modules = []moduleSpec{
	{"bank", 0.50, 40},
	{"staking", 0.15, 120},
	{"acc", 0.12, 80},
	{"distribution", 0.10, 60},
	{"slashing", 0.05, 30},
	{"gov", 0.03, 200},
	{"feegrant", 0.02, 90},
	{"authz", 0.015, 110},
	{"ibc", 0.01, 150},
	{"params", 0.005, 50},
}

// groupSize is how many keys share a prefix, so a prefix iteration visits
// about this many keys (a delegator's delegations, an account's balances).
const groupSize = 100

// moduleKeys are one W2 store's keys: prefix 0x01, a 4-byte group and a
// 16-byte item, so that keys of one group are adjacent.
type moduleKeys struct {
	spec   moduleSpec
	groups uint32
	keys   [][20]byte // group (big-endian) ++ item
}

func (m *moduleKeys) key(i int) []byte {
	return append([]byte{0x01}, m.keys[i][:]...)
}

// app generates W2: the ten module stores and blocks of transactions that
// touch several of them.
type app struct {
	rng     *rand.Rand
	modules []*moduleKeys
	byName  map[string]*moduleKeys
}

func newApp(seed uint64, n int) *app {
	a := &app{rng: rand.New(rand.NewPCG(seed, 0xa99)), byName: map[string]*moduleKeys{}}
	for _, spec := range w2Modules {
		size := max(groupSize, int(spec.share*float64(n)))
		m := &moduleKeys{spec: spec, groups: uint32((size + groupSize - 1) / groupSize)}
		a.modules = append(a.modules, m)
		a.byName[spec.name] = m
	}
	return a
}

func (a *app) trees() []string {
	names := make([]string, len(a.modules))
	for i, m := range a.modules {
		names[i] = m.spec.name
	}
	return names
}

// size is the number of keys a module starts with.
func (m *moduleKeys) size(n int) int { return max(groupSize, int(m.spec.share*float64(n))) }

// newKey adds a key to m, in group g, and returns it with a first value.
func (a *app) newKey(m *moduleKeys, g uint32) (key, value []byte) {
	var k [20]byte
	binary.BigEndian.PutUint32(k[:4], g)
	fillRandom(a.rng, k[4:])
	m.keys = append(m.keys, k)
	value = make([]byte, m.spec.valueSize)
	fillRandom(a.rng, value)
	return m.key(len(m.keys) - 1), value
}

// preloadKey is the i-th key of m's preload: groups fill in order.
func (a *app) preloadKey(m *moduleKeys, i int) (key, value []byte) {
	return a.newKey(m, uint32(i/groupSize))
}

// touch reads a random existing key of m and writes it back changed.
func (a *app) touch(s Store, m *moduleKeys, w *blockWork) error {
	key := m.key(a.rng.IntN(len(m.keys)))
	v, err := readBalance(s, m.spec.name, key)
	if err != nil {
		return err
	}
	binary.BigEndian.PutUint64(v, binary.BigEndian.Uint64(v)+1)
	s.Set(m.spec.name, key, v)
	w.reads++
	w.writes++
	return nil
}

// iterateGroup walks one random group of m by prefix.
func (a *app) iterateGroup(s Store, m *moduleKeys, w *blockWork) {
	var prefix [5]byte
	prefix[0] = 0x01
	binary.BigEndian.PutUint32(prefix[1:], a.rng.Uint32N(m.groups))
	end := prefix
	binary.BigEndian.PutUint32(end[1:], binary.BigEndian.Uint32(prefix[1:])+1)
	w.iterated += s.Iterate(m.spec.name, prefix[:], end[:])
}

// replace deletes a random key of m and adds a new one in a random group
// (a grant that expires and another that is made).
func (a *app) replace(s Store, m *moduleKeys, w *blockWork) {
	i := a.rng.IntN(len(m.keys))
	s.Delete(m.spec.name, m.key(i))
	m.keys[i] = m.keys[len(m.keys)-1]
	m.keys = m.keys[:len(m.keys)-1]
	key, value := a.newKey(m, a.rng.Uint32N(m.groups))
	s.Set(m.spec.name, key, value)
	w.writes += 2
}

// block executes one W2 block of t transactions: transfers (bank and
// acc), delegations (a staking prefix iteration, staking, distribution
// and bank writes), governance and grants (small stores, some keys
// replaced), balance queries (a bank prefix iteration) and parameter
// reads, plus t/100 new accounts.
func (a *app) block(s Store, t int) (blockWork, error) {
	var w blockWork
	m := a.byName
	small := []*moduleKeys{m["gov"], m["feegrant"], m["authz"], m["ibc"], m["slashing"]}
	for range t {
		var err error
		switch r := a.rng.IntN(100); {
		case r < 60: // transfer
			err = a.touchAll(s, &w, m["bank"], m["bank"], m["acc"])
		case r < 75: // delegation
			a.iterateGroup(s, m["staking"], &w)
			err = a.touchAll(s, &w, m["staking"], m["staking"], m["distribution"], m["bank"], m["bank"])
		case r < 85: // governance, grants, IBC
			sm := small[a.rng.IntN(len(small))]
			err = a.touch(s, sm, &w)
			if a.rng.IntN(4) == 0 {
				a.replace(s, sm, &w)
			}
		case r < 95: // balance query inside a transaction
			a.iterateGroup(s, m["bank"], &w)
			err = a.touchAll(s, &w, m["acc"])
		default: // parameters read, slashing info written
			for range 2 {
				if _, err = readBalance(s, "params", m["params"].key(a.rng.IntN(len(m["params"].keys)))); err != nil {
					break
				}
				w.reads++
			}
			if err == nil {
				err = a.touch(s, m["slashing"], &w)
			}
		}
		if err != nil {
			return w, err
		}
	}
	for range t / 100 {
		for _, mod := range []*moduleKeys{m["bank"], m["acc"]} {
			key, value := a.newKey(mod, a.rng.Uint32N(mod.groups))
			s.Set(mod.spec.name, key, value)
			w.writes++
		}
	}
	return w, nil
}

func (a *app) touchAll(s Store, w *blockWork, ms ...*moduleKeys) error {
	for _, m := range ms {
		if err := a.touch(s, m, w); err != nil {
			return err
		}
	}
	return nil
}
