// Package trie is nomtstore's commitment engine core: a compacted binary
// Merkle trie over SHA-256 key paths, laid out in 4 KiB pages (the NOMT
// layout), whose roots and proofs are those of the ICS23 SmtSpec.
//
// The package owns the trie math: hashing, the page format, batch updates,
// lookups, proofs and invariant checks. It owns no storage and does no I/O.
// Pages come from a [PageSource] and a batch update returns the pages it
// changed or cleared; the leaf index ([LeafIndex]) and raw keys and values
// ([Preimages]) are supplied by the caller, because the trie only holds
// hashes. [MemStore] backs all three in memory for tools and tests; the
// durable engine backs them with the page hash table and Pebble.
//
// The package must never import the Cosmos SDK: one engine serves two SDK
// lines whose module graphs cannot coexist.
//
// # Shape of the trie
//
// A key's path is SHA-256(key); bit i of the path chooses the child at depth
// i (0 = left). A subtree holding exactly one key is that key's leaf, placed
// at one plus the longest prefix it shares with any other key; there are no
// extension nodes, so a chain of single-child internal nodes keeps explicit
// empty (all-zero) siblings. One key set therefore has exactly one trie and
// one root, whatever order the updates came in.
//
//	leaf     = SHA-256(0x00 || SHA-256(key) || SHA-256(value))
//	internal = SHA-256(0x01 || left || right)
//	empty    = 32 zero bytes (also the root of an empty trie)
//
// Node kind cannot be read from a hash, so pages carry a leaf map. The root
// node lives outside any page: it is internal when the root page exists, a
// leaf when it is non-zero and the root page does not, empty when zero.
package trie
