package cmd

import (
	"cosmossdk.io/store/rootmulti"
	storetypes "cosmossdk.io/store/types"
	cmtmerkle "github.com/cometbft/cometbft/crypto/merkle"
	cmtcrypto "github.com/cometbft/cometbft/proto/tendermint/crypto"
	ics23 "github.com/cosmos/ics23/go"
	"github.com/spf13/cobra"

	commitmenttypes "github.com/cosmos/ibc-go/v10/modules/core/23-commitment/types"
	commitmenttypesv2 "github.com/cosmos/ibc-go/v10/modules/core/23-commitment/types/v2"

	"github.com/nomtstore/nomtstore/multistore"
	"github.com/nomtstore/nomtstore/storecmd"
)

// storeCommand is the `nomtstore` command tree (package storecmd) with
// this line's store types and ibc-go.
func storeCommand() *cobra.Command { return storecmd.Command(StoreLine) }

// StoreLine is what the store commands need of SDK v0.53 and ibc-go v10.
var StoreLine = storecmd.Line{
	CommitInfo: multistore.DecodeCommitInfo,
	// rootmulti's runtime knows ics23:iavl and ics23:simple; a client of a
	// nomtstore chain registers ics23:smt too.
	ProofRuntime: func() *cmtmerkle.ProofRuntime {
		prt := rootmulti.DefaultProofRuntime()
		prt.RegisterOpDecoder(storetypes.ProofOpSMTCommitment, storetypes.CommitmentOpDecoder)
		return prt
	},
	VerifyIBC: func(ops *cmtcrypto.ProofOps, appHash []byte, store string, key, value []byte) error {
		proof, err := commitmenttypes.ConvertProofs(ops)
		if err != nil {
			return err
		}
		specs := []*ics23.ProofSpec{ics23.SmtSpec, ics23.TendermintSpec}
		path := commitmenttypesv2.NewMerklePath([]byte(store), key)
		root := commitmenttypes.NewMerkleRoot(appHash)
		if value != nil {
			return proof.VerifyMembership(specs, root, path, value)
		}
		return proof.VerifyNonMembership(specs, root, path)
	},
}
