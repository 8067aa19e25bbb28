// Package storecmd is the `nomtstore` command tree of a node on nomtstore
// (stats, verify, prune, module-hash, prove, migrate), for both SDK lines: a chain
// adds Command(line) to its root command, as both example nodes do
// (cmd/nomtsimd, storev2/cmd/nomtsimd). Only what needs the SDK's store
// types or ibc-go comes from the line: decoding a commit info and the two
// proof checks.
package storecmd

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
	"github.com/spf13/cobra"

	"github.com/cosmos/cosmos-sdk/client/flags"
	"github.com/cosmos/cosmos-sdk/server"
	sdk "github.com/cosmos/cosmos-sdk/types"
	"github.com/cosmos/cosmos-sdk/types/address"
	banktypes "github.com/cosmos/cosmos-sdk/x/bank/types"

	"github.com/nomtstore/nomtstore/appconfig"
	"github.com/nomtstore/nomtstore/cms"
	"github.com/nomtstore/nomtstore/commitment"
	"github.com/nomtstore/nomtstore/keeper"
)

// Line is what the commands need of an SDK line.
type Line struct {
	// CommitInfo decodes a version's commit-info record and hashes it,
	// with the line's store types.
	CommitInfo func(record []byte) (info cms.CommitInfo, appHash []byte, err error)
	// ProofRuntime is CometBFT's proof runtime with the line's decoders
	// (rootmulti's, and ics23:smt registered).
	ProofRuntime func() *cmtmerkle.ProofRuntime
	// VerifyIBC checks the proof ops of key in store against appHash with
	// the line's ibc-go MerkleProof and the specs [SmtSpec,
	// TendermintSpec]: membership of value, or absence when value is nil.
	VerifyIBC func(ops *cmtcrypto.ProofOps, appHash []byte, store string, key, value []byte) error
}

// Command is the `nomtstore` command with the store commands (stats,
// verify, prune, module-hash, prove, migrate --from-iavl); extra are
// added beside them.
func Command(line Line, extra ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "nomtstore",
		Short: "Inspect, verify and prune the node's nomtstore, and check store proofs",
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(statsCmd(), verifyCmd(), pruneCmd(), moduleHashCmd(line), proveCmd(line), migrateCmd(line))
	cmd.AddCommand(extra...)
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
	cfg, err := appconfig.Read(serverCtx.Viper)
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

// StatsReport is `nomtstore stats --output json`; its names follow the
// Query service's Status.
type StatsReport struct {
	Dir              string            `json:"dir"`
	Format           int               `json:"format"`
	LatestVersion    uint64            `json:"latest_version"`
	EarliestVersion  uint64            `json:"earliest_version"`
	RetainedVersions uint64            `json:"retained_versions"`
	Table            TableReport       `json:"table"`
	Disk             []DiskReport      `json:"disk"`
	Wal              WALReport         `json:"wal"`
	Roots            []StoreRootReport `json:"roots"`
}

// TableReport is the page table in StatsReport.
type TableReport struct {
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

// DiskReport is one part of the store's disk use.
type DiskReport struct {
	Component string `json:"component"`
	Bytes     uint64 `json:"bytes"`
}

// WALReport is the log since the last checkpoint.
type WALReport struct {
	Records uint64 `json:"records"`
	Bytes   uint64 `json:"bytes"`
}

// StoreRootReport is one store's root.
type StoreRootReport struct {
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
			format, err := OutputFormat(cmd)
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
			res := StatsReport{
				Dir: dir, Format: commitment.FormatVersion,
				LatestVersion: st.Version, EarliestVersion: st.EarliestVersion,
				Table: TableReport{
					Buckets: st.Table.Buckets, Full: st.Table.Full, Tombstones: st.Table.Tombstones,
					LoadFactor: st.Table.LoadFactor, Lookups: st.Table.Lookups, MeanProbe: st.Table.MeanProbe,
					LongestProbe: st.Table.LongestProbe, FileBytes: st.Table.FileBytes, Generation: st.Table.Generation,
					DirtyPages: st.DirtyPages, ElideBelow: st.ElideBelow,
				},
				Wal:   WALReport{Records: st.WALRecords, Bytes: st.WALRecordBytes},
				Disk:  []DiskReport{},
				Roots: []StoreRootReport{},
			}
			if st.Version > 0 && st.EarliestVersion > 0 {
				res.RetainedVersions = st.Version - st.EarliestVersion + 1
			}
			for _, d := range disk {
				res.Disk = append(res.Disk, DiskReport{Component: d.Component, Bytes: d.Bytes})
			}
			roots := db.Roots()
			for _, name := range db.Trees() {
				root := roots[name]
				res.Roots = append(res.Roots, StoreRootReport{Name: name, Root: fmt.Sprintf("%X", root[:])})
			}
			if format == OutputJSON {
				return WriteJSON(cmd.OutOrStdout(), res)
			}
			return printStats(cmd.OutOrStdout(), res)
		},
	}
	AddOutputFlag(cmd)
	return cmd
}

func printStats(w io.Writer, s StatsReport) error {
	t := NewTable(w)
	t.Row("store", "%s (format %d)", s.Dir, s.Format)
	if s.LatestVersion == 0 {
		t.Row("versions", "none committed")
	} else {
		t.Row("versions", "%d..%d, %s retained", s.EarliestVersion, s.LatestVersion, Count(s.RetainedVersions))
	}
	t.Row("page table", "%s %s in %s buckets, load %.2f%% (grows past 75%%)",
		Count(s.Table.Full), Plural(s.Table.Full, "page", "pages"), Count(s.Table.Buckets), 100*s.Table.LoadFactor)
	t.Row("  tombstones", "%s", Count(s.Table.Tombstones))
	if s.Table.Lookups > 0 {
		t.Row("  probes", "mean %.2f, longest %d (buckets read per lookup, over %s lookups since open)",
			s.Table.MeanProbe, s.Table.LongestProbe, Count(s.Table.Lookups))
	}
	t.Row("  file", "%s, generation %d", HumanBytes(uint64(s.Table.FileBytes)), s.Table.Generation)
	t.Row("  elision", "pages of subtrees with fewer than %d keys are not stored", s.Table.ElideBelow)
	t.Row("  dirty", "%s committed %s in memory until the next checkpoint", Count(uint64(s.Table.DirtyPages)), Plural(uint64(s.Table.DirtyPages), "page", "pages"))
	t.Row("wal", "%s in %s %s since the last checkpoint", HumanBytes(s.Wal.Bytes), Count(s.Wal.Records), Plural(s.Wal.Records, "record", "records"))
	var total uint64
	for _, d := range s.Disk {
		total += d.Bytes
	}
	t.Row("disk", "%s", HumanBytes(total))
	for _, d := range s.Disk {
		t.Row("  "+d.Component, "%s", HumanBytes(d.Bytes))
	}
	if len(s.Roots) > 0 {
		t.Row("roots", "%d %s at version %d", len(s.Roots), Plural(uint64(len(s.Roots)), "store", "stores"), s.LatestVersion)
	}
	for _, r := range s.Roots {
		t.Row("  "+r.Name, "%s", r.Root)
	}
	return t.Flush()
}

// PruneReport is `nomtstore prune --output json`.
type PruneReport struct {
	// PrunedFrom..PrunedTo is what this run deleted; both are 0 when there
	// was nothing to prune.
	PrunedFrom      uint64 `json:"pruned_from"`
	PrunedTo        uint64 `json:"pruned_to"`
	EarliestVersion uint64 `json:"earliest_version"`
	LatestVersion   uint64 `json:"latest_version"`
	TookMs          int64  `json:"took_ms"`
	// CompactedMs is how long --compact took; absent without it.
	CompactedMs *int64 `json:"compacted_ms,omitempty"`
}

func pruneCmd() *cobra.Command {
	var to uint64
	var compact bool
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Delete every version up to --to (node stopped); the SDK's `prune` command only knows rootmulti",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := OutputFormat(cmd)
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
			res := PruneReport{LatestVersion: latest, EarliestVersion: earliest}
			if to >= earliest {
				start := time.Now()
				if err := db.PruneTo(to); err != nil {
					return err
				}
				res.TookMs = time.Since(start).Milliseconds()
				res.PrunedFrom, res.PrunedTo, res.EarliestVersion = earliest, to, db.EarliestVersion()
			}
			if compact {
				start := time.Now()
				if err := db.Compact(); err != nil {
					return err
				}
				ms := time.Since(start).Milliseconds()
				res.CompactedMs = &ms
			}
			if format == OutputJSON {
				return WriteJSON(cmd.OutOrStdout(), res)
			}
			t := NewTable(cmd.OutOrStdout())
			if res.PrunedTo == 0 {
				t.Row("pruned", "nothing: versions up to %d are already pruned", earliest-1)
			} else {
				n := res.PrunedTo - res.PrunedFrom + 1
				t.Row("pruned", "%s %s, %d..%d, in %d ms", Count(n), Plural(n, "version", "versions"), res.PrunedFrom, res.PrunedTo, res.TookMs)
			}
			t.Row("retained", "versions %d..%d", res.EarliestVersion, res.LatestVersion)
			if res.CompactedMs != nil {
				t.Row("compacted", "in %d ms", *res.CompactedMs)
			}
			return t.Flush()
		},
	}
	cmd.Flags().Uint64Var(&to, "to", 0, "prune every version <= this height")
	cmd.Flags().BoolVar(&compact, "compact", false, "then rewrite the key-value tables so the pruned versions' space is freed now, not at the next compactions")
	AddOutputFlag(cmd)
	return cmd
}

// ModuleHashReport is `nomtstore module-hash --output json`, as the Query
// service's Roots.
type ModuleHashReport struct {
	Height  uint64            `json:"height"`
	AppHash string            `json:"app_hash"`
	Roots   []StoreRootReport `json:"roots"`
}

func moduleHashCmd(line Line) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "module-hash HEIGHT",
		Short: "Print each store's root at a height and the app hash (node stopped); the SDK's module-hash-by-height only knows rootmulti",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := OutputFormat(cmd)
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
			info, appHash, err := line.CommitInfo(record)
			if err != nil {
				return fmt.Errorf("commit info of %d: %w", height, err)
			}
			res := ModuleHashReport{Height: height, AppHash: fmt.Sprintf("%X", appHash), Roots: []StoreRootReport{}}
			for _, si := range info.Stores {
				res.Roots = append(res.Roots, StoreRootReport{Name: si.Name, Root: fmt.Sprintf("%X", si.CommitID.Hash)})
			}
			if format == OutputJSON {
				return WriteJSON(cmd.OutOrStdout(), res)
			}
			t := NewTable(cmd.OutOrStdout())
			t.Row("height", "%d", res.Height)
			t.Row("app hash", "%s", res.AppHash)
			t.Row("roots", "%d %s", len(res.Roots), Plural(uint64(len(res.Roots)), "store", "stores"))
			for _, r := range res.Roots {
				t.Row("  "+r.Name, "%s", r.Root)
			}
			return t.Flush()
		},
	}
	AddOutputFlag(cmd)
	return cmd
}

// proveCmd queries a running node for a store key with prove=true and
// verifies the proof against the app hash of the next block's header,
// with CometBFT's proof runtime and with ibc-go's MerkleProof.
func proveCmd(line Line) *cobra.Command {
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
			format, err := OutputFormat(cmd)
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
			report, err := CheckProof(line, height, storeName, key, res.Response.Value, res.Response.ProofOps, commit.AppHash)
			if err != nil {
				return err
			}
			if format == OutputJSON {
				return WriteJSON(cmd.OutOrStdout(), report)
			}
			return report.Print(cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&storeName, "store", "", "store name (e.g. bank, ibc)")
	cmd.Flags().StringVar(&keyHex, "key", "", "raw key, hex")
	cmd.Flags().StringVar(&balance, "balance", "", "ADDRESS:DENOM: prove that bank balance (sets --store and --key)")
	cmd.Flags().Int64Var(&height, "height", 0, "height to prove at (0: the latest but one, whose app hash is in the latest header)")
	cmd.Flags().String(flags.FlagNode, "tcp://localhost:26657", "CometBFT RPC address of the node")
	AddOutputFlag(cmd)
	return cmd
}

// ProofReport is `nomtstore prove --output json`: what was proved, against
// which app hash, and how it was checked.
type ProofReport struct {
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

// CheckProof verifies a /store/<name>/key answer at height against the
// app hash that commits to that height, both ways a client checks it; an
// empty value asks for an absence proof. It returns what `prove` reports.
func CheckProof(line Line, height int64, storeName string, key, value []byte, ops *cmtcrypto.ProofOps, appHash []byte) (ProofReport, error) {
	if ops == nil {
		return ProofReport{}, fmt.Errorf("query at height %d returned no proof", height)
	}
	res := ProofReport{
		Height: height, Store: storeName, Key: fmt.Sprintf("%X", key), Exists: len(value) > 0,
		Value: fmt.Sprintf("%X", value), HeaderHeight: height + 1, AppHash: fmt.Sprintf("%X", appHash),
		Verified: []string{"cometbft proof runtime", "ibc-go MerkleProof [SmtSpec, TendermintSpec]"},
	}
	for _, op := range ops.Ops {
		res.ProofOps = append(res.ProofOps, op.Type)
	}
	keyPath := cmtmerkle.KeyPath{}.AppendKey([]byte(storeName), cmtmerkle.KeyEncodingURL).AppendKey(key, cmtmerkle.KeyEncodingURL)
	prt := line.ProofRuntime()
	if res.Exists {
		if err := prt.VerifyValue(ops, appHash, keyPath.String(), value); err != nil {
			return res, fmt.Errorf("existence proof fails CometBFT's proof runtime: %w", err)
		}
		if err := line.VerifyIBC(ops, appHash, storeName, key, value); err != nil {
			return res, fmt.Errorf("existence proof fails ibc-go MerkleProof: %w", err)
		}
		return res, nil
	}
	if err := prt.VerifyAbsence(ops, appHash, keyPath.String()); err != nil {
		return res, fmt.Errorf("absence proof fails CometBFT's proof runtime: %w", err)
	}
	if err := line.VerifyIBC(ops, appHash, storeName, key, nil); err != nil {
		return res, fmt.Errorf("absence proof fails ibc-go MerkleProof: %w", err)
	}
	return res, nil
}

// Print writes the report for a person.
func (p ProofReport) Print(w io.Writer) error {
	t := NewTable(w)
	t.Row("height", "%d", p.Height)
	t.Row("store", "%s", p.Store)
	t.Row("key", "%s", p.Key)
	if p.Exists {
		value, _ := hex.DecodeString(p.Value)
		if printable(value) {
			t.Row("value", "%s (%q)", p.Value, value)
		} else {
			t.Row("value", "%s", p.Value)
		}
	} else {
		t.Row("value", "none: the key is absent")
	}
	t.Row("proof ops", "%s", strings.Join(p.ProofOps, ", "))
	t.Row("app hash", "%s (header %d)", p.AppHash, p.HeaderHeight)
	kind := "absence"
	if p.Exists {
		kind = "existence"
	}
	t.Row("verified", "%s proof, with %s", kind, strings.Join(p.Verified, " and with "))
	return t.Flush()
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
