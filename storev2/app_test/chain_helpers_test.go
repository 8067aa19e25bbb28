package app_test

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"testing"
	"time"

	"cosmossdk.io/log/v2"
	sdkmath "cosmossdk.io/math"
	abci "github.com/cometbft/cometbft/abci/types"
	"github.com/cometbft/cometbft/crypto/ed25519"
	cmttypes "github.com/cometbft/cometbft/types"
	dbm "github.com/cosmos/cosmos-db"

	"github.com/cosmos/cosmos-sdk/baseapp"
	"github.com/cosmos/cosmos-sdk/client/flags"
	"github.com/cosmos/cosmos-sdk/crypto/keys/secp256k1"
	simtestutil "github.com/cosmos/cosmos-sdk/testutil/sims"
	sdk "github.com/cosmos/cosmos-sdk/types"
	authtypes "github.com/cosmos/cosmos-sdk/x/auth/types"
	banktypes "github.com/cosmos/cosmos-sdk/x/bank/types"
	stakingtypes "github.com/cosmos/cosmos-sdk/x/staking/types"
	"github.com/cosmos/ibc-go/v11/testing/simapp"

	"github.com/nomtstore/nomtstore/storev2/module"
	"github.com/nomtstore/nomtstore/storev2/multistore"
)

const testChainID = "nomt-test"

// account is a genesis account the chain driver signs for.
type account struct {
	priv   *secp256k1.PrivKey
	addr   sdk.AccAddress
	number uint64
	seq    uint64
}

// testChain drives a simapp on nomtstore through ABCI, deterministically:
// fixed keys, fixed block times, transactions derived from the height.
type testChain struct {
	t        testing.TB
	home     string
	appOpts  simtestutil.AppOptionsMap
	app      *simapp.SimApp
	db       dbm.DB
	valSet   *cmttypes.ValidatorSet
	accounts []*account
	genesis  []byte
	// hashes[h] is the app hash committed at height h.
	hashes map[int64][]byte
	// extraOpts follow the store option when the app is built, and
	// beforeLoad, if set, runs on the app before it loads its latest
	// version (upgrade handlers are registered there).
	extraOpts  []func(*baseapp.BaseApp)
	beforeLoad func(*simapp.SimApp)
}

var genesisTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// newTestChain creates a chain in home with n funded accounts and one
// validator, and runs InitChain.
func newTestChain(t testing.TB, home string, n int, appOpts simtestutil.AppOptionsMap) *testChain {
	t.Helper()
	if appOpts == nil {
		appOpts = simtestutil.AppOptionsMap{}
	}
	appOpts[flags.FlagHome] = home
	c := &testChain{t: t, home: home, appOpts: appOpts, hashes: map[int64][]byte{}}
	valKey := ed25519.GenPrivKeyFromSecret([]byte("validator"))
	c.valSet = cmttypes.NewValidatorSet([]*cmttypes.Validator{cmttypes.NewValidator(valKey.PubKey(), 1)})

	var genAccs []authtypes.GenesisAccount
	var balances []banktypes.Balance
	for i := range n {
		priv := secp256k1.GenPrivKeyFromSecret(fmt.Appendf(nil, "account %d", i))
		acc := &account{priv: priv, addr: sdk.AccAddress(priv.PubKey().Address()), number: uint64(i)}
		c.accounts = append(c.accounts, acc)
		genAccs = append(genAccs, authtypes.NewBaseAccount(acc.addr, priv.PubKey(), uint64(i), 0))
		balances = append(balances, banktypes.Balance{
			Address: acc.addr.String(),
			Coins:   sdk.NewCoins(sdk.NewCoin(sdk.DefaultBondDenom, sdkmath.NewInt(1_000_000_000))),
		})
	}
	c.open()
	state, err := simtestutil.GenesisStateWithValSet(c.app.AppCodec(), c.app.DefaultGenesis(), c.valSet, genAccs, balances...)
	if err != nil {
		t.Fatal(err)
	}
	if c.genesis, err = json.Marshal(state); err != nil {
		t.Fatal(err)
	}
	c.initChain()
	return c
}

// initChain runs InitChain with the chain's genesis.
func (c *testChain) initChain() {
	c.t.Helper()
	if _, err := c.app.InitChain(&abci.RequestInitChain{
		ChainId:         testChainID,
		Validators:      []abci.ValidatorUpdate{},
		ConsensusParams: simtestutil.DefaultConsensusParams,
		AppStateBytes:   c.genesis,
		InitialHeight:   1,
		Time:            genesisTime,
	}); err != nil {
		c.t.Fatal(err)
	}
}

// open builds the app over the store in c.home (reopening it from disk).
func (c *testChain) open() {
	storeOpt, db := module.StoreOption(c.home, c.appOpts, dbm.NewMemDB())
	c.db = db
	opts := append([]func(*baseapp.BaseApp){storeOpt, baseapp.SetChainID(testChainID)}, c.extraOpts...)
	c.app = simapp.NewSimApp(log.NewNopLogger(), db, nil, c.beforeLoad == nil, c.appOpts, opts...)
	if c.beforeLoad != nil {
		c.beforeLoad(c.app)
		if err := c.app.LoadLatestVersion(); err != nil {
			c.t.Fatal(err)
		}
	}
	if _, ok := c.app.CommitMultiStore().(*multistore.Store); !ok {
		c.t.Fatalf("the app runs on %T, not nomtstore", c.app.CommitMultiStore())
	}
}

// close closes the app and its store, as the node does on shutdown.
func (c *testChain) close() {
	if err := c.app.Close(); err != nil {
		c.t.Fatal(err)
	}
}

// reopen closes the app and builds a new one from what is on disk.
func (c *testChain) reopen() {
	c.close()
	c.open()
	c.loadAccountNumbers()
}

func (c *testChain) store() *multistore.Store {
	return c.app.CommitMultiStore().(*multistore.Store)
}

func (c *testChain) loadAccountNumbers() {
	ctx := c.app.NewContext(true) // the check state: the committed state as loaded
	for _, acc := range c.accounts {
		a := c.app.AccountKeeper.GetAccount(ctx, acc.addr)
		if a == nil {
			c.t.Fatalf("account %s not in state", acc.addr)
		}
		acc.number, acc.seq = a.GetAccountNumber(), a.GetSequence()
	}
}

// tx signs msgs from acc; the signature's randomness is fixed by seed.
func (c *testChain) tx(acc *account, seed int64, msgs ...sdk.Msg) []byte {
	c.t.Helper()
	txCfg := c.app.TxConfig()
	tx, err := simtestutil.GenSignedMockTx(rand.New(rand.NewSource(seed)), txCfg, msgs,
		sdk.NewCoins(), simtestutil.DefaultGenTxGas, testChainID, []uint64{acc.number}, []uint64{acc.seq}, acc.priv)
	if err != nil {
		c.t.Fatal(err)
	}
	bz, err := txCfg.TxEncoder()(tx)
	if err != nil {
		c.t.Fatal(err)
	}
	acc.seq++
	return bz
}

// blockTxs is the deterministic traffic of a height: transfers between
// the accounts, and a delegation every fifth block.
func (c *testChain) blockTxs(height int64) [][]byte {
	var txs [][]byte
	n := int64(len(c.accounts))
	for i := range int64(2) {
		from := c.accounts[(height+i)%n]
		to := c.accounts[(height+i+1)%n]
		amount := sdk.NewCoins(sdk.NewCoin(sdk.DefaultBondDenom, sdkmath.NewInt(height*10+i+1)))
		txs = append(txs, c.tx(from, height*100+i, banktypes.NewMsgSend(from.addr, to.addr, amount)))
	}
	if height%5 == 0 {
		from := c.accounts[height%n]
		val := sdk.ValAddress(c.valSet.Validators[0].Address).String()
		msg := stakingtypes.NewMsgDelegate(from.addr.String(), val, sdk.NewCoin(sdk.DefaultBondDenom, sdkmath.NewInt(height)))
		txs = append(txs, c.tx(from, height*100+99, msg))
	}
	return txs
}

// nextBlock finalizes and commits the next height with txs; every tx
// must succeed. It returns the app hash.
func (c *testChain) nextBlock(txs [][]byte) []byte {
	c.t.Helper()
	height := c.app.LastBlockHeight() + 1
	res, err := c.app.FinalizeBlock(&abci.RequestFinalizeBlock{
		Height:             height,
		Time:               genesisTime.Add(time.Duration(height) * 5 * time.Second),
		Txs:                txs,
		NextValidatorsHash: c.valSet.Hash(),
		ProposerAddress:    c.valSet.Proposer.Address,
	})
	if err != nil {
		c.t.Fatalf("finalize %d: %v", height, err)
	}
	for i, r := range res.TxResults {
		if r.Code != 0 {
			c.t.Fatalf("height %d tx %d failed: %s", height, i, r.Log)
		}
	}
	if _, err := c.app.Commit(); err != nil {
		c.t.Fatalf("commit %d: %v", height, err)
	}
	if got := c.app.LastCommitID(); got.Version != height || string(got.Hash) != string(res.AppHash) {
		c.t.Fatalf("height %d: committed %d %X, finalize said %X", height, got.Version, got.Hash, res.AppHash)
	}
	c.hashes[height] = res.AppHash
	return res.AppHash
}
