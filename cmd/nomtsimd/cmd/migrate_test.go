package cmd

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	storetypes "cosmossdk.io/store/types"
	dbm "github.com/cosmos/cosmos-db"

	"github.com/nomtstore/nomtstore/internal/iavltest"
	"github.com/nomtstore/nomtstore/storecmd"
)

// makeIAVLHome commits a few blocks of two IAVL stores into home's
// data/application.db, as a node on IAVL leaves it, and returns the app
// hash of the last.
func makeIAVLHome(t *testing.T, home string) []byte {
	t.Helper()
	return makeIAVLHomeOn(t, home, dbm.GoLevelDBBackend)
}

func makeIAVLHomeOn(t *testing.T, home string, backend dbm.BackendType) []byte {
	t.Helper()
	db, err := dbm.NewDB("application", backend, filepath.Join(home, "data"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	rs, keys := iavltest.NewRootMulti(t, db, "bank", "acc")
	bank, acc := keys["bank"], keys["acc"]
	var id storetypes.CommitID
	for i := range 4 {
		for j := range 50 {
			rs.GetCommitKVStore(bank).Set(fmt.Appendf(nil, "b%d-%d", i, j), []byte("value"))
			rs.GetCommitKVStore(acc).Set(fmt.Appendf(nil, "a%d", j), fmt.Appendf(nil, "v%d", i))
		}
		id = rs.Commit()
	}
	return id.Hash
}

func TestMigrateCommand(t *testing.T) {
	home := t.TempDir()
	appHash := makeIAVLHome(t, home)
	empty := t.TempDir()
	tests := []cliCase{
		{"needs a source", home, []string{"nomtstore", "migrate"}, "", "--from-iavl"},
		{"no application.db", empty, []string{"nomtstore", "migrate", "--from-iavl"}, "", "does not exist"},
		{"a height IAVL does not have", home, []string{"nomtstore", "migrate", "--from-iavl", "--height", "9"}, "", "the latest is 4"},
		{"migrate", home, []string{"nomtstore", "migrate", "--from-iavl"}, fmt.Sprintf("%X", appHash), ""},
		{"again: only verifies", home, []string{"nomtstore", "migrate", "--from-iavl"}, "only verified it", ""},
		{"then the store is a nomtstore home", home, []string{"nomtstore", "stats"}, "4..4, 1 retained", ""},
		{"another height into a migrated store", home, []string{"nomtstore", "migrate", "--from-iavl", "--height", "3"}, "", "needs an empty store"},
	}
	runCases(t, tests)

	t.Run("json", func(t *testing.T) {
		home := t.TempDir()
		makeIAVLHome(t, home)
		out, err := run(t, home, "nomtstore", "migrate", "--from-iavl", "--height", "2", "--skip-verify", "-o", "json")
		if err != nil {
			t.Fatal(err)
		}
		var res storecmd.MigrateReport
		start := strings.Index(out, "{")
		if start < 0 {
			t.Fatalf("no JSON in %q", out)
		}
		if err := json.Unmarshal([]byte(out[start:]), &res); err != nil {
			t.Fatalf("%v in %q", err, out)
		}
		if res.Height != 2 || res.Keys != 150 || res.Stores != 2 || res.Verified || res.DiskBytes == 0 {
			t.Fatalf("%+v", res)
		}
	})

	t.Run("pebbledb, as config.toml's db_backend says", func(t *testing.T) {
		home := t.TempDir()
		appHash := makeIAVLHomeOn(t, home, dbm.PebbleDBBackend)
		_, _ = run(t, home, "nomtstore", "migrate") // writes the default config.toml
		config := filepath.Join(home, "config", "config.toml")
		b, err := os.ReadFile(config)
		if err != nil {
			t.Fatal(err)
		}
		b = regexp.MustCompile(`(?m)^db_backend = .*$`).ReplaceAll(b, []byte(`db_backend = "pebbledb"`))
		if err := os.WriteFile(config, b, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := run(t, home, "nomtstore", "migrate", "--from-iavl")
		if err != nil || !strings.Contains(out, fmt.Sprintf("%X", appHash)) {
			t.Fatalf("migrating a pebbledb application.db: %v\n%s", err, out)
		}
	})

	t.Run("a corrupt application.db", func(t *testing.T) {
		home := t.TempDir()
		makeIAVLHome(t, home)
		manifests, _ := filepath.Glob(filepath.Join(home, "data", "application.db", "MANIFEST-*"))
		if len(manifests) == 0 {
			t.Fatal("no MANIFEST in application.db")
		}
		for _, m := range manifests {
			if err := os.WriteFile(m, []byte("this is not a leveldb manifest"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := run(t, home, "nomtstore", "migrate", "--from-iavl"); err == nil || !strings.Contains(err.Error(), "application.db") {
			t.Fatalf("migrating a corrupt application.db: %v", err)
		}
		if _, err := os.Stat(filepath.Join(home, "data", "nomtstore", "FORMAT")); err == nil {
			t.Fatal("a failed migration created a store")
		}
	})

	t.Run("a running node", func(t *testing.T) {
		home := t.TempDir()
		makeIAVLHome(t, home)
		db, err := dbm.NewDB("application", dbm.GoLevelDBBackend, filepath.Join(home, "data"))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = db.Close() }()
		if _, err := run(t, home, "nomtstore", "migrate", "--from-iavl"); err == nil || !strings.Contains(err.Error(), "stop the node first") {
			t.Fatalf("migrating a held application.db: %v", err)
		}
	})
}
