// Package cmd is the nomtsimd command tree.
package cmd

import (
	"os"
	"path/filepath"

	"cosmossdk.io/log/v2"
	cmtcfg "github.com/cometbft/cometbft/config"
	dbm "github.com/cosmos/cosmos-db"
	"github.com/spf13/cobra"

	"github.com/cosmos/cosmos-sdk/client"
	"github.com/cosmos/cosmos-sdk/client/config"
	"github.com/cosmos/cosmos-sdk/client/debug"
	"github.com/cosmos/cosmos-sdk/client/flags"
	"github.com/cosmos/cosmos-sdk/client/keys"
	"github.com/cosmos/cosmos-sdk/client/rpc"
	"github.com/cosmos/cosmos-sdk/client/snapshot"
	addresscodec "github.com/cosmos/cosmos-sdk/codec/address"
	"github.com/cosmos/cosmos-sdk/server"
	serverconfig "github.com/cosmos/cosmos-sdk/server/config"
	simtestutil "github.com/cosmos/cosmos-sdk/testutil/sims"
	sdk "github.com/cosmos/cosmos-sdk/types"
	authcmd "github.com/cosmos/cosmos-sdk/x/auth/client/cli"
	"github.com/cosmos/cosmos-sdk/x/auth/types"
	bankcli "github.com/cosmos/cosmos-sdk/x/bank/client/cli"
	genutilcli "github.com/cosmos/cosmos-sdk/x/genutil/client/cli"
	govcli "github.com/cosmos/cosmos-sdk/x/gov/client/cli"
	"github.com/cosmos/ibc-go/v11/testing/simapp"

	nomtstorev1 "github.com/nomtstore/nomtstore/proto/nomtstore/v1"
	nomtmodule "github.com/nomtstore/nomtstore/storev2/module"
)

// DefaultNodeHome is ~/.nomtsimd.
func DefaultNodeHome() string {
	home, err := os.UserHomeDir()
	if err != nil {
		return ".nomtsimd"
	}
	return filepath.Join(home, ".nomtsimd")
}

// AppConfig is app.toml: the server's sections plus [nomtstore].
type AppConfig struct {
	serverconfig.Config `mapstructure:",squash"`
	NomtStore           nomtmodule.Config `mapstructure:"nomtstore"`
}

func initAppConfig() (string, any) {
	srv := serverconfig.DefaultConfig()
	srv.MinGasPrices = "0stake"
	return serverconfig.DefaultConfigTemplate + nomtmodule.ConfigTemplate, AppConfig{Config: *srv, NomtStore: nomtmodule.DefaultConfig()}
}

// NewRootCmd builds the command tree.
func NewRootCmd() *cobra.Command {
	// A throwaway app (in memory, rootmulti) gives the codecs and the
	// modules' CLI descriptions.
	tempDir, err := os.MkdirTemp("", "nomtsimd-cli")
	if err != nil {
		panic(err)
	}
	defer func() { _ = os.RemoveAll(tempDir) }()
	tempApp := simapp.NewSimApp(log.NewNopLogger(), dbm.NewMemDB(), nil, true, simtestutil.NewAppOptionsWithFlagHome(tempDir))

	initClientCtx := client.Context{}.
		WithCodec(tempApp.AppCodec()).
		WithInterfaceRegistry(tempApp.InterfaceRegistry()).
		WithTxConfig(tempApp.TxConfig()).
		WithLegacyAmino(tempApp.LegacyAmino()).
		WithInput(os.Stdin).
		WithAccountRetriever(types.AccountRetriever{}).
		WithHomeDir(DefaultNodeHome()).
		WithViper("")

	rootCmd := &cobra.Command{
		Use:           "nomtsimd",
		Short:         "simapp node with its state in nomtstore",
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(cmd.OutOrStdout())
			cmd.SetErr(cmd.ErrOrStderr())
			clientCtx := initClientCtx.WithCmdContext(cmd.Context())
			clientCtx, err := client.ReadPersistentCommandFlags(clientCtx, cmd.Flags())
			if err != nil {
				return err
			}
			if clientCtx, err = config.ReadFromClientConfig(clientCtx); err != nil {
				return err
			}
			if err := client.SetCmdClientContextHandler(clientCtx, cmd); err != nil {
				return err
			}
			template, appConfig := initAppConfig()
			cmtConfig := cmtcfg.DefaultConfig()
			return server.InterceptConfigsPreRunHandler(cmd, template, appConfig, cmtConfig)
		},
	}

	basics := tempApp.BasicModuleManager
	rootCmd.AddCommand(
		genutilcli.InitCmd(basics, DefaultNodeHome()),
		debug.Cmd(),
		snapshotCommand(),
		storeCommand(),
	)
	server.AddCommands(rootCmd, DefaultNodeHome(), NewApp, ExportApp, func(start *cobra.Command) {
		start.Flags().Bool(FlagIAVL, false, "run on the SDK's IAVL store instead of nomtstore (the binary before a switch, to try docs/migration.md on a local chain)")
	})
	for _, c := range rootCmd.Commands() {
		if c.Name() == "rollback" {
			rootCmd.RemoveCommand(c)
		}
	}
	rootCmd.AddCommand(rollbackCmd(DefaultNodeHome()))
	rootCmd.AddCommand(
		server.StatusCommand(),
		genutilcli.Commands(tempApp.TxConfig(), basics, DefaultNodeHome()),
		queryCommand(),
		txCommand(),
		keys.Commands(),
	)
	return rootCmd
}

func queryCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:                        "query",
		Aliases:                    []string{"q"},
		Short:                      "Querying subcommands",
		DisableFlagParsing:         false,
		SuggestionsMinimumDistance: 2,
		RunE:                       client.ValidateCmd,
	}
	cmd.AddCommand(
		rpc.QueryEventForTxCmd(),
		server.QueryBlockCmd(),
		authcmd.QueryTxsByEventsCmd(),
		server.QueryBlocksCmd(),
		authcmd.QueryTxCmd(),
		server.QueryBlockResultsCmd(),
		nomtstoreQueryCommand(),
	)
	return cmd
}

// nomtstoreQueryCommand queries the nomtstore.v1.Query service of a
// running node. (The v0.53 node builds it from the module's AutoCLI
// options; the AutoCLI client of SDK v0.54, cosmossdk.io/client/v2, is not
// on the module proxy this project builds from.)
func nomtstoreQueryCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "nomtstore", Short: "Querying the nomtstore state store", RunE: client.ValidateCmd}
	status := &cobra.Command{
		Use:   "status",
		Short: "The store's versions, pruning, page table, disk use and WAL",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			clientCtx, err := client.GetClientQueryContext(cmd)
			if err != nil {
				return err
			}
			res, err := nomtstorev1.NewQueryClient(clientCtx).Status(cmd.Context(), &nomtstorev1.QueryStatusRequest{})
			if err != nil {
				return err
			}
			return clientCtx.PrintProto(res)
		},
	}
	flags.AddQueryFlagsToCmd(status)
	cmd.AddCommand(status)
	return cmd
}

func txCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:                        "tx",
		Short:                      "Transactions subcommands",
		DisableFlagParsing:         false,
		SuggestionsMinimumDistance: 2,
		RunE:                       client.ValidateCmd,
	}
	cmd.AddCommand(
		bankcli.NewTxCmd(addresscodec.NewBech32Codec(sdk.GetConfig().GetBech32AccountAddrPrefix())),
		govcli.NewTxCmd(nil),
		authcmd.GetSignCommand(),
		authcmd.GetSignBatchCommand(),
		authcmd.GetMultiSignCommand(),
		authcmd.GetMultiSignBatchCmd(),
		authcmd.GetValidateSignaturesCommand(),
		authcmd.GetBroadcastCommand(),
		authcmd.GetEncodeCommand(),
		authcmd.GetDecodeCommand(),
		authcmd.GetSimulateCmd(),
	)
	return cmd
}

// snapshotCommand is the SDK's `snapshots` command with its restore
// replaced by one that shows the restore's progress.
func snapshotCommand() *cobra.Command {
	cmd := snapshot.Cmd(NewApp)
	for _, c := range cmd.Commands() {
		if c.Name() == "restore" {
			cmd.RemoveCommand(c)
		}
	}
	cmd.AddCommand(restoreSnapshotCommand())
	return cmd
}
