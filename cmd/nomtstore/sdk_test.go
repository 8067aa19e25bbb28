package main

import (
	"fmt"
	"testing"

	storetypes "cosmossdk.io/store/types"
	"github.com/cometbft/cometbft/crypto/merkle"
	cmtcrypto "github.com/cometbft/cometbft/proto/tendermint/crypto"

	"github.com/nomtstore/nomtstore/commitment/trie"
)

// TestProofsVerifyThroughSDKProofRuntime checks the proofs the trie makes the
// way an SDK client checks an ABCI query proof: an "ics23:smt" op for the
// store, chained to the SDK's own "ics23:simple" op over the multistore's
// commit info, verified by a CometBFT proof runtime against the app hash.
func TestProofsVerifyThroughSDKProofRuntime(t *testing.T) {
	stores := map[string]*trie.MemStore{}
	var infos []storetypes.StoreInfo
	for _, name := range []string{"acc", "bank", "staking"} {
		_, m := sample(t, 200)
		if name == "bank" {
			if _, err := m.Apply([]trie.Change{{Key: []byte("bank-only"), Value: []byte("1")}}); err != nil {
				t.Fatal(err)
			}
		}
		stores[name] = m
		infos = append(infos, storetypes.StoreInfo{Name: name, CommitId: storetypes.CommitID{Version: 7, Hash: m.Root().Bytes()}})
	}
	commitInfo := storetypes.CommitInfo{Version: 7, StoreInfos: infos}
	appHash := commitInfo.Hash()

	runtime := merkle.NewProofRuntime()
	runtime.RegisterOpDecoder(storetypes.ProofOpSMTCommitment, storetypes.CommitmentOpDecoder)
	runtime.RegisterOpDecoder(storetypes.ProofOpSimpleMerkleCommitment, storetypes.CommitmentOpDecoder)

	bank := stores["bank"]
	for _, key := range [][]byte{[]byte("bank-only"), []byte("bank/balances/17"), []byte("absent")} {
		proof, exists, err := bank.Prove(key)
		if err != nil {
			t.Fatal(err)
		}
		ops := &cmtcrypto.ProofOps{Ops: []cmtcrypto.ProofOp{
			storetypes.NewSmtCommitmentOp(key, proof).ProofOp(),
			commitInfo.ProofOp("bank"),
		}}
		keyPath := fmt.Sprintf("/bank/x:%x", key)
		if exists {
			value, _ := bank.Get(key)
			if err := runtime.VerifyValue(ops, appHash, keyPath, value); err != nil {
				t.Fatalf("%s: %v", key, err)
			}
			if err := runtime.VerifyValue(ops, appHash, keyPath, []byte("forged")); err == nil {
				t.Fatalf("%s: a forged value verifies", key)
			}
		} else if err := runtime.VerifyAbsence(ops, appHash, keyPath); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if err := runtime.VerifyValue(ops, stores["acc"].Root().Bytes(), keyPath, []byte("1")); err == nil {
			t.Fatalf("%s: verifies against a wrong app hash", key)
		}
	}
}
