package cmd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"cosmossdk.io/log"
	storetypes "cosmossdk.io/store/types"

	svrcmd "github.com/cosmos/cosmos-sdk/server/cmd"

	"github.com/nomtstore/nomtstore/commitment"
	"github.com/nomtstore/nomtstore/multistore"
	"github.com/nomtstore/nomtstore/storecmd"
)

// runJSON runs a store command with --output json and decodes its stdout,
// which must be one JSON document and nothing else.
func runJSON(t *testing.T, home string, v any, args ...string) {
	t.Helper()
	root := NewRootCmd()
	var stdout, stderr bytes.Buffer
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	root.SetArgs(append(args, "--output", "json", "--home", home))
	if err := svrcmd.Execute(root, "", home); err != nil {
		t.Fatalf("%v: %v (stderr %s)", args, err, stderr.String())
	}
	dec := json.NewDecoder(&stdout)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%v: stdout is not the JSON document: %v\n%s", args, err, stdout.String())
	}
	if dec.More() {
		t.Fatalf("%v: more than one JSON document on stdout", args)
	}
}

// TestStoreCommandsText: the readable form has aligned labels and human
// units, no Go struct dumps.
func TestStoreCommandsText(t *testing.T) {
	home := t.TempDir()
	makeStore(t, home)

	out, err := run(t, home, "nomtstore", "stats")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		fmt.Sprintf(`(?m)^store {2,}\S+nomtstore \(format %d\)$`, commitment.FormatVersion),
		`(?m)^versions {2,}1\.\.5, 5 retained$`,
		`(?m)^page table {2,}\d+ pages? in 1,024 buckets, load \d+\.\d\d% \(grows past 75%\)$`,
		`(?m)^  file {2,}\d+(\.\d+)? MiB, generation 0$`,
		`(?m)^disk {2,}\d+(\.\d+)? [KMG]iB$`,
		`(?m)^wal {2,}0 B in 0 records since the last checkpoint$`,
		`(?m)^  elision {2,}pages of subtrees with fewer than 64 keys are not stored$`,
		`(?m)^roots {2,}2 stores at version 5$`,
		`(?m)^  acc {2,}[0-9A-F]{64}$`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("stats: no line matching %s in\n%s", want, out)
		}
	}
	if strings.Contains(out, "{") {
		t.Errorf("stats prints a Go struct:\n%s", out)
	}
	checkAligned(t, out)

	out, err = run(t, home, "nomtstore", "module-hash", "3")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`(?m)^height {2,}3$`, `(?m)^app hash {2,}[0-9A-F]{64}$`, `(?m)^roots {2,}2 stores$`, `(?m)^  bank {2,}[0-9A-F]{64}$`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("module-hash: no line matching %s in\n%s", want, out)
		}
	}

	checkAligned(t, out)

	out, err = run(t, home, "nomtstore", "verify")
	if err != nil || !regexp.MustCompile(`(?m)^checks {2,}10 store checks in \S+$`).MatchString(out) {
		t.Errorf("verify: %v\n%s", err, out)
	}

	out, err = run(t, home, "nomtstore", "prune", "--to", "2")
	if err != nil || !regexp.MustCompile(`(?m)^pruned {2,}2 versions, 1\.\.2, in \d+ ms$`).MatchString(out) {
		t.Errorf("prune: %v\n%s", err, out)
	}
}

// TestStoreCommandsJSON: every store command's --output json is one
// document with the figures a script needs.
func TestStoreCommandsJSON(t *testing.T) {
	home := t.TempDir()
	makeStore(t, home)

	var stats storecmd.StatsReport
	runJSON(t, home, &stats, "nomtstore", "stats")
	if stats.LatestVersion != 5 || stats.EarliestVersion != 1 || stats.RetainedVersions != 5 || stats.Format != commitment.FormatVersion {
		t.Errorf("stats versions: %+v", stats)
	}
	// The stores hold too few keys for a stored page (elision).
	if stats.Table.Buckets != 1<<10 || stats.Table.FileBytes == 0 || stats.Table.ElideBelow != commitment.DefaultElideBelow {
		t.Errorf("stats table: %+v", stats.Table)
	}
	if len(stats.Disk) != 3 || stats.Disk[0].Component != "page table" || stats.Disk[1].Component != "write-ahead log" || stats.Disk[2].Bytes == 0 {
		t.Errorf("stats disk: %+v", stats.Disk)
	}
	if len(stats.Roots) != 2 || stats.Roots[0].Name != "acc" || len(stats.Roots[0].Root) != 64 {
		t.Errorf("stats roots: %+v", stats.Roots)
	}

	var hashes storecmd.ModuleHashReport
	runJSON(t, home, &hashes, "nomtstore", "module-hash", "5")
	if hashes.Height != 5 || len(hashes.AppHash) != 64 || len(hashes.Roots) != 2 {
		t.Errorf("module-hash: %+v", hashes)
	}
	// The latest roots are the same through both commands.
	for i, r := range hashes.Roots {
		if stats.Roots[i] != r {
			t.Errorf("module-hash 5 root %+v, stats %+v", r, stats.Roots[i])
		}
	}

	var verified storecmd.VerifyReport
	runJSON(t, home, &verified, "nomtstore", "verify")
	if !verified.OK || verified.FromVersion != 1 || verified.ToVersion != 5 || verified.Stores != 2 || verified.Checks != 10 || len(verified.Problems) != 0 {
		t.Errorf("verify: %+v", verified)
	}

	var pruned storecmd.PruneReport
	runJSON(t, home, &pruned, "nomtstore", "prune", "--to", "3")
	if pruned != (storecmd.PruneReport{PrunedFrom: 1, PrunedTo: 3, EarliestVersion: 4, LatestVersion: 5, TookMs: pruned.TookMs}) {
		t.Errorf("prune: %+v", pruned)
	}
	runJSON(t, home, &pruned, "nomtstore", "prune", "--to", "2")
	if pruned != (storecmd.PruneReport{EarliestVersion: 4, LatestVersion: 5}) {
		t.Errorf("prune with nothing to prune: %+v", pruned)
	}
	runJSON(t, home, &verified, "nomtstore", "verify", "--latest")
	if !verified.OK || verified.FromVersion != 5 || verified.Checks != 2 {
		t.Errorf("verify --latest: %+v", verified)
	}
}

// TestProveReport checks both forms of `nomtstore prove` on proofs the
// store gives, with no node: the same check the command makes of a node's
// answer, for a present and an absent key.
func TestProveReport(t *testing.T) {
	home := t.TempDir()
	makeStore(t, home)
	s, err := multistore.New(filepath.Join(home, "data", "nomtstore"), log.NewNopLogger(), multistore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	s.MountStoreWithDB(storetypes.NewKVStoreKey("bank"), storetypes.StoreTypeIAVL, nil)
	s.MountStoreWithDB(storetypes.NewKVStoreKey("acc"), storetypes.StoreTypeIAVL, nil)
	if err := s.LoadLatestVersion(); err != nil {
		t.Fatal(err)
	}
	appHash := s.LastCommitID().Hash

	for _, tc := range []struct {
		key    []byte
		exists bool
		text   []string
	}{
		{[]byte{3}, true, []string{`(?m)^value {2,}76616C7565 \("value"\)$`, `(?m)^verified {2,}existence proof, with cometbft proof runtime and with ibc-go MerkleProof`}},
		{[]byte{9}, false, []string{`(?m)^value {2,}none: the key is absent$`, `(?m)^verified {2,}absence proof`}},
	} {
		res, err := s.Query(&storetypes.RequestQuery{Path: "/bank/key", Data: tc.key, Height: 5, Prove: true})
		if err != nil {
			t.Fatal(err)
		}
		report, err := storecmd.CheckProof(StoreLine, 5, "bank", tc.key, res.Value, res.ProofOps, appHash)
		if err != nil {
			t.Fatalf("key %x: %v", tc.key, err)
		}
		var buf bytes.Buffer
		if err := storecmd.WriteJSON(&buf, report); err != nil {
			t.Fatal(err)
		}
		var back storecmd.ProofReport
		if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
			t.Fatal(err)
		}
		if back.Exists != tc.exists || back.HeaderHeight != 6 || back.Store != "bank" ||
			strings.Join(back.ProofOps, ",") != "ics23:smt,ics23:simple" || len(back.Verified) != 2 {
			t.Errorf("key %x: JSON %s", tc.key, buf.String())
		}
		buf.Reset()
		if err := report.Print(&buf); err != nil {
			t.Fatal(err)
		}
		for _, want := range append(tc.text, `(?m)^proof ops {2,}ics23:smt, ics23:simple$`, `(?m)^app hash {2,}[0-9A-F]{64} \(header 6\)$`) {
			if !regexp.MustCompile(want).MatchString(buf.String()) {
				t.Errorf("key %x: no line matching %s in\n%s", tc.key, want, buf.String())
			}
		}
		// A proof against another app hash is refused.
		if _, err := storecmd.CheckProof(StoreLine, 5, "bank", tc.key, res.Value, res.ProofOps, make([]byte, 32)); err == nil {
			t.Errorf("key %x: proof verified against a zero app hash", tc.key)
		}
	}
}

// checkAligned: every value of a command's text output starts in one
// column, whatever its label.
func checkAligned(t *testing.T, out string) {
	t.Helper()
	label := regexp.MustCompile(`^ *\S+( \S+)* {2,}`)
	column := -1
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		m := label.FindString(line)
		if m == "" {
			t.Errorf("line %q has no label", line)
			continue
		}
		if column == -1 {
			column = len(m)
		}
		if len(m) != column {
			t.Errorf("line %q: value at column %d, the first line's at %d", line, len(m), column)
		}
	}
}

func TestHumanUnits(t *testing.T) {
	for n, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 1024: "1.00 KiB", 67_112_960: "64.0 MiB", 12_700_000_000: "11.8 GiB"} {
		if got := storecmd.HumanBytes(n); got != want {
			t.Errorf("storecmd.HumanBytes(%d) = %q, want %q", n, got, want)
		}
	}
	for n, want := range map[uint64]string{0: "0", 999: "999", 1000: "1,000", 16384: "16,384", 1_234_567: "1,234,567"} {
		if got := storecmd.Count(n); got != want {
			t.Errorf("storecmd.Count(%d) = %q, want %q", n, got, want)
		}
	}
}
