package cmd

import (
	cmtmerkle "github.com/cometbft/cometbft/crypto/merkle"
	cmtcrypto "github.com/cometbft/cometbft/proto/tendermint/crypto"
	"github.com/cosmos/cosmos-sdk/store/v2/rootmulti"
	storetypes "github.com/cosmos/cosmos-sdk/store/v2/types"
	ics23 "github.com/cosmos/ics23/go"
	"github.com/spf13/cobra"

	commitmenttypes "github.com/cosmos/ibc-go/v11/modules/core/23-commitment/types"
	commitmenttypesv2 "github.com/cosmos/ibc-go/v11/modules/core/23-commitment/types/v2"

	"github.com/nomtstore/nomtstore/storecmd"
	"github.com/nomtstore/nomtstore/storev2/multistore"
)

// storeCommand is the `nomtstore` command tree (package storecmd) with
// this line's store types and ibc-go.
func storeCommand() *cobra.Command { return storecmd.Command(StoreLine) }

// StoreLine is what the store commands need of SDK v0.54 (store/v2) and ibc-go v11.
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
