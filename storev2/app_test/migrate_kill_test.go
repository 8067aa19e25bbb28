package app_test

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"cosmossdk.io/log/v2"
	dbm "github.com/cosmos/cosmos-db"
	"github.com/cosmos/cosmos-sdk/store/v2/rootmulti"
	storetypes "github.com/cosmos/cosmos-sdk/store/v2/types"
)

// appDBDigest hashes every record of a home's application.db.
func appDBDigest(t *testing.T, home string) [32]byte {
	t.Helper()
	db, err := dbm.NewDB("application", dbm.GoLevelDBBackend, filepath.Join(home, "data"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	it, err := db.Iterator(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = it.Close() }()
	h := sha256.New()
	for ; it.Valid(); it.Next() {
		_, _ = fmt.Fprintf(h, "%x=%x;", it.Key(), it.Value())
	}
	if err := it.Error(); err != nil {
		t.Fatal(err)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

// TestMigrateKilled SIGKILLs `nomtsimd nomtstore migrate --from-iavl` at
// random moments (NOMTSTORE_MIGRATE_KILLS times, default 4): after each,
// the nomtstore directory holds nothing or the whole migration, and IAVL's
// data is unchanged; the run after the last kill completes (or, if the
// killed run had committed, verifies) with IAVL's app hash.
func TestMigrateKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("builds nomtsimd and kills it: not in -short")
	}
	kills := 4
	if v := os.Getenv("NOMTSTORE_MIGRATE_KILLS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatal(err)
		}
		kills = n
	}
	dir := t.TempDir()
	bin := nomtsimdBinary(t)
	home := filepath.Join(dir, "home")
	appHash := preloadIAVLHome(t, home, 100_000)
	before := appDBDigest(t, home)
	run := func() *exec.Cmd {
		return exec.Command(bin, "nomtstore", "migrate", "--from-iavl", "--home", home, "-o", "json")
	}
	// The first run, timed, bounds the moments to kill at.
	start := time.Now()
	if out, err := run().CombinedOutput(); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	full := time.Since(start)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	outcomes := map[string]int{}
	for i := range kills {
		if err := os.RemoveAll(filepath.Join(home, "data", "nomtstore")); err != nil {
			t.Fatal(err)
		}
		cmd := run()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.Int64N(int64(full))))
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		// A second run: from nothing, or only verifying what the killed
		// one committed.
		out, err := run().CombinedOutput()
		if err != nil {
			t.Fatalf("kill %d: the run after it: %v\n%s", i, err, out)
		}
		var res struct {
			AppHash  string `json:"app_hash"`
			Resumed  bool   `json:"resumed"`
			Verified bool   `json:"verified"`
			Keys     int64  `json:"keys"`
		}
		if err := json.Unmarshal(jsonObject(string(out)), &res); err != nil {
			t.Fatalf("kill %d: %v in %s", i, err, out)
		}
		if res.AppHash != fmt.Sprintf("%X", appHash) || !res.Verified || res.Keys != 100_000 {
			t.Fatalf("kill %d: the run after it gave %+v", i, res)
		}
		outcomes[map[bool]string{true: "committed before the kill", false: "empty after the kill"}[res.Resumed]]++
	}
	if appDBDigest(t, home) != before {
		t.Fatal("the migrations changed IAVL's data")
	}
	t.Logf("%d kills within %v runs: %v", kills, full.Round(time.Millisecond), outcomes)
}

// preloadIAVLHome commits keys random keys into home's application.db
// with store/v2's rootmulti on IAVL, as a v0.54 node on IAVL writes it
// (with an empty store beside the two written ones), and returns the last
// app hash.
func preloadIAVLHome(t *testing.T, home string, keys int) []byte {
	t.Helper()
	db, err := dbm.NewDB("application", dbm.GoLevelDBBackend, filepath.Join(home, "data"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	rs := rootmulti.NewStore(db, log.NewNopLogger())
	bank, acc := storetypes.NewKVStoreKey("bank"), storetypes.NewKVStoreKey("acc")
	for _, k := range []*storetypes.KVStoreKey{bank, acc, storetypes.NewKVStoreKey("authz")} {
		rs.MountStoreWithDB(k, storetypes.StoreTypeIAVL, nil)
	}
	if err := rs.LoadLatestVersion(); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 3))
	var id storetypes.CommitID
	for done := 0; done < keys; {
		for i := 0; i < 40_000 && done < keys; i, done = i+1, done+1 {
			// IAVL keeps the slices it is given.
			key, value := make([]byte, 0, 32), make([]byte, 0, 40)
			for range 4 {
				key = binary.BigEndian.AppendUint64(key, rng.Uint64())
			}
			for range 5 {
				value = binary.BigEndian.AppendUint64(value, rng.Uint64())
			}
			store := bank
			if rng.IntN(10) < 3 {
				store = acc
			}
			rs.GetKVStore(store).Set(key, value)
		}
		id = rs.Commit()
	}
	return id.Hash
}
