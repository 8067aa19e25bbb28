package app_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	storetypes "github.com/cosmos/cosmos-sdk/store/v2/types"
	upgradetypes "github.com/cosmos/cosmos-sdk/x/upgrade/types"

	"github.com/cosmos/cosmos-sdk/baseapp"
	sdk "github.com/cosmos/cosmos-sdk/types"
	"github.com/cosmos/cosmos-sdk/types/module"
	"github.com/cosmos/ibc-go/v11/testing/simapp"
)

// mountStores is a baseapp option mounting extra IAVL-type stores (it
// must follow the store option, which installs the CommitMultiStore).
func mountStores(keys ...*storetypes.KVStoreKey) func(*baseapp.BaseApp) {
	return func(app *baseapp.BaseApp) {
		for _, k := range keys {
			app.MountStore(k, storetypes.StoreTypeIAVL)
		}
	}
}

func storeNames(info *storetypes.CommitInfo) string {
	var names []string
	for _, si := range info.StoreInfos {
		names = append(names, si.Name)
	}
	return strings.Join(names, ",")
}

// TestStoreUpgrades: an upgrade handler at an upgrade height with the
// SDK's upgrade store loader adds a store, renames one and deletes one.
// The chain halts at the height on the old binary, restarts on the new one
// with the loader, and continues; after another restart it keeps going;
// queries at heights before the upgrade still answer with proofs.
func TestStoreUpgrades(t *testing.T) {
	legacy, doomed := storetypes.NewKVStoreKey("legacy"), storetypes.NewKVStoreKey("doomed")
	renamed, added := storetypes.NewKVStoreKey("renamed"), storetypes.NewKVStoreKey("added")
	home := t.TempDir()
	c := newTestChain(t, home, 4, nil)
	c.close()
	c.extraOpts = []func(*baseapp.BaseApp){mountStores(legacy, doomed)}
	c.open()
	// newTestChain ran InitChain on an app without the extra stores and
	// nothing is committed yet: a fresh InitChain on this app is fine.
	c.initChain()

	const upgradeHeight = 8
	for h := int64(1); h < upgradeHeight; h++ {
		if h == 2 {
			for i := range 20 {
				c.store().GetKVStore(legacy).Set(fmt.Appendf(nil, "legacy-%02d", i), fmt.Appendf(nil, "v%d", i))
				c.store().GetKVStore(doomed).Set(fmt.Appendf(nil, "doomed-%02d", i), []byte("x"))
			}
		}
		if h == 3 {
			// Written straight into the multistore between two blocks (a context of
			// NewNextBlockContext would be replaced by the next FinalizeBlock).
			ctx := c.app.NewUncachedContext(false, cmtproto.Header{Height: h, Time: genesisTime}) //nolint:staticcheck // see above
			if err := c.app.UpgradeKeeper.ScheduleUpgrade(ctx, upgradetypes.Plan{Name: "v2", Height: upgradeHeight}); err != nil {
				t.Fatal(err)
			}
		}
		c.nextBlock(c.blockTxs(h))
	}
	before, err := c.store().GetCommitInfo(upgradeHeight - 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := storeNames(before); !strings.Contains(got, "doomed") || !strings.Contains(got, "legacy") {
		t.Fatalf("stores before the upgrade: %s", got)
	}
	// The old binary halts at the upgrade height.
	if _, err := c.app.FinalizeBlock(&abci.RequestFinalizeBlock{Height: upgradeHeight, Time: genesisTime, NextValidatorsHash: c.valSet.Hash(), ProposerAddress: c.valSet.Proposer.Address}); err == nil || !strings.Contains(err.Error(), "UPGRADE \"v2\" NEEDED") {
		t.Fatalf("the old binary at the upgrade height: %v", err)
	}

	// The new binary: the loader applies the store upgrades at the
	// upgrade height, and the handler writes to the added store.
	upgrades := &storetypes.StoreUpgrades{
		Added:   []string{"added"},
		Renamed: []storetypes.StoreRename{{OldKey: "legacy", NewKey: "renamed"}},
		Deleted: []string{"doomed"},
	}
	c.close()
	c.extraOpts = []func(*baseapp.BaseApp){
		mountStores(renamed, added), // doomed is no longer mounted, as when a module is removed
		baseapp.SetStoreLoader(upgradetypes.UpgradeStoreLoader(upgradeHeight, upgrades)),
	}
	handled := false
	c.beforeLoad = func(app *simapp.SimApp) {
		app.UpgradeKeeper.SetUpgradeHandler("v2", func(ctx context.Context, _ upgradetypes.Plan, vm module.VersionMap) (module.VersionMap, error) {
			sdk.UnwrapSDKContext(ctx).KVStore(added).Set([]byte("hello"), []byte("from the handler"))
			handled = true
			return vm, nil
		})
	}
	c.open()
	c.loadAccountNumbers()
	for h := int64(upgradeHeight); h < upgradeHeight+4; h++ {
		c.nextBlock(c.blockTxs(h))
	}
	if !handled {
		t.Fatal("the upgrade handler did not run")
	}
	check := func(when string) {
		t.Helper()
		info, err := c.store().GetCommitInfo(c.app.LastBlockHeight())
		if err != nil {
			t.Fatal(err)
		}
		names := storeNames(info)
		if !strings.Contains(names, "added") || !strings.Contains(names, "renamed") || strings.Contains(names, "legacy") || strings.Contains(names, "doomed") {
			t.Fatalf("%s: stores %s", when, names)
		}
		ms := c.app.CommitMultiStore().CacheMultiStore()
		if got := ms.GetKVStore(renamed).Get([]byte("legacy-07")); string(got) != "v7" {
			t.Fatalf("%s: the renamed store holds %q", when, got)
		}
		if got := ms.GetKVStore(added).Get([]byte("hello")); string(got) != "from the handler" {
			t.Fatalf("%s: the added store holds %q", when, got)
		}
		if res, err := c.app.Query(context.Background(), &abci.RequestQuery{Path: "/store/doomed/key", Data: []byte("doomed-01"), Height: c.app.LastBlockHeight()}); err == nil && res.Code == 0 {
			t.Fatalf("%s: the deleted store still answers", when)
		}
	}
	check("after the upgrade")
	// The deleted store's data went with the upgrade (rootmulti would keep it).
	if got, err := c.store().Engine().Get("doomed", []byte("doomed-01")); err != nil || got != nil {
		t.Fatalf("the deleted store still holds %q (%v)", got, err)
	}

	// A restart after the upgrade: the loader does nothing now.
	c.reopen()
	for h := int64(upgradeHeight + 4); h < upgradeHeight+7; h++ {
		c.nextBlock(c.blockTxs(h))
	}
	check("after a restart")

	// Heights before the upgrade still answer, with proofs.
	for _, h := range []int64{2, upgradeHeight - 1} {
		got := queryProof(t, c, "bank", balanceKey(c.accounts[0].addr, sdk.DefaultBondDenom), h)
		if len(got) == 0 {
			t.Fatalf("no balance at %d", h)
		}
	}
	old, err := c.store().CacheMultiStoreWithVersion(upgradeHeight - 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := old.GetKVStore(renamed).Get([]byte("legacy-07")); got != nil {
		t.Fatalf("the renamed store had data before it existed: %q", got)
	}
	if !bytes.Equal(c.hashes[upgradeHeight-1], before.Hash()) {
		t.Fatal("the commit info before the upgrade does not hash to that height's app hash")
	}
	c.close()
}
