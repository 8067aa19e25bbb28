package storecmd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	dbm "github.com/cosmos/cosmos-db"
	"github.com/spf13/cobra"

	"github.com/cosmos/cosmos-sdk/server"

	"github.com/nomtstore/nomtstore/appconfig"
	"github.com/nomtstore/nomtstore/migrate"
)

// MigrateReport is `nomtstore migrate --output json`.
type MigrateReport struct {
	Height          int64   `json:"height"`
	AppHash         string  `json:"app_hash"`
	Dir             string  `json:"dir"`
	Stores          int     `json:"stores"`
	Keys            int64   `json:"keys"`
	Bytes           int64   `json:"bytes"`
	Resumed         bool    `json:"resumed"`
	Verified        bool    `json:"verified"`
	CopySeconds     float64 `json:"copy_seconds"`
	ReadSeconds     float64 `json:"read_seconds"`
	BuildSeconds    float64 `json:"build_seconds"`
	VerifySeconds   float64 `json:"verify_seconds"`
	KeysPerSecond   float64 `json:"keys_per_second"`
	DiskBytes       int64   `json:"disk_bytes"`
	SourceDiskBytes int64   `json:"source_disk_bytes"`
}

func migrateCmd(line Line) *cobra.Command {
	var fromIAVL, skipVerify bool
	var height int64
	cmd := &cobra.Command{
		Use:   "migrate --from-iavl",
		Short: "Move a stopped node's IAVL state (data/application.db) into its nomtstore directory at one height",
		Long: `Reads the IAVL stores of the stopped node's application.db (in the backend
config.toml's db_backend names) at --height (default: the latest), writes them
into the nomtstore directory app.toml names as that height's version, carrying
IAVL's commit info so the node still reports the app hash CometBFT recorded,
then compares every store key for key with IAVL (--skip-verify skips it).
The IAVL data is only read. A run interrupted before its commit leaves the
nomtstore directory empty: run it again. See docs/migration.md for the
upgrade-height procedure around it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !fromIAVL {
				return errors.New("say what to migrate from: --from-iavl (the node's IAVL application.db) is the only source")
			}
			format, err := OutputFormat(cmd)
			if err != nil {
				return err
			}
			serverCtx := server.GetServerContextFromCmd(cmd)
			home := serverCtx.Config.RootDir
			cfg, err := appconfig.Read(serverCtx.Viper)
			if err != nil {
				return err
			}
			dir := cfg.StoreDir(home)
			dataDir := serverCtx.Config.DBDir()
			appDBDir := filepath.Join(dataDir, "application.db")
			if _, err := os.Stat(appDBDir); err != nil {
				return fmt.Errorf("no IAVL state to migrate: %s does not exist (is %s the node's home?)", appDBDir, home)
			}
			backend := dbm.BackendType(serverCtx.Config.DBBackend)
			appDB, err := dbm.NewDB("application", backend, dataDir)
			if err != nil {
				if strings.Contains(err.Error(), "lock") || strings.Contains(err.Error(), "temporarily unavailable") {
					return fmt.Errorf("%s is in use: stop the node first (%w)", appDBDir, err)
				}
				return fmt.Errorf("opening %s (db_backend %q): %w", appDBDir, backend, err)
			}
			defer func() { _ = appDB.Close() }()
			src, err := migrate.OpenSource(appDB, height, migrate.DecodeCommitInfo(line.CommitInfo))
			if err != nil {
				return err
			}
			show := NewPhaseProgress(cmd.ErrOrStderr(), "migrate")
			defer show.Finish()
			_, _ = fmt.Fprintf(cmd.ErrOrStderr(), "migrating %d stores of %s at height %d into %s\n", len(src.Info.Stores), appDBDir, src.Height(), dir)
			opts := migrate.Options{SkipVerify: skipVerify, Engine: cfg.EngineOptions(), Progress: func(p migrate.Progress) { show.Update(p.Phase, p.Keys, p.TotalKeys, p.Elapsed, p.Store) }, ProgressEvery: 200 * time.Millisecond}
			res, err := migrate.FromIAVL(cmd.Context(), src, dir, opts)
			show.Finish()
			if err != nil {
				if strings.Contains(err.Error(), "lock") {
					return fmt.Errorf("the nomtstore directory %s is in use: stop the node first (%w)", dir, err)
				}
				return err
			}
			total := res.CopyTime + res.BuildTime + res.VerifyTime
			out := MigrateReport{
				Height: res.Height, AppHash: fmt.Sprintf("%X", res.AppHash), Dir: dir, Stores: res.Stores, Keys: res.Keys, Bytes: res.Bytes,
				Resumed: res.Resumed, Verified: !skipVerify,
				CopySeconds: res.CopyTime.Seconds(), ReadSeconds: res.ReadTime.Seconds(), BuildSeconds: res.BuildTime.Seconds(), VerifySeconds: res.VerifyTime.Seconds(),
				DiskBytes: res.DiskBytes, SourceDiskBytes: migrate.DirBytes(appDBDir),
			}
			if total > 0 {
				out.KeysPerSecond = float64(res.Keys) / total.Seconds()
			}
			if format == OutputJSON {
				return WriteJSON(cmd.OutOrStdout(), out)
			}
			t := NewTable(cmd.OutOrStdout())
			t.Row("migrated", "height %d, %s keys in %d stores", out.Height, Count(uint64(out.Keys)), out.Stores)
			if out.Bytes > 0 {
				t.Row("  data", "%s of keys and values", HumanBytes(uint64(out.Bytes)))
			}
			t.Row("app hash", "%s (IAVL's; the next block commits nomtstore's roots)", out.AppHash)
			if res.Resumed {
				t.Row("resumed", "the directory already held this migration; only verified it")
			}
			if res.Resumed {
				t.Row("time", "%v verifying (%.0f keys/s)", total.Round(time.Millisecond), out.KeysPerSecond)
			} else {
				t.Row("time", "%v (%.0f keys/s): copy %v (of which reading IAVL %v, overlapped), nomtstore build %v, verify %v", total.Round(time.Millisecond),
					out.KeysPerSecond, res.CopyTime.Round(time.Millisecond), res.ReadTime.Round(time.Millisecond), res.BuildTime.Round(time.Millisecond), res.VerifyTime.Round(time.Millisecond))
			}
			verified := "every store equal to IAVL's, key for key"
			if skipVerify {
				verified = "skipped (--skip-verify)"
			}
			t.Row("verified", "%s", verified)
			t.Row("disk", "%s in %s (IAVL's application.db, only read: %s)", HumanBytes(uint64(out.DiskBytes)), dir, HumanBytes(uint64(out.SourceDiskBytes)))
			return t.Flush()
		},
	}
	cmd.Flags().BoolVar(&fromIAVL, "from-iavl", false, "migrate from the node's IAVL application.db")
	cmd.Flags().Int64Var(&height, "height", 0, "the IAVL height to migrate (default: the latest)")
	cmd.Flags().BoolVar(&skipVerify, "skip-verify", false, "skip comparing every store with IAVL after the migration")
	AddOutputFlag(cmd)
	return cmd
}
