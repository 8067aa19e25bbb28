package trie

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/celestiaorg/smt"
)

// TestRootsMatchCelestiaSMT checks roots against an independent
// implementation of the same compacted sparse Merkle trie, the one ICS23's
// SmtSpec was written for, over random key sets, updates and deletes.
func TestRootsMatchCelestiaSMT(t *testing.T) {
	for seed := range 6 {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(seed), 7))
			oracle := smt.NewSparseMerkleTree(smt.NewSimpleMap(), smt.NewSimpleMap(), sha256.New())
			m := NewMemStore(1)
			var keys [][]byte
			for round := range 25 {
				var batch []Change
				seen := map[string]bool{}
				for range 1 + rng.IntN(150) {
					var c Change
					if len(keys) > 0 && rng.IntN(3) == 0 {
						c.Key = keys[rng.IntN(len(keys))]
					} else {
						c.Key = fmt.Appendf(nil, "key-%d-%d", seed, rng.Uint64()%5000)
						keys = append(keys, c.Key)
					}
					if seen[string(c.Key)] {
						continue
					}
					seen[string(c.Key)] = true
					if rng.IntN(4) == 0 {
						c.Delete = true
						if _, err := oracle.Delete(c.Key); err != nil {
							t.Fatal(err)
						}
					} else {
						c.Value = fmt.Appendf(nil, "value-%d", rng.Uint64())
						if _, err := oracle.Update(c.Key, c.Value); err != nil {
							t.Fatal(err)
						}
					}
					batch = append(batch, c)
				}
				if _, err := m.Apply(batch); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(m.Root().Bytes(), oracle.Root()) {
					t.Fatalf("round %d (%d keys): root %s, celestia smt %x", round, m.Len(), m.Root(), oracle.Root())
				}
			}
		})
	}
}
