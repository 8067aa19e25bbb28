package app_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"cosmossdk.io/log/v2"
	sdkmath "cosmossdk.io/math"
	abci "github.com/cometbft/cometbft/abci/types"
	cmtmerkle "github.com/cometbft/cometbft/crypto/merkle"
	cmtprotocrypto "github.com/cometbft/cometbft/proto/tendermint/crypto"
	rpcclient "github.com/cometbft/cometbft/rpc/client"
	dbm "github.com/cosmos/cosmos-db"
	pruningtypes "github.com/cosmos/cosmos-sdk/store/v2/pruning/types"
	"github.com/cosmos/cosmos-sdk/store/v2/rootmulti"
	storetypes "github.com/cosmos/cosmos-sdk/store/v2/types"
	ics23 "github.com/cosmos/ics23/go"
	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/cosmos/cosmos-sdk/client/flags"
	"github.com/cosmos/cosmos-sdk/server"
	servertypes "github.com/cosmos/cosmos-sdk/server/types"
	clitestutil "github.com/cosmos/cosmos-sdk/testutil/cli"
	"github.com/cosmos/cosmos-sdk/testutil/network"
	simtestutil "github.com/cosmos/cosmos-sdk/testutil/sims"
	sdk "github.com/cosmos/cosmos-sdk/types"
	"github.com/cosmos/cosmos-sdk/types/address"
	grpctypes "github.com/cosmos/cosmos-sdk/types/grpc"
	moduletestutil "github.com/cosmos/cosmos-sdk/types/module/testutil"
	banktypes "github.com/cosmos/cosmos-sdk/x/bank/types"
	commitmenttypes "github.com/cosmos/ibc-go/v11/modules/core/23-commitment/types"
	commitmenttypesv2 "github.com/cosmos/ibc-go/v11/modules/core/23-commitment/types/v2"
	"github.com/cosmos/ibc-go/v11/testing/simapp"

	"github.com/nomtstore/nomtstore/storev2/cmd/nomtsimd/cmd"
	"github.com/nomtstore/nomtstore/storev2/multistore"
)

// netTxFees is the fee every test transaction offers. The ibc-go test
// simapp's ante chain has no DeductFeeDecorator, so fees are never charged
// (nor min gas prices enforced): balances change by the amounts only.
const (
	netTxFees = "10stake"
	netTxGas  = "400000"
)

// netApps records the app each validator's AppConstructor built, by node
// home: the network keeps its apps unexported, and only validator 0 has an
// RPC client, so the other validators are checked through their apps.
type netApps struct {
	mu     sync.Mutex
	byHome map[string]*simapp.SimApp
}

func (a *netApps) get(t *testing.T, val *network.Validator) *simapp.SimApp {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	app := a.byHome[val.Ctx.Config.RootDir]
	require.NotNil(t, app, "no app was built for %s", val.Moniker)
	return app
}

// store returns the validator's CommitMultiStore, failing unless it is
// nomtstore's.
func (a *netApps) store(t *testing.T, val *network.Validator) *multistore.Store {
	t.Helper()
	cms := a.get(t, val).CommitMultiStore()
	s, ok := cms.(*multistore.Store)
	require.True(t, ok, "%s runs on %T, not *multistore.Store", val.Moniker, cms)
	return s
}

// networkConfig builds the in-process network's configuration for the
// ibc-go simapp on nomtstore (that simapp has no network fixture).
func networkConfig(t *testing.T, numValidators int) (network.Config, *netApps) {
	t.Helper()
	// A throwaway app (rootmulti, in memory) gives the codecs and the
	// default genesis.
	tempApp := simapp.NewSimApp(log.NewNopLogger(), dbm.NewMemDB(), nil, true, simtestutil.NewAppOptionsWithFlagHome(t.TempDir()))
	encoding := moduletestutil.TestEncodingConfig{
		InterfaceRegistry: tempApp.InterfaceRegistry(),
		Codec:             tempApp.AppCodec(),
		TxConfig:          tempApp.TxConfig(),
		Amino:             tempApp.LegacyAmino(),
	}
	genesis := tempApp.DefaultGenesis()
	require.NoError(t, tempApp.Close())

	apps := &netApps{byHome: map[string]*simapp.SimApp{}}
	constructor := func(val network.ValidatorI) servertypes.Application {
		srvCtx, appCfg := val.GetCtx(), val.GetAppConfig()
		home := srvCtx.Config.RootDir
		// CometBFT's own stores (blocks, state) in memory: with several
		// validators, a consensus reactor goroutine can read the block
		// store after network.Cleanup closed it (CometBFT's
		// queryMaj23Routine), and goleveldb panics "leveldb: closed",
		// failing the package after the test passed. The node reads this
		// config after the app is built. The app's store is not affected.
		srvCtx.Config.DBBackend = "memdb"
		// What the SDK's own fixtures pass as baseapp options (pruning,
		// min gas prices, chain id) goes in as app.toml keys: cmd.NewApp
		// reads them through server.DefaultBaseappOptions, and the store
		// option reads the pruning keys and [nomtstore] itself. The chain
		// id is the one network.New put in the server context's viper.
		appOpts := simtestutil.AppOptionsMap{
			flags.FlagHome:                       home,
			flags.FlagChainID:                    srvCtx.Viper.GetString(flags.FlagChainID),
			server.FlagPruning:                   appCfg.Pruning,
			server.FlagPruningKeepRecent:         appCfg.PruningKeepRecent,
			server.FlagPruningInterval:           appCfg.PruningInterval,
			server.FlagMinGasPrices:              appCfg.MinGasPrices,
			server.FlagMempoolMaxTxs:             appCfg.Mempool.MaxTxs,
			server.FlagQueryGasLimit:             appCfg.QueryGasLimit,
			"nomtstore.page-cache-pages":         4096, // 16 MiB per validator
			"nomtstore.pebble-cache-mb":          8,
			server.FlagStateSyncSnapshotInterval: uint64(0),
		}
		node := cmd.NewApp(srvCtx.Logger, dbm.NewMemDB(), appOpts).(cmd.NodeApp)
		apps.mu.Lock()
		apps.byHome[home] = node.SimApp
		apps.mu.Unlock()
		return node
	}

	cfg := network.DefaultConfig(func() network.TestFixture {
		return network.TestFixture{AppConstructor: constructor, GenesisState: genesis, EncodingConfig: encoding}
	})
	cfg.NumValidators = numValidators
	cfg.TimeoutCommit = 500 * time.Millisecond
	// "default" keeps 362880 versions: every height stays queryable, and
	// the store's pruning wiring still runs (interval 10).
	cfg.PruningStrategy = pruningtypes.PruningOptionDefault
	return cfg, apps
}

// requireOnNomtstore checks that every validator's app runs on nomtstore,
// opened in <home>/data/nomtstore with the network's pruning settings, and
// that its store has committed the blocks the chain has. It returns each
// validator's engine version.
func requireOnNomtstore(t *testing.T, net *network.Network, apps *netApps) map[string]int64 {
	t.Helper()
	// network.New returns once validator 0 has a block; the others may
	// not have committed it yet.
	waitAppsAtHeight(t, net, apps, 1)
	versions := map[string]int64{}
	for _, val := range net.Validators {
		s := apps.store(t, val)
		dir := filepath.Join(val.Ctx.Config.RootDir, "data", "nomtstore")
		fi, err := os.Stat(dir)
		require.NoError(t, err, "%s has no store directory", val.Moniker)
		require.True(t, fi.IsDir())
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		require.NotEmpty(t, entries, "%s: empty %s", val.Moniker, dir)

		got := s.GetPruning()
		want := pruningtypes.NewPruningOptions(pruningtypes.PruningDefault)
		require.Equal(t, want.KeepRecent, got.KeepRecent, "%s pruning keep-recent", val.Moniker)
		require.Equal(t, want.Interval, got.Interval, "%s pruning interval", val.Moniker)

		// The chain runs on: the engine commits between the store's reads
		// (its version is ahead of LastCommitID inside Commit).
		before := s.LastCommitID().Version
		v := int64(s.Engine().Version())
		after := s.LastCommitID().Version
		require.GreaterOrEqual(t, v, int64(1), "%s: the engine has no version", val.Moniker)
		require.True(t, before <= v && v <= after+1, "%s: engine version %d, store's %d..%d", val.Moniker, v, before, after)
		versions[val.Moniker] = v
	}
	return versions
}

// waitAppsAtHeight waits until every validator's app has committed h.
func waitAppsAtHeight(t *testing.T, net *network.Network, apps *netApps, h int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, val := range net.Validators {
		app := apps.get(t, val)
		for app.LastBlockHeight() < h {
			if time.Now().After(deadline) {
				t.Fatalf("%s did not commit height %d (at %d)", val.Moniker, h, app.LastBlockHeight())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// execTx runs a tx CLI command from validator 0's client context, in sync
// mode, and waits until the tx is in a block; it returns that height.
func execTx(t *testing.T, val *network.Validator, c *cobra.Command, args ...string) int64 {
	t.Helper()
	args = append(args,
		"--"+flags.FlagBroadcastMode+"="+flags.BroadcastSync,
		"--"+flags.FlagSkipConfirmation,
		"--"+flags.FlagFees+"="+netTxFees,
		"--"+flags.FlagGas+"="+netTxGas,
		"--"+flags.FlagOutput+"=json",
	)
	out, err := clitestutil.ExecTestCLICmd(val.ClientCtx, c, args)
	require.NoError(t, err, "%s %v", c.Use, args)
	var res sdk.TxResponse
	require.NoError(t, val.ClientCtx.Codec.UnmarshalJSON(out.Bytes(), &res), out.String())
	require.Zero(t, res.Code, "CheckTx of %s: %s", c.Use, res.RawLog)
	return waitTx(t, val, res.TxHash)
}

// waitTx waits for a tx to be in a block, checks it succeeded, and returns
// its height.
func waitTx(t *testing.T, val *network.Validator, txHash string) int64 {
	t.Helper()
	hash, err := hex.DecodeString(txHash)
	require.NoError(t, err)
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := val.RPCClient.Tx(context.Background(), hash, false)
		if err == nil {
			require.Zero(t, res.TxResult.Code, "tx %s failed: %s", txHash, res.TxResult.Log)
			return res.Height
		}
		if time.Now().After(deadline) {
			t.Fatalf("tx %s not in a block after 30s: %v", txHash, err)
		}
		time.Sleep(150 * time.Millisecond)
	}
}

// waitHeight waits until validator 0 has a block at h (its header carries
// the app hash of h-1).
func waitHeight(t *testing.T, val *network.Validator, h int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := val.RPCClient.Status(context.Background())
		if err == nil && st.SyncInfo.LatestBlockHeight >= h {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("height %d not reached in 30s (err %v)", h, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// balanceKey is bank's key of a balance: 0x02 | len-prefixed address | denom.
func balanceKey(addr sdk.AccAddress, denom string) []byte {
	key := append([]byte{0x02}, address.MustLengthPrefix(addr)...)
	return append(key, denom...)
}

// decodeBalance decodes a balance value as bank stores it (sdk.IntValue:
// the decimal text of the amount); an absent value is zero.
func decodeBalance(t *testing.T, bz []byte) sdkmath.Int {
	t.Helper()
	if len(bz) == 0 {
		return sdkmath.ZeroInt()
	}
	var amount sdkmath.Int
	require.NoError(t, amount.Unmarshal(bz), "balance value %X", bz)
	return amount
}

// abciStoreQuery queries /store/<name>/key at height through validator 0's
// CometBFT RPC and checks the answer is for that height.
func abciStoreQuery(t *testing.T, val *network.Validator, storeName string, key []byte, height int64, prove bool) abci.ResponseQuery {
	t.Helper()
	res, err := val.RPCClient.ABCIQueryWithOptions(context.Background(), "/store/"+storeName+"/key", key,
		rpcclient.ABCIQueryOptions{Height: height, Prove: prove})
	require.NoError(t, err)
	require.Zero(t, res.Response.Code, "query %s %X at %d: %s", storeName, key, height, res.Response.Log)
	require.Equal(t, height, res.Response.Height, "query answered for another height")
	require.Equal(t, key, res.Response.Key)
	// A height the store does not hold answers an empty value and only
	// says so in the log (as IAVL does): an absence must not be that.
	require.NotContains(t, res.Response.Log, "does not exist", "query %s %X at %d", storeName, key, height)
	return res.Response
}

// abciBalance reads a balance at height with an ABCI store query.
func abciBalance(t *testing.T, val *network.Validator, addr sdk.AccAddress, denom string, height int64) sdkmath.Int {
	t.Helper()
	return decodeBalance(t, abciStoreQuery(t, val, banktypes.StoreKey, balanceKey(addr, denom), height, false).Value)
}

// grpcBalance reads a balance at height through validator 0's gRPC server
// (the x-cosmos-block-height header) and checks the height it answered at.
func grpcBalance(t *testing.T, val *network.Validator, addr sdk.AccAddress, denom string, height int64) sdkmath.Int {
	t.Helper()
	ctx := metadata.AppendToOutgoingContext(context.Background(), grpctypes.GRPCBlockHeightHeader, strconv.FormatInt(height, 10))
	var header metadata.MD
	res, err := banktypes.NewQueryClient(val.ClientCtx).Balance(ctx,
		&banktypes.QueryBalanceRequest{Address: addr.String(), Denom: denom}, grpc.Header(&header))
	require.NoError(t, err)
	require.Equal(t, []string{strconv.FormatInt(height, 10)}, header.Get(grpctypes.GRPCBlockHeightHeader))
	require.Equal(t, denom, res.Balance.Denom)
	return res.Balance.Amount
}

// restBalance reads a balance at height through validator 0's REST API
// (grpc-gateway, x-cosmos-block-height header).
func restBalance(t *testing.T, val *network.Validator, addr sdk.AccAddress, denom string, height int64) sdkmath.Int {
	t.Helper()
	url := fmt.Sprintf("%s/cosmos/bank/v1beta1/balances/%s/by_denom?denom=%s", val.APIAddress, addr, denom)
	var body []byte
	deadline := time.Now().Add(15 * time.Second)
	for { // the API server starts in the background
		req, err := http.NewRequest(http.MethodGet, url, nil)
		require.NoError(t, err)
		req.Header.Set(grpctypes.GRPCBlockHeightHeader, strconv.FormatInt(height, 10))
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			body, err = io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
			require.Equal(t, strconv.FormatInt(height, 10), resp.Header.Get("Grpc-Metadata-"+grpctypes.GRPCBlockHeightHeader), "REST answered for another height")
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("REST %s: %v", url, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var out struct {
		Balance struct {
			Denom  string `json:"denom"`
			Amount string `json:"amount"`
		} `json:"balance"`
	}
	require.NoError(t, json.Unmarshal(body, &out), string(body))
	require.Equal(t, denom, out.Balance.Denom, string(body))
	amount, ok := sdkmath.NewIntFromString(out.Balance.Amount)
	require.True(t, ok, string(body))
	return amount
}

// requireBalance checks a balance at height by ABCI store query, gRPC and
// REST.
func requireBalance(t *testing.T, val *network.Validator, addr sdk.AccAddress, denom string, height int64, want sdkmath.Int) {
	t.Helper()
	require.Equal(t, want.String(), abciBalance(t, val, addr, denom, height).String(), "ABCI: %s %s at %d", addr, denom, height)
	require.Equal(t, want.String(), grpcBalance(t, val, addr, denom, height).String(), "gRPC: %s %s at %d", addr, denom, height)
	require.Equal(t, want.String(), restBalance(t, val, addr, denom, height).String(), "REST: %s %s at %d", addr, denom, height)
}

// appHashAfter returns the app hash that commits to height: the one in
// header height+1.
func appHashAfter(t *testing.T, val *network.Validator, height int64) []byte {
	t.Helper()
	next := height + 1
	waitHeight(t, val, next)
	commit, err := val.RPCClient.Commit(context.Background(), &next)
	require.NoError(t, err)
	require.Equal(t, next, commit.Height)
	return commit.AppHash
}

var proofSpecs = []*ics23.ProofSpec{ics23.SmtSpec, ics23.TendermintSpec}

// verifyProof checks a store query's proof ([ics23:smt, ics23:simple])
// against appHash with ibc-go's MerkleProof and with CometBFT's proof
// runtime: membership of value if it is non-empty, else absence.
func verifyProof(storeName string, key, value []byte, ops *cmtprotocrypto.ProofOps, appHash []byte) error {
	if ops == nil || len(ops.Ops) != 2 {
		return fmt.Errorf("want 2 proof ops, got %v", ops)
	}
	if ops.Ops[0].Type != storetypes.ProofOpSMTCommitment || ops.Ops[1].Type != storetypes.ProofOpSimpleMerkleCommitment {
		return fmt.Errorf("proof op types %s, %s", ops.Ops[0].Type, ops.Ops[1].Type)
	}
	proof, err := commitmenttypes.ConvertProofs(ops)
	if err != nil {
		return err
	}
	path := commitmenttypesv2.NewMerklePath([]byte(storeName), key)
	root := commitmenttypes.NewMerkleRoot(appHash)
	prt := rootmulti.DefaultProofRuntime()
	prt.RegisterOpDecoder(storetypes.ProofOpSMTCommitment, storetypes.CommitmentOpDecoder)
	keyPath := cmtmerkle.KeyPath{}.AppendKey([]byte(storeName), cmtmerkle.KeyEncodingURL).AppendKey(key, cmtmerkle.KeyEncodingURL).String()
	if len(value) > 0 {
		if err := proof.VerifyMembership(proofSpecs, root, path, value); err != nil {
			return fmt.Errorf("ibc-go membership: %w", err)
		}
		if err := prt.VerifyValue(ops, appHash, keyPath, value); err != nil {
			return fmt.Errorf("CometBFT proof runtime value: %w", err)
		}
		return nil
	}
	if err := proof.VerifyNonMembership(proofSpecs, root, path); err != nil {
		return fmt.Errorf("ibc-go non-membership: %w", err)
	}
	if err := prt.VerifyAbsence(ops, appHash, keyPath); err != nil {
		return fmt.Errorf("CometBFT proof runtime absence: %w", err)
	}
	return nil
}
