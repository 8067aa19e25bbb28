package commitment

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble"

	"github.com/nomtstore/nomtstore/commitment/trie"
)

// Pebble key layout. Every key starts with a one-byte prefix; this table is
// the whole layout (these bytes are format). Two Pebbles hold it: 'h' is in
// the page history's (history/, DB.history), everything else in pebble/
// (DB.pebble); pebbleOf says which.
//
//	prefix  key                                  value
//	'm'     'm' "commit"                         commit record (below)
//	'm'     'm' "checkpoint"                     last WAL seq whose pages are in the page table u64 | table generation u64
//	'm'     'm' "params"                         the directory's fixed parameters: elide-below u32
//	'm'     'm' "trees"                          tree registry: repeated (store u32, name length u16, name)
//	'm'     'm' "earliest"                       earliest retained version u64
//	'm'     'm' "bulk"                           a bulk load into the empty store is running: its version u64 (bulk.go)
//	'm'     'm' "pending"                        the chunks of the last commit point to apply: tag u64 | chunk count u32 (chunked.go)
//	'B'     'B' tag u64 | chunk u32              a chunk of a large commit's batch: Pebble's batch representation (chunked.go)
//	'm'     'm' "app:" name                      the application's own records (PutMeta)
//	'r'     'r' version u64                      roots of that version: tree count u32, repeated (store u32, root [32])
//	'a'     'a' version u64                      the application's record of that version (SetVersionRecord)
//	'c'     'c' version u64                      what that version changed (changeList, below)
//	'v'     'v' store u32 | raw key              born u64 | value                  current values
//	'l'     'l' store u32 | key path [32]        born u64 | leaf hash [32] | raw key    current leaf index
//	'x'     'x' store u32 | key path [32] | o u64 born u64 | key length uvarint | raw key | value   superseded entries
//	'd'     'd' store u32 | esc(raw key) | o u64 (empty)                           keys deleted by version o
//	'h'     'h' o u64 | store u32 | page id [33] the page as it was (pagehistory.go)   superseded pages
//	'p'     'p' store u32 | page id [33] | o u64 kind u8 (pagehistory.go)              page changes by page
//
// Integers are big-endian, so keys sort by store, then raw key ('v', 'd'), key
// path ('l', 'x') or page id ('p'), then version.
//
// Versions. "born" is the version that set a value; "o" is the version that
// orphaned an entry (overwrote or deleted the value, rewrote or cleared the
// page), so a superseded entry was live for versions born..o-1. The value of
// a key at version u is the superseded entry of its path with the smallest
// o > u if there is one (absent if its born > u), otherwise the current value
// (absent if its born > u). Current values stay apart from superseded ones,
// so reads and iteration at the latest version never step over history.
//
// A superseded entry is kept once, by key path: it serves reads of the key
// at past versions (one seek), the leaf index at past versions (its leaf
// hash is recomputed from the value) and rollback. Iterating a past version
// in raw-key order walks the current values, resolving through 'x' those
// born after it, and the keys deleted after it ('d', written only by
// deletes), resolved the same way.
//
// A page at version u is, likewise, the one its 'p' entry with the smallest
// o > u names: no page at all if version o created it, otherwise what its
// 'h' entry describes; without such an entry, the page table's. The bulk of
// the history, 'h', is keyed by version first: each commit appends to the
// end of it, which a Pebble holding nothing else compacts by moving files,
// not rewriting them (in one Pebble with the random keys, every flush's
// tables spanned both and each compaction rewrote the history too).
//
// Deleting versions <= X deletes exactly the entries orphaned by versions
// <= X+1: 'h' by one range deletion from its start, the others from the
// change lists 'c' of those versions. esc(k) escapes 0x00 as 00 FF and ends with 00 01, so that
// it sorts as k does and no escaped key is a prefix of another.
const (
	prefixMeta        = 'm'
	prefixRoots       = 'r'
	prefixAppVersion  = 'a'
	prefixChanges     = 'c'
	prefixValue       = 'v'
	prefixLeaf        = 'l'
	prefixOldEntry    = 'x'
	prefixDeleted     = 'd'
	prefixOldPage     = 'h'
	prefixOldPageByID = 'p'
	prefixPending     = 'B'
)

// pebbleOf is the Pebble that holds the keys of prefix.
func (db *DB) pebbleOf(prefix byte) *pebble.DB {
	if prefix == prefixOldPage {
		return db.history.DB
	}
	return db.pebble
}

var (
	keyCommit     = []byte("mcommit")
	keyCheckpoint = []byte("mcheckpoint")
	keyParams     = []byte("mparams")
	keyTrees      = []byte("mtrees")
	keyEarliest   = []byte("mearliest")
	keyBulk       = []byte("mbulk")
	keyPending    = []byte("mpending")
	keyAppMeta    = []byte("mapp:")
)

// bornSize is the version prefix of current and superseded entries' values.
const bornSize = 8

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

// appendStoreKey appends prefix | store | rest: valueKey and leafKey into
// a buffer of the caller's.
func appendStoreKey(dst []byte, prefix byte, store trie.StoreID, rest []byte) []byte {
	dst = append(dst, prefix)
	dst = binary.BigEndian.AppendUint32(dst, uint32(store))
	return append(dst, rest...)
}

func versionKey(prefix byte, version uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefix}, version)
}

func valueKey(store trie.StoreID, key []byte) []byte {
	return append(storePrefix(prefixValue, store), key...)
}

func leafKey(store trie.StoreID, path trie.KeyPath) []byte {
	return append(storePrefix(prefixLeaf, store), path[:]...)
}

// bornValue is a current or superseded value entry: born | value.
func bornValue(born uint64, value []byte) []byte {
	b := make([]byte, 0, bornSize+len(value))
	b = binary.BigEndian.AppendUint64(b, born)
	return append(b, value...)
}

// leafValue is a current or superseded leaf entry: born | leaf hash | key.
func leafValue(born uint64, leafHash trie.Hash, key []byte) []byte {
	v := make([]byte, 0, bornSize+32+len(key))
	v = binary.BigEndian.AppendUint64(v, born)
	v = append(v, leafHash[:]...)
	return append(v, key...)
}

// pendingChunkKey is the key of chunk i of a large commit (chunked.go).
func pendingChunkKey(tag uint64, i uint32) []byte {
	return binary.BigEndian.AppendUint32(versionKey(prefixPending, tag), i)
}

// splitBorn splits an entry's value into its born version and the rest.
func splitBorn(entry []byte) (uint64, []byte, error) {
	if len(entry) < bornSize {
		return 0, nil, fmt.Errorf("%w: value entry of %d bytes", ErrCorrupt, len(entry))
	}
	return binary.BigEndian.Uint64(entry), entry[bornSize:], nil
}

// escapeKey appends esc(key) to dst: order-preserving and prefix-free.
func escapeKey(dst, key []byte) []byte {
	for _, c := range key {
		if c == 0 {
			dst = append(dst, 0, 0xff)
		} else {
			dst = append(dst, c)
		}
	}
	return append(dst, 0, 1)
}

// unescapeKey reverses escapeKey; esc must be exactly one escaped key.
func unescapeKey(esc []byte) ([]byte, error) {
	key := make([]byte, 0, len(esc))
	for i := 0; i < len(esc); i++ {
		if esc[i] != 0 {
			key = append(key, esc[i])
			continue
		}
		if i+1 < len(esc) && esc[i+1] == 0xff {
			key = append(key, 0)
			i++
			continue
		}
		if i+2 == len(esc) && esc[i+1] == 1 {
			return key, nil
		}
		break
	}
	return nil, fmt.Errorf("%w: bad escaped key %x", ErrCorrupt, esc)
}

// oldEntryEntity is the part of a superseded entry's key before its version.
func oldEntryEntity(store trie.StoreID, path trie.KeyPath) []byte {
	return append(storePrefix(prefixOldEntry, store), path[:]...)
}

func oldEntryKey(store trie.StoreID, path trie.KeyPath, orphan uint64) []byte {
	return binary.BigEndian.AppendUint64(oldEntryEntity(store, path), orphan)
}

// supersededEntry is a superseded entry's value: born | key length | key |
// value.
func supersededEntry(born uint64, key, value []byte) []byte {
	b := make([]byte, 0, bornSize+binary.MaxVarintLen32+len(key)+len(value))
	b = binary.BigEndian.AppendUint64(b, born)
	b = binary.AppendUvarint(b, uint64(len(key)))
	b = append(b, key...)
	return append(b, value...)
}

// splitSuperseded splits a superseded entry without its born version into
// its raw key and value.
func splitSuperseded(rest []byte) (key, value []byte, err error) {
	n, w := binary.Uvarint(rest)
	if w <= 0 || n == 0 || n > MaxKeyLength || uint64(len(rest)-w) < n {
		return nil, nil, fmt.Errorf("%w: superseded entry of %d bytes", ErrCorrupt, len(rest))
	}
	return rest[w : w+int(n)], rest[w+int(n):], nil
}

// deletedEntity is the part of a deleted-key record's key before its version.
func deletedEntity(store trie.StoreID, key []byte) []byte {
	return escapeKey(storePrefix(prefixDeleted, store), key)
}

func deletedKey(store trie.StoreID, key []byte, orphan uint64) []byte {
	return binary.BigEndian.AppendUint64(deletedEntity(store, key), orphan)
}

func oldPageKey(orphan uint64, store trie.StoreID, id trie.PageID) []byte {
	k := make([]byte, 0, 1+8+4+trie.EncodedPageIDSize)
	k = append(k, prefixOldPage)
	k = binary.BigEndian.AppendUint64(k, orphan)
	k = binary.BigEndian.AppendUint32(k, uint32(store))
	return id.AppendEncoded(k)
}

// oldPageEntity is the part of a 'p' key before its version.
func oldPageEntity(store trie.StoreID, id trie.PageID) []byte {
	return id.AppendEncoded(storePrefix(prefixOldPageByID, store))
}

func oldPageIndexKey(store trie.StoreID, id trie.PageID, orphan uint64) []byte {
	return binary.BigEndian.AppendUint64(oldPageEntity(store, id), orphan)
}

// commitRecord is the commit point: the version it makes durable, the last
// WAL sequence number used (the version's own WAL record, if it changed
// pages, is that one), and every tree's root.
type commitRecord struct {
	version uint64
	lastSeq uint64
	roots   map[trie.StoreID]trie.Hash
}

// Commit record: version u64 | last WAL seq u64 | roots (as in 'r').
func (r *commitRecord) encode() []byte {
	b := make([]byte, 0, 20+len(r.roots)*36)
	b = binary.BigEndian.AppendUint64(b, r.version)
	b = binary.BigEndian.AppendUint64(b, r.lastSeq)
	return appendRoots(b, r.roots)
}

func decodeCommitRecord(b []byte) (*commitRecord, error) {
	if len(b) < 16 {
		return nil, fmt.Errorf("%w: commit record of %d bytes", ErrCorrupt, len(b))
	}
	r := &commitRecord{version: binary.BigEndian.Uint64(b), lastSeq: binary.BigEndian.Uint64(b[8:])}
	var err error
	r.roots, err = decodeRoots(b[16:])
	return r, err
}

// checkpointRecord names the last WAL whose pages the page table holds and
// the table generation they were written to; recovery replays the WAL
// records after it.
type checkpointRecord struct {
	seq, generation uint64
}

func (c checkpointRecord) encode() []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, c.seq), c.generation)
}

func decodeCheckpointRecord(b []byte) (checkpointRecord, error) {
	if len(b) != 16 {
		return checkpointRecord{}, fmt.Errorf("%w: checkpoint record of %d bytes", ErrCorrupt, len(b))
	}
	return checkpointRecord{seq: binary.BigEndian.Uint64(b), generation: binary.BigEndian.Uint64(b[8:])}, nil
}

func appendRoots(b []byte, roots map[trie.StoreID]trie.Hash) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(roots)))
	for _, store := range sortedStores(roots) {
		root := roots[store]
		b = binary.BigEndian.AppendUint32(b, uint32(store))
		b = append(b, root[:]...)
	}
	return b
}

func decodeRoots(b []byte) (map[trie.StoreID]trie.Hash, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("%w: roots record of %d bytes", ErrCorrupt, len(b))
	}
	n := int(binary.BigEndian.Uint32(b))
	if len(b) != 4+n*36 {
		return nil, fmt.Errorf("%w: roots record of %d bytes for %d trees", ErrCorrupt, len(b), n)
	}
	roots := make(map[trie.StoreID]trie.Hash, n)
	for i := 0; i < n; i++ {
		off := 4 + i*36
		roots[trie.StoreID(binary.BigEndian.Uint32(b[off:]))] = trie.Hash(b[off+4 : off+36])
	}
	return roots, nil
}

// changeList is what one version changed, kept until the version before it
// is pruned: pruning deletes the superseded entries it names, rollback
// restores them. Encoding:
//
//	page count uvarint | repeated (store u32 | page id [33] | had prior u8)
//	key count uvarint  | repeated (store u32 | key length uvarint | key | flags u8)
//
// "had prior" is 1 when the version superseded something (a page rewritten
// or cleared, a value overwritten or deleted), 0 when it created it. A
// key's flags: bit 0 had prior, bit 1 deleted (the version wrote a 'd'
// record of it).
type changeList struct {
	pages []changedPage
	keys  []changedKey
}

type changedPage struct {
	store    trie.StoreID
	id       trie.PageID
	hadPrior bool
}

type changedKey struct {
	store    trie.StoreID
	key      []byte
	hadPrior bool
	deleted  bool
}

const (
	keyHadPrior = 1 << iota
	keyDeleted
)

// changeListBuilder encodes a change list entry by entry, as a version is
// written: a block of millions of keys holds their encoding, not a struct
// per key and then the encoding too.
type changeListBuilder struct {
	pages, keys   []byte
	nPages, nKeys int
}

func (b *changeListBuilder) empty() bool { return b.nPages == 0 && b.nKeys == 0 }

func (b *changeListBuilder) addPage(p changedPage) {
	b.pages = binary.BigEndian.AppendUint32(b.pages, uint32(p.store))
	b.pages = p.id.AppendEncoded(b.pages)
	b.pages = append(b.pages, boolByte(p.hadPrior))
	b.nPages++
}

func (b *changeListBuilder) addKey(k changedKey) {
	b.keys = binary.BigEndian.AppendUint32(b.keys, uint32(k.store))
	b.keys = binary.AppendUvarint(b.keys, uint64(len(k.key)))
	b.keys = append(b.keys, k.key...)
	flags := byte(0)
	if k.hadPrior {
		flags |= keyHadPrior
	}
	if k.deleted {
		flags |= keyDeleted
	}
	b.keys = append(b.keys, flags)
	b.nKeys++
}

func (b *changeListBuilder) encode() []byte {
	out := make([]byte, 0, 2*binary.MaxVarintLen64+len(b.pages)+len(b.keys))
	out = binary.AppendUvarint(out, uint64(b.nPages))
	out = append(out, b.pages...)
	out = binary.AppendUvarint(out, uint64(b.nKeys))
	return append(out, b.keys...)
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

func decodeChangeList(b []byte) (*changeList, error) {
	bad := func(what string) error { return fmt.Errorf("%w: change list: %s", ErrCorrupt, what) }
	r := bytes.NewReader(b)
	n, err := binary.ReadUvarint(r)
	if err != nil || n > uint64(len(b)) {
		return nil, bad("page count")
	}
	c := &changeList{pages: make([]changedPage, 0, n)}
	rest := b[len(b)-r.Len():]
	const pageEntry = 4 + trie.EncodedPageIDSize + 1
	for range n {
		if len(rest) < pageEntry || rest[pageEntry-1] > 1 {
			return nil, bad("page entry")
		}
		id, err := trie.DecodePageID(rest[4 : 4+trie.EncodedPageIDSize])
		if err != nil {
			return nil, bad(err.Error())
		}
		c.pages = append(c.pages, changedPage{store: trie.StoreID(binary.BigEndian.Uint32(rest)), id: id, hadPrior: rest[pageEntry-1] == 1})
		rest = rest[pageEntry:]
	}
	r = bytes.NewReader(rest)
	if n, err = binary.ReadUvarint(r); err != nil || n > uint64(len(rest)) {
		return nil, bad("key count")
	}
	rest = rest[len(rest)-r.Len():]
	c.keys = make([]changedKey, 0, n)
	for range n {
		if len(rest) < 4 {
			return nil, bad("key entry")
		}
		store := trie.StoreID(binary.BigEndian.Uint32(rest))
		r = bytes.NewReader(rest[4:])
		klen, err := binary.ReadUvarint(r)
		rest = rest[len(rest)-r.Len():]
		if err != nil || klen == 0 || klen > MaxKeyLength || uint64(len(rest)) < klen+1 || rest[klen] > keyHadPrior|keyDeleted {
			return nil, bad("key entry")
		}
		flags := rest[klen]
		c.keys = append(c.keys, changedKey{store: store, key: slices.Clone(rest[:klen]), hadPrior: flags&keyHadPrior != 0, deleted: flags&keyDeleted != 0})
		rest = rest[klen+1:]
	}
	if len(rest) != 0 {
		return nil, bad("trailing bytes")
	}
	return c, nil
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
