package cmd

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"cosmossdk.io/log"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	dbm "github.com/cosmos/cosmos-db"

	"github.com/cosmos/cosmos-sdk/baseapp"
	"github.com/cosmos/cosmos-sdk/client/flags"
	"github.com/cosmos/cosmos-sdk/server"
	servertypes "github.com/cosmos/cosmos-sdk/server/types"
	"github.com/cosmos/cosmos-sdk/x/staking"
	"github.com/cosmos/ibc-go/v10/testing/simapp"
	"github.com/spf13/cast"

	"github.com/nomtstore/nomtstore/module"
)

// NewApp builds the simapp on nomtstore: the store option first, then the
// SDK's default baseapp options from app.toml.
func NewApp(logger log.Logger, db dbm.DB, traceStore io.Writer, appOpts servertypes.AppOptions) servertypes.Application {
	return newSimApp(logger, db, traceStore, true, appOpts)
}

func newSimApp(logger log.Logger, db dbm.DB, traceStore io.Writer, loadLatest bool, appOpts servertypes.AppOptions) *simapp.SimApp {
	storeOpt, db := module.StoreOption(cast.ToString(appOpts.Get(flags.FlagHome)), appOpts, db)
	opts := append([]func(*baseapp.BaseApp){storeOpt}, server.DefaultBaseappOptions(appOpts)...)
	return simapp.NewSimApp(logger, db, traceStore, loadLatest, appOpts, opts...)
}

// ExportApp exports the state at height (the latest if -1) as genesis JSON.
// The ibc-go test simapp has no exporter of its own; this one exports every
// module's genesis and the bonded validators, without the zero-height
// preparation (forZeroHeight is refused).
func ExportApp(logger log.Logger, db dbm.DB, traceStore io.Writer, height int64, forZeroHeight bool,
	_ []string, appOpts servertypes.AppOptions, modulesToExport []string,
) (servertypes.ExportedApp, error) {
	if forZeroHeight {
		return servertypes.ExportedApp{}, errors.New("export --for-zero-height is not supported by the simapp exporter")
	}
	app := newSimApp(logger, db, traceStore, height == -1, appOpts)
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
