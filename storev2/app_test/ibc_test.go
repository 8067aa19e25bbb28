package app_test

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"cosmossdk.io/log/v2"
	sdkmath "cosmossdk.io/math"
	abci "github.com/cometbft/cometbft/abci/types"
	dbm "github.com/cosmos/cosmos-db"
	ics23 "github.com/cosmos/ics23/go"

	"github.com/cosmos/cosmos-sdk/client/flags"
	simtestutil "github.com/cosmos/cosmos-sdk/testutil/sims"
	sdk "github.com/cosmos/cosmos-sdk/types"

	transfertypes "github.com/cosmos/ibc-go/v11/modules/apps/transfer/types"
	clienttypes "github.com/cosmos/ibc-go/v11/modules/core/02-client/types"
	channeltypes "github.com/cosmos/ibc-go/v11/modules/core/04-channel/types"
	commitmenttypes "github.com/cosmos/ibc-go/v11/modules/core/23-commitment/types"
	commitmenttypesv2 "github.com/cosmos/ibc-go/v11/modules/core/23-commitment/types/v2"
	host "github.com/cosmos/ibc-go/v11/modules/core/24-host"
	"github.com/cosmos/ibc-go/v11/modules/core/exported"
	ibctm "github.com/cosmos/ibc-go/v11/modules/light-clients/07-tendermint"
	ibctesting "github.com/cosmos/ibc-go/v11/testing"
	"github.com/cosmos/ibc-go/v11/testing/simapp"

	"github.com/nomtstore/nomtstore/storev2/module"
	"github.com/nomtstore/nomtstore/storev2/multistore"
)

// ibcNomtSpecs are the proof specs of a chain on nomtstore: the store's
// sparse Merkle trie, then the SDK's simple Merkle tree of store roots.
var ibcNomtSpecs = []*ics23.ProofSpec{ics23.SmtSpec, ics23.TendermintSpec}

// ibcUseNomtStore makes ibctesting build every chain's simapp on nomtstore,
// each in its own home under t.TempDir, until the test ends; the apps (and
// so their stores) are closed before the directories are removed.
func ibcUseNomtStore(t *testing.T) {
	t.Helper()
	prev := ibctesting.DefaultTestingAppInit
	t.Cleanup(func() { ibctesting.DefaultTestingAppInit = prev })
	ibctesting.DefaultTestingAppInit = func() (ibctesting.TestingApp, map[string]json.RawMessage) {
		// As ibctesting.SetupTestingApp, plus the home and the store option.
		home := t.TempDir()
		appOpts := simtestutil.AppOptionsMap{flags.FlagHome: home}
		storeOpt, db := module.StoreOption(home, appOpts, dbm.NewMemDB())
		app := simapp.NewSimApp(log.NewNopLogger(), db, nil, true, appOpts, storeOpt)
		// Registered after TempDir's cleanup, so it runs before it.
		t.Cleanup(func() {
			if err := app.GetBaseApp().Close(); err != nil {
				t.Errorf("closing the app in %s: %v", home, err)
			}
		})
		return app, app.DefaultGenesis()
	}
}

// ibcCreateClient is ibctesting's Endpoint.CreateClient for a Tendermint
// client, with the given proof specs instead of the hard-coded
// commitmenttypes.GetSDKSpecs() (IAVL's).
func ibcCreateClient(t *testing.T, endpoint *ibctesting.Endpoint, specs []*ics23.ProofSpec) {
	t.Helper()
	// ensure the counterparty has committed state
	endpoint.Counterparty.Chain.NextBlock()

	tmConfig, ok := endpoint.ClientConfig.(*ibctesting.TendermintConfig)
	if !ok {
		t.Fatalf("endpoint client config is %T, not Tendermint", endpoint.ClientConfig)
	}
	header := endpoint.Counterparty.Chain.LatestCommittedHeader
	height, ok := header.GetHeight().(clienttypes.Height)
	if !ok {
		t.Fatalf("header height is %T", header.GetHeight())
	}
	clientState := ibctm.NewClientState(
		endpoint.Counterparty.Chain.ChainID, tmConfig.TrustLevel, tmConfig.TrustingPeriod, tmConfig.UnbondingPeriod, tmConfig.MaxClockDrift,
		height, specs, ibctesting.UpgradePath)
	msg, err := clienttypes.NewMsgCreateClient(clientState, header.ConsensusState(), endpoint.Chain.SenderAccount.GetAddress().String())
	if err != nil {
		t.Fatal(err)
	}
	res, err := endpoint.Chain.SendMsgs(msg)
	if err != nil {
		t.Fatalf("create client on %s: %v", endpoint.Chain.ChainID, err)
	}
	if endpoint.ClientID, err = ibctesting.ParseClientIDFromEvents(res.Events); err != nil {
		t.Fatal(err)
	}
}

// ibcRequireSpecs checks the client of endpoint has the given proof specs.
func ibcRequireSpecs(t *testing.T, endpoint *ibctesting.Endpoint, want []*ics23.ProofSpec) {
	t.Helper()
	cs, ok := endpoint.GetClientState().(*ibctm.ClientState)
	if !ok {
		t.Fatalf("client %s on %s is %T", endpoint.ClientID, endpoint.Chain.ChainID, endpoint.GetClientState())
	}
	if len(cs.ProofSpecs) != len(want) {
		t.Fatalf("client %s on %s has %d proof specs, want %d", endpoint.ClientID, endpoint.Chain.ChainID, len(cs.ProofSpecs), len(want))
	}
	for i := range want {
		if !cs.ProofSpecs[i].SpecEquals(want[i]) {
			t.Fatalf("client %s on %s: proof spec %d is not the expected one", endpoint.ClientID, endpoint.Chain.ChainID, i)
		}
	}
}

// ibcBalance is addr's balance in denom on chain.
func ibcBalance(chain *ibctesting.TestChain, addr sdk.AccAddress, denom string) sdkmath.Int {
	return chain.GetSimApp().BankKeeper.GetBalance(chain.GetContext(), addr, denom).Amount
}

// ibcTransfer sends coin from chain's sender account over endpoint's
// channel to receiver, and returns the packet the chain committed.
func ibcTransfer(t *testing.T, endpoint *ibctesting.Endpoint, coin sdk.Coin, receiver sdk.AccAddress) channeltypes.Packet {
	t.Helper()
	chain := endpoint.Chain
	msg := transfertypes.NewMsgTransfer(endpoint.ChannelConfig.PortID, endpoint.ChannelID, coin,
		chain.SenderAccount.GetAddress().String(), receiver.String(),
		endpoint.Counterparty.Chain.GetTimeoutHeight(), 0, "")
	res, err := chain.SendMsgs(msg)
	if err != nil {
		t.Fatalf("transfer on %s: %v", chain.ChainID, err)
	}
	packet, err := ibctesting.ParseV1PacketFromEvents(res.Events)
	if err != nil {
		t.Fatal(err)
	}
	return packet
}

// ibcProofOpTypes queries key in chain's IBC store with a proof, at the
// latest height, and returns the proof ops' types.
func ibcProofOpTypes(t *testing.T, chain *ibctesting.TestChain, key []byte) []string {
	t.Helper()
	res, err := chain.App.Query(chain.GetContext().Context(), &abci.RequestQuery{
		Path:   fmt.Sprintf("store/%s/key", exported.StoreKey),
		Height: chain.App.LastBlockHeight(),
		Data:   key,
		Prove:  true,
	})
	if err != nil || res.Code != 0 {
		t.Fatalf("query %X on %s: %v %s", key, chain.ChainID, err, res.GetLog())
	}
	var types []string
	for _, op := range res.ProofOps.GetOps() {
		types = append(types, op.Type)
	}
	return types
}

// TestIBCTransferBetweenNomtChains connects two ibc-go testing chains, both
// on nomtstore, with Tendermint light clients that verify ICS23 proofs with
// SmtSpec and TendermintSpec, and moves tokens over an ICS-20 channel and
// back: every handshake step, receive and acknowledgement verifies proofs
// from a nomtstore against a light client. A client with the SDK's IAVL
// specs fails to verify the same store's proofs.
func TestIBCTransferBetweenNomtChains(t *testing.T) {
	ibcUseNomtStore(t)
	coord := ibctesting.NewCoordinator(t, 2)
	chainA := coord.GetChain(ibctesting.GetChainID(1))
	chainB := coord.GetChain(ibctesting.GetChainID(2))
	for _, chain := range []*ibctesting.TestChain{chainA, chainB} {
		if cms, ok := chain.App.GetBaseApp().CommitMultiStore().(*multistore.Store); !ok {
			t.Fatalf("%s runs on %T, not nomtstore", chain.ChainID, chain.App.GetBaseApp().CommitMultiStore())
		} else if cms.LastCommitID().Version != chain.App.LastBlockHeight() {
			t.Fatalf("%s: store at %d, app at %d", chain.ChainID, cms.LastCommitID().Version, chain.App.LastBlockHeight())
		}
	}

	path := ibctesting.NewTransferPath(chainA, chainB)
	ibcCreateClient(t, path.EndpointA, ibcNomtSpecs)
	ibcCreateClient(t, path.EndpointB, ibcNomtSpecs)
	ibcRequireSpecs(t, path.EndpointA, ibcNomtSpecs)
	ibcRequireSpecs(t, path.EndpointB, ibcNomtSpecs)
	path.CreateConnections()
	path.CreateChannels()
	t.Logf("A %s/%s/%s <-> B %s/%s/%s", path.EndpointA.ClientID, path.EndpointA.ConnectionID, path.EndpointA.ChannelID,
		path.EndpointB.ClientID, path.EndpointB.ConnectionID, path.EndpointB.ChannelID)

	// The proofs the handshake verified are nomtstore's: the IBC store's
	// own trie (ics23:smt), then the store roots (ics23:simple).
	for _, endpoint := range []*ibctesting.Endpoint{path.EndpointA, path.EndpointB} {
		types := ibcProofOpTypes(t, endpoint.Chain, host.ConnectionKey(endpoint.ConnectionID))
		if strings.Join(types, ",") != "ics23:smt,ics23:simple" {
			t.Fatalf("%s proves with %v, want [ics23:smt ics23:simple]", endpoint.Chain.ChainID, types)
		}
	}

	// A -> B: stake is escrowed on A and minted as a voucher on B.
	amount := sdkmath.NewInt(12345)
	coin := sdk.NewCoin(sdk.DefaultBondDenom, amount)
	sender := chainA.SenderAccount.GetAddress()
	receiver := chainB.SenderAccount.GetAddress() // also the sender of the return transfer
	escrow := transfertypes.GetEscrowAddress(path.EndpointA.ChannelConfig.PortID, path.EndpointA.ChannelID)
	senderBefore := ibcBalance(chainA, sender, sdk.DefaultBondDenom)
	escrowBefore := ibcBalance(chainA, escrow, sdk.DefaultBondDenom)

	packet := ibcTransfer(t, path.EndpointA, coin, receiver)
	commitmentKey := host.PacketCommitmentKey(packet.GetSourcePort(), packet.GetSourceChannel(), packet.GetSequence())
	if types := ibcProofOpTypes(t, chainA, commitmentKey); strings.Join(types, ",") != "ics23:smt,ics23:simple" {
		t.Fatalf("packet commitment proved with %v", types)
	}
	if err := path.RelayPacket(packet); err != nil {
		t.Fatalf("relay A->B: %v", err)
	}

	if got := ibcBalance(chainA, escrow, sdk.DefaultBondDenom); !got.Equal(escrowBefore.Add(amount)) {
		t.Fatalf("escrow %s on A holds %s, want %s", escrow, got, escrowBefore.Add(amount))
	}
	if got := ibcBalance(chainA, sender, sdk.DefaultBondDenom); !got.Equal(senderBefore.Sub(amount)) {
		t.Fatalf("sender on A holds %s, want %s", got, senderBefore.Sub(amount))
	}
	trace := fmt.Sprintf("%s/%s/%s", path.EndpointB.ChannelConfig.PortID, path.EndpointB.ChannelID, sdk.DefaultBondDenom)
	voucher := fmt.Sprintf("ibc/%X", sha256.Sum256([]byte(trace)))
	if d := transfertypes.NewDenom(sdk.DefaultBondDenom, transfertypes.NewHop(path.EndpointB.ChannelConfig.PortID, path.EndpointB.ChannelID)); d.IBCDenom() != voucher {
		t.Fatalf("voucher denom %s, ibc-go says %s", voucher, d.IBCDenom())
	}
	if got := ibcBalance(chainB, receiver, voucher); !got.Equal(amount) {
		t.Fatalf("receiver on B holds %s %s, want %s", got, voucher, amount)
	}
	ctxA, ctxB := chainA.GetContext(), chainB.GetContext()
	if pc := chainA.App.GetIBCKeeper().ChannelKeeper.GetPacketCommitment(ctxA, packet.GetSourcePort(), packet.GetSourceChannel(), packet.GetSequence()); len(pc) != 0 {
		t.Fatalf("packet commitment still on A after the acknowledgement: %X", pc)
	}
	if _, ok := chainB.App.GetIBCKeeper().ChannelKeeper.GetPacketReceipt(ctxB, packet.GetDestPort(), packet.GetDestChannel(), packet.GetSequence()); !ok {
		t.Fatal("no packet receipt on B")
	}
	if !chainB.App.GetIBCKeeper().ChannelKeeper.HasPacketAcknowledgement(ctxB, packet.GetDestPort(), packet.GetDestChannel(), packet.GetSequence()) {
		t.Fatal("no acknowledgement written on B")
	}

	// B -> A: the voucher is burned on B and the escrow released on A.
	packet = ibcTransfer(t, path.EndpointB, sdk.NewCoin(voucher, amount), sender)
	if err := path.RelayPacket(packet); err != nil {
		t.Fatalf("relay B->A: %v", err)
	}
	if got := ibcBalance(chainA, escrow, sdk.DefaultBondDenom); !got.Equal(escrowBefore) {
		t.Fatalf("escrow on A holds %s after the return, want %s", got, escrowBefore)
	}
	if got := ibcBalance(chainA, sender, sdk.DefaultBondDenom); !got.Equal(senderBefore) {
		t.Fatalf("sender on A holds %s after the return, want %s", got, senderBefore)
	}
	if got := ibcBalance(chainB, receiver, voucher); !got.IsZero() {
		t.Fatalf("receiver on B still holds %s %s", got, voucher)
	}
	if supply := chainB.GetSimApp().BankKeeper.GetSupply(chainB.GetContext(), voucher); !supply.Amount.IsZero() {
		t.Fatalf("voucher supply on B is %s after the return", supply)
	}
	if pc := chainB.App.GetIBCKeeper().ChannelKeeper.GetPacketCommitment(chainB.GetContext(), packet.GetSourcePort(), packet.GetSourceChannel(), packet.GetSequence()); len(pc) != 0 {
		t.Fatalf("packet commitment still on B after the acknowledgement: %X", pc)
	}

	// Negative control: the same chains, clients with the SDK's IAVL specs
	// (ibctesting's own CreateClient): the first proof, of A's INIT
	// connection in ConnOpenTry on B, does not verify.
	connsB := len(chainB.App.GetIBCKeeper().ConnectionKeeper.GetAllConnections(chainB.GetContext()))
	iavlPath := ibctesting.NewTransferPath(chainA, chainB)
	if err := iavlPath.EndpointA.CreateClient(); err != nil {
		t.Fatal(err)
	}
	if err := iavlPath.EndpointB.CreateClient(); err != nil {
		t.Fatal(err)
	}
	ibcRequireSpecs(t, iavlPath.EndpointA, commitmenttypes.GetSDKSpecs())
	ibcRequireSpecs(t, iavlPath.EndpointB, commitmenttypes.GetSDKSpecs())
	if err := iavlPath.EndpointA.ConnOpenInit(); err != nil {
		t.Fatalf("ConnOpenInit (no proof): %v", err)
	}
	err := iavlPath.EndpointB.ConnOpenTry()
	if err == nil {
		t.Fatal("ConnOpenTry verified a nomtstore proof with the IAVL proof specs")
	}
	t.Logf("IAVL-spec client, ConnOpenTry: %v", err)
	if !strings.Contains(err.Error(), "failed connection state verification") || !strings.Contains(err.Error(), "proof at index 0") {
		t.Fatalf("ConnOpenTry failed, but not on the store-level proof: %v", err)
	}
	if conns := chainB.App.GetIBCKeeper().ConnectionKeeper.GetAllConnections(chainB.GetContext()); len(conns) != connsB {
		t.Fatalf("B has %d connections after the failed ConnOpenTry, want %d: %v", len(conns), connsB, conns)
	}

	// The same proof, against the same root the IAVL-spec client on B
	// trusts, verifies with nomtstore's specs and not with IAVL's: only
	// the specs differ.
	proofBz, proofHeight := iavlPath.EndpointB.QueryConnectionHandshakeProof()
	var proof commitmenttypes.MerkleProof
	if err := chainB.Codec.Unmarshal(proofBz, &proof); err != nil {
		t.Fatal(err)
	}
	consState, ok := iavlPath.EndpointB.GetConsensusState(proofHeight).(*ibctm.ConsensusState)
	if !ok {
		t.Fatalf("no Tendermint consensus state at %s on B", proofHeight)
	}
	conn, found := chainA.App.GetIBCKeeper().ConnectionKeeper.GetConnection(chainA.GetContext(), iavlPath.EndpointA.ConnectionID)
	if !found {
		t.Fatal("no INIT connection on A")
	}
	merklePath := commitmenttypesv2.NewMerklePath([]byte(exported.StoreKey), host.ConnectionKey(iavlPath.EndpointA.ConnectionID))
	if err := proof.VerifyMembership(ibcNomtSpecs, consState.GetRoot(), merklePath, chainA.Codec.MustMarshal(&conn)); err != nil {
		t.Fatalf("the connection proof does not verify with nomtstore's specs: %v", err)
	}
	if err := proof.VerifyMembership(commitmenttypes.GetSDKSpecs(), consState.GetRoot(), merklePath, chainA.Codec.MustMarshal(&conn)); err == nil {
		t.Fatal("the connection proof verifies with the IAVL specs")
	}
}
