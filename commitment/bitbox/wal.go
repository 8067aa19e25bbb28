package bitbox

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cespare/xxhash/v2"

	"github.com/nomtstore/nomtstore/commitment/trie"
)

// WAL record format (one or more per commit that changes pages; the engine
// appends them to its log files and syncs them before the commit point,
// whose commit record names the last sequence number that counts; integers
// big-endian; these constants are format):
//
//	header, 40 bytes
//	     0  8  magic "NOMTWAL\x01"
//	     8  4  format version (WALFormatVersion)
//	    12  4  record count
//	    16  8  sequence number
//	    24  8  table generation the buckets were planned against
//	    32  8  xxhash64 of bytes 0..32
//	records, each
//	     0  1  kind: 1 = page written, 2 = page cleared
//	     1  4  store id
//	     5 33  page id (trie.PageID encoding)
//	    38  8  bucket
//	    kind 1 only:
//	    46  1  flags: bit 0 = new page (replay onto an empty page, not the bucket)
//	    47  1  the new page's history byte (trie.HistoryOffset)
//	    48 16  leaf map of the new page
//	    64 16  changed-slot map: bit s (byte s/8, bit s%8) = slot s follows
//	    80 32k the k changed node hashes, in slot order
//	     +  8  xxhash64 of the record's bytes before this field
//	trailer, 16 bytes
//	     0  8  magic "NOMTEND\x01"
//	     8  8  xxhash64 of every byte before this field (header, records, magic)
//
// Changelog: version 1, the first; version 2 adds the history byte.
const (
	WALFormatVersion = 2
	walHeaderSize    = 40
	walTrailerSize   = 16

	recordWrite = 1
	recordClear = 2
	flagNewPage = 1

	recordFixed = 1 + 4 + trie.EncodedPageIDSize + 8 // kind, store, page id, bucket
	leafMapSize = 16
)

var (
	walMagic    = [8]byte{'N', 'O', 'M', 'T', 'W', 'A', 'L', 1}
	walEndMagic = [8]byte{'N', 'O', 'M', 'T', 'E', 'N', 'D', 1}
)

// EncodeWAL returns the WAL of one commit's changes, whose buckets are set.
func EncodeWAL(seq, generation uint64, changes []Change) []byte {
	buf := make([]byte, walHeaderSize, walHeaderSize+len(changes)*256)
	copy(buf, walMagic[:])
	binary.BigEndian.PutUint32(buf[8:], WALFormatVersion)
	binary.BigEndian.PutUint32(buf[12:], uint32(len(changes)))
	binary.BigEndian.PutUint64(buf[16:], seq)
	binary.BigEndian.PutUint64(buf[24:], generation)
	binary.BigEndian.PutUint64(buf[32:], xxhash.Sum64(buf[:32]))
	for _, c := range changes {
		start := len(buf)
		kind := byte(recordWrite)
		if c.Page == nil {
			kind = recordClear
		}
		buf = append(buf, kind)
		buf = binary.BigEndian.AppendUint32(buf, uint32(c.Key.Store))
		buf = c.Key.ID.AppendEncoded(buf)
		buf = binary.BigEndian.AppendUint64(buf, c.Bucket)
		if c.Page != nil {
			buf = appendPageDiff(buf, c)
		}
		buf = binary.BigEndian.AppendUint64(buf, xxhash.Sum64(buf[start:]))
	}
	buf = append(buf, walEndMagic[:]...)
	return binary.BigEndian.AppendUint64(buf, xxhash.Sum64(buf))
}

// appendPageDiff appends the flags, leaf map, changed-slot map and changed
// nodes of a written page, against its prior content or an empty page.
func appendPageDiff(buf []byte, c Change) []byte {
	base := c.Prior
	flags := byte(0)
	if base == nil {
		base = trie.NewPage(c.Key.Store, c.Key.ID)
		flags = flagNewPage
	}
	buf = append(buf, flags, c.Page[trie.HistoryOffset])
	buf = append(buf, c.Page[trie.PageNodes*32:trie.PageNodes*32+leafMapSize]...)
	var changed [leafMapSize]byte
	for s := 0; s < trie.PageNodes; s++ {
		if [32]byte(c.Page[s*32:s*32+32]) != [32]byte(base[s*32:s*32+32]) {
			changed[s/8] |= 1 << uint(s%8)
		}
	}
	buf = append(buf, changed[:]...)
	for s := 0; s < trie.PageNodes; s++ {
		if changed[s/8]>>uint(s%8)&1 == 1 {
			buf = append(buf, c.Page[s*32:s*32+32]...)
		}
	}
	return buf
}

// WAL is a decoded WAL: what replaying it writes.
type WAL struct {
	Seq, Generation uint64
	Records         []Record
}

// Record is one decoded WAL record.
type Record struct {
	Key     PageKey
	Bucket  uint64
	Cleared bool
	NewPage bool
	History byte // the page's history byte
	LeafMap [leafMapSize]byte
	Nodes   map[int][32]byte // changed slots
}

// WALHeaderSize is the length of a WAL's header, which WALSeq reads.
const WALHeaderSize = walHeaderSize

// WALMagic is what a WAL starts with: a log holding other frames too tells
// them apart by it.
var WALMagic = walMagic

// WALSeq checks a WAL's header (its first WALHeaderSize bytes at least)
// and returns its sequence number, without reading its records: enough to
// index a log of WALs, whose records DecodeWAL checks when they are read.
func WALSeq(name string, header []byte) (uint64, error) {
	if len(header) < walHeaderSize {
		return 0, corruptAt(name, int64(len(header)), "WAL header of %d bytes", len(header))
	}
	if [8]byte(header[:8]) != walMagic {
		return 0, corruptAt(name, 0, "not a nomtstore WAL (magic %q)", header[:8])
	}
	if sum := binary.BigEndian.Uint64(header[32:]); sum != xxhash.Sum64(header[:32]) {
		return 0, corruptAt(name, 32, "WAL header checksum does not match")
	}
	if v := binary.BigEndian.Uint32(header[8:]); v != WALFormatVersion {
		return 0, fmt.Errorf("%w: %s is WAL format %d, this build reads %d", ErrFormat, name, v, WALFormatVersion)
	}
	return binary.BigEndian.Uint64(header[16:]), nil
}

// DecodeWAL parses and checks WAL bytes; name is used in errors.
func DecodeWAL(name string, data []byte) (*WAL, error) {
	if len(data) < walHeaderSize+walTrailerSize {
		return nil, corruptAt(name, int64(len(data)), "WAL of %d bytes is shorter than its header and trailer", len(data))
	}
	if _, err := WALSeq(name, data); err != nil {
		return nil, err
	}
	end := len(data) - walTrailerSize
	if [8]byte(data[end:end+8]) != walEndMagic {
		return nil, corruptAt(name, int64(end), "WAL trailer missing (torn or truncated WAL)")
	}
	if sum := binary.BigEndian.Uint64(data[end+8:]); sum != xxhash.Sum64(data[:end+8]) {
		// Find the first bad record to name its offset.
		if _, err := decodeRecords(name, data[:end], int(binary.BigEndian.Uint32(data[12:]))); err != nil {
			return nil, err
		}
		return nil, corruptAt(name, int64(end+8), "whole-WAL checksum does not match")
	}
	w := &WAL{Seq: binary.BigEndian.Uint64(data[16:]), Generation: binary.BigEndian.Uint64(data[24:])}
	records, err := decodeRecords(name, data[:end], int(binary.BigEndian.Uint32(data[12:])))
	if err != nil {
		return nil, err
	}
	w.Records = records
	return w, nil
}

func decodeRecords(name string, data []byte, count int) ([]Record, error) {
	// The smallest record (a cleared page) bounds how many the bytes hold:
	// a damaged count must not size an allocation.
	if minRecord := recordFixed + 8; count > (len(data)-walHeaderSize)/minRecord {
		return nil, corruptAt(name, 12, "record count %d does not fit in %d bytes", count, len(data))
	}
	records := make([]Record, 0, count)
	off := walHeaderSize
	for i := 0; i < count; i++ {
		start := off
		bad := func(format string, args ...any) error {
			return corruptAt(name, int64(start), "record %d: %s", i, fmt.Sprintf(format, args...))
		}
		if off+recordFixed > len(data) {
			return nil, bad("truncated")
		}
		var r Record
		kind := data[off]
		r.Key.Store = trie.StoreID(binary.BigEndian.Uint32(data[off+1:]))
		id, err := trie.DecodePageID(data[off+5 : off+5+trie.EncodedPageIDSize])
		if err != nil {
			return nil, bad("%v", err)
		}
		r.Key.ID = id
		r.Bucket = binary.BigEndian.Uint64(data[off+5+trie.EncodedPageIDSize:])
		off += recordFixed
		switch kind {
		case recordClear:
			r.Cleared = true
		case recordWrite:
			if off+2+2*leafMapSize > len(data) {
				return nil, bad("truncated")
			}
			r.NewPage = data[off]&flagNewPage != 0
			r.History = data[off+1]
			copy(r.LeafMap[:], data[off+2:])
			changed := data[off+2+leafMapSize : off+2+2*leafMapSize]
			off += 2 + 2*leafMapSize
			r.Nodes = map[int][32]byte{}
			for s := 0; s < trie.PageNodes; s++ {
				if changed[s/8]>>uint(s%8)&1 == 0 {
					continue
				}
				if off+32 > len(data) {
					return nil, bad("truncated")
				}
				r.Nodes[s] = [32]byte(data[off : off+32])
				off += 32
			}
		default:
			return nil, bad("unknown kind %d", kind)
		}
		if off+8 > len(data) {
			return nil, bad("truncated")
		}
		if sum := binary.BigEndian.Uint64(data[off:]); sum != xxhash.Sum64(data[start:off]) {
			return nil, bad("checksum does not match")
		}
		off += 8
		records = append(records, r)
	}
	if off != len(data) {
		return nil, corruptAt(name, int64(off), "%d bytes after the last record", len(data)-off)
	}
	return records, nil
}

// ErrWALGeneration is returned by Replay for a WAL planned against another
// table generation.
var ErrWALGeneration = errors.New("bitbox: WAL was planned against another table generation")

// Replay applies a committed WAL's pages to the table, as Apply does: they
// are dirty until the next Checkpoint. WALs must be replayed in commit
// order. It is idempotent over what an interrupted checkpoint left in the
// file: a page the WAL rewrites starts from its dirty copy (an earlier WAL
// of the same replay) or from its bucket, torn or not, and only the nodes
// the record does not rewrite are taken from there, which are the same
// before and after the commit. A bucket that an interrupted checkpoint
// filled with another page belongs to a page this or a later WAL clears.
func (t *Table) Replay(w *WAL) error {
	if w.Generation != t.generation {
		return fmt.Errorf("%w: WAL %d has generation %d, table %s has %d", ErrWALGeneration, w.Seq, w.Generation, t.path, t.generation)
	}
	changes := make([]Change, 0, len(w.Records))
	for _, r := range w.Records {
		if r.Bucket >= t.buckets {
			return fmt.Errorf("%w: WAL %d names bucket %d of a %d-bucket table", ErrCorrupt, w.Seq, r.Bucket, t.buckets)
		}
		c := Change{Key: r.Key, Bucket: r.Bucket}
		if !r.Cleared {
			page := trie.NewPage(r.Key.Store, r.Key.ID)
			if !r.NewPage {
				base, err := t.dirtyOrRaw(r.Bucket)
				if err != nil {
					return err
				}
				copy(page[:trie.PageNodes*32], base[:trie.PageNodes*32])
			}
			copy(page[trie.PageNodes*32:], r.LeafMap[:])
			page[trie.HistoryOffset] = r.History
			for s, h := range r.Nodes {
				copy(page[s*32:], h[:])
			}
			c.Page = page
		}
		changes = append(changes, c)
		// Apply record by record: a later record of the same WAL may start
		// from this page (it never does today, but order is the contract).
		t.Apply(changes[len(changes)-1:])
	}
	return nil
}

// dirtyOrRaw is a bucket's dirty page, or its bytes in the file unchecked
// (an interrupted checkpoint may have torn it).
func (t *Table) dirtyOrRaw(b uint64) (*trie.Page, error) {
	t.mu.RLock()
	p := t.pending[b]
	t.mu.RUnlock()
	if p != nil {
		return p, nil
	}
	return t.readRaw(b)
}
