// Command nomtstore is nomtstore's tool for chain developers and node
// operators. Its trie commands recompute a store's root and ICS23 proofs
// from exported key/value pairs, to chase an app-hash mismatch without a
// node.
//
// Exit codes: 0 success, 1 a proof that does not verify or an internal
// failure, 2 bad input or usage.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// failure is an error that is not the user's input: a proof that does not
// verify, or the tool failing (exit 1). Every other error is bad input or
// usage (exit 2).
type failure struct{ msg string }

func (f *failure) Error() string { return f.msg }

func failed(format string, args ...any) error {
	return &failure{msg: fmt.Sprintf(format, args...)}
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return 0
	}
	_, _ = fmt.Fprintln(stderr, "nomtstore:", err) // nowhere left to report a failure to
	if f := (*failure)(nil); errors.As(err, &f) {
		return 1
	}
	return 2
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "nomtstore",
		Short:         "Tools for the nomtstore commitment store",
		SilenceErrors: true, // run prints them once, with the exit code
		SilenceUsage:  true,
	}
	root.AddCommand(newTrieCommand(), newBenchCommand())
	requireSubcommand(root)
	return root
}

// requireSubcommand makes a command group reject a missing or unknown
// subcommand as bad usage; cobra would print help and exit 0.
func requireSubcommand(group *cobra.Command) {
	group.Args = cobra.ArbitraryArgs
	group.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return fmt.Errorf("%s needs a subcommand; see %q", cmd.CommandPath(), cmd.CommandPath()+" --help")
		}
		return fmt.Errorf("unknown command %q for %q; see %q", args[0], cmd.CommandPath(), cmd.CommandPath()+" --help")
	}
}
