package app_test

import (
	"encoding/binary"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"cosmossdk.io/log/v2"
	dbm "github.com/cosmos/cosmos-db"
	"github.com/cosmos/cosmos-sdk/store/v2/rootmulti"
	storetypes "github.com/cosmos/cosmos-sdk/store/v2/types"
	authtypes "github.com/cosmos/cosmos-sdk/x/auth/types"
	govtypes "github.com/cosmos/cosmos-sdk/x/gov/types"

	"github.com/nomtstore/nomtstore/internal/nodetest"
	"github.com/nomtstore/nomtstore/storev2/cmd/nomtsimd/cmd"
)

// nodeLine runs the node-process tests of internal/nodetest on this
// line's nomtsimd (SDK v0.54, store/v2).
var nodeLine = &nodetest.Line{
	Binary:        nodetest.Binary("../cmd/nomtsimd"),
	ProofRuntime:  cmd.StoreLine.ProofRuntime,
	PreloadIAVL:   preloadIAVLHome,
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

// preloadIAVLHome commits keys random keys into home's application.db
// with store/v2's rootmulti on IAVL, as a v0.54 node on IAVL writes it
// (with an empty store beside the two written ones), and returns the last
// app hash.
func preloadIAVLHome(t *testing.T, home string, keys int) []byte {
	t.Helper()
	db, err := dbm.NewDB("application", dbm.GoLevelDBBackend, filepath.Join(home, "data"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	rs := rootmulti.NewStore(db, log.NewNopLogger())
	bank, acc := storetypes.NewKVStoreKey("bank"), storetypes.NewKVStoreKey("acc")
	for _, k := range []*storetypes.KVStoreKey{bank, acc, storetypes.NewKVStoreKey("authz")} {
		rs.MountStoreWithDB(k, storetypes.StoreTypeIAVL, nil)
	}
	if err := rs.LoadLatestVersion(); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 3))
	var id storetypes.CommitID
	for done := 0; done < keys; {
		for i := 0; i < 40_000 && done < keys; i, done = i+1, done+1 {
			// IAVL keeps the slices it is given.
			key, value := make([]byte, 0, 32), make([]byte, 0, 40)
			for range 4 {
				key = binary.BigEndian.AppendUint64(key, rng.Uint64())
			}
			for range 5 {
				value = binary.BigEndian.AppendUint64(value, rng.Uint64())
			}
			store := bank
			if rng.IntN(10) < 3 {
				store = acc
			}
			rs.GetKVStore(store).Set(key, value)
		}
		id = rs.Commit()
	}
	return id.Hash
}
