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
	"time"

	cmtmerkle "github.com/cometbft/cometbft/crypto/merkle"
	cmtcrypto "github.com/cometbft/cometbft/proto/tendermint/crypto"
	rpcclient "github.com/cometbft/cometbft/rpc/client"
	rpchttp "github.com/cometbft/cometbft/rpc/client/http"
	"github.com/cosmos/cosmos-sdk/store/v2/rootmulti"
	storetypes "github.com/cosmos/cosmos-sdk/store/v2/types"
	ics23 "github.com/cosmos/ics23/go"
	"github.com/spf13/cobra"

	"github.com/cosmos/cosmos-sdk/client/flags"
	"github.com/cosmos/cosmos-sdk/server"
	sdk "github.com/cosmos/cosmos-sdk/types"
	"github.com/cosmos/cosmos-sdk/types/address"
	banktypes "github.com/cosmos/cosmos-sdk/x/bank/types"
	commitmenttypes "github.com/cosmos/ibc-go/v11/modules/core/23-commitment/types"
	commitmenttypesv2 "github.com/cosmos/ibc-go/v11/modules/core/23-commitment/types/v2"

	"github.com/nomtstore/nomtstore/commitment"
	"github.com/nomtstore/nomtstore/keeper"
	nomtmodule "github.com/nomtstore/nomtstore/storev2/module"
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
func openOffline(cmd *cobra.Command) (*commitment.DB, string, error) {
	serverCtx := server.GetServerContextFromCmd(cmd)
	home := serverCtx.Config.RootDir
	cfg, err := nomtmodule.ReadConfig(serverCtx.Viper)
	if err != nil {
		return nil, "", err
	}
	dir := cfg.StoreDir(home)
	if _, err := os.Stat(filepath.Join(dir, "FORMAT")); err != nil {
		return nil, "", fmt.Errorf("%s is not a nomtstore home: no store in %s (run `init` and `start` first, or pass --home)", home, dir)
	}
	db, err := commitment.Open(dir, nil, commitment.Options{})
	if err != nil {
		if strings.Contains(err.Error(), "lock") {
			return nil, "", fmt.Errorf("the store in %s is in use: stop the node first (%w)", dir, err)
		}
		return nil, "", err
	}
	return db, dir, nil
}

// statsJSON is `nomtstore stats --output json`; its names follow the
// Query service's Status.
type statsJSON struct {
	Dir              string          `json:"dir"`
	Format           int             `json:"format"`
	LatestVersion    uint64          `json:"latest_version"`
	EarliestVersion  uint64          `json:"earliest_version"`
	RetainedVersions uint64          `json:"retained_versions"`
	Table            tableJSON       `json:"table"`
	Disk             []diskJSON      `json:"disk"`
	Wal              walJSON         `json:"wal"`
	Roots            []storeRootJSON `json:"roots"`
}

type tableJSON struct {
	Buckets      uint64  `json:"buckets"`
	Full         uint64  `json:"full"`
	Tombstones   uint64  `json:"tombstones"`
	LoadFactor   float64 `json:"load_factor"`
	Lookups      uint64  `json:"lookups"`
	MeanProbe    float64 `json:"mean_probe"`
	LongestProbe int     `json:"longest_probe"`
	FileBytes    int64   `json:"file_bytes"`
	Generation   uint64  `json:"generation"`
	DirtyPages   int     `json:"dirty_pages"`
	ElideBelow   int     `json:"elide_below"`
}

type diskJSON struct {
	Component string `json:"component"`
	Bytes     uint64 `json:"bytes"`
}

type walJSON struct {
	Records uint64 `json:"records"`
	Bytes   uint64 `json:"bytes"`
}

type storeRootJSON struct {
	Name string `json:"name"`
	Root string `json:"root"` // hex, upper case as CometBFT prints hashes
}

func statsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "stats",
		Short: "Print the store's versions, page table, disk use and roots (node stopped)",
		Long: `Print the store's retained versions, its page table (pages, buckets, load
factor: the table grows past 75%), its disk use by part and each store's root at
the latest version. The probe figures count the lookups made since this command
opened the store. A running node reports the same through
"query nomtstore status".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := outputFormat(cmd)
			if err != nil {
				return err
			}
			db, dir, err := openOffline(cmd)
			if err != nil {
				return err
			}
			defer func() { _ = db.Close() }()
			st := db.Stats()
			disk, err := keeper.DiskUsage(dir)
			if err != nil {
				return err
			}
			res := statsJSON{
				Dir: dir, Format: commitment.FormatVersion,
				LatestVersion: st.Version, EarliestVersion: st.EarliestVersion,
				Table: tableJSON{
					Buckets: st.Table.Buckets, Full: st.Table.Full, Tombstones: st.Table.Tombstones,
					LoadFactor: st.Table.LoadFactor, Lookups: st.Table.Lookups, MeanProbe: st.Table.MeanProbe,
					LongestProbe: st.Table.LongestProbe, FileBytes: st.Table.FileBytes, Generation: st.Table.Generation,
					DirtyPages: st.DirtyPages, ElideBelow: st.ElideBelow,
				},
				Wal:   walJSON{Records: st.WALRecords, Bytes: st.WALRecordBytes},
				Disk:  []diskJSON{},
				Roots: []storeRootJSON{},
			}
			if st.Version > 0 && st.EarliestVersion > 0 {
				res.RetainedVersions = st.Version - st.EarliestVersion + 1
			}
			for _, d := range disk {
				res.Disk = append(res.Disk, diskJSON{Component: d.Component, Bytes: d.Bytes})
			}
			roots := db.Roots()
			for _, name := range db.Trees() {
				root := roots[name]
				res.Roots = append(res.Roots, storeRootJSON{Name: name, Root: fmt.Sprintf("%X", root[:])})
			}
			if format == outputJSON {
				return writeJSON(cmd.OutOrStdout(), res)
			}
			return printStats(cmd.OutOrStdout(), res)
		},
	}
	addOutputFlag(cmd)
	return cmd
}

func printStats(w io.Writer, s statsJSON) error {
	t := newTable(w)
	t.row("store", "%s (format %d)", s.Dir, s.Format)
	if s.LatestVersion == 0 {
		t.row("versions", "none committed")
	} else {
		t.row("versions", "%d..%d, %s retained", s.EarliestVersion, s.LatestVersion, count(s.RetainedVersions))
	}
	t.row("page table", "%s %s in %s buckets, load %.2f%% (grows past 75%%)",
		count(s.Table.Full), plural(s.Table.Full, "page", "pages"), count(s.Table.Buckets), 100*s.Table.LoadFactor)
	t.row("  tombstones", "%s", count(s.Table.Tombstones))
	if s.Table.Lookups > 0 {
		t.row("  probes", "mean %.2f, longest %d (buckets read per lookup, over %s lookups since open)",
			s.Table.MeanProbe, s.Table.LongestProbe, count(s.Table.Lookups))
	}
	t.row("  file", "%s, generation %d", humanBytes(uint64(s.Table.FileBytes)), s.Table.Generation)
	t.row("  elision", "pages of subtrees with fewer than %d keys are not stored", s.Table.ElideBelow)
	t.row("  dirty", "%s committed %s in memory until the next checkpoint", count(uint64(s.Table.DirtyPages)), plural(uint64(s.Table.DirtyPages), "page", "pages"))
	t.row("wal", "%s in %s %s since the last checkpoint", humanBytes(s.Wal.Bytes), count(s.Wal.Records), plural(s.Wal.Records, "record", "records"))
	var total uint64
	for _, d := range s.Disk {
		total += d.Bytes
	}
	t.row("disk", "%s", humanBytes(total))
	for _, d := range s.Disk {
		t.row("  "+d.Component, "%s", humanBytes(d.Bytes))
	}
	if len(s.Roots) > 0 {
		t.row("roots", "%d %s at version %d", len(s.Roots), plural(uint64(len(s.Roots)), "store", "stores"), s.LatestVersion)
	}
	for _, r := range s.Roots {
		t.row("  "+r.Name, "%s", r.Root)
	}
	return t.flush()
}

// pruneJSON is `nomtstore prune --output json`.
type pruneJSON struct {
	// PrunedFrom..PrunedTo is what this run deleted; both are 0 when there
	// was nothing to prune.
	PrunedFrom      uint64 `json:"pruned_from"`
	PrunedTo        uint64 `json:"pruned_to"`
	EarliestVersion uint64 `json:"earliest_version"`
	LatestVersion   uint64 `json:"latest_version"`
	TookMs          int64  `json:"took_ms"`
}

func pruneCmd() *cobra.Command {
	var to uint64
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Delete every version up to --to (node stopped); the SDK's `prune` command only knows rootmulti",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := outputFormat(cmd)
			if err != nil {
				return err
			}
			if to == 0 {
				return errors.New("--to HEIGHT is required")
			}
			db, _, err := openOffline(cmd)
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
			res := pruneJSON{LatestVersion: latest, EarliestVersion: earliest}
			if to >= earliest {
				start := time.Now()
				if err := db.PruneTo(to); err != nil {
					return err
				}
				res.TookMs = time.Since(start).Milliseconds()
				res.PrunedFrom, res.PrunedTo, res.EarliestVersion = earliest, to, db.EarliestVersion()
			}
			if format == outputJSON {
				return writeJSON(cmd.OutOrStdout(), res)
			}
			t := newTable(cmd.OutOrStdout())
			if res.PrunedTo == 0 {
				t.row("pruned", "nothing: versions up to %d are already pruned", earliest-1)
			} else {
				n := res.PrunedTo - res.PrunedFrom + 1
				t.row("pruned", "%s %s, %d..%d, in %d ms", count(n), plural(n, "version", "versions"), res.PrunedFrom, res.PrunedTo, res.TookMs)
			}
			t.row("retained", "versions %d..%d", res.EarliestVersion, res.LatestVersion)
			return t.flush()
		},
	}
	cmd.Flags().Uint64Var(&to, "to", 0, "prune every version <= this height")
	addOutputFlag(cmd)
	return cmd
}

// moduleHashJSON is `nomtstore module-hash --output json`, as the Query
// service's Roots.
type moduleHashJSON struct {
	Height  uint64          `json:"height"`
	AppHash string          `json:"app_hash"`
	Roots   []storeRootJSON `json:"roots"`
}

func moduleHashCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "module-hash HEIGHT",
		Short: "Print each store's root at a height and the app hash (node stopped); the SDK's module-hash-by-height only knows rootmulti",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := outputFormat(cmd)
			if err != nil {
				return err
			}
			var height uint64
			if _, err := fmt.Sscan(args[0], &height); err != nil {
				return fmt.Errorf("height %q: %w", args[0], err)
			}
			db, _, err := openOffline(cmd)
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
			res := moduleHashJSON{Height: height, AppHash: fmt.Sprintf("%X", info.Hash()), Roots: []storeRootJSON{}}
			for _, si := range info.StoreInfos {
				res.Roots = append(res.Roots, storeRootJSON{Name: si.Name, Root: fmt.Sprintf("%X", si.CommitId.Hash)})
			}
			if format == outputJSON {
				return writeJSON(cmd.OutOrStdout(), res)
			}
			t := newTable(cmd.OutOrStdout())
			t.row("height", "%d", res.Height)
			t.row("app hash", "%s", res.AppHash)
			t.row("roots", "%d %s", len(res.Roots), plural(uint64(len(res.Roots)), "store", "stores"))
			for _, r := range res.Roots {
				t.row("  "+r.Name, "%s", r.Root)
			}
			return t.flush()
		},
	}
	addOutputFlag(cmd)
	return cmd
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
		Long: `Query a key of a store with a proof from a running node, at --height (default:
the latest height but one, whose app hash is in the latest header), and verify
the proof against the app hash of the header at height+1, as a light client
does: with CometBFT's proof runtime (ics23:smt registered) and with ibc-go's
MerkleProof and the specs [SmtSpec, TendermintSpec]. A key that is present gets
an existence proof, an absent one an absence proof. A proof that does not
verify is an error (exit 1).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := outputFormat(cmd)
			if err != nil {
				return err
			}
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
			report, err := checkProof(height, storeName, key, res.Response.Value, res.Response.ProofOps, commit.AppHash)
			if err != nil {
				return err
			}
			if format == outputJSON {
				return writeJSON(cmd.OutOrStdout(), report)
			}
			return report.print(cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&storeName, "store", "", "store name (e.g. bank, ibc)")
	cmd.Flags().StringVar(&keyHex, "key", "", "raw key, hex")
	cmd.Flags().StringVar(&balance, "balance", "", "ADDRESS:DENOM: prove that bank balance (sets --store and --key)")
	cmd.Flags().Int64Var(&height, "height", 0, "height to prove at (0: the latest but one, whose app hash is in the latest header)")
	cmd.Flags().String(flags.FlagNode, "tcp://localhost:26657", "CometBFT RPC address of the node")
	addOutputFlag(cmd)
	return cmd
}

// proofJSON is `nomtstore prove --output json`: what was proved, against
// which app hash, and how it was checked.
type proofJSON struct {
	Height       int64    `json:"height"`
	Store        string   `json:"store"`
	Key          string   `json:"key"`
	Exists       bool     `json:"exists"`
	Value        string   `json:"value"`
	ProofOps     []string `json:"proof_ops"`
	HeaderHeight int64    `json:"header_height"`
	AppHash      string   `json:"app_hash"`
	Verified     []string `json:"verified_with"`
}

// checkProof verifies a /store/<name>/key answer at height against the app
// hash that commits to that height, both ways a client checks it; an
// empty value asks for an absence proof.
func checkProof(height int64, storeName string, key, value []byte, ops *cmtcrypto.ProofOps, appHash []byte) (proofJSON, error) {
	if ops == nil {
		return proofJSON{}, fmt.Errorf("query at height %d returned no proof", height)
	}
	res := proofJSON{
		Height: height, Store: storeName, Key: fmt.Sprintf("%X", key), Exists: len(value) > 0,
		Value: fmt.Sprintf("%X", value), HeaderHeight: height + 1, AppHash: fmt.Sprintf("%X", appHash),
		Verified: []string{"cometbft proof runtime", "ibc-go MerkleProof [SmtSpec, TendermintSpec]"},
	}
	for _, op := range ops.Ops {
		res.ProofOps = append(res.ProofOps, op.Type)
	}
	keyPath := cmtmerkle.KeyPath{}.AppendKey([]byte(storeName), cmtmerkle.KeyEncodingURL).AppendKey(key, cmtmerkle.KeyEncodingURL)
	// rootmulti's runtime knows ics23:iavl and ics23:simple; a client of a
	// nomtstore chain registers ics23:smt too.
	prt := rootmulti.DefaultProofRuntime()
	prt.RegisterOpDecoder(storetypes.ProofOpSMTCommitment, storetypes.CommitmentOpDecoder)
	proof, err := commitmenttypes.ConvertProofs(ops)
	if err != nil {
		return res, err
	}
	specs := []*ics23.ProofSpec{ics23.SmtSpec, ics23.TendermintSpec}
	path := commitmenttypesv2.NewMerklePath([]byte(storeName), key)
	root := commitmenttypes.NewMerkleRoot(appHash)
	if res.Exists {
		if err := prt.VerifyValue(ops, appHash, keyPath.String(), value); err != nil {
			return res, fmt.Errorf("existence proof fails CometBFT's proof runtime: %w", err)
		}
		if err := proof.VerifyMembership(specs, root, path, value); err != nil {
			return res, fmt.Errorf("existence proof fails ibc-go MerkleProof: %w", err)
		}
		return res, nil
	}
	if err := prt.VerifyAbsence(ops, appHash, keyPath.String()); err != nil {
		return res, fmt.Errorf("absence proof fails CometBFT's proof runtime: %w", err)
	}
	if err := proof.VerifyNonMembership(specs, root, path); err != nil {
		return res, fmt.Errorf("absence proof fails ibc-go MerkleProof: %w", err)
	}
	return res, nil
}

func (p proofJSON) print(w io.Writer) error {
	t := newTable(w)
	t.row("height", "%d", p.Height)
	t.row("store", "%s", p.Store)
	t.row("key", "%s", p.Key)
	if p.Exists {
		value, _ := hex.DecodeString(p.Value)
		if printable(value) {
			t.row("value", "%s (%q)", p.Value, value)
		} else {
			t.row("value", "%s", p.Value)
		}
	} else {
		t.row("value", "none: the key is absent")
	}
	t.row("proof ops", "%s", strings.Join(p.ProofOps, ", "))
	t.row("app hash", "%s (header %d)", p.AppHash, p.HeaderHeight)
	kind := "absence"
	if p.Exists {
		kind = "existence"
	}
	t.row("verified", "%s proof, with %s", kind, strings.Join(p.Verified, " and with "))
	return t.flush()
}

// printable tells a value worth showing as text too (a bank amount is its
// decimal digits) from a binary one.
func printable(b []byte) bool {
	if len(b) == 0 || len(b) > 64 {
		return false
	}
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
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
