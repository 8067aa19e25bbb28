package cmd

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"cosmossdk.io/store/rootmulti"
	storetypes "cosmossdk.io/store/types"
	cmtmerkle "github.com/cometbft/cometbft/crypto/merkle"
	rpcclient "github.com/cometbft/cometbft/rpc/client"
	rpchttp "github.com/cometbft/cometbft/rpc/client/http"
	ics23 "github.com/cosmos/ics23/go"
	"github.com/spf13/cobra"

	"github.com/cosmos/cosmos-sdk/client/flags"
	"github.com/cosmos/cosmos-sdk/server"
	sdk "github.com/cosmos/cosmos-sdk/types"
	"github.com/cosmos/cosmos-sdk/types/address"
	banktypes "github.com/cosmos/cosmos-sdk/x/bank/types"
	commitmenttypes "github.com/cosmos/ibc-go/v10/modules/core/23-commitment/types"
	commitmenttypesv2 "github.com/cosmos/ibc-go/v10/modules/core/23-commitment/types/v2"

	"github.com/nomtstore/nomtstore/commitment"
	nomtmodule "github.com/nomtstore/nomtstore/module"
)

func storeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "nomtstore",
		Short: "Inspect, verify and prune the node's nomtstore, and check store proofs",
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(statsCmd(), verifyCmd(), pruneCmd(), moduleHashCmd(), proveCmd())
	for _, c := range cmd.Commands() {
		c.SilenceUsage = true // errors are about the store, not the flags
	}
	return cmd
}

// openOffline opens the store of a stopped node, read-write, refusing a
// home that has no store and a store that a running node holds.
func openOffline(cmd *cobra.Command) (*commitment.DB, error) {
	serverCtx := server.GetServerContextFromCmd(cmd)
	home := serverCtx.Config.RootDir
	cfg, err := nomtmodule.ReadConfig(serverCtx.Viper)
	if err != nil {
		return nil, err
	}
	dir := cfg.Dir
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(home, dir)
	}
	if _, err := os.Stat(filepath.Join(dir, "FORMAT")); err != nil {
		return nil, fmt.Errorf("%s is not a nomtstore home: no store in %s (run `init` and `start` first, or pass --home)", home, dir)
	}
	db, err := commitment.Open(dir, nil, commitment.Options{})
	if err != nil {
		if strings.Contains(err.Error(), "lock") {
			return nil, fmt.Errorf("the store in %s is in use: stop the node first (%w)", dir, err)
		}
		return nil, err
	}
	return db, nil
}

func statsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "stats",
		Short: "Print the store's versions, roots and page table (node stopped)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, err := openOffline(cmd)
			if err != nil {
				return err
			}
			defer func() { _ = db.Close() }()
			st := db.Stats()
			out := &printer{w: cmd.OutOrStdout()}
			out.printf("latest version:   %d\nearliest version: %d\n", st.Version, st.EarliestVersion)
			out.printf("page table:       %+v\n", st.Table)
			roots := db.Roots()
			names := db.Trees()
			out.printf("stores (%d):\n", len(names))
			for _, name := range names {
				root := roots[name]
				out.printf("  %-24s %x\n", name, root[:])
			}
			return out.err
		},
	}
}

func pruneCmd() *cobra.Command {
	var to uint64
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Delete every version up to --to (node stopped); the SDK's `prune` command only knows rootmulti",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if to == 0 {
				return errors.New("--to HEIGHT is required")
			}
			db, err := openOffline(cmd)
			if err != nil {
				return err
			}
			defer func() { _ = db.Close() }()
			latest, earliest := db.Version(), db.EarliestVersion()
			switch {
			case to > latest:
				return fmt.Errorf("--to %d is beyond the latest version (%d)", to, latest)
			case to == latest:
				return fmt.Errorf("--to %d: the latest version (%d) cannot be pruned", to, latest)
			}
			out := &printer{w: cmd.OutOrStdout()}
			if to < earliest {
				out.printf("nothing to prune: versions up to %d are already pruned (earliest %d, latest %d)\n", earliest-1, earliest, latest)
				return out.err
			}
			if err := db.PruneTo(to); err != nil {
				return err
			}
			out.printf("pruned: earliest version now %d, latest %d\n", db.EarliestVersion(), db.Version())
			return out.err
		},
	}
	cmd.Flags().Uint64Var(&to, "to", 0, "prune every version <= this height")
	return cmd
}

func moduleHashCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "module-hash HEIGHT",
		Short: "Print each store's root at a height (node stopped); the SDK's module-hash-by-height only knows rootmulti",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var height uint64
			if _, err := fmt.Sscan(args[0], &height); err != nil {
				return fmt.Errorf("height %q: %w", args[0], err)
			}
			db, err := openOffline(cmd)
			if err != nil {
				return err
			}
			defer func() { _ = db.Close() }()
			record, err := db.VersionRecord(height)
			if err != nil {
				return err
			}
			info := &storetypes.CommitInfo{}
			if err := info.Unmarshal(record); err != nil {
				return fmt.Errorf("commit info of %d: %w", height, err)
			}
			out := &printer{w: cmd.OutOrStdout()}
			for _, si := range info.StoreInfos {
				out.printf("%-24s %X\n", si.Name, si.CommitId.Hash)
			}
			out.printf("app hash %X\n", info.Hash())
			return out.err
		},
	}
}

// proveCmd queries a running node for a store key with prove=true and
// verifies the proof against the app hash of the next block's header,
// with CometBFT's proof runtime and with ibc-go's MerkleProof.
func proveCmd() *cobra.Command {
	var storeName, keyHex, balance string
	var height int64
	cmd := &cobra.Command{
		Use:   "prove",
		Short: "Query a store key with a proof from a running node and verify it against the block's app hash",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			key, err := proofKey(storeName, keyHex, balance)
			if err != nil {
				return err
			}
			if balance != "" {
				storeName = banktypes.StoreKey
			}
			node, _ := cmd.Flags().GetString(flags.FlagNode)
			client, err := rpchttp.New(node, "/websocket")
			if err != nil {
				return err
			}
			ctx := context.Background()
			if height == 0 {
				status, err := client.Status(ctx)
				if err != nil {
					return err
				}
				height = status.SyncInfo.LatestBlockHeight - 1
			}
			res, err := client.ABCIQueryWithOptions(ctx, "/store/"+storeName+"/key", key, rpcQueryOpts(height))
			if err != nil {
				return err
			}
			if res.Response.Code != 0 {
				return fmt.Errorf("query at height %d failed: %s", height, res.Response.Log)
			}
			if res.Response.ProofOps == nil {
				return fmt.Errorf("query at height %d returned no proof: %s", height, res.Response.Log)
			}
			next := height + 1
			commit, err := client.Commit(ctx, &next)
			if err != nil {
				return fmt.Errorf("header %d (its app hash commits to height %d): %w", next, height, err)
			}
			appHash := commit.AppHash
			value := res.Response.Value
			out := &printer{w: cmd.OutOrStdout()}
			out.printf("height %d, store %s, key %X\nvalue %X\nproof ops:", height, storeName, key, value)
			for _, op := range res.Response.ProofOps.Ops {
				out.printf(" %s", op.Type)
			}
			out.printf("\napp hash (header %d) %X\n", next, []byte(appHash))

			keyPath := cmtmerkle.KeyPath{}.AppendKey([]byte(storeName), cmtmerkle.KeyEncodingURL).AppendKey(key, cmtmerkle.KeyEncodingURL)
			// rootmulti's runtime knows ics23:iavl and ics23:simple; a
			// client of a nomtstore chain registers ics23:smt too.
			prt := rootmulti.DefaultProofRuntime()
			prt.RegisterOpDecoder(storetypes.ProofOpSMTCommitment, storetypes.CommitmentOpDecoder)
			proof, err := commitmenttypes.ConvertProofs(res.Response.ProofOps)
			if err != nil {
				return err
			}
			specs := []*ics23.ProofSpec{ics23.SmtSpec, ics23.TendermintSpec}
			path := commitmenttypesv2.NewMerklePath([]byte(storeName), key)
			root := commitmenttypes.NewMerkleRoot(appHash)
			if len(value) > 0 {
				if err := prt.VerifyValue(res.Response.ProofOps, appHash, keyPath.String(), value); err != nil {
					return fmt.Errorf("existence proof fails CometBFT's proof runtime: %w", err)
				}
				if err := proof.VerifyMembership(specs, root, path, value); err != nil {
					return fmt.Errorf("existence proof fails ibc-go MerkleProof: %w", err)
				}
				out.printf("existence proof verified (ics23 SmtSpec + TendermintSpec, CometBFT proof runtime and ibc-go MerkleProof)\n")
				return out.err
			}
			if err := prt.VerifyAbsence(res.Response.ProofOps, appHash, keyPath.String()); err != nil {
				return fmt.Errorf("absence proof fails CometBFT's proof runtime: %w", err)
			}
			if err := proof.VerifyNonMembership(specs, root, path); err != nil {
				return fmt.Errorf("absence proof fails ibc-go MerkleProof: %w", err)
			}
			out.printf("absence proof verified (ics23 SmtSpec + TendermintSpec, CometBFT proof runtime and ibc-go MerkleProof)\n")
			return out.err
		},
	}
	cmd.Flags().StringVar(&storeName, "store", "", "store name (e.g. bank, ibc)")
	cmd.Flags().StringVar(&keyHex, "key", "", "raw key, hex")
	cmd.Flags().StringVar(&balance, "balance", "", "ADDRESS:DENOM: prove that bank balance (sets --store and --key)")
	cmd.Flags().Int64Var(&height, "height", 0, "height to prove at (0: the latest but one, whose app hash is in the latest header)")
	cmd.Flags().String(flags.FlagNode, "tcp://localhost:26657", "CometBFT RPC address of the node")
	return cmd
}

func proofKey(storeName, keyHex, balance string) ([]byte, error) {
	switch {
	case balance != "":
		addr, denom, ok := strings.Cut(balance, ":")
		if !ok {
			return nil, fmt.Errorf("--balance %q: want ADDRESS:DENOM", balance)
		}
		acc, err := sdk.AccAddressFromBech32(addr)
		if err != nil {
			return nil, fmt.Errorf("--balance address: %w", err)
		}
		// bank's Balances map: prefix 2, then the length-prefixed address,
		// then the denom.
		key := append([]byte{2}, address.MustLengthPrefix(acc)...)
		return append(key, denom...), nil
	case storeName == "" || keyHex == "":
		return nil, errors.New("give --store and --key, or --balance")
	}
	key, err := hex.DecodeString(keyHex)
	if err != nil {
		return nil, fmt.Errorf("--key: %w", err)
	}
	if len(key) == 0 {
		return nil, errors.New("--key must not be empty")
	}
	return key, nil
}

func rpcQueryOpts(height int64) rpcclient.ABCIQueryOptions {
	return rpcclient.ABCIQueryOptions{Height: height, Prove: true}
}

// printer writes a command's output and keeps the first write error, which
// the command returns.
type printer struct {
	w   io.Writer
	err error
}

func (p *printer) printf(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}
