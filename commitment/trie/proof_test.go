package trie

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	ics23 "github.com/cosmos/ics23/go"
)

// memStoreWith is a store of keys accounts, every page stored.
func memStoreWith(t testing.TB, keys int, seed uint64) *MemStore {
	t.Helper()
	return elidedStoreWith(t, keys, seed, 0)
}

// absentKeyClass says where an absent key's path falls among the stored ones.
func absentKeyClass(m *MemStore, key []byte) string {
	path := PathOf(key)
	_, hasLeft, _ := m.leaves.Floor(path)
	_, hasRight, _ := m.leaves.Ceil(path)
	switch {
	case !hasLeft:
		return "left-most"
	case !hasRight:
		return "right-most"
	}
	return "between"
}

func TestProofsVerifyWithSmtSpec(t *testing.T) {
	for _, keys := range []int{1, 2, 3, 10, 257, 2000} {
		t.Run(fmt.Sprintf("%dkeys", keys), func(t *testing.T) {
			m := memStoreWith(t, keys, uint64(keys))
			root := m.Root().Bytes()
			for i := range keys {
				key := fmt.Appendf(nil, "acct/%d/%d", keys, i)
				value, _ := m.Get(key)
				proof, exists, err := m.Prove(key)
				if err != nil || !exists {
					t.Fatalf("prove %s: exists=%v err=%v", key, exists, err)
				}
				if !ics23.VerifyMembership(ics23.SmtSpec, root, proof, key, value) {
					t.Fatalf("membership of %s does not verify", key)
				}
				if ics23.VerifyMembership(ics23.SmtSpec, root, proof, key, append(bytes.Clone(value), 'x')) {
					t.Fatalf("membership of %s verifies with a wrong value", key)
				}
			}
			classes := map[string]int{}
			rng := rand.New(rand.NewPCG(uint64(keys), 3))
			for range 400 {
				key := fmt.Appendf(nil, "absent/%d", rng.Uint64())
				classes[absentKeyClass(m, key)]++
				proof, exists, err := m.Prove(key)
				if err != nil || exists {
					t.Fatalf("prove absent %s: exists=%v err=%v", key, exists, err)
				}
				if !ics23.VerifyNonMembership(ics23.SmtSpec, root, proof, key) {
					t.Fatalf("non-membership of %s (%s) does not verify", key, absentKeyClass(m, key))
				}
				// The same proof must not pass for a present key.
				present := fmt.Appendf(nil, "acct/%d/%d", keys, rng.IntN(keys))
				if ics23.VerifyNonMembership(ics23.SmtSpec, root, proof, present) {
					t.Fatalf("non-membership proof of %s verifies for present %s", key, present)
				}
			}
			if keys <= 3 && (classes["left-most"] == 0 || classes["right-most"] == 0) {
				t.Fatalf("absent keys did not cover both ends: %v", classes)
			}
			t.Logf("absent keys by position: %v", classes)
		})
	}
}

func TestTamperedProofsAreRejected(t *testing.T) {
	m := memStoreWith(t, 300, 9)
	root := m.Root().Bytes()
	key := []byte("acct/9/17")
	value, _ := m.Get(key)
	tampers := []struct {
		name   string
		tamper func(*ics23.ExistenceProof)
	}{
		{"sibling byte", func(p *ics23.ExistenceProof) {
			op := p.Path[len(p.Path)/2]
			if len(op.Suffix) > 0 {
				op.Suffix[5] ^= 1
			} else {
				op.Prefix[5] ^= 1
			}
		}},
		{"side swapped", func(p *ics23.ExistenceProof) {
			op := p.Path[0]
			if len(op.Suffix) > 0 {
				op.Prefix, op.Suffix = append(op.Prefix, op.Suffix...), nil
			} else {
				op.Prefix, op.Suffix = op.Prefix[:1], op.Prefix[1:]
			}
		}},
		{"step dropped", func(p *ics23.ExistenceProof) { p.Path = p.Path[1:] }},
		{"leaf prefix", func(p *ics23.ExistenceProof) { p.Leaf.Prefix = []byte{1} }},
		{"value", func(p *ics23.ExistenceProof) { p.Value = []byte("balance=1000000") }},
	}
	for _, tc := range tampers {
		t.Run(tc.name, func(t *testing.T) {
			proof, _, err := m.Prove(key)
			if err != nil {
				t.Fatal(err)
			}
			tc.tamper(proof.GetExist())
			if ics23.VerifyMembership(ics23.SmtSpec, root, proof, key, value) {
				t.Fatal("tampered existence proof verifies")
			}
			absent := []byte("absent/1")
			nonex, _, err := m.Prove(absent)
			if err != nil {
				t.Fatal(err)
			}
			ne := nonex.GetNonexist()
			side := ne.Left
			if side == nil {
				side = ne.Right
			}
			tc.tamper(side)
			if ics23.VerifyNonMembership(ics23.SmtSpec, root, nonex, absent) {
				t.Fatal("tampered non-existence proof verifies")
			}
		})
	}
	t.Run("neighbour skipped", func(t *testing.T) {
		// Replace the right neighbour with the key after it: the gap between
		// the two proofs now hides a key, and the proof must fail.
		absent := []byte("absent/2")
		proof, _, err := m.Prove(absent)
		if err != nil {
			t.Fatal(err)
		}
		ne := proof.GetNonexist()
		if ne.Right == nil || ne.Left == nil {
			t.Skip("absent key at an end")
		}
		next, ok, _ := m.leaves.Ceil(mustNext(PathOf(ne.Right.Key)))
		if !ok {
			t.Skip("right neighbour is the last key")
		}
		nextKey, _, _ := m.Preimage(next.Path)
		farther, _, err := m.Prove(nextKey)
		if err != nil {
			t.Fatal(err)
		}
		ne.Right = farther.GetExist()
		if ics23.VerifyNonMembership(ics23.SmtSpec, root, proof, absent) {
			t.Fatal("non-existence proof with a skipped neighbour verifies")
		}
	})
}

func mustNext(p KeyPath) KeyPath {
	n, _ := p.Next()
	return n
}

func TestProofEncodingRoundTrip(t *testing.T) {
	m := memStoreWith(t, 50, 4)
	for _, key := range [][]byte{[]byte("acct/4/3"), []byte("nope")} {
		proof, exists, err := m.Prove(key)
		if err != nil {
			t.Fatal(err)
		}
		bz, err := proof.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		var decoded ics23.CommitmentProof
		if err := decoded.Unmarshal(bz); err != nil {
			t.Fatal(err)
		}
		value, _ := m.Get(key)
		ok := exists && ics23.VerifyMembership(ics23.SmtSpec, m.Root().Bytes(), &decoded, key, value) ||
			!exists && ics23.VerifyNonMembership(ics23.SmtSpec, m.Root().Bytes(), &decoded, key)
		if !ok {
			t.Fatalf("decoded proof for %q does not verify", key)
		}
	}
}

func TestProveEmptyTrie(t *testing.T) {
	m := NewMemStore(1)
	if _, _, err := m.Prove([]byte("k")); !errors.Is(err, ErrEmptyTrie) {
		t.Fatalf("got %v, want ErrEmptyTrie", err)
	}
}
