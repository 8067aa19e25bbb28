// Command nomtsimd is a full node of the ibc-go v11 simapp (SDK v0.54) with its state in
// nomtstore instead of IAVL: simd's commands (init, start, rollback, export,
// snapshots, keys, tx, query, genesis) plus `nomtstore` store commands.
package main

import (
	"fmt"
	"os"

	svrcmd "github.com/cosmos/cosmos-sdk/server/cmd"

	"github.com/nomtstore/nomtstore/storev2/cmd/nomtsimd/cmd"
)

func main() {
	rootCmd := cmd.NewRootCmd()
	if err := svrcmd.Execute(rootCmd, "", cmd.DefaultNodeHome()); err != nil {
		_, _ = fmt.Fprintln(rootCmd.OutOrStderr(), err) // exiting anyway
		os.Exit(1)
	}
}
