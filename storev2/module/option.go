package module

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	dbm "github.com/cosmos/cosmos-db"
	"github.com/cosmos/cosmos-sdk/baseapp"
	"github.com/cosmos/cosmos-sdk/client/flags"
	"github.com/cosmos/cosmos-sdk/server"
	servertypes "github.com/cosmos/cosmos-sdk/server/types"
	"github.com/cosmos/cosmos-sdk/store/v2"
	pruningtypes "github.com/cosmos/cosmos-sdk/store/v2/pruning/types"
	storetypes "github.com/cosmos/cosmos-sdk/store/v2/types"
	"github.com/cosmos/cosmos-sdk/telemetry"
	"github.com/spf13/cast"

	"github.com/nomtstore/nomtstore/appconfig"
	"github.com/nomtstore/nomtstore/cms"
	"github.com/nomtstore/nomtstore/commitment"
	"github.com/nomtstore/nomtstore/storev2/multistore"
)

// BulkProgressOption is the app option (an in-process value, not an
// app.toml key) that receives a state-sync restore's progress every second:
// a func(commitment.BulkProgress).
const BulkProgressOption = "nomtstore.bulk-progress"

// StoreOption returns the baseapp option that installs nomtstore as the
// app's CommitMultiStore, opened under home (app.toml's [nomtstore] dir,
// default data/nomtstore), and the database to give the app instead of db:
// closing it (BaseApp.Close does) also closes the store. DB-type stores, if
// any, are kept in db, as rootmulti keeps them.
//
// The option must be the first baseapp option (see the package doc). It
// panics, as baseapp options do, if the store cannot be opened or the
// settings are invalid. An empty home uses appOpts' "home".
//
//	opt, db := module.StoreOption(home, appOpts, db)
//	app := simapp.NewSimApp(logger, db, traceStore, true, appOpts, append([]func(*baseapp.BaseApp){opt}, baseappOptions...)...)
func StoreOption(home string, appOpts servertypes.AppOptions, db dbm.DB) (func(*baseapp.BaseApp), dbm.DB) {
	closing := &closingDB{DB: db}
	if home == "" {
		home = cast.ToString(appOpts.Get(flags.FlagHome))
	}
	return func(app *baseapp.BaseApp) {
		store, err := install(app, home, appOpts, db)
		if err != nil {
			panic(err)
		}
		closing.store = store
	}, closing
}

func install(app *baseapp.BaseApp, home string, appOpts servertypes.AppOptions, db dbm.DB) (*multistore.Store, error) {
	if app.SnapshotManager() != nil {
		return nil, errors.New("nomtstore: the store option must come before baseapp.SetSnapshot (place it first): the snapshot manager already holds the previous store")
	}
	if home == "" {
		return nil, errors.New("nomtstore: no node home to open the store under")
	}
	cfg, err := appconfig.Read(appOpts)
	if err != nil {
		return nil, fmt.Errorf("nomtstore: app.toml: %w", err)
	}
	// No pruning key at all (an app built without app.toml) gets the
	// SDK's default, as app.toml's template would give it.
	pruningOpts := pruningtypes.NewPruningOptions(pruningtypes.PruningDefault)
	if appOpts.Get(server.FlagPruning) != nil {
		if pruningOpts, err = server.GetPruningOptionsFromFlags(appOpts); err != nil {
			return nil, fmt.Errorf("nomtstore: app.toml pruning: %w", err)
		}
	}
	if err := pruningOpts.Validate(); err != nil {
		return nil, fmt.Errorf("nomtstore: app.toml pruning: %w", err)
	}
	dir := cfg.StoreDir(home)
	engine := cfg.EngineOptions()
	if progress, ok := appOpts.Get(BulkProgressOption).(func(commitment.BulkProgress)); ok {
		engine.BulkProgress = progress
	}
	s, err := multistore.New(dir, app.Logger(), multistore.Options{
		Engine: engine, AppDB: db, Observer: TelemetryObserver{},
	})
	if err != nil {
		return nil, fmt.Errorf("nomtstore: opening %s: %w", dir, err)
	}
	s.SetPruning(pruningOpts)
	s.SetSnapshotInterval(cast.ToUint64(appOpts.Get(server.FlagStateSyncSnapshotInterval)))
	if cast.ToBool(appOpts.Get(server.FlagInterBlockCache)) {
		s.SetInterBlockCache(store.NewCommitKVStoreCacheManager())
	}
	app.SetCMS(s)
	// baseapp gives the block header to *rootmulti.Store only; the block
	// time of each version's commit info comes from this listener instead,
	// added again at each load (an app's own listeners, installed after
	// this option, replace the streaming manager).
	listenForHeaders(app, s)
	s.OnLoad(func() { listenForHeaders(app, s) })
	app.Logger().Info("nomtstore installed", "dir", dir, "version", s.Engine().Version(),
		"earliest", s.Engine().EarliestVersion(), "pruning-keep-recent", pruningOpts.KeepRecent, "pruning-interval", pruningOpts.Interval)
	return s, nil
}

// listenForHeaders adds the store's header listener to the app's streaming
// manager, keeping the app's own listeners and settings, unless it is
// there already.
func listenForHeaders(app *baseapp.BaseApp, s *multistore.Store) {
	m := app.StreamingManager()
	for _, l := range m.ABCIListeners {
		if h, ok := l.(headerListener); ok && h.store == s {
			return
		}
	}
	m.ABCIListeners = append([]storetypes.ABCIListener{headerListener{s}}, m.ABCIListeners...)
	app.SetStreamingManager(m)
}

// headerListener feeds each block's height and time to the store before
// its Commit.
type headerListener struct{ store *multistore.Store }

func (l headerListener) ListenFinalizeBlock(_ context.Context, req abci.RequestFinalizeBlock, _ abci.ResponseFinalizeBlock) error {
	l.store.SetCommitHeader(cmtproto.Header{Height: req.Height, Time: req.Time})
	return nil
}

func (headerListener) ListenCommit(context.Context, abci.ResponseCommit, []*storetypes.StoreKVPair) error {
	return nil
}

// closingDB is the application database that also closes the store.
// The SDK's server closes the app, and so this, twice on shutdown: the
// second Close is a no-op, not an error in the node's log.
type closingDB struct {
	dbm.DB
	store *multistore.Store

	mu     sync.Mutex
	closed bool
}

func (c *closingDB) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	var errs []error
	if c.store != nil {
		errs = append(errs, c.store.Close())
	}
	if c.DB != nil {
		errs = append(errs, c.DB.Close())
	}
	return errors.Join(errs...)
}

// TelemetryObserver sends the store's figures to the SDK's telemetry; the
// metric names are listed at cms.MetricsObserver.
type TelemetryObserver = cms.SinkObserver[telemetrySink]

var _ cms.Observer = TelemetryObserver{}

// telemetrySink is the SDK v0.54 telemetry package. Its go-metrics
// wrappers are deprecated in favour of OpenTelemetry instruments, but they
// are what the node's /metrics endpoint serves (make demo-v054 reads them
// there), and the same metric names as the v0.53 line keep one dashboard
// for both; moving to OpenTelemetry instruments is left for when the SDK
// drops them.
type telemetrySink struct{}

//nolint:staticcheck // see telemetrySink
func (telemetrySink) Enabled() bool { return telemetry.IsTelemetryEnabled() }

//nolint:staticcheck // see telemetrySink
func (telemetrySink) IncrCounter(val float32, keys ...string) { telemetry.IncrCounter(val, keys...) }

//nolint:staticcheck // see telemetrySink
func (telemetrySink) SetGauge(val float32, keys ...string) { telemetry.SetGauge(val, keys...) }

//nolint:staticcheck // see telemetrySink
func (telemetrySink) MeasureSince(start time.Time, keys ...string) {
	telemetry.MeasureSince(start, keys...)
}
