package commitment

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble"
)

// A commit (or rollback) is one Pebble batch made durable by one synced
// write: its commit frame in the log, the commit point. A block that rewrites millions of keys would
// make that batch grow with it, past what memory should hold and past
// Pebble's 4 GiB batch limit, at which it fails (and would fail again at
// the same height on every node: a chain halt). So a batch is written in
// chunks of Options.MaxBatchBytes:
//
//  1. Before the commit point, each full chunk is written to Pebble as
//     opaque records, 'B' tag | chunk number, holding the chunk's batch
//     (Pebble's batch representation); tag is random, one per operation.
//     Nothing reads these records: the version's keys are untouched.
//  2. The last chunk is the commit batch. It also holds the pending record,
//     "pending" = tag | chunk count. Pebble is flushed before its commit
//     frame is appended: the chunks are durable before the commit point.
//  3. After the commit point the chunks are applied in order, and their
//     records and the pending record deleted (Pebble makes a prefix of its
//     writes durable: never the deletions without the chunks); only then does the
//     committed state swap in memory (readers see the previous version's
//     snapshot until then). A chunk sets and deletes keys no other chunk
//     of its operation touches, so applying it twice changes nothing.
//
// A reopen applies the chunks the pending record names (a crash after the
// commit point), before replaying the commit frames after it, and as it
// replays a frame holding a pending record, before the next frame (a later
// commit may set the keys the chunks set); once every frame is replayed it
// deletes every other 'B' record (an operation that never reached its
// commit point): the operation happened entirely or not at all. The page
// changes' WAL records are split to fit chunks as well.

// chunkedBatch is the Pebble batch of one commit-point operation, spilled
// in chunks when it outgrows the limit.
type chunkedBatch struct {
	pebble *pebble.DB
	stats  *engineStats
	*pebble.Batch
	limit  int
	tag    uint64
	chunks uint32
	// spilled counts the bytes of the chunks written so far.
	spilled int64
}

// batchWriter is what builds an operation's batch: a *pebble.Batch or a
// *chunkedBatch.
type batchWriter interface {
	Set(key, value []byte, _ *pebble.WriteOptions) error
	Delete(key []byte, _ *pebble.WriteOptions) error
	DeleteRange(start, end []byte, _ *pebble.WriteOptions) error
}

func (p *commitProtocol) newChunkedBatch(sizeHint int) *chunkedBatch {
	limit := int(p.opts.MaxBatchBytes)
	return &chunkedBatch{pebble: p.pebble, stats: p.stats, Batch: p.pebble.NewBatchWithSize(min(sizeHint, limit)), limit: limit}
}

func (c *chunkedBatch) Set(key, value []byte, o *pebble.WriteOptions) error {
	if err := c.Batch.Set(key, value, o); err != nil {
		return err
	}
	return c.maybeSpill()
}

func (c *chunkedBatch) Delete(key []byte, o *pebble.WriteOptions) error {
	if err := c.Batch.Delete(key, o); err != nil {
		return err
	}
	return c.maybeSpill()
}

func (c *chunkedBatch) DeleteRange(start, end []byte, o *pebble.WriteOptions) error {
	if err := c.Batch.DeleteRange(start, end, o); err != nil {
		return err
	}
	return c.maybeSpill()
}

func (c *chunkedBatch) maybeSpill() error {
	limit := c.limit
	if c.chunks > 0 {
		// Chunked already: the rest goes out piece by piece.
		limit = min(limit, chunkPieceBytes)
	}
	if c.Len() < limit {
		return nil
	}
	return c.spill()
}

// chunkPieceBytes bounds each record a spilled chunk is written as. Pebble
// holds a batch larger than half a memtable (16 MiB here) in memory as a
// memtable of its own until a flush writes it out, and a huge operation's
// chunks arrive faster than flushes: the ten 64 MiB chunks of a 5M-write
// block were all held at once, with Pebble's sstable writer buffering each
// as one value. Pieces well under that go through the memtables, whose
// number Pebble bounds by stalling writes.
const chunkPieceBytes = 4 << 20

// spill writes the current chunk as pending records, in pieces of at most
// chunkPieceBytes, and starts the next.
func (c *chunkedBatch) spill() error {
	if c.tag == 0 {
		var b [8]byte
		for c.tag == 0 {
			_, _ = rand.Read(b[:])
			c.tag = binary.BigEndian.Uint64(b[:])
		}
	}
	if c.Len() <= chunkPieceBytes {
		if err := c.writePiece(c.Repr()); err != nil {
			return err
		}
		c.Reset()
		return nil
	}
	piece := c.pebble.NewBatchWithSize(chunkPieceBytes + chunkPieceBytes/4)
	defer func() { _ = piece.Close() }()
	r, _ := pebble.ReadBatch(c.Repr())
	for {
		kind, key, value, ok, err := r.Next()
		if err != nil {
			return fmt.Errorf("commitment: re-reading a chunk of a large commit: %w", err)
		}
		if !ok {
			break
		}
		switch kind {
		case pebble.InternalKeyKindSet:
			err = piece.Set(key, value, nil)
		case pebble.InternalKeyKindDelete:
			err = piece.Delete(key, nil)
		case pebble.InternalKeyKindRangeDelete:
			err = piece.DeleteRange(key, value, nil)
		default:
			err = fmt.Errorf("commitment: a chunk of a large commit holds an entry of kind %s", kind)
		}
		if err != nil {
			return err
		}
		if piece.Len() >= chunkPieceBytes {
			if err := c.writePiece(piece.Repr()); err != nil {
				return err
			}
			piece.Reset()
		}
	}
	if !piece.Empty() {
		if err := c.writePiece(piece.Repr()); err != nil {
			return err
		}
	}
	c.Reset()
	return nil
}

// writePiece writes repr, a batch's representation, as the next pending
// record of the operation.
func (c *chunkedBatch) writePiece(repr []byte) error {
	rec := c.pebble.NewBatchWithSize(len(repr) + 64)
	defer func() { _ = rec.Close() }()
	if err := rec.Set(pendingChunkKey(c.tag, c.chunks), repr, nil); err != nil {
		return err
	}
	if err := rec.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("commitment: writing a chunk of a large commit: %w", err)
	}
	c.chunks++
	c.stats.batchChunks.Add(1)
	c.spilled += int64(len(repr))
	return nil
}

// size is the operation's bytes: its chunks and the commit batch.
func (c *chunkedBatch) size() int64 { return c.spilled + int64(c.Len()) }

// seal adds the pending record to the commit batch, if chunks were spilled.
func (c *chunkedBatch) seal() error {
	if c.chunks == 0 {
		return nil
	}
	return c.Batch.Set(keyPending, encodePending(c.tag, c.chunks), nil)
}

func encodePending(tag uint64, chunks uint32) []byte {
	return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint64(nil, tag), chunks)
}

// applyPending applies the chunks of a committed operation, syncs them, and
// deletes their records and the pending record.
func applyPending(pdb *pebble.DB, tag uint64, chunks uint32) error {
	for i := range chunks {
		repr, found, err := getMeta(pdb, pendingChunkKey(tag, i), "a chunk of a large commit")
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("%w: chunk %d of %d of a committed operation is missing", ErrCorrupt, i, chunks)
		}
		b := pdb.NewBatch()
		if err := b.SetRepr(repr); err != nil {
			_ = b.Close()
			return fmt.Errorf("%w: chunk %d of a committed operation: %w", ErrCorrupt, i, err)
		}
		err = pdb.Apply(b, pebble.NoSync)
		_ = b.Close()
		if err != nil {
			return fmt.Errorf("commitment: applying chunk %d of a large commit: %w", i, err)
		}
	}
	b := pdb.NewBatch()
	defer func() { _ = b.Close() }()
	if err := errors.Join(
		b.DeleteRange([]byte{prefixPending}, []byte{prefixPending + 1}, nil),
		b.Delete(keyPending, nil),
	); err != nil {
		return err
	}
	// Pebble makes a prefix of its writes durable (it flushes memtables in
	// order): the records go after the chunks applied are durable.
	return b.Commit(pebble.NoSync)
}

// finishPending, at open, finishes the committed operation whose chunks
// were not all applied, if Pebble holds its pending record. It runs before
// the commit frames after it are replayed, and after each replayed frame
// that names chunks: a later commit may set the keys the chunks set.
func finishPending(pdb *pebble.DB) (applied uint32, err error) {
	v, found, err := getMeta(pdb, keyPending, "the pending record")
	if err != nil || !found {
		return 0, err
	}
	if len(v) != 12 {
		return 0, fmt.Errorf("%w: pending record of %d bytes", ErrCorrupt, len(v))
	}
	tag, chunks := binary.BigEndian.Uint64(v), binary.BigEndian.Uint32(v[8:])
	return chunks, applyPending(pdb, tag, chunks)
}

// dropOrphanChunks, at open once every commit frame is replayed, deletes
// the chunks of an operation that never reached its commit point. (Before
// the replay they may be the chunks of a frame still to replay: they are
// flushed before their frame is written.)
func dropOrphanChunks(pdb *pebble.DB) error {
	it, err := pdb.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixPending}, UpperBound: []byte{prefixPending + 1}})
	if err != nil {
		return err
	}
	any := it.First()
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return err
	}
	if any {
		return pdb.DeleteRange([]byte{prefixPending}, []byte{prefixPending + 1}, pebble.NoSync)
	}
	return nil
}

// splitChanges cuts a commit's page changes into groups whose WAL records
// stay within limit bytes (a page is 4 KiB and some bytes of header).
func splitChanges[T any](changes []T, limit int) [][]T {
	per := max(1, limit/(4096+64))
	var out [][]T
	for len(changes) > per {
		out = append(out, changes[:per:per])
		changes = changes[per:]
	}
	if len(changes) > 0 {
		out = append(out, changes)
	}
	return out
}
