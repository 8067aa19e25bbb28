package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"cosmossdk.io/log/v2"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	dbm "github.com/cosmos/cosmos-db"
	upgradetypes "github.com/cosmos/cosmos-sdk/x/upgrade/types"

	"github.com/cosmos/cosmos-sdk/baseapp"
	"github.com/cosmos/cosmos-sdk/client/flags"
	"github.com/cosmos/cosmos-sdk/server"
	"github.com/cosmos/cosmos-sdk/server/api"
	"github.com/cosmos/cosmos-sdk/server/config"
	servertypes "github.com/cosmos/cosmos-sdk/server/types"
	sdkmodule "github.com/cosmos/cosmos-sdk/types/module"
	"github.com/cosmos/cosmos-sdk/x/staking"
	"github.com/cosmos/ibc-go/v11/testing/simapp"
	"github.com/spf13/cast"

	"github.com/nomtstore/nomtstore/storev2/module"
	"github.com/nomtstore/nomtstore/storev2/multistore"
)

// NewApp builds the simapp on nomtstore: the store option first, then the
// SDK's default baseapp options from app.toml.
func NewApp(logger log.Logger, db dbm.DB, appOpts servertypes.AppOptions) servertypes.Application {
	return newSimApp(logger, db, true, appOpts)
}

// NodeApp is the simapp plus the nomtstore module, whose services the
// simapp's fixed module manager does not know: its Query service is on the
// app's gRPC query router, its REST routes on the API server.
type NodeApp struct {
	*simapp.SimApp
	nomtstore module.AppModule
}

// RegisterAPIRoutes adds the nomtstore routes to the simapp's.
func (a NodeApp) RegisterAPIRoutes(apiSvr *api.Server, apiConfig config.APIConfig) {
	a.SimApp.RegisterAPIRoutes(apiSvr, apiConfig)
	a.nomtstore.RegisterGRPCGatewayRoutes(apiSvr.ClientCtx, apiSvr.GRPCGatewayRouter)
}

// FlagIAVL runs the node on the SDK's IAVL store instead of nomtstore: the
// binary before a switch (docs/migration.md), for trying the migration
// procedure on a local chain.
const FlagIAVL = "iavl"

// SwitchUpgrade names the upgrade plan of a switch from IAVL: the binary
// on nomtstore has its handler, the one on IAVL (--iavl) does not, and so
// halts at its height.
const SwitchUpgrade = "nomtstore-switch"

func newSimApp(logger log.Logger, db dbm.DB, loadLatest bool, appOpts servertypes.AppOptions) NodeApp {
	if cast.ToBool(appOpts.Get(FlagIAVL)) {
		app := simapp.NewSimApp(logger, db, nil, loadLatest, appOpts, server.DefaultBaseappOptions(appOpts)...)
		return NodeApp{SimApp: app, nomtstore: module.NewAppModule(nil)}
	}
	storeOpt, db := module.StoreOption(cast.ToString(appOpts.Get(flags.FlagHome)), appOpts, db)
	opts := append([]func(*baseapp.BaseApp){storeOpt}, server.DefaultBaseappOptions(appOpts)...)
	app := simapp.NewSimApp(logger, db, nil, loadLatest, appOpts, opts...)
	nomt := module.NewAppModule(app.CommitMultiStore().(*multistore.Store))
	if err := nomt.RegisterServices(app.GRPCQueryRouter()); err != nil {
		panic(err)
	}
	// The switch changes no module: its handler only has to exist.
	app.UpgradeKeeper.SetUpgradeHandler(SwitchUpgrade, func(ctx context.Context, _ upgradetypes.Plan, vm sdkmodule.VersionMap) (sdkmodule.VersionMap, error) {
		return app.ModuleManager.RunMigrations(ctx, app.Configurator(), vm)
	})
	return NodeApp{SimApp: app, nomtstore: nomt}
}

// ExportApp exports the state at height (the latest if -1) as genesis JSON.
// The ibc-go test simapp has no exporter of its own; this one exports every
// module's genesis and the bonded validators, without the zero-height
// preparation (forZeroHeight is refused).
func ExportApp(logger log.Logger, db dbm.DB, height int64, forZeroHeight bool,
	_ []string, appOpts servertypes.AppOptions, modulesToExport []string,
) (servertypes.ExportedApp, error) {
	if forZeroHeight {
		return servertypes.ExportedApp{}, errors.New("export --for-zero-height is not supported by the simapp exporter")
	}
	app := newSimApp(logger, db, height == -1, appOpts)
	if height != -1 {
		if err := app.LoadHeight(height); err != nil {
			return servertypes.ExportedApp{}, fmt.Errorf("loading height %d: %w", height, err)
		}
	}
	ctx := app.NewContextLegacy(true, cmtproto.Header{Height: app.LastBlockHeight()})
	if len(modulesToExport) == 0 {
		// The simapp's export order names modules it does not run (group).
		for _, name := range app.ModuleManager.OrderExportGenesis {
			if _, ok := app.ModuleManager.Modules[name]; ok {
				modulesToExport = append(modulesToExport, name)
			}
		}
	}
	genState, err := app.ModuleManager.ExportGenesisForModules(ctx, app.AppCodec(), modulesToExport)
	if err != nil {
		return servertypes.ExportedApp{}, err
	}
	appState, err := json.MarshalIndent(genState, "", "  ")
	if err != nil {
		return servertypes.ExportedApp{}, err
	}
	validators, err := staking.WriteValidators(ctx, app.StakingKeeper)
	if err != nil {
		return servertypes.ExportedApp{}, err
	}
	return servertypes.ExportedApp{
		AppState:        appState,
		Validators:      validators,
		Height:          app.LastBlockHeight(),
		ConsensusParams: app.GetConsensusParams(ctx),
	}, nil
}
