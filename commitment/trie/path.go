package trie

import (
	"crypto/sha256"
	"encoding/hex"
)

// MaxDepth is the deepest a node can sit: two distinct 256-bit paths share
// at most 255 bits, so their leaves land at depth 256 at the most.
const MaxDepth = 256

// KeyPath is the SHA-256 of a raw key: the key's position in the trie.
type KeyPath [32]byte

// PathOf returns the trie path of a raw key.
func PathOf(key []byte) KeyPath { return sha256.Sum256(key) }

// Bit returns bit d of the path, the branch taken from depth d to d+1.
func (p *KeyPath) Bit(d int) uint8 { return p[d>>3] >> (7 - uint(d&7)) & 1 }

// bits returns n (<= 8) bits of the path starting at bit start, as an integer.
func (p *KeyPath) bits(start, n int) int {
	v := 0
	for i := start; i < start+n; i++ {
		v = v<<1 | int(p.Bit(i))
	}
	return v
}

// Prefix returns the path with every bit from depth on cleared: the smallest
// path below the node at that depth.
func (p KeyPath) Prefix(depth int) KeyPath {
	if depth >= MaxDepth {
		return p
	}
	full := depth >> 3
	if rem := depth & 7; rem != 0 {
		p[full] &= 0xff << (8 - uint(rem))
		full++
	}
	clear(p[full:])
	return p
}

// HasPrefix reports whether p and q agree on their first depth bits.
func (p *KeyPath) HasPrefix(q *KeyPath, depth int) bool {
	full := depth >> 3
	for i := 0; i < full; i++ {
		if p[i] != q[i] {
			return false
		}
	}
	if rem := depth & 7; rem != 0 {
		mask := byte(0xff << (8 - uint(rem)))
		return p[full]&mask == q[full]&mask
	}
	return true
}

// Next returns the path right after p in order, and false when p is the last
// path (all ones).
func (p KeyPath) Next() (KeyPath, bool) {
	for i := len(p) - 1; i >= 0; i-- {
		p[i]++
		if p[i] != 0 {
			return p, true
		}
	}
	return p, false
}

func (p KeyPath) String() string { return hex.EncodeToString(p[:]) }
