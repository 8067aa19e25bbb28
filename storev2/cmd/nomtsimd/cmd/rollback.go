package cmd

import (
	"fmt"
	"path/filepath"

	cmtcmd "github.com/cometbft/cometbft/cmd/cometbft/commands"
	dbm "github.com/cosmos/cosmos-db"
	"github.com/spf13/cobra"

	"github.com/cosmos/cosmos-sdk/client/flags"
	"github.com/cosmos/cosmos-sdk/server"

	"github.com/nomtstore/nomtstore/storev2/multistore"
)

// rollbackCmd is the SDK's `rollback` with one change: it checks that the
// target height is still retained by the store before it touches
// CometBFT's state. The SDK's rolls CometBFT back first; if the store then
// refuses a pruned target, the node is left with CometBFT a height behind
// the application (and, with --hard, one block short of it) and cannot
// start.
func rollbackCmd(defaultNodeHome string) *cobra.Command {
	var removeBlock bool
	cmd := &cobra.Command{
		Use:   "rollback",
		Short: "rollback Cosmos SDK and CometBFT state by one height",
		Long: `Rollback overwrites the state at height n with the state at height n - 1, in
CometBFT and in the store; the block n is kept (unless --hard) and re-executed
when the node starts. A target height the store has pruned is refused before
anything changes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := server.GetServerContextFromCmd(cmd)
			home := ctx.Config.RootDir
			db, err := dbm.NewDB("application", server.GetAppDBBackend(ctx.Viper), filepath.Join(home, "data"))
			if err != nil {
				return err
			}
			app := NewApp(ctx.Logger, db, ctx.Viper)
			defer func() { _ = app.Close() }()
			store, ok := app.CommitMultiStore().(*multistore.Store)
			if !ok {
				return fmt.Errorf("the app does not run on nomtstore (%T)", app.CommitMultiStore())
			}
			latest := uint64(store.LatestVersion())
			if earliest := store.Engine().EarliestVersion(); latest <= earliest {
				return fmt.Errorf("cannot roll back from height %d: height %d is pruned (the earliest retained height is %d); nothing was changed",
					latest, latest-1, earliest)
			}
			height, hash, err := cmtcmd.RollbackState(ctx.Config, removeBlock)
			if err != nil {
				return fmt.Errorf("failed to rollback CometBFT state: %w", err)
			}
			if err := store.RollbackToVersion(height); err != nil {
				return fmt.Errorf("failed to rollback to version: %w", err)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "Rolled back state to height %d and hash %X\n", height, hash)
			return err
		},
	}
	cmd.Flags().String(flags.FlagHome, defaultNodeHome, "The application home directory")
	cmd.Flags().BoolVar(&removeBlock, "hard", false, "remove last block as well as state")
	return cmd
}
