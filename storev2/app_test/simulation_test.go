package app_test

// The SDK's randomized simulation (x/simulation, the engine of the SDK
// simapp's TestFullAppSimulation and TestAppStateDeterminism) over the
// ibc-go simapp on nomtstore.
//
// The simulation is driven as the SDK's own legacy sim tests drive it:
// simulation.SimulateFromSeedX with simtestutil.AppStateFn (randomized
// genesis of every module), simtypes.RandomAccounts, every module's
// weighted operations from app.SimulationManager() with the gov proposal
// messages (see simOperations), and the config struct set directly, not
// from the simulator's command-line flags. The chain id is given to the
// app with baseapp.SetChainID, as simsx.NewSimulationAppInstance does.
// Two departures, both for the ibc-go simapp and not for the store:
// simtestutil.BuildSimulationOperations cannot be called (the simapp is
// not a runtime.AppI: no ExportAppStateAndValidators), so simOperations
// does the same; and the legacy (v1beta1) proposal contents are left out,
// because the simapp's gov keeper has no legacy router: a legacy proposal
// that passes panics in MsgExecLegacyContent (nil pointer) on any store.
//
// How the simulation delivers its traffic matters for the restart test:
// SimulateFromSeedX calls FinalizeBlock with a request that carries no
// transactions (only time, proposer, votes and misbehaviour), then the
// operations deliver their transactions one by one with
// BaseApp.SimDeliver / SimTxFinalizeBlock into the block's state, then
// SimWriteState and Commit. So the traffic of a block is its FinalizeBlock
// request plus the transactions delivered after it, in order. A
// simRecorder captures both: an ABCI listener appended to the app's
// streaming manager sees every FinalizeBlock request (and, in
// ListenCommit, reads the committed app hash of every height), and the
// operations get a TxConfig whose TxEncoder records each transaction it
// encodes (every TxEncoder call in the operations is the one SimDeliver /
// SimTxFinalizeBlock makes before running the transaction). The InitChain
// request is rebuilt from what the app-state function returned and the
// consensus params the app stored.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"cosmossdk.io/log/v2"
	abci "github.com/cometbft/cometbft/abci/types"
	dbm "github.com/cosmos/cosmos-db"
	storetypes "github.com/cosmos/cosmos-sdk/store/v2/types"

	"github.com/cosmos/cosmos-sdk/baseapp"
	"github.com/cosmos/cosmos-sdk/client"
	"github.com/cosmos/cosmos-sdk/client/flags"
	"github.com/cosmos/cosmos-sdk/codec"
	simtestutil "github.com/cosmos/cosmos-sdk/testutil/sims"
	sdk "github.com/cosmos/cosmos-sdk/types"
	sdkmodule "github.com/cosmos/cosmos-sdk/types/module"
	simtypes "github.com/cosmos/cosmos-sdk/types/simulation"
	"github.com/cosmos/cosmos-sdk/x/simulation"
	stakingtypes "github.com/cosmos/cosmos-sdk/x/staking/types"
	"github.com/cosmos/ibc-go/v11/testing/simapp"

	"github.com/nomtstore/nomtstore/storev2/module"
	"github.com/nomtstore/nomtstore/storev2/multistore"
)

const (
	simChainID = "nomt-sim"
	simSeed    = 11
	// simGenesisUnix is the simulation's genesis time (the SDK's flag
	// defaults to the wall clock, which would make runs differ).
	simGenesisUnix = 1_767_225_600 // 2026-01-01T00:00:00Z
)

// simConfig is the simulation config, set directly rather than from the
// simulator's flags (simcli.NewConfigFromFlags): the same seed, genesis
// time and sizes for every run.
func simConfig() simtypes.Config {
	numBlocks, blockSize := 300, 25
	if testing.Short() {
		numBlocks, blockSize = 30, 15
	}
	return simtypes.Config{
		Seed:               simSeed,
		InitialBlockHeight: 1,
		GenesisTime:        simGenesisUnix,
		NumBlocks:          numBlocks,
		BlockSize:          blockSize,
		ChainID:            simChainID,
		Commit:             true,
		Lean:               true,
		DBBackend:          "memdb",
	}
}

// simBlock is one block of simulation traffic: the FinalizeBlock request,
// the transactions delivered after it, and the app hash committed.
type simBlock struct {
	req  abci.RequestFinalizeBlock
	txs  [][]byte
	hash []byte
}

// simRecorder records a simulation's traffic (see the file comment). It
// is an ABCI listener of the app and the recorder of its operations'
// TxConfig.
type simRecorder struct {
	app    *baseapp.BaseApp
	init   abci.RequestInitChain
	blocks []*simBlock
	err    error
}

var _ storetypes.ABCIListener = (*simRecorder)(nil)

// option is the baseapp option that makes r a listener of the app. It
// appends to the streaming manager, keeping nomtstore's own listener
// (module.StoreOption installs one), so it must come after the store
// option.
func (r *simRecorder) option() func(*baseapp.BaseApp) {
	return func(app *baseapp.BaseApp) {
		r.app = app
		sm := app.StreamingManager()
		sm.ABCIListeners = append(slices.Clone(sm.ABCIListeners), r)
		app.SetStreamingManager(sm)
	}
}

func (r *simRecorder) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, args...)
	}
}

func (r *simRecorder) ListenFinalizeBlock(ctx context.Context, req abci.RequestFinalizeBlock, _ abci.ResponseFinalizeBlock) error {
	if len(r.blocks) == 0 {
		// The consensus params InitChain stored (the simulation draws
		// them at random): nothing changes them in the first block's
		// begin and end blockers, and no transaction ran yet.
		cp := r.app.GetConsensusParams(sdk.UnwrapSDKContext(ctx))
		r.init.ConsensusParams = &cp
	} else if last := r.blocks[len(r.blocks)-1]; last.hash == nil {
		r.fail("FinalizeBlock %d before the Commit of %d", req.Height, last.req.Height)
	}
	r.blocks = append(r.blocks, &simBlock{req: req})
	return nil
}

func (r *simRecorder) ListenCommit(_ context.Context, _ abci.ResponseCommit, _ []*storetypes.StoreKVPair) error {
	if len(r.blocks) == 0 {
		r.fail("Commit before any FinalizeBlock")
		return nil
	}
	b := r.blocks[len(r.blocks)-1]
	id := r.app.LastCommitID()
	if id.Version != b.req.Height {
		r.fail("Commit of height %d committed version %d", b.req.Height, id.Version)
	}
	b.hash = bytes.Clone(id.Hash)
	return nil
}

// tx records a transaction the operations are delivering.
func (r *simRecorder) tx(bz []byte) {
	if len(r.blocks) == 0 || r.blocks[len(r.blocks)-1].hash != nil {
		r.fail("a transaction delivered outside a block")
		return
	}
	b := r.blocks[len(r.blocks)-1]
	b.txs = append(b.txs, bytes.Clone(bz))
}

func (r *simRecorder) numTxs() int {
	n := 0
	for _, b := range r.blocks {
		n += len(b.txs)
	}
	return n
}

// simRecordingTxConfig is the app's TxConfig with an encoder that records
// what it encodes: the operations encode a transaction exactly when they
// deliver it (SimDeliver / SimTxFinalizeBlock take the encoder).
type simRecordingTxConfig struct {
	client.TxConfig
	rec *simRecorder
}

func (c simRecordingTxConfig) TxEncoder() sdk.TxEncoder {
	enc := c.TxConfig.TxEncoder()
	return func(tx sdk.Tx) ([]byte, error) {
		bz, err := enc(tx)
		if err == nil {
			c.rec.tx(bz)
		}
		return bz, err
	}
}

// simNewApp builds the ibc-go simapp: on nomtstore in home, or, with an
// empty home, on the SDK's default store (rootmulti with IAVL) over a
// memory database. opts come after the store option.
func simNewApp(t testing.TB, home string, opts ...func(*baseapp.BaseApp)) *simapp.SimApp {
	t.Helper()
	appOpts := simtestutil.AppOptionsMap{}
	var db dbm.DB = dbm.NewMemDB()
	var all []func(*baseapp.BaseApp)
	if home != "" {
		appOpts[flags.FlagHome] = home
		var storeOpt func(*baseapp.BaseApp)
		storeOpt, db = module.StoreOption(home, appOpts, db)
		all = append(all, storeOpt)
	}
	all = append(all, baseapp.SetChainID(simChainID))
	all = append(all, opts...)
	app := simapp.NewSimApp(log.NewNopLogger(), db, nil, true, appOpts, all...)
	_, onNomt := app.CommitMultiStore().(*multistore.Store)
	if onNomt != (home != "") {
		t.Fatalf("the app runs on %T", app.CommitMultiStore())
	}
	return app
}

// simCloseApp closes the app and (through its database) its store.
func simCloseApp(t testing.TB, app *simapp.SimApp) {
	t.Helper()
	if err := app.Close(); err != nil {
		t.Fatal(err)
	}
}

// simOperations is simtestutil.BuildSimulationOperations for the ibc-go
// simapp, which is not a runtime.AppI: every module's weighted operations
// with default weights (no params file), and the gov proposal messages of
// every module. Unlike it, no legacy proposal contents: the simapp's gov
// keeper has no legacy router, so executing one panics (see the top).
func simOperations(app *simapp.SimApp, txCfg client.TxConfig) simulation.WeightedOperations {
	simState := sdkmodule.SimulationState{
		AppParams: make(simtypes.AppParams),
		Cdc:       app.AppCodec(),
		TxConfig:  txCfg,
		BondDenom: sdk.DefaultBondDenom,
	}
	sm := app.SimulationManager()
	simState.ProposalMsgs = sm.GetProposalMsgs(simState)
	return sm.WeightedOperations(simState)
}

// simKV is one key/value pair of a module store.
type simKV struct{ key, value []byte }

// simResult is what a simulation run leaves: its traffic, the app hash
// at every height, and the full content of every module store at the end.
type simResult struct {
	store    string // the app's CommitMultiStore type
	cfg      simtypes.Config
	init     abci.RequestInitChain
	blocks   []*simBlock
	numTxs   int
	contents map[string][]simKV
	last     storetypes.CommitID
	cdc      codec.Codec
}

// simRun runs the simulation of cfg on a fresh app (nomtstore in home, or
// IAVL if home is empty), and closes the app.
func simRun(t testing.TB, home string, cfg simtypes.Config) *simResult {
	t.Helper()
	rec := &simRecorder{}
	app := simNewApp(t, home, rec.option())
	defer simCloseApp(t, app)

	cdc := app.AppCodec()
	inner := simtestutil.AppStateFn(cdc, app.SimulationManager(), app.DefaultGenesis())
	appStateFn := func(r *rand.Rand, accs []simtypes.Account, config simtypes.Config) (json.RawMessage, []simtypes.Account, string, time.Time) {
		state, accs, chainID, genesisTime := inner(r, accs, config)
		rec.init = abci.RequestInitChain{AppStateBytes: state, ChainId: chainID, Time: genesisTime}
		return state, accs, chainID, genesisTime
	}
	txCfg := simRecordingTxConfig{TxConfig: app.TxConfig(), rec: rec}
	ops := simOperations(app, txCfg)

	start := time.Now()
	_, _, err := simulation.SimulateFromSeedX(t, log.NewNopLogger(), io.Discard, app.GetBaseApp(), appStateFn,
		simtypes.RandomAccounts, ops, simapp.BlockedAddresses(), cfg, cdc, &simulation.DummyLogWriter{})
	if err != nil {
		t.Fatal(err)
	}
	if rec.err != nil {
		t.Fatalf("recording the simulation: %v", rec.err)
	}
	res := &simResult{
		store:  fmt.Sprintf("%T", app.CommitMultiStore()),
		cfg:    cfg,
		init:   rec.init,
		blocks: rec.blocks,
		numTxs: rec.numTxs(),
		last:   app.LastCommitID(),
		cdc:    cdc,
	}
	if got := int64(len(res.blocks)); got != int64(cfg.NumBlocks) || res.last.Version != got {
		t.Fatalf("%d blocks recorded, last commit %d, %d simulated", got, res.last.Version, cfg.NumBlocks)
	}
	if last := res.blocks[len(res.blocks)-1]; !bytes.Equal(last.hash, res.last.Hash) {
		t.Fatalf("last block's recorded hash %X, the app's %X", last.hash, res.last.Hash)
	}
	res.contents = simStoreContents(app)
	t.Logf("simulation on %s: %d blocks, %d txs, app hash %X, %s", res.store, len(res.blocks), res.numTxs, res.last.Hash, time.Since(start).Round(time.Millisecond))
	return res
}

// simStoreContents is every KV module store's full content at the app's
// latest committed state, read through a cache multistore as the app
// reads it.
func simStoreContents(app *simapp.SimApp) map[string][]simKV {
	cms := app.CommitMultiStore().CacheMultiStore()
	out := map[string][]simKV{}
	for _, key := range app.GetStoreKeys() {
		kvKey, ok := key.(*storetypes.KVStoreKey)
		if !ok {
			continue
		}
		var kvs []simKV
		it := cms.GetKVStore(kvKey).Iterator(nil, nil)
		for ; it.Valid(); it.Next() {
			kvs = append(kvs, simKV{bytes.Clone(it.Key()), cloneValue(it.Value())})
		}
		// (cachekv's merge iterator reports "invalid" as its Error once
		// exhausted, so there is no error to check after the loop.)
		_ = it.Close()
		out[kvKey.Name()] = kvs
	}
	return out
}

// cloneValue copies v keeping nil and empty apart.
func cloneValue(v []byte) []byte {
	if v == nil {
		return nil
	}
	return append([]byte{}, v...)
}

// simBaseline is the simulation of simConfig on nomtstore, run once and
// shared by the tests (each test still runs it if it is the first).
var simBaseline struct {
	sync.Mutex
	res *simResult
}

func simBaselineRun(t *testing.T) *simResult {
	t.Helper()
	simBaseline.Lock()
	defer simBaseline.Unlock()
	// The config depends on -short only, which does not change within a
	// test binary; the check is for safety.
	if simBaseline.res == nil || !reflect.DeepEqual(simBaseline.res.cfg, simConfig()) {
		res := simRun(t, t.TempDir(), simConfig())
		if res.numTxs < len(res.blocks) {
			t.Fatalf("only %d transactions in %d blocks: the simulation barely ran", res.numTxs, len(res.blocks))
		}
		t.Logf("messages delivered: %s", simMsgCounts(t, res))
		simBaseline.res = res
	}
	return simBaseline.res
}

// simMsgCounts counts the messages of a run's transactions by type.
func simMsgCounts(t *testing.T, res *simResult) string {
	t.Helper()
	dec := simapp.NewSimApp(log.NewNopLogger(), dbm.NewMemDB(), nil, false, simtestutil.AppOptionsMap{}).TxConfig().TxDecoder()
	counts := map[string]int{}
	for _, b := range res.blocks {
		for _, bz := range b.txs {
			tx, err := dec(bz)
			if err != nil {
				t.Fatalf("decoding a recorded tx: %v", err)
			}
			for _, msg := range tx.GetMsgs() {
				counts[sdk.MsgTypeURL(msg)]++
			}
		}
	}
	var names []string
	for name := range counts {
		names = append(names, name)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, name := range names {
		fmt.Fprintf(&b, " %s=%d", name, counts[name])
	}
	return b.String()
}

// TestSimulationDeterminismOnNomtstore: the SDK simulation, run twice with
// the same seed in two fresh homes on nomtstore, commits the same app hash
// at every height and the same traffic.
func TestSimulationDeterminismOnNomtstore(t *testing.T) {
	a := simBaselineRun(t)
	b := simRun(t, t.TempDir(), simConfig())
	simSameTraffic(t, a, b)
	for i := range a.blocks {
		if ba, bb := a.blocks[i], b.blocks[i]; !bytes.Equal(ba.hash, bb.hash) {
			t.Fatalf("height %d: app hash %X, then %X", ba.req.Height, ba.hash, bb.hash)
		}
	}
	if a.last.Version != b.last.Version || !bytes.Equal(a.last.Hash, b.last.Hash) {
		t.Fatalf("last commit %d %X, then %d %X", a.last.Version, a.last.Hash, b.last.Version, b.last.Hash)
	}
	if bytes.Equal(a.blocks[0].hash, a.last.Hash) {
		t.Fatal("the app hash did not move")
	}
	if d, _ := simDiffContents(a, b, nil); d != "" {
		t.Fatal(d)
	}
}

// TestSimulationMatchesIAVL: the same simulation (seed, params, genesis)
// on the SDK's default store, rootmulti with IAVL, and on nomtstore leaves
// every module store with the same content, key by key. App hashes differ
// by design (different trees) and are not compared; the one place the
// state holds an app hash, staking's historical info (the block header,
// whose AppHash is the previous block's), is compared with that field
// cleared.
func TestSimulationMatchesIAVL(t *testing.T) {
	nomt := simBaselineRun(t)
	iavl := simRun(t, "", simConfig())
	if iavl.store == nomt.store {
		t.Fatalf("both runs on %s", iavl.store)
	}
	if !bytes.Equal(iavl.init.AppStateBytes, nomt.init.AppStateBytes) || iavl.init.ConsensusParams.String() != nomt.init.ConsensusParams.String() {
		t.Fatal("the two runs did not start from the same genesis")
	}
	// The same traffic, block by block: a state difference during the
	// run would change the operations the simulation draws.
	simSameTraffic(t, iavl, nomt)
	d, besidesAppHash := simDiffContents(iavl, nomt, nomt.cdc)
	if d != "" {
		t.Fatal(d)
	}
	keys, empty := 0, 0
	for _, kvs := range nomt.contents {
		keys += len(kvs)
		for _, kv := range kvs {
			if len(kv.value) == 0 {
				empty++
			}
		}
	}
	t.Logf("%d stores, %d keys (%d empty values) equal on IAVL and nomtstore; %d of staking's historical infos equal besides the header's app hash",
		len(nomt.contents), keys, empty, besidesAppHash)
}

// simSameTraffic fails unless two runs sent the same blocks and
// transactions: the operations the simulation draws read the state, so a
// state that differed during the run would show here first.
func simSameTraffic(t *testing.T, a, b *simResult) {
	t.Helper()
	if len(a.blocks) != len(b.blocks) {
		t.Fatalf("%d blocks on %s, %d on %s", len(a.blocks), a.store, len(b.blocks), b.store)
	}
	for i := range a.blocks {
		ba, bb := a.blocks[i], b.blocks[i]
		if !reflect.DeepEqual(ba.req, bb.req) {
			t.Fatalf("height %d: the FinalizeBlock requests differ between %s and %s", ba.req.Height, a.store, b.store)
		}
		if len(ba.txs) != len(bb.txs) {
			t.Fatalf("height %d: %d txs on %s, %d on %s", ba.req.Height, len(ba.txs), a.store, len(bb.txs), b.store)
		}
		for j := range ba.txs {
			if !bytes.Equal(ba.txs[j], bb.txs[j]) {
				t.Fatalf("height %d: tx %d differs between %s and %s", ba.req.Height, j, a.store, b.store)
			}
		}
	}
}

// simDiffContents compares two runs' final store contents store by store,
// key by key, and describes the first difference ("" if none). With a
// codec (comparing different stores), values equal besides an app hash
// (simEqualBesidesAppHash) count as equal, and are counted; without one,
// values must be equal byte for byte.
func simDiffContents(a, b *simResult, cdc codec.Codec) (diff string, besidesAppHash int) {
	var names []string
	for name := range a.contents {
		names = append(names, name)
	}
	for name := range b.contents {
		if _, ok := a.contents[name]; !ok {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		ka, okA := a.contents[name]
		kb, okB := b.contents[name]
		if !okA || !okB {
			return fmt.Sprintf("store %s: on %s %v, on %s %v", name, a.store, okA, b.store, okB), besidesAppHash
		}
		i, j := 0, 0
		for i < len(ka) || j < len(kb) {
			switch {
			case j == len(kb) || (i < len(ka) && bytes.Compare(ka[i].key, kb[j].key) < 0):
				return fmt.Sprintf("store %s key %X: on %s %X, missing on %s", name, ka[i].key, a.store, ka[i].value, b.store), besidesAppHash
			case i == len(ka) || bytes.Compare(ka[i].key, kb[j].key) > 0:
				return fmt.Sprintf("store %s key %X: missing on %s, on %s %X", name, kb[j].key, a.store, b.store, kb[j].value), besidesAppHash
			}
			va, vb := ka[i].value, kb[j].value
			if (va == nil) != (vb == nil) {
				return fmt.Sprintf("store %s key %X: value nil on one store only: on %s %#v, on %s %#v", name, ka[i].key, a.store, va, b.store, vb), besidesAppHash
			}
			if !bytes.Equal(va, vb) {
				if cdc == nil || !simEqualBesidesAppHash(cdc, name, ka[i].key, va, vb) {
					return fmt.Sprintf("store %s key %X: on %s %X, on %s %X", name, ka[i].key, a.store, va, b.store, vb), besidesAppHash
				}
				besidesAppHash++
			}
			i++
			j++
		}
	}
	return "", besidesAppHash
}

// simEqualBesidesAppHash reports whether two values of a key of staking's
// historical info differ only in the header's AppHash, which is the
// previous block's app hash and so depends on the store's tree.
func simEqualBesidesAppHash(cdc codec.Codec, store string, key, va, vb []byte) bool {
	if store != stakingtypes.StoreKey || !bytes.HasPrefix(key, stakingtypes.HistoricalInfoKey) {
		return false
	}
	var ha, hb stakingtypes.HistoricalInfo
	if cdc.Unmarshal(va, &ha) != nil || cdc.Unmarshal(vb, &hb) != nil {
		return false
	}
	if len(ha.Header.AppHash) == 0 || len(hb.Header.AppHash) == 0 {
		return false
	}
	ha.Header.AppHash, hb.Header.AppHash = nil, nil
	ba, errA := cdc.Marshal(&ha)
	bb, errB := cdc.Marshal(&hb)
	return errA == nil && errB == nil && bytes.Equal(ba, bb)
}

// TestSimulationRestartInTheMiddle: the simulation's traffic replayed into
// a fresh nomtstore app that is closed and reopened from disk halfway
// commits the same app hash at every height as the simulation did.
//
// SimulateFromSeedX runs all its blocks in one call over one app, and two
// calls of NumBlocks/2 would draw different random numbers, so the restart
// cannot happen inside the simulation. Instead the simulation's traffic
// is recorded (see simRecorder: InitChain, every FinalizeBlock request and
// the transactions delivered after it) and replayed through ABCI exactly
// as the simulation sent it: InitChain, then per height FinalizeBlock,
// SimDeliver of each transaction, SimWriteState, Commit. At the middle
// height the app is closed (closing the store) and a new SimApp is built
// over the same home, loading the store from disk, as a node restart
// does; the replay then continues. Every height's app hash must equal the
// recorded one. Should it not, a replay without the restart tells whether
// the restart or the replay is at fault.
func TestSimulationRestartInTheMiddle(t *testing.T) {
	base := simBaselineRun(t)
	mid := int64(len(base.blocks) / 2)
	if h, err := simReplay(t, base, mid); err != nil {
		if _, err2 := simReplay(t, base, 0); err2 != nil {
			t.Fatalf("the replay without restart also diverges (%v): the recorded traffic is not faithful; with restart at %d: %v", err2, mid, err)
		}
		t.Fatalf("restart at %d: %v (the replay without restart matches)", mid, err)
	} else if h != base.last.Version {
		t.Fatalf("replayed up to %d of %d", h, base.last.Version)
	}
	t.Logf("%d blocks, %d txs replayed with a restart after height %d: the same app hash at every height", len(base.blocks), base.numTxs, mid)
}

// simReplay replays base's traffic into a fresh nomtstore app, closing and
// reopening it after the commit of restartAt (0: never). It returns the
// last height replayed, and the first divergence from base's app hashes.
func simReplay(t *testing.T, base *simResult, restartAt int64) (int64, error) {
	t.Helper()
	home := t.TempDir()
	app := simNewApp(t, home)
	defer func() { simCloseApp(t, app) }()
	init := base.init
	if _, err := app.InitChain(&init); err != nil {
		return 0, fmt.Errorf("InitChain: %w", err)
	}
	txCfg := app.TxConfig()
	var height int64
	for _, b := range base.blocks {
		height = b.req.Height
		req := b.req
		if _, err := app.FinalizeBlock(&req); err != nil {
			return height, fmt.Errorf("FinalizeBlock %d: %w", height, err)
		}
		for i, bz := range b.txs {
			tx, err := txCfg.TxDecoder()(bz)
			if err != nil {
				return height, fmt.Errorf("height %d tx %d: decoding: %w", height, i, err)
			}
			// The simulation's operations fail the run on a failed
			// delivery, but a few deliver transactions expected to fail
			// (unjailing a validator that cannot be): such a failure
			// changes the state all the same (fees, sequence), and the
			// app hash comparison covers it.
			_, _, _ = app.SimDeliver(txCfg.TxEncoder(), tx)
		}
		app.SimWriteState()
		if _, err := app.Commit(); err != nil {
			return height, fmt.Errorf("Commit %d: %w", height, err)
		}
		if got := app.LastCommitID(); got.Version != height || !bytes.Equal(got.Hash, b.hash) {
			return height, fmt.Errorf("height %d: replay committed %d %X, the simulation %X", height, got.Version, got.Hash, b.hash)
		}
		if height == restartAt {
			before := &simResult{store: "the app before closing", last: app.LastCommitID(), contents: simStoreContents(app)}
			simCloseApp(t, app)
			app = simNewApp(t, home)
			after := &simResult{store: "the reopened app", last: app.LastCommitID(), contents: simStoreContents(app)}
			if after.last.Version != before.last.Version || !bytes.Equal(after.last.Hash, before.last.Hash) {
				return height, fmt.Errorf("reopened at %d %X, closed at %d %X", after.last.Version, after.last.Hash, before.last.Version, before.last.Hash)
			}
			// The reopened store holds, read from disk, the content the
			// closed one had.
			if d, _ := simDiffContents(before, after, nil); d != "" {
				return height, fmt.Errorf("after reopening at %d: %s", height, d)
			}
		}
	}
	end := &simResult{store: "the replay", contents: simStoreContents(app)}
	if d, _ := simDiffContents(base, end, nil); d != "" {
		return height, fmt.Errorf("at the end: %s", d)
	}
	return height, nil
}
