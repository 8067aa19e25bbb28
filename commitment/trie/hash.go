package trie

import (
	"crypto/sha256"
	"encoding/hex"
)

// Hash is a node hash. The zero Hash is the empty subtree.
type Hash [32]byte

// EmptyHash is the hash of an empty subtree and the root of an empty trie.
var EmptyHash Hash

// Node-hash domain prefixes, as in ICS23's SmtSpec. These are format.
const (
	leafPrefix     = 0x00
	internalPrefix = 0x01
)

// IsEmpty reports whether h is the empty subtree.
func (h Hash) IsEmpty() bool { return h == EmptyHash }

func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// EmptyValueStandIn is what a leaf commits to, and its proofs carry, in
// place of an empty value. The SDK stores empty values (collections' key
// sets and indexes), but ICS23 refuses to hash one ("leaf op needs value"):
// an empty value committed as is would make its leaf unprovable, and with
// it every absence proof that names it as a neighbour. The stand-in is
// non-empty and starts with a zero byte so that no text value meets it; a
// binary value equal to it commits the same as an empty value.
var EmptyValueStandIn = []byte("\x00nomtstore:empty-value")

// ProofValue is the value a leaf's proof carries: the value itself, or the
// stand-in for an empty value.
func ProofValue(value []byte) []byte {
	if len(value) == 0 {
		return EmptyValueStandIn
	}
	return value
}

// ValueHash returns SHA-256(ProofValue(value)), the value's digest inside
// its leaf.
func ValueHash(value []byte) Hash { return sha256.Sum256(ProofValue(value)) }

// LeafHash returns SHA-256(0x00 || path || valueHash).
func LeafHash(path KeyPath, valueHash Hash) Hash {
	var buf [65]byte
	buf[0] = leafPrefix
	copy(buf[1:33], path[:])
	copy(buf[33:], valueHash[:])
	return sha256.Sum256(buf[:])
}

// InternalHash returns SHA-256(0x01 || left || right).
func InternalHash(left, right Hash) Hash {
	var buf [65]byte
	buf[0] = internalPrefix
	copy(buf[1:33], left[:])
	copy(buf[33:], right[:])
	return sha256.Sum256(buf[:])
}

// Node is a trie node as a page holds it: its hash and whether it is a leaf.
// A node with the empty hash is the empty subtree and never a leaf.
type Node struct {
	Hash Hash
	Leaf bool
}

// IsEmpty reports whether n is the empty subtree.
func (n Node) IsEmpty() bool { return n.Hash.IsEmpty() }

// IsInternal reports whether n has children.
func (n Node) IsInternal() bool { return !n.Leaf && !n.Hash.IsEmpty() }

func leafNode(h Hash) Node { return Node{Hash: h, Leaf: true} }

// Bytes returns the hash as a fresh slice.
func (h Hash) Bytes() []byte { return append([]byte(nil), h[:]...) }
