package cmd

import (
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"time"

	dbm "github.com/cosmos/cosmos-db"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"cosmossdk.io/log"

	"github.com/cosmos/cosmos-sdk/server"

	"github.com/nomtstore/nomtstore/commitment"
	nomtmodule "github.com/nomtstore/nomtstore/module"
	"github.com/nomtstore/nomtstore/storecmd"
)

// restoreSnapshotCommand replaces the SDK's `snapshots restore`: the same
// restore of a local snapshot through the app's snapshot manager, with the
// store's progress shown (a spinner while keys arrive, whose total a
// snapshot does not say, then a bar while the trie is built) and a summary
// at the end. The SDK's command prints nothing until it returns.
func restoreSnapshotCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "restore <height> <format>",
		Short: "Restore app state from a local snapshot (node stopped), showing the restore's progress",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			height, err := strconv.ParseUint(args[0], 10, 64)
			if err != nil {
				return fmt.Errorf("height %q: %w", args[0], err)
			}
			format, err := strconv.ParseUint(args[1], 10, 32)
			if err != nil {
				return fmt.Errorf("format %q: %w", args[1], err)
			}
			ctx := server.GetServerContextFromCmd(cmd)
			db, err := dbm.NewDB("application", server.GetAppDBBackend(ctx.Viper), filepath.Join(ctx.Config.RootDir, "data"))
			if err != nil {
				return err
			}
			show := storecmd.NewPhaseProgress(cmd.ErrOrStderr(), "restore")
			defer show.Finish()
			var final commitment.BulkProgress
			ctx.Viper.Set(nomtmodule.BulkProgressOption, func(p commitment.BulkProgress) {
				switch p.Phase {
				case "load":
					show.Update("load", p.Keys, -1, p.Elapsed, p.Tree)
				case "build":
					show.Update("build", p.Built, p.Keys, p.Elapsed, p.Tree)
				case "committed":
					final = p
				}
			})
			logger := log.NewLogger(cmd.OutOrStdout())
			if show.Terminal() {
				// The bar says what the engine's info lines would.
				logger = log.NewLogger(cmd.OutOrStdout(), log.LevelOption(zerolog.WarnLevel))
			}
			app := NewApp(logger, db, nil, ctx.Viper)
			defer func() { _ = app.Close() }()
			start := time.Now()
			if err := app.SnapshotManager().RestoreLocalSnapshot(height, uint32(format)); err != nil {
				return err
			}
			show.Finish()
			printRestored(cmd.ErrOrStderr(), height, final, time.Since(start))
			return nil
		},
	}
}

func printRestored(w io.Writer, height uint64, p commitment.BulkProgress, took time.Duration) {
	line := fmt.Sprintf("restored height %d", height)
	if p.Phase == "committed" {
		line += fmt.Sprintf(": %s keys, %s of keys and values", storecmd.Count(uint64(p.Keys)), storecmd.HumanBytes(uint64(p.Bytes)))
		if secs := p.Elapsed.Seconds(); secs > 0 {
			line += fmt.Sprintf(", %.0f keys/s", float64(p.Keys)/secs)
		}
	}
	_, _ = fmt.Fprintf(w, "%s (%s)\n", line, took.Round(time.Millisecond))
}
