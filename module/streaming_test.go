package module

import (
	"context"
	"sync"
	"testing"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	dbm "github.com/cosmos/cosmos-db"

	storetypes "cosmossdk.io/store/types"

	"github.com/cosmos/cosmos-sdk/baseapp"
	simtestutil "github.com/cosmos/cosmos-sdk/testutil/sims"

	"github.com/nomtstore/nomtstore/multistore"
)

// pluginListener stands for a streaming plugin (app.toml [streaming.abci]),
// which baseapp installs with SetStreamingManager after the store option.
type pluginListener struct {
	mu               sync.Mutex
	finalized, saved []int64
}

func (p *pluginListener) ListenFinalizeBlock(_ context.Context, req abci.RequestFinalizeBlock, _ abci.ResponseFinalizeBlock) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.finalized = append(p.finalized, req.Height)
	return nil
}

func (p *pluginListener) ListenCommit(context.Context, abci.ResponseCommit, []*storetypes.StoreKVPair) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.saved = append(p.saved, int64(len(p.saved)+1))
	return nil
}

// TestStoreOptionKeepsBlockTimeWithStreaming: an app that configures a
// streaming plugin (or sets its own ABCI listeners) after the store option
// still gets each version's block time in its commit info, and its own
// listeners still hear every block: the store's listener is composed with
// the app's, not replaced by them.
func TestStoreOptionKeepsBlockTimeWithStreaming(t *testing.T) {
	opt, db := StoreOption(t.TempDir(), simtestutil.AppOptionsMap{}, dbm.NewMemDB())
	plugin := &pluginListener{}
	// What baseapp.RegisterStreamingServices does for a plugin: a manager
	// holding the plugin alone.
	streaming := func(app *baseapp.BaseApp) {
		app.SetStreamingManager(storetypes.StreamingManager{ABCIListeners: []storetypes.ABCIListener{plugin}})
	}
	app := newBaseApp(t, opt, baseapp.SetChainID("test"), streaming)
	defer func() { _ = db.Close() }()
	app.MountStores(storetypes.NewKVStoreKey("bank"))
	if err := app.LoadLatestVersion(); err != nil {
		t.Fatal(err)
	}
	if _, err := app.InitChain(&abci.RequestInitChain{ChainId: "test", InitialHeight: 1}); err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for h := int64(1); h <= 3; h++ {
		blockTime := start.Add(time.Duration(h) * 5 * time.Second)
		if _, err := app.FinalizeBlock(&abci.RequestFinalizeBlock{Height: h, Time: blockTime}); err != nil {
			t.Fatal(err)
		}
		if _, err := app.Commit(); err != nil {
			t.Fatal(err)
		}
		info, err := app.CommitMultiStore().(*multistore.Store).GetCommitInfo(h)
		if err != nil {
			t.Fatal(err)
		}
		if !info.Timestamp.Equal(blockTime) {
			t.Fatalf("version %d's commit info has time %v, the block's is %v", h, info.Timestamp, blockTime)
		}
	}
	plugin.mu.Lock()
	defer plugin.mu.Unlock()
	if len(plugin.finalized) != 3 || len(plugin.saved) != 3 {
		t.Fatalf("the app's listener heard %d blocks and %d commits, want 3 and 3", len(plugin.finalized), len(plugin.saved))
	}
}
