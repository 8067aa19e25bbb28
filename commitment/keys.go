package commitment

import (
	"encoding/binary"
	"fmt"

	"github.com/nomtstore/nomtstore/commitment/trie"
)

// Pebble key layout. Every key starts with a one-byte prefix; this table is
// the whole layout (these bytes are format):
//
//	prefix  key                               value
//	'm'     'm' "commit"                      commit record, below
//	'm'     'm' "trees"                       tree registry: repeated (store u32, name length u16, name)
//	'v'     'v' store u32 | raw key           the value
//	'l'     'l' store u32 | key path [32]     value hash [32] | raw key
//
// Commit record: version u64 | WAL seq u64 (0: the commit wrote no WAL) |
// last seq used u64 | tree count u32 | repeated (store u32 | root [32]).
// Integers are big-endian, so keys of one store sort by raw key ('v') or by
// key path ('l').
const (
	prefixMeta  = 'm'
	prefixValue = 'v'
	prefixLeaf  = 'l'
)

var (
	keyCommit = []byte("mcommit")
	keyTrees  = []byte("mtrees")
)

// storePrefix returns prefix | store: the start of one store's keys.
func storePrefix(prefix byte, store trie.StoreID) []byte {
	k := make([]byte, 5, 5+64)
	k[0] = prefix
	binary.BigEndian.PutUint32(k[1:], uint32(store))
	return k
}

// storeUpperBound is the first key after every key of one store's prefix.
func storeUpperBound(prefix byte, store trie.StoreID) []byte {
	if store == ^trie.StoreID(0) {
		return []byte{prefix + 1}
	}
	return storePrefix(prefix, store+1)
}

func valueKey(store trie.StoreID, key []byte) []byte {
	return append(storePrefix(prefixValue, store), key...)
}

func leafKey(store trie.StoreID, path trie.KeyPath) []byte {
	return append(storePrefix(prefixLeaf, store), path[:]...)
}

func leafValue(valueHash trie.Hash, key []byte) []byte {
	v := make([]byte, 0, 32+len(key))
	v = append(v, valueHash[:]...)
	return append(v, key...)
}

// commitRecord is the commit point: the version it makes durable, the WAL
// that holds its page changes, and every tree's root.
type commitRecord struct {
	version uint64
	walSeq  uint64 // 0: no WAL
	lastSeq uint64
	roots   map[trie.StoreID]trie.Hash
}

func (r *commitRecord) encode() []byte {
	b := make([]byte, 0, 28+len(r.roots)*36)
	b = binary.BigEndian.AppendUint64(b, r.version)
	b = binary.BigEndian.AppendUint64(b, r.walSeq)
	b = binary.BigEndian.AppendUint64(b, r.lastSeq)
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.roots)))
	for _, store := range sortedStores(r.roots) {
		root := r.roots[store]
		b = binary.BigEndian.AppendUint32(b, uint32(store))
		b = append(b, root[:]...)
	}
	return b
}

func decodeCommitRecord(b []byte) (*commitRecord, error) {
	if len(b) < 28 {
		return nil, fmt.Errorf("%w: commit record of %d bytes", ErrCorrupt, len(b))
	}
	r := &commitRecord{
		version: binary.BigEndian.Uint64(b),
		walSeq:  binary.BigEndian.Uint64(b[8:]),
		lastSeq: binary.BigEndian.Uint64(b[16:]),
		roots:   map[trie.StoreID]trie.Hash{},
	}
	n := int(binary.BigEndian.Uint32(b[24:]))
	if len(b) != 28+n*36 {
		return nil, fmt.Errorf("%w: commit record of %d bytes for %d trees", ErrCorrupt, len(b), n)
	}
	for i := 0; i < n; i++ {
		off := 28 + i*36
		r.roots[trie.StoreID(binary.BigEndian.Uint32(b[off:]))] = trie.Hash(b[off+4 : off+36])
	}
	return r, nil
}

func encodeRegistry(trees map[string]trie.StoreID) []byte {
	var b []byte
	for _, name := range sortedNames(trees) {
		b = binary.BigEndian.AppendUint32(b, uint32(trees[name]))
		b = binary.BigEndian.AppendUint16(b, uint16(len(name)))
		b = append(b, name...)
	}
	return b
}

func decodeRegistry(b []byte) (map[string]trie.StoreID, error) {
	trees := map[string]trie.StoreID{}
	for len(b) > 0 {
		if len(b) < 6 {
			return nil, fmt.Errorf("%w: tree registry truncated", ErrCorrupt)
		}
		id := trie.StoreID(binary.BigEndian.Uint32(b))
		n := int(binary.BigEndian.Uint16(b[4:]))
		if len(b) < 6+n {
			return nil, fmt.Errorf("%w: tree registry truncated", ErrCorrupt)
		}
		trees[string(b[6:6+n])] = id
		b = b[6+n:]
	}
	return trees, nil
}
