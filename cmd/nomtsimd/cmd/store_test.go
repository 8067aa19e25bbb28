package cmd

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"cosmossdk.io/log"
	storetypes "cosmossdk.io/store/types"

	svrcmd "github.com/cosmos/cosmos-sdk/server/cmd"

	"github.com/nomtstore/nomtstore/commitment"
	"github.com/nomtstore/nomtstore/multistore"
)

// makeStore commits a few versions of two stores under home, as a node
// would leave them.
func makeStore(t *testing.T, home string) {
	t.Helper()
	s, err := multistore.New(filepath.Join(home, "data", "nomtstore"), log.NewNopLogger(), multistore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	bank, acc := storetypes.NewKVStoreKey("bank"), storetypes.NewKVStoreKey("acc")
	s.MountStoreWithDB(bank, storetypes.StoreTypeIAVL, nil)
	s.MountStoreWithDB(acc, storetypes.StoreTypeIAVL, nil)
	if err := s.LoadLatestVersion(); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		s.GetKVStore(bank).Set([]byte{byte(i)}, []byte("value"))
		s.GetKVStore(acc).Set([]byte{byte(i), 1}, []byte("other"))
		s.Commit()
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func run(t *testing.T, home string, args ...string) (string, error) {
	t.Helper()
	root := NewRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(append(args, "--home", home))
	err := svrcmd.Execute(root, "", home)
	return out.String(), err
}

// cliCase is one command run against a home: its output contains want,
// or it fails with an error containing wantErr.
type cliCase struct {
	name    string
	home    string
	args    []string
	want    string
	wantErr string
}

func runCases(t *testing.T, cases []cliCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := run(t, tc.home, tc.args...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one about %q (output %s)", err, tc.wantErr, out)
				}
				return
			}
			if err != nil || !strings.Contains(out, tc.want) {
				t.Fatalf("output %q, %v; want %q", out, err, tc.want)
			}
		})
	}
}

func TestStoreCommands(t *testing.T) {
	home := t.TempDir()
	makeStore(t, home)
	empty := t.TempDir()
	tests := []cliCase{
		{"stats", home, []string{"nomtstore", "stats"}, "1..5, 5 retained", ""},
		{"verify", home, []string{"nomtstore", "verify", "--all-versions"}, "result    ok", ""},
		{"module hash", home, []string{"nomtstore", "module-hash", "3"}, "app hash", ""},
		{"unknown output", home, []string{"nomtstore", "stats", "--output", "yaml"}, "", `--output "yaml": want text or json`},
		{"module hash of a future height", home, []string{"nomtstore", "module-hash", "9"}, "", "the latest is 5"},
		{"module hash needs a number", home, []string{"nomtstore", "module-hash", "three"}, "", `height "three"`},
		{"prune needs --to", home, []string{"nomtstore", "prune"}, "", "--to HEIGHT is required"},
		{"prune the latest", home, []string{"nomtstore", "prune", "--to", "5"}, "", "cannot be pruned"},
		{"prune", home, []string{"nomtstore", "prune", "--to", "2"}, "retained  versions 3..5", ""},
		{"prune and compact", home, []string{"nomtstore", "prune", "--to", "3", "--compact"}, "compacted", ""},
		{"compact with nothing to prune", home, []string{"nomtstore", "prune", "--to", "3", "--compact", "--output", "json"}, `"compacted_ms"`, ""},
		{"not a home", empty, []string{"nomtstore", "stats"}, "", "is not a nomtstore home"},
		{"verify not a home", empty, []string{"nomtstore", "verify"}, "", "is not a nomtstore home"},
		{"prove without a key", home, []string{"nomtstore", "prove"}, "", "give --store and --key, or --balance"},
		{"prove a bad balance", home, []string{"nomtstore", "prove", "--balance", "nobody"}, "", "want ADDRESS:DENOM"},
		{"prove a bad key", home, []string{"nomtstore", "prove", "--store", "bank", "--key", "zz"}, "", "--key"},
	}
	runCases(t, tests)
}

// TestStoreCommandsRefuseARunningNode: the offline commands say the node
// holds the store rather than failing obscurely.
func TestStoreCommandsRefuseARunningNode(t *testing.T) {
	home := t.TempDir()
	makeStore(t, home)
	db, err := commitment.Open(filepath.Join(home, "data", "nomtstore"), nil, commitment.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	for _, args := range [][]string{{"nomtstore", "stats"}, {"nomtstore", "verify"}, {"nomtstore", "prune", "--to", "2"}} {
		if _, err := run(t, home, args...); err == nil || !strings.Contains(err.Error(), "stop the node first") {
			t.Fatalf("%v with the store held: %v", args, err)
		}
	}
}
