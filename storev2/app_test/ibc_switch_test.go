package app_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"cosmossdk.io/log/v2"
	sdkmath "cosmossdk.io/math"
	abci "github.com/cometbft/cometbft/abci/types"
	dbm "github.com/cosmos/cosmos-db"
	upgradetypes "github.com/cosmos/cosmos-sdk/x/upgrade/types"

	"github.com/cosmos/cosmos-sdk/baseapp"
	"github.com/cosmos/cosmos-sdk/client/flags"
	simtestutil "github.com/cosmos/cosmos-sdk/testutil/sims"
	sdk "github.com/cosmos/cosmos-sdk/types"
	sdkmodule "github.com/cosmos/cosmos-sdk/types/module"
	authtypes "github.com/cosmos/cosmos-sdk/x/auth/types"
	govtypes "github.com/cosmos/cosmos-sdk/x/gov/types"

	transfertypes "github.com/cosmos/ibc-go/v11/modules/apps/transfer/types"
	clienttypes "github.com/cosmos/ibc-go/v11/modules/core/02-client/types"
	commitmenttypes "github.com/cosmos/ibc-go/v11/modules/core/23-commitment/types"
	ibctm "github.com/cosmos/ibc-go/v11/modules/light-clients/07-tendermint"
	ibctesting "github.com/cosmos/ibc-go/v11/testing"
	"github.com/cosmos/ibc-go/v11/testing/simapp"

	"github.com/nomtstore/nomtstore/migrate"
	"github.com/nomtstore/nomtstore/storev2/module"
	"github.com/nomtstore/nomtstore/storev2/multistore"
)

// TestIBCAcrossTheSwitch moves chain A, connected to chain B by an ICS-20
// channel with clients on IAVL's proof specs, from IAVL to nomtstore at an
// upgrade height, as docs/migration.md says: A schedules the switch with
// ibc-go's MsgIBCSoftwareUpgrade (an upgraded client with nomtstore's proof
// specs), halts at the height, is migrated (package migrate) and restarted
// on nomtstore; B's client of A is upgraded with MsgUpgradeClient, whose
// proofs A answers at its last IAVL height from the IAVL data; a packet
// sent before the switch is then relayed, and transfers go both ways.
func TestIBCAcrossTheSwitch(t *testing.T) {
	began := time.Now()
	// Chain A on IAVL over goleveldb in a home of its own (it is reopened),
	// chain B on IAVL in memory, as ibctesting makes it.
	homeA := t.TempDir()
	prev := ibctesting.DefaultTestingAppInit
	t.Cleanup(func() { ibctesting.DefaultTestingAppInit = prev })
	built := 0
	ibctesting.DefaultTestingAppInit = func() (ibctesting.TestingApp, map[string]json.RawMessage) {
		built++
		if built > 1 {
			return prev()
		}
		db, err := dbm.NewDB("application", dbm.GoLevelDBBackend, filepath.Join(homeA, "data"))
		if err != nil {
			t.Fatal(err)
		}
		app := simapp.NewSimApp(log.NewNopLogger(), db, nil, true, simtestutil.AppOptionsMap{flags.FlagHome: homeA})
		return app, app.DefaultGenesis()
	}
	coord := ibctesting.NewCoordinator(t, 2)
	chainA, chainB := coord.GetChain(ibctesting.GetChainID(1)), coord.GetChain(ibctesting.GetChainID(2))
	path := ibctesting.NewTransferPath(chainA, chainB)
	path.Setup()
	ibcRequireSpecs(t, path.EndpointB, commitmenttypes.GetSDKSpecs())

	// A packet sent before the switch, relayed only after it.
	coin := sdk.NewCoin(sdk.DefaultBondDenom, sdkmath.NewInt(1000))
	receiverB := chainB.SenderAccount.GetAddress()
	early := ibcTransfer(t, path.EndpointA, coin, receiverB)

	// The switch, scheduled: B's client of A, upgraded to nomtstore's
	// specs, zeroed as ibc-go commits it; the plan a few blocks ahead.
	current := path.EndpointB.GetClientState().(*ibctm.ClientState)
	planHeight := chainA.ProposedHeader.Height + 3
	upgraded := *current
	upgraded.ProofSpecs = ibcNomtSpecs
	upgraded.LatestHeight = clienttypes.NewHeight(current.LatestHeight.RevisionNumber, uint64(planHeight+1))
	plan := upgradetypes.Plan{Name: "nomtstore-switch", Height: planHeight}
	msg, err := clienttypes.NewMsgIBCSoftwareUpgrade(authtypes.NewModuleAddress(govtypes.ModuleName).String(), plan, upgraded.ZeroCustomFields())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := chainA.GetSimApp().IBCKeeper.IBCSoftwareUpgrade(chainA.GetContext(), msg); err != nil {
		t.Fatalf("MsgIBCSoftwareUpgrade: %v", err)
	}
	for chainA.ProposedHeader.Height < planHeight {
		chainA.NextBlock()
	}
	lastIAVL := planHeight - 1
	ctx := chainA.GetContext()
	upgradedConsBz, err := chainA.GetSimApp().UpgradeKeeper.GetUpgradedConsensusState(ctx, planHeight)
	if err != nil {
		t.Fatalf("the upgraded consensus state at %d: %v", lastIAVL, err)
	}
	upgradedCons, err := clienttypes.UnmarshalConsensusState(chainA.Codec, upgradedConsBz)
	if err != nil {
		t.Fatal(err)
	}
	// The binary on IAVL has no handler: it halts at the plan's height.
	halt := chainA.GetSimApp()
	if _, err := halt.FinalizeBlock(&abci.RequestFinalizeBlock{Height: planHeight, Time: chainA.ProposedHeader.Time, NextValidatorsHash: chainA.NextVals.Hash()}); err == nil {
		t.Fatal("chain A on IAVL did not halt at the upgrade height")
	}
	iavlHash := halt.LastCommitID().Hash
	if err := halt.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%v: chain A halted at %d (last IAVL height %d, app hash %X)", time.Since(began).Round(time.Millisecond), planHeight, lastIAVL, iavlHash)

	// The migration, as `nomtstore migrate --from-iavl` runs it.
	migrated := time.Now()
	db, err := dbm.NewDB("application", dbm.GoLevelDBBackend, filepath.Join(homeA, "data"))
	if err != nil {
		t.Fatal(err)
	}
	src, err := migrate.OpenSource(db, 0, multistore.DecodeCommitInfo)
	if err != nil {
		t.Fatal(err)
	}
	res, err := migrate.FromIAVL(context.Background(), src, filepath.Join(homeA, "data", "nomtstore"), migrate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Height != lastIAVL || string(res.AppHash) != string(iavlHash) {
		t.Fatalf("migrated %+v; want height %d, app hash %X", res, lastIAVL, iavlHash)
	}
	t.Logf("migrated %d keys of chain A at %d in %v", res.Keys, res.Height, time.Since(migrated).Round(time.Millisecond))

	// The new binary: nomtstore, with the switch's handler.
	appOpts := simtestutil.AppOptionsMap{flags.FlagHome: homeA}
	storeOpt, appDB := module.StoreOption(homeA, appOpts, db)
	app := simapp.NewSimApp(log.NewNopLogger(), appDB, nil, true, appOpts, storeOpt, baseapp.SetChainID(chainA.ChainID))
	t.Cleanup(func() { _ = app.Close() })
	handled := false
	app.UpgradeKeeper.SetUpgradeHandler(plan.Name, func(ctx context.Context, _ upgradetypes.Plan, vm sdkmodule.VersionMap) (sdkmodule.VersionMap, error) {
		handled = true
		return vm, nil
	})
	if got := app.LastCommitID(); got.Version != lastIAVL || string(got.Hash) != string(iavlHash) {
		t.Fatalf("the migrated app reports %d %X; CometBFT recorded %d %X", got.Version, got.Hash, lastIAVL, iavlHash)
	}
	chainA.App = app
	chainA.NextBlock() // the upgrade height, on nomtstore
	if !handled {
		t.Fatal("the upgrade handler did not run")
	}
	if string(app.LastCommitID().Hash) == string(iavlHash) {
		t.Fatal("the app hash did not change at the switch")
	}

	// B's client of A is upgraded with proofs at the last IAVL height:
	// IAVL proofs, which the migrated store reads from the IAVL data.
	// B's client of A, updated to A's header of the plan height (whose app
	// hash is the last IAVL one): Endpoint.UpdateClient would commit
	// another block first.
	trusted := path.EndpointB.GetClientLatestHeight().(clienttypes.Height)
	header, err := chainA.IBCClientHeader(chainA.LatestCommittedHeader, trusted)
	if err != nil {
		t.Fatal(err)
	}
	update, err := clienttypes.NewMsgUpdateClient(path.EndpointB.ClientID, header, chainB.SenderAccount.GetAddress().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := chainB.SendMsgs(update); err != nil {
		t.Fatalf("updating B's client of A to the plan height: %v", err)
	}
	clientHeight := path.EndpointB.GetClientLatestHeight().GetRevisionHeight()
	if clientHeight != uint64(planHeight) {
		t.Fatalf("B's client of A is at %d, want the plan height %d", clientHeight, planHeight)
	}
	proved, err := app.Query(context.Background(), &abci.RequestQuery{Path: "store/upgrade/key", Data: upgradetypes.UpgradedClientKey(planHeight), Height: lastIAVL, Prove: true})
	if err != nil || proved.Code != 0 || len(proved.ProofOps.GetOps()) != 2 || proved.ProofOps.Ops[0].Type != "ics23:iavl" {
		t.Fatalf("the upgraded client's proof at the last IAVL height: %v %+v", err, proved)
	}
	clientProof, _ := chainA.QueryUpgradeProof(upgradetypes.UpgradedClientKey(planHeight), clientHeight)
	consProof, _ := chainA.QueryUpgradeProof(upgradetypes.UpgradedConsStateKey(planHeight), clientHeight)
	upgradeMsg, err := clienttypes.NewMsgUpgradeClient(path.EndpointB.ClientID, &upgraded, upgradedCons, clientProof, consProof, chainB.SenderAccount.GetAddress().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := chainB.SendMsgs(upgradeMsg); err != nil {
		t.Fatalf("MsgUpgradeClient on B: %v", err)
	}
	ibcRequireSpecs(t, path.EndpointB, ibcNomtSpecs)
	chainA.NextBlock()
	if err := path.EndpointB.UpdateClient(); err != nil {
		t.Fatalf("updating the upgraded client: %v", err)
	}
	if err := path.EndpointA.UpdateClient(); err != nil {
		t.Fatal(err)
	}

	// The packet from before the switch, relayed after it (B verifies A's
	// nomtstore proof of its commitment), and transfers both ways.
	voucher := transfertypes.NewDenom(sdk.DefaultBondDenom, transfertypes.NewHop(path.EndpointB.ChannelConfig.PortID, path.EndpointB.ChannelID)).IBCDenom()
	before := ibcBalance(chainB, receiverB, voucher)
	if err := path.RelayPacket(early); err != nil {
		t.Fatalf("relaying the packet sent before the switch: %v", err)
	}
	after := ibcTransfer(t, path.EndpointA, coin, receiverB)
	if err := path.RelayPacket(after); err != nil {
		t.Fatalf("relaying A→B after the switch: %v", err)
	}
	if got := ibcBalance(chainB, receiverB, voucher); !got.Equal(before.Add(sdkmath.NewInt(2000))) {
		t.Fatalf("B's voucher balance %s, want %s", got, before.Add(sdkmath.NewInt(2000)))
	}
	receiverA := chainA.SenderAccount.GetAddress()
	beforeA := ibcBalance(chainA, receiverA, sdk.DefaultBondDenom)
	back := ibcTransfer(t, path.EndpointB, sdk.NewCoin(voucher, sdkmath.NewInt(500)), receiverA)
	if err := path.RelayPacket(back); err != nil {
		t.Fatalf("relaying B→A after the switch: %v", err)
	}
	if got := ibcBalance(chainA, receiverA, sdk.DefaultBondDenom); !got.Equal(beforeA.Add(sdkmath.NewInt(500))) {
		t.Fatalf("A's balance %s, want %s", got, beforeA.Add(sdkmath.NewInt(500)))
	}
	if types := ibcProofOpTypes(t, chainA, []byte("clients")); len(types) == 0 || types[0] != "ics23:smt" {
		t.Fatalf("chain A's proofs after the switch: %v", types)
	}
	t.Logf("%v in all: the client upgraded, the early packet and transfers both ways relayed", time.Since(began).Round(time.Millisecond))
}
