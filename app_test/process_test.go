package app_test

import (
	"path/filepath"
	"testing"

	storetypes "cosmossdk.io/store/types"
	"github.com/cometbft/cometbft/crypto/merkle"
	cmtprotocrypto "github.com/cometbft/cometbft/proto/tendermint/crypto"
	dbm "github.com/cosmos/cosmos-db"

	"cosmossdk.io/store/rootmulti"
	authtypes "github.com/cosmos/cosmos-sdk/x/auth/types"
	govtypes "github.com/cosmos/cosmos-sdk/x/gov/types"

	"github.com/nomtstore/nomtstore/cmd/nomtsimd/cmd"
	"github.com/nomtstore/nomtstore/internal/iavltest"
	"github.com/nomtstore/nomtstore/internal/nodetest"
)

// nodeLine runs the node-process tests of internal/nodetest on this
// line's nomtsimd (SDK v0.53).
var nodeLine = &nodetest.Line{
	Binary: nomtsimdBinary,
	VerifyValue: func(ops []nodetest.ProofOp, appHash []byte, store string, key, value []byte) error {
		proof := &cmtprotocrypto.ProofOps{}
		for _, op := range ops {
			proof.Ops = append(proof.Ops, cmtprotocrypto.ProofOp{Type: op.Type, Key: op.Key, Data: op.Data})
		}
		prt := rootmulti.DefaultProofRuntime()
		prt.RegisterOpDecoder(storetypes.ProofOpSMTCommitment, storetypes.CommitmentOpDecoder)
		keyPath := merkle.KeyPath{}.AppendKey([]byte(store), merkle.KeyEncodingURL).AppendKey(key, merkle.KeyEncodingURL).String()
		return prt.VerifyValue(proof, appHash, keyPath, value)
	},
	PreloadIAVL: func(t *testing.T, home string, keys int) []byte {
		t.Helper()
		db, err := dbm.NewDB("application", dbm.GoLevelDBBackend, filepath.Join(home, "data"))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = db.Close() }()
		return iavltest.Preload(t, db, keys, 3)
	},
	FlagIAVL:      cmd.FlagIAVL,
	SwitchUpgrade: cmd.SwitchUpgrade,
	GovAuthority:  authtypes.NewModuleAddress(govtypes.ModuleName).String(),
}

// The node-process tests of internal/nodetest (their docs are there).
func TestNodeRollback(t *testing.T)           { nodetest.NodeRollback(t, nodeLine) }
func TestSnapshotRestoreCommand(t *testing.T) { nodetest.SnapshotRestoreCommand(t, nodeLine) }
func TestAbandonSwitch(t *testing.T)          { nodetest.AbandonSwitch(t, nodeLine) }
func TestSwitchFromIAVL(t *testing.T)         { nodetest.SwitchFromIAVL(t, nodeLine) }
func TestMigrateKilled(t *testing.T)          { nodetest.MigrateKilled(t, nodeLine) }
