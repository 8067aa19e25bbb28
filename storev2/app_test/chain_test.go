package app_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"
	storetypes "github.com/cosmos/cosmos-sdk/store/v2/types"

	sdk "github.com/cosmos/cosmos-sdk/types"
	clienttypes "github.com/cosmos/ibc-go/v11/modules/core/02-client/types"
	commitmenttypes "github.com/cosmos/ibc-go/v11/modules/core/23-commitment/types"
	commitmenttypesv2 "github.com/cosmos/ibc-go/v11/modules/core/23-commitment/types/v2"
)

// TestRestartKeepsAppHashes: a chain stopped halfway, reopened from disk
// and fed the same blocks ends with the same app hash at every height as
// a chain that never stopped.
func TestRestartKeepsAppHashes(t *testing.T) {
	blocks := int64(30)
	if testing.Short() {
		blocks = 16
	}
	straight := newTestChain(t, t.TempDir(), 4, nil)
	defer straight.close()
	for h := int64(1); h <= blocks; h++ {
		straight.nextBlock(straight.blockTxs(h))
	}

	restarted := newTestChain(t, t.TempDir(), 4, nil)
	for h := int64(1); h <= blocks; h++ {
		if h == blocks/2 || h == blocks/2+3 {
			before := restarted.app.LastCommitID()
			restarted.reopen()
			if after := restarted.app.LastCommitID(); after.Version != before.Version || !bytes.Equal(after.Hash, before.Hash) {
				t.Fatalf("reopened at %d %X, closed at %d %X", after.Version, after.Hash, before.Version, before.Hash)
			}
		}
		restarted.nextBlock(restarted.blockTxs(h))
	}
	defer restarted.close()
	for h := int64(1); h <= blocks; h++ {
		if !bytes.Equal(straight.hashes[h], restarted.hashes[h]) {
			t.Fatalf("height %d: app hash %X without restart, %X with", h, straight.hashes[h], restarted.hashes[h])
		}
	}
	// The state really moved: balances differ from genesis.
	if bytes.Equal(straight.hashes[1], straight.hashes[blocks]) {
		t.Fatal("app hash did not change over the blocks")
	}
}

// queryProof runs an ABCI /store query with a proof at height and checks
// it against the app hash committed at that height with ibc-go's
// MerkleProof: membership of the returned value, or non-membership.
func queryProof(t *testing.T, c *testChain, store string, key []byte, height int64) []byte {
	t.Helper()
	res, err := c.app.Query(context.Background(), &abci.RequestQuery{Path: "/store/" + store + "/key", Data: key, Height: height, Prove: true})
	if err != nil || res.Code != 0 {
		t.Fatalf("query %s %X at %d: %v %s", store, key, height, err, res.GetLog())
	}
	if res.Height != height {
		t.Fatalf("query at %d answered for %d", height, res.Height)
	}
	if len(res.ProofOps.GetOps()) != 2 || res.ProofOps.Ops[0].Type != "ics23:smt" || res.ProofOps.Ops[1].Type != "ics23:simple" {
		t.Fatalf("proof ops: %v", res.ProofOps)
	}
	proof, err := commitmenttypes.ConvertProofs(res.ProofOps)
	if err != nil {
		t.Fatal(err)
	}
	root := commitmenttypes.NewMerkleRoot(c.hashes[height])
	path := commitmenttypesv2.NewMerklePath([]byte(store), key)
	if res.Value != nil {
		if err := proof.VerifyMembership(proofSpecs, root, path, res.Value); err != nil {
			t.Fatalf("membership of %s %X at %d: %v", store, key, height, err)
		}
		// The same proof must not prove another value or absence.
		if proof.VerifyMembership(proofSpecs, root, path, append(bytes.Clone(res.Value), 'x')) == nil ||
			proof.VerifyNonMembership(proofSpecs, root, path) == nil {
			t.Fatalf("a membership proof of %s %X proves something else too", store, key)
		}
		return res.Value
	}
	if err := proof.VerifyNonMembership(proofSpecs, root, path); err != nil {
		t.Fatalf("non-membership of %s %X at %d: %v", store, key, height, err)
	}
	return nil
}

// TestStoreQueryProofs: /store/bank/key and /store/ibc/key queries with
// prove=true at the latest and older heights give values that match the
// state at that height, with existence and non-existence proofs that ibc-go
// verifies against the app hash given [SmtSpec, TendermintSpec].
func TestStoreQueryProofs(t *testing.T) {
	c := newTestChain(t, t.TempDir(), 4, nil)
	defer c.close()
	balances := map[int64][]byte{}
	acc := c.accounts[1]
	for h := int64(1); h <= 8; h++ {
		c.nextBlock(c.blockTxs(h))
		ms, err := c.store().CacheMultiStoreWithVersion(h)
		if err != nil {
			t.Fatal(err)
		}
		balances[h] = ms.GetKVStore(c.app.GetKey("bank")).Get(balanceKey(acc.addr, sdk.DefaultBondDenom))
	}
	stranger := sdk.AccAddress(bytes.Repeat([]byte{7}, 20))
	for _, h := range []int64{2, 5, 7} {
		got := queryProof(t, c, "bank", balanceKey(acc.addr, sdk.DefaultBondDenom), h)
		if !bytes.Equal(got, balances[h]) {
			t.Fatalf("balance at %d: %X, state says %X", h, got, balances[h])
		}
		if queryProof(t, c, "bank", balanceKey(stranger, sdk.DefaultBondDenom), h) != nil {
			t.Fatal("a stranger has a balance")
		}
		if queryProof(t, c, "ibc", []byte(clienttypes.KeyNextClientSequence), h) == nil {
			t.Fatal("ibc's next client sequence is missing")
		}
		if queryProof(t, c, "ibc", []byte("clients/07-tendermint-99/clientState"), h) != nil {
			t.Fatal("an unknown client has a state")
		}
	}
	if bytes.Equal(balances[2], balances[7]) {
		t.Fatal("the balance never changed: the heights are not told apart")
	}
	// Proofs at height <= 1 are refused by baseapp; unknown stores too.
	for _, req := range []*abci.RequestQuery{
		{Path: "/store/bank/key", Data: []byte{1}, Height: 1, Prove: true},
		{Path: "/store/nosuch/key", Data: []byte{1}, Height: 3},
	} {
		if res, err := c.app.Query(context.Background(), req); err == nil && res.Code == 0 {
			t.Fatalf("query %+v succeeded", req)
		}
	}
}

// TestQueriesWhileCommitting: readers query at the latest and at past
// heights (ABCI /store queries with proofs, and CacheMultiStoreWithVersion)
// while blocks commit; every answer matches the state of its height. Run
// under -race by make test.
func TestQueriesWhileCommitting(t *testing.T) {
	c := newTestChain(t, t.TempDir(), 4, nil)
	defer c.close()
	blocks := int64(40)
	if testing.Short() {
		blocks = 20
	}
	bankKey := c.app.GetKey("bank")
	key := balanceKey(c.accounts[0].addr, sdk.DefaultBondDenom)
	var mu sync.Mutex
	expected := map[int64][]byte{}
	hashes := map[int64][]byte{}
	var latest atomic.Int64

	record := func(h int64) {
		ms, err := c.store().CacheMultiStoreWithVersion(h)
		if err != nil {
			t.Error(err)
			return
		}
		mu.Lock()
		expected[h] = ms.GetKVStore(bankKey).Get(key)
		hashes[h] = c.hashes[h]
		mu.Unlock()
		latest.Store(h)
	}
	c.nextBlock(c.blockTxs(1))
	record(1)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var reads atomic.Int64
	for r := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 9))
			for {
				select {
				case <-stop:
					return
				default:
				}
				top := latest.Load()
				h := 1 + rng.Int64N(top)
				mu.Lock()
				want, appHash := expected[h], hashes[h]
				mu.Unlock()
				if r == 0 {
					ms, err := c.store().CacheMultiStoreWithVersion(h)
					if err != nil {
						t.Errorf("cache multistore at %d: %v", h, err)
						return
					}
					if got := ms.GetKVStore(bankKey).Get(key); !bytes.Equal(got, want) {
						t.Errorf("height %d read %X, want %X", h, got, want)
						return
					}
					it := ms.GetKVStore(bankKey).Iterator(nil, nil)
					for ; it.Valid(); it.Next() {
					}
					_ = it.Close()
				} else {
					res, err := c.store().Query(storeQuery("/bank/key", key, h))
					if err != nil {
						t.Errorf("query at %d: %v", h, err)
						return
					}
					if !bytes.Equal(res.Value, want) {
						t.Errorf("query at %d: %X, want %X", h, res.Value, want)
						return
					}
					proof, err := commitmenttypes.ConvertProofs(res.ProofOps)
					if err == nil {
						err = proof.VerifyMembership(proofSpecs, commitmenttypes.NewMerkleRoot(appHash), commitmenttypesv2.NewMerklePath([]byte("bank"), key), want)
					}
					if err != nil {
						t.Errorf("proof at %d: %v", h, err)
						return
					}
				}
				reads.Add(1)
			}
		}()
	}
	for h := int64(2); h <= blocks; h++ {
		c.nextBlock(c.blockTxs(h))
		record(h)
	}
	close(stop)
	wg.Wait()
	if reads.Load() < blocks {
		t.Fatalf("only %d reads ran alongside %d blocks", reads.Load(), blocks)
	}
	t.Logf("%d reads alongside %d commits", reads.Load(), blocks)
}

func storeQuery(path string, key []byte, height int64) *storetypes.RequestQuery {
	return &storetypes.RequestQuery{Path: path, Data: key, Height: height, Prove: true}
}
