// Package bitbox stores trie pages in one on-disk hash table of 4 KiB
// buckets and makes page updates crash-safe with a write-ahead log.
//
// A Table maps (store, page ID) to a bucket by a keyed xxhash, probing
// linearly; an in-memory meta map (one byte per bucket) says which buckets
// are empty, tombstones or full, with a 7-bit tag of the hash so that most
// probes never touch the disk. Every bucket carries a checksum. The table
// grows (rebuilt into a larger file, then renamed over the old one) before
// its load factor lets probes degrade.
//
// A WAL holds one commit's page changes (changed nodes only) with a checksum
// per record and over the whole file, and the commit's sequence number. The
// package never decides whether a WAL is committed: the engine replays a WAL
// only when its durable commit point names that sequence number.
//
// bitbox knows pages only as bytes with a label; trie math lives in
// package trie, and the commit protocol in package commitment.
package bitbox

import (
	"errors"
	"fmt"

	"github.com/nomtstore/nomtstore/commitment/trie"
)

// Errors. Corruption is a mark: errors.Is(err, ErrCorrupt).
var (
	// ErrCorrupt marks damaged table or WAL bytes: a checksum that fails,
	// a header that does not parse, a page whose label is not its key.
	// It is trie.ErrCorrupt: one mark for corruption at every layer.
	ErrCorrupt = trie.ErrCorrupt
	// ErrFormat is returned for a file written by another format version.
	ErrFormat = errors.New("bitbox: unsupported format version")
	// ErrProbeLimit: no free bucket within MaxProbe of a page's home
	// bucket; the table must grow.
	ErrProbeLimit = errors.New("bitbox: no free bucket within the probe limit")
	// ErrGrowIncomplete: Grow failed after renaming the grown table over
	// the old one. The old Table reads as before but must not be written:
	// reopen the table.
	ErrGrowIncomplete = errors.New("bitbox: table growth did not complete")
)

// corruptAt reports damage at a byte offset of a file.
func corruptAt(file string, offset int64, format string, args ...any) error {
	return fmt.Errorf("%w: %s at offset %d: %s", ErrCorrupt, file, offset, fmt.Sprintf(format, args...))
}
