package module

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cosmossdk.io/log"
	pruningtypes "cosmossdk.io/store/pruning/types"
	"cosmossdk.io/store/snapshots"
	snapshottypes "cosmossdk.io/store/snapshots/types"
	dbm "github.com/cosmos/cosmos-db"

	"github.com/cosmos/cosmos-sdk/baseapp"
	"github.com/cosmos/cosmos-sdk/server"
	simtestutil "github.com/cosmos/cosmos-sdk/testutil/sims"

	"github.com/nomtstore/nomtstore/multistore"
)

func TestReadConfig(t *testing.T) {
	tests := []struct {
		name    string
		opts    simtestutil.AppOptionsMap
		want    Config
		wantErr string
	}{
		{"defaults", simtestutil.AppOptionsMap{}, DefaultConfig(), ""},
		{"all set", simtestutil.AppOptionsMap{
			"nomtstore.dir": "/var/lib/store", "nomtstore.page-cache-pages": "1024",
			"nomtstore.pebble-cache-mb": 8, "nomtstore.sync-flush": "true",
			"nomtstore.value-cache-mb": 16, "nomtstore.checkpoint-mb": "32", "nomtstore.checkpoint-interval": 7,
			"nomtstore.leaf-cache-mb": 4, "nomtstore.restore-sort-mb": "64", "nomtstore.checkpoint-log-mb": "16",
		}, Config{Dir: "/var/lib/store", PageCachePages: 1024, PebbleCacheMB: 8, SyncFlush: true,
			ValueCacheMB: 16, LeafCacheMB: 4, CheckpointMB: 32, CheckpointInterval: 7, CheckpointLogMB: 16, RestoreSortMB: 64}, ""},
		{"negative checkpoint log", simtestutil.AppOptionsMap{"nomtstore.checkpoint-log-mb": -1}, Config{}, "checkpoint-log-mb must be >= 0"},
		{"negative restore sort", simtestutil.AppOptionsMap{"nomtstore.restore-sort-mb": -1}, Config{}, "restore-sort-mb must be >= 0"},
		{"bad number", simtestutil.AppOptionsMap{"nomtstore.page-cache-pages": "lots"}, Config{}, "page-cache-pages"},
		{"bad checkpoint interval", simtestutil.AppOptionsMap{"nomtstore.checkpoint-interval": "often"}, Config{}, "checkpoint-interval"},
		{"negative value cache", simtestutil.AppOptionsMap{"nomtstore.value-cache-mb": -3}, Config{}, "value-cache-mb must be >= 0"},
		{"negative", simtestutil.AppOptionsMap{"nomtstore.pebble-cache-mb": -1}, Config{}, "pebble-cache-mb must be >= 0"},
		{"bad bool", simtestutil.AppOptionsMap{"nomtstore.sync-flush": "maybe"}, Config{}, "sync-flush"},
		{"empty dir", simtestutil.AppOptionsMap{"nomtstore.dir": ""}, Config{}, "dir must not be empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadConfig(tc.opts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one about %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func newBaseApp(t *testing.T, opts ...func(*baseapp.BaseApp)) *baseapp.BaseApp {
	t.Helper()
	return baseapp.NewBaseApp("test", log.NewNopLogger(), dbm.NewMemDB(), nil, opts...)
}

// TestStoreOptionInstallsAndReadsAppToml: the option installs the store
// under the home, with app.toml's pruning and snapshot interval, whatever
// the later options do; closing the returned database closes the store.
func TestStoreOptionInstallsAndReadsAppToml(t *testing.T) {
	home := t.TempDir()
	appOpts := simtestutil.AppOptionsMap{
		server.FlagPruning: "custom", server.FlagPruningKeepRecent: "30", server.FlagPruningInterval: "15",
		server.FlagStateSyncSnapshotInterval: 50,
	}
	opt, db := StoreOption(home, appOpts, dbm.NewMemDB())
	app := newBaseApp(t, opt)
	s, ok := app.CommitMultiStore().(*multistore.Store)
	if !ok {
		t.Fatalf("the app runs on %T", app.CommitMultiStore())
	}
	if got := s.GetPruning(); got.Strategy != pruningtypes.PruningCustom || got.KeepRecent != 30 || got.Interval != 15 {
		t.Fatalf("pruning %+v", got)
	}
	if _, err := os.Stat(filepath.Join(home, "data", "nomtstore", "FORMAT")); err != nil {
		t.Fatalf("no store under the home: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Closed: the directory can be opened again.
	opt, db = StoreOption(home, appOpts, dbm.NewMemDB())
	newBaseApp(t, opt)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestStoreOptionErrors: a misplaced option, bad app.toml values and an
// unusable directory are refused with a message that says what to fix.
func TestStoreOptionErrors(t *testing.T) {
	notADir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notADir, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	snapshotStore, err := snapshots.NewStore(dbm.NewMemDB(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	setSnapshot := baseapp.SetSnapshot(snapshotStore, snapshottypes.NewSnapshotOptions(10, 2))
	tests := []struct {
		name    string
		home    string
		appOpts simtestutil.AppOptionsMap
		before  []func(*baseapp.BaseApp)
		want    string
	}{
		{"after SetSnapshot", t.TempDir(), simtestutil.AppOptionsMap{}, []func(*baseapp.BaseApp){setSnapshot}, "must come before baseapp.SetSnapshot"},
		{"bad pruning", t.TempDir(), simtestutil.AppOptionsMap{server.FlagPruning: "sometimes"}, nil, "app.toml pruning"},
		{"custom pruning too small", t.TempDir(), simtestutil.AppOptionsMap{server.FlagPruning: "custom", server.FlagPruningKeepRecent: "1", server.FlagPruningInterval: "10"}, nil, "app.toml pruning"},
		{"bad section", t.TempDir(), simtestutil.AppOptionsMap{"nomtstore.page-cache-pages": -5}, nil, "page-cache-pages"},
		{"no home", "", simtestutil.AppOptionsMap{}, nil, "no node home"},
		{"dir is a file", notADir, simtestutil.AppOptionsMap{"nomtstore.dir": notADir}, nil, "opening " + notADir},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opt, _ := StoreOption(tc.home, tc.appOpts, dbm.NewMemDB())
			defer func() {
				r := recover()
				if r == nil || !strings.Contains(r.(error).Error(), tc.want) {
					t.Fatalf("panic %v, want one about %q", r, tc.want)
				}
			}()
			newBaseApp(t, append(tc.before, opt)...)
		})
	}
}

// TestAppClosedTwice: a node's shutdown closes the app (and so the
// database the option returned) twice; neither Close is an error, and the
// store is closed after the first.
func TestAppClosedTwice(t *testing.T) {
	home := t.TempDir()
	opt, db := StoreOption(home, simtestutil.AppOptionsMap{}, dbm.NewMemDB())
	app := baseapp.NewBaseApp("test", log.NewNopLogger(), db, nil, opt)
	for i := range 2 {
		if err := app.Close(); err != nil {
			t.Fatalf("Close %d: %v", i+1, err)
		}
	}
	opt, db = StoreOption(home, simtestutil.AppOptionsMap{}, dbm.NewMemDB())
	newBaseApp(t, opt)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}
