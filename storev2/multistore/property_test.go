package multistore

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cosmos/cosmos-sdk/store/v2/types"
)

// TestRandomOpsMatchRootmulti runs random writes (sets, deletions, empty
// values, keys with 0x00 and 0xFF bytes) over several blocks on three
// stores, directly and through branches, on both stores, and compares
// reads between the writes (ours merging its uncommitted writes with the
// committed state), after every commit at the latest height and at random
// past heights (CacheMultiStoreWithVersion), and after a restart.
func TestRandomOpsMatchRootmulti(t *testing.T) {
	seeds, blocks, opsPerBlock := 4, 20, 250
	if testing.Short() {
		seeds, blocks, opsPerBlock = 2, 6, 80
	}
	for seed := range seeds {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			runRandomOps(t, uint64(seed), blocks, opsPerBlock)
		})
	}
}

// randomOps draws keys and values from a small alphabet so that writes
// collide, overwrite and delete each other.
type randomOps struct {
	rng     *rand.Rand
	touched map[string]bool
}

var keyAlphabet = []byte{0x00, 0x01, 'a', 'b', 0x7f, 0xfe, 0xff}

func (r *randomOps) key() []byte {
	k := make([]byte, 1+r.rng.IntN(3))
	for i := range k {
		k[i] = keyAlphabet[r.rng.IntN(len(keyAlphabet))]
	}
	r.touched[string(k)] = true
	return k
}

func (r *randomOps) value() []byte {
	if r.rng.IntN(4) == 0 {
		return []byte{} // the SDK allows empty values
	}
	v := make([]byte, 1+r.rng.IntN(4))
	for i := range v {
		v[i] = byte(r.rng.IntN(256))
	}
	return v
}

// bound is an iterator bound: open (nil) a quarter of the time.
func (r *randomOps) bound() []byte {
	if r.rng.IntN(4) == 0 {
		return nil
	}
	k := make([]byte, 1+r.rng.IntN(3))
	for i := range k {
		k[i] = keyAlphabet[r.rng.IntN(len(keyAlphabet))]
	}
	return k
}

func (r *randomOps) ranges(n int) []iterRange {
	out := []iterRange{{nil, nil}}
	for range n {
		out = append(out, iterRange{r.bound(), r.bound()})
	}
	return out
}

// sample picks up to n keys written so far, and one never written.
func (r *randomOps) sample(n int) [][]byte {
	var all []string
	for k := range r.touched {
		all = append(all, k)
	}
	out := [][]byte{{0x02, 0x02, 0x02, 0x02}}
	for range n {
		if len(all) == 0 {
			break
		}
		out = append(out, []byte(all[r.rng.IntN(len(all))]))
	}
	return out
}

func runRandomOps(t *testing.T, seed uint64, blocks, opsPerBlock int) {
	mounts := []*mount{iavlMount("acc"), iavlMount("bank"), iavlMount("staking")}
	tw := loadedTwin(t, mounts...)
	r := &randomOps{rng: rand.New(rand.NewPCG(seed, 0x5eed)), touched: map[string]bool{}}
	pick := func() *mount { return mounts[r.rng.IntN(len(mounts))] }

	// write applies one random write to the same store of both sides.
	write := func(refKV, oursKV types.KVStore) {
		k := r.key()
		if r.rng.IntN(10) < 7 {
			v := r.value()
			refKV.Set(k, v)
			oursKV.Set(k, v)
		} else {
			refKV.Delete(k)
			oursKV.Delete(k)
		}
	}
	for block := 1; block <= blocks; block++ {
		for op := range opsPerBlock {
			m := pick()
			what := fmt.Sprintf("block %d op %d %s", block, op, m.key.Name())
			switch n := r.rng.IntN(100); {
			case n < 60:
				write(tw.ref.GetKVStore(m.key), tw.ours.GetKVStore(m.key))
			case n < 70:
				// A branch: writes, reads through it, then written back
				// (or dropped).
				refCMS, oursCMS := tw.ref.CacheMultiStore(), tw.ours.CacheMultiStore()
				for range 1 + r.rng.IntN(6) {
					bm := pick()
					write(refCMS.GetKVStore(bm.key), oursCMS.GetKVStore(bm.key))
				}
				compareKV(t, what+" branch", refCMS.GetKVStore(m.key), oursCMS.GetKVStore(m.key), r.sample(4), r.ranges(2))
				if r.rng.IntN(5) > 0 {
					refCMS.Write()
					oursCMS.Write()
				}
			case n < 85:
				compareKV(t, what+" uncommitted", tw.ref.GetKVStore(m.key), tw.ours.GetKVStore(m.key), r.sample(6), nil)
			default:
				compareKV(t, what+" uncommitted", tw.ref.GetKVStore(m.key), tw.ours.GetKVStore(m.key), nil, r.ranges(1))
			}
		}
		tw.commit()
		for _, m := range mounts {
			compareKV(t, fmt.Sprintf("block %d committed %s", block, m.key.Name()), tw.ref.GetKVStore(m.key), tw.ours.GetKVStore(m.key), r.sample(10), r.ranges(4))
		}
		// Random past heights, the latest included.
		for range 2 {
			v := 1 + r.rng.Int64N(int64(block))
			refCMS, err := tw.ref.CacheMultiStoreWithVersion(v)
			if err != nil {
				t.Fatalf("rootmulti at %d: %v", v, err)
			}
			oursCMS, err := tw.ours.CacheMultiStoreWithVersion(v)
			if err != nil {
				t.Fatalf("ours at %d: %v", v, err)
			}
			for _, m := range mounts {
				compareKV(t, fmt.Sprintf("block %d, at height %d, %s", block, v, m.key.Name()), refCMS.GetKVStore(m.key), oursCMS.GetKVStore(m.key), r.sample(6), r.ranges(3))
			}
		}
	}
	// Uncommitted writes are dropped by a restart, in both.
	for range 20 {
		m := pick()
		write(tw.ref.GetKVStore(m.key), tw.ours.GetKVStore(m.key))
	}
	tw.reopen()
	tw.load()
	for _, m := range mounts {
		compareKV(t, "reopened "+m.key.Name(), tw.ref.GetKVStore(m.key), tw.ours.GetKVStore(m.key), r.sample(20), r.ranges(6))
	}
}
