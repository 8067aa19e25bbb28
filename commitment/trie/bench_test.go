package trie

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"runtime"
	"slices"
	"testing"
)

// nodeHashBoundNs is the cost of one 65-byte SHA-256 node hash on one core
// of the reference machines (docs/benchmarks.md); BenchmarkNodeHash
// measures it here.
const nodeHashBoundNs = 136

func BenchmarkNodeHash(b *testing.B) {
	var h Hash
	for b.Loop() {
		h = InternalHash(h, h)
	}
}

// BenchmarkUpdate is a batch of 10k random updates of existing keys on an
// in-memory trie of 1M keys (the trie is not changed between iterations, so
// every batch sees the same 1M-key trie). It reports updates/s, node hashes
// per update and how far the batch is from hashing alone on every core.
func BenchmarkUpdate(b *testing.B) {
	const keys, batch = 1_000_000, 10_000
	m := NewMemStore(1)
	paths := make([]KeyPath, keys)
	ops := make([]Op, keys)
	for i := range paths {
		paths[i] = PathOf(binary.BigEndian.AppendUint64(nil, uint64(i)))
		ops[i] = Op{Path: paths[i], ValueHash: ValueHash(binary.BigEndian.AppendUint64(nil, uint64(i)))}
	}
	slices.SortFunc(ops, func(a, b Op) int { return bytes.Compare(a.Path[:], b.Path[:]) })
	if _, err := m.applyOps(ops); err != nil {
		b.Fatal(err)
	}
	ops = ops[:0]
	for i := range batch {
		p := paths[(i*7919+13)%keys]
		ops = append(ops, Op{Path: p, ValueHash: ValueHash([]byte(fmt.Sprint(i)))})
	}
	slices.SortFunc(ops, func(a, b Op) int { return bytes.Compare(a.Path[:], b.Path[:]) })
	for _, workers := range []int{1, runtime.GOMAXPROCS(0)} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			hashes := 0
			for b.Loop() {
				res, err := m.tree.Update(m.root, ops, UpdateOptions{Workers: workers})
				if err != nil {
					b.Fatal(err)
				}
				hashes = res.NodeHashes
			}
			perBatch := b.Elapsed().Seconds() / float64(b.N)
			bound := float64(hashes) * nodeHashBoundNs * 1e-9 / float64(workers)
			b.ReportMetric(batch/perBatch, "updates/s")
			b.ReportMetric(float64(hashes)/batch, "hashes/update")
			b.ReportMetric(perBatch/bound, "x-hash-bound")
		})
	}
}
