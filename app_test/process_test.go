package app_test

import (
	"path/filepath"
	"testing"

	dbm "github.com/cosmos/cosmos-db"

	authtypes "github.com/cosmos/cosmos-sdk/x/auth/types"
	govtypes "github.com/cosmos/cosmos-sdk/x/gov/types"

	"github.com/nomtstore/nomtstore/cmd/nomtsimd/cmd"
	"github.com/nomtstore/nomtstore/internal/iavltest"
	"github.com/nomtstore/nomtstore/internal/nodetest"
)

// nodeLine runs the node-process tests of internal/nodetest on this
// line's nomtsimd (SDK v0.53).
var nodeLine = &nodetest.Line{
	Binary:       nodetest.Binary("../cmd/nomtsimd"),
	ProofRuntime: cmd.StoreLine.ProofRuntime,
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
