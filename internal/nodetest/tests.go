package nodetest

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dbm "github.com/cosmos/cosmos-db"
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

// NodeRollback tests the node binary's rollback after N blocks, then a
// restart that re-executes block N reproduces the same app hash; with
// pruning, rolling back across a pruned height is refused with a clear
// error and changes nothing, and the node still starts.
func NodeRollback(t *testing.T, line *Line) {
	if testing.Short() {
		t.Skip("builds and runs the node binary; covered without -short")
	}
	n := NewNode(t, line, "custom", "2", "10")
	n.Start()
	n.WaitHeight(24)
	n.Stop()

	latest, earliest := n.LatestAndEarliest()
	if earliest <= 1 {
		t.Fatalf("pruning (keep 2, every 10) did not run: earliest %d at %d", earliest, latest)
	}
	hashes := map[int64]string{}
	for h := earliest; h <= latest; h++ {
		hashes[h] = n.AppHash(h)
	}
	out := n.Run("rollback", "--home", n.Home)
	if !strings.Contains(out, fmt.Sprintf("Rolled back state to height %d", latest-1)) {
		t.Fatalf("rollback said:\n%s", out)
	}
	if l, _ := n.LatestAndEarliest(); l != latest-1 {
		t.Fatalf("after the rollback the store is at %d, want %d", l, latest-1)
	}
	// The restart re-executes block `latest` from the block store.
	n.Start()
	n.WaitHeight(latest + 3)
	n.Stop()
	if got := n.AppHash(latest); got != hashes[latest] {
		t.Fatalf("height %d re-executed to app hash %s, was %s", latest, got, hashes[latest])
	}
	if got := n.AppHash(latest - 1); got != hashes[latest-1] {
		t.Fatalf("height %d: app hash %s, was %s", latest-1, got, hashes[latest-1])
	}

	// Hard rollbacks walk back until the store's earliest height; the
	// next one is refused before CometBFT's state changes.
	var refusal string
	for range 30 {
		l, e := n.LatestAndEarliest()
		out, err := n.Try("rollback", "--hard", "--home", n.Home)
		if err != nil {
			if l > e {
				t.Fatalf("rollback from %d (earliest %d) failed: %v\n%s", l, e, err, out)
			}
			refusal = out
			break
		}
	}
	if !strings.Contains(refusal, "is pruned") || !strings.Contains(refusal, "earliest retained height") {
		t.Fatalf("rolling back across a pruned height: %q", refusal)
	}
	// CometBFT and the store still agree: the node starts and makes new
	// blocks from there. (The validator signed up to the old height; its
	// double-sign guard is reset, which only a test may do.)
	l, _ := n.LatestAndEarliest()
	state := `{"height":"0","round":0,"step":0}`
	if err := os.WriteFile(filepath.Join(n.Home, "data", "priv_validator_state.json"), []byte(state), 0o600); err != nil {
		t.Fatal(err)
	}
	n.Start()
	n.WaitHeight(l + 3)
}

// AbandonSwitch tests that before any block on nomtstore the switch is
// undone as docs/migration.md says: the nomtstore directory deleted, the
// binary on IAVL restarted with --unsafe-skip-upgrades, and the chain goes
// on from IAVL's state, which the migration left as it was.
func AbandonSwitch(t *testing.T, line *Line) {
	if testing.Short() {
		t.Skip("a node process and a governance vote: not in -short")
	}
	nodes := NewLocalnet(t, line, 1)
	val := nodes[0]
	val.StartArgs = []string{"--" + line.FlagIAVL}
	val.Start()
	val.WaitHeight(2)
	upgradeHeight := scheduleSwitch(t, nodes, 45) // past the 6 s voting period
	waitHalt(nodes, upgradeHeight)
	val.Stop()
	val.Run("nomtstore", "migrate", "--from-iavl", "--home", val.Home)
	if err := os.RemoveAll(filepath.Join(val.Home, "data", "nomtstore")); err != nil {
		t.Fatal(err)
	}
	val.StartArgs = []string{"--" + line.FlagIAVL, "--unsafe-skip-upgrades", strconv.FormatInt(upgradeHeight, 10)}
	val.Start()
	val.WaitHeight(upgradeHeight + 3)
	if _, err := os.Stat(filepath.Join(val.Home, "data", "nomtstore")); err == nil {
		t.Fatal("the node on IAVL created a nomtstore directory")
	}
}

// SwitchFromIAVL is the operator procedure of docs/migration.md on a
// three-validator chain of separate processes: the chain runs on IAVL
// (--iavl), a governance proposal schedules the switch, every validator
// halts at the upgrade height, is migrated with `nomtstore migrate
// --from-iavl` and restarted on nomtstore; CometBFT's handshake accepts the
// carried app hash, block U replays with the upgrade handler, and the
// validators go on agreeing. The last IAVL height still answers IAVL
// proofs, later heights nomtstore's.
func SwitchFromIAVL(t *testing.T, line *Line) {
	if testing.Short() {
		t.Skip("three node processes and a governance vote: not in -short")
	}
	began := time.Now()
	nodes := NewLocalnet(t, line, 3)
	start := func(iavl bool) {
		for _, nd := range nodes {
			if iavl {
				nd.StartArgs = []string{"--" + line.FlagIAVL}
			} else {
				nd.StartArgs = nil
			}
			nd.Start()
		}
	}
	start(true)
	nodes[0].WaitHeight(3)

	upgradeHeight := scheduleSwitch(t, nodes, 30)
	recipient := strings.TrimSpace(nodes[0].Run("keys", "show", "val", "-a", "--keyring-backend", "test", "--home", nodes[0].Home))
	nodes[1].Tx("tx", "bank", "send", "val", recipient, "1234stake")

	waitHalt(nodes, upgradeHeight)
	lastIAVL := upgradeHeight - 1
	iavlAppHash := nodes[0].HeaderAppHash(upgradeHeight)
	t.Logf("%v: every validator halted at the upgrade height %d; last IAVL app hash %s", time.Since(began).Round(time.Second), upgradeHeight, iavlAppHash)
	for _, nd := range nodes {
		nd.Stop()
	}

	// Every validator migrates; each carries the app hash of U's header.
	for i, nd := range nodes {
		out := nd.Run("nomtstore", "migrate", "--from-iavl", "--home", nd.Home, "-o", "json")
		var res struct {
			Height   int64  `json:"height"`
			AppHash  string `json:"app_hash"`
			Keys     int64  `json:"keys"`
			Verified bool   `json:"verified"`
		}
		if err := json.Unmarshal(jsonObject(out), &res); err != nil {
			t.Fatalf("validator %d: %v in %s", i, err, out)
		}
		if res.Height != lastIAVL || res.AppHash != iavlAppHash || !res.Verified || res.Keys == 0 {
			t.Fatalf("validator %d migrated %+v; want height %d, app hash %s", i, res, lastIAVL, iavlAppHash)
		}
		t.Logf("validator %d migrated %d keys at height %d, verified", i, res.Keys, res.Height)
	}
	restarted := time.Now()

	start(false)
	for _, nd := range nodes {
		nd.WaitLog(fmt.Sprintf("applying upgrade %q at height: %d", line.SwitchUpgrade, upgradeHeight), time.Minute)
	}
	for _, nd := range nodes {
		nd.WaitHeight(upgradeHeight + 5)
	}
	// The validators agree on nomtstore's app hashes after the switch.
	for h := upgradeHeight; h <= upgradeHeight+4; h++ {
		want := nodes[0].HeaderAppHash(h + 1)
		for i, nd := range nodes[1:] {
			if got := nd.HeaderAppHash(h + 1); got != want {
				t.Fatalf("app hash of %d: validator %d has %s, validator 0 %s", h, i+1, got, want)
			}
		}
	}
	if got := nodes[0].HeaderAppHash(upgradeHeight + 1); got == iavlAppHash {
		t.Fatal("the app hash did not change at the switch")
	}
	t.Logf("%v after the restart on nomtstore: every validator at height %d, agreeing on app hashes %d..%d (the first %s)",
		time.Since(restarted).Round(time.Second), upgradeHeight+5, upgradeHeight, upgradeHeight+4, nodes[0].HeaderAppHash(upgradeHeight+1))

	// Proofs: IAVL's at the last IAVL height (what relayers need for the
	// client upgrade), nomtstore's after it; both verify against headers.
	planKey := []byte{upgradePlanByte} // the scheduled plan, at U-1
	if value, op := nodes[1].ProvedQuery(upgradeStore, planKey, lastIAVL); op != ProofOpIAVL || len(value) == 0 {
		t.Fatalf("proof at the last IAVL height: %s, value %X", op, value)
	}
	bankVersion := append([]byte{upgradeVersionMapByte}, "bank"...)
	if _, op := nodes[2].ProvedQuery(upgradeStore, bankVersion, upgradeHeight+2); op != ProofOpSMT {
		t.Fatalf("proof after the switch: %s", op)
	}

	// The chain goes on taking transactions.
	nodes[2].Tx("tx", "bank", "send", "val", recipient, "1stake")
}

// SnapshotRestoreCommand restores a node's snapshot into a fresh home
// with `nomtsimd snapshots restore` (nomtsimd's, which shows the store's
// progress): the snapshot is exported from a stopped node, dumped to an
// archive and loaded into the fresh home, as an operator moves one; the
// command reports what it restored, and the restored store's roots at the
// Height equal the source's.
func SnapshotRestoreCommand(t *testing.T, line *Line) {
	if testing.Short() {
		t.Skip("a node process: not in -short")
	}
	src := NewLocalnet(t, line, 1)[0]
	src.Start()
	src.WaitHeight(4)
	src.Stop()
	exported := src.Run("snapshots", "export", "--home", src.Home)
	m := regexp.MustCompile(`Snapshot created at height (\d+), format (\d+)`).FindStringSubmatch(exported)
	if m == nil {
		t.Fatalf("snapshots export said:\n%s", exported)
	}
	height, format := m[1], m[2]
	archive := filepath.Join(t.TempDir(), "snapshot.tar.gz")
	src.Run("snapshots", "dump", height, format, "--home", src.Home, "--output", archive)

	fresh := &Node{t: t, line: line, bin: src.bin, Home: filepath.Join(t.TempDir(), "fresh"), chainID: localnetChainID}
	fresh.Run("init", "fresh", "--chain-id", localnetChainID, "--home", fresh.Home)
	fresh.Run("snapshots", "load", archive, "--home", fresh.Home)
	restored := fresh.Run("snapshots", "restore", height, format, "--home", fresh.Home)
	if !regexp.MustCompile(fmt.Sprintf(`restored height %s: [0-9,]+ keys, [0-9.]+ (B|KiB|MiB|GiB) of keys and values, \d+ keys/s`, height)).MatchString(restored) {
		t.Fatalf("snapshots restore said:\n%s", restored)
	}
	t.Logf("snapshots restore said:\n%s", restored)
	want := src.Run("nomtstore", "module-hash", height, "--home", src.Home)
	if got := fresh.Run("nomtstore", "module-hash", height, "--home", fresh.Home); got != want {
		t.Fatalf("restored store at %s:\n%s\nsource:\n%s", height, got, want)
	}
	if out, err := fresh.Try("snapshots", "restore", "not-a-height", format, "--home", fresh.Home); err == nil {
		t.Fatalf("a restore of height \"not-a-height\" succeeded:\n%s", out)
	}
}

// MigrateKilled SIGKILLs `nomtsimd nomtstore migrate --from-iavl` at
// random moments (NOMTSTORE_MIGRATE_KILLS times, default 4): after each,
// the nomtstore directory holds nothing or the whole migration, and IAVL's
// data is unchanged; the run after the last kill completes (or, if the
// killed run had committed, verifies) with IAVL's app hash.
func MigrateKilled(t *testing.T, line *Line) {
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
	bin := line.Binary(t)
	home := filepath.Join(dir, "home")
	appHash := line.PreloadIAVL(t, home, 100_000)
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
