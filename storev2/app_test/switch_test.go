package app_test

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cometbft/cometbft/crypto/merkle"
	cmtprotocrypto "github.com/cometbft/cometbft/proto/tendermint/crypto"
	storetypes "github.com/cosmos/cosmos-sdk/store/v2/types"
	upgradetypes "github.com/cosmos/cosmos-sdk/x/upgrade/types"

	"github.com/cosmos/cosmos-sdk/store/v2/rootmulti"
	authtypes "github.com/cosmos/cosmos-sdk/x/auth/types"
	govtypes "github.com/cosmos/cosmos-sdk/x/gov/types"

	"github.com/nomtstore/nomtstore/storev2/cmd/nomtsimd/cmd"
)

// rpcGet decodes the result of a CometBFT RPC call on the node.
func (n *node) rpcGet(path string, result any) error {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/%s", n.rpc, path))
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var envelope struct {
		Result json.RawMessage `json:"result"`
		Error  json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(body, &envelope); err != nil {
		return fmt.Errorf("%s: %w in %s", path, err, body)
	}
	if len(envelope.Error) > 0 && string(envelope.Error) != "null" {
		return fmt.Errorf("%s: %s", path, envelope.Error)
	}
	return json.Unmarshal(envelope.Result, result)
}

// headerAppHash is the app hash in block h's header: the state after h-1.
func (n *node) headerAppHash(h int64) string {
	n.t.Helper()
	var res struct {
		Block struct {
			Header struct {
				AppHash string `json:"app_hash"`
			} `json:"header"`
		} `json:"block"`
	}
	if err := n.rpcGet(fmt.Sprintf("block?height=%d", h), &res); err != nil {
		n.t.Fatal(err)
	}
	return res.Block.Header.AppHash
}

// provedQuery queries store/key at height with a proof through the RPC and
// verifies it against the app hash of the header after height; it returns
// the type of the store's proof op.
func (n *node) provedQuery(store string, key []byte, height int64) (value []byte, storeProof string) {
	n.t.Helper()
	var res struct {
		Response struct {
			Code     uint32 `json:"code"`
			Log      string `json:"log"`
			Value    []byte `json:"value"`
			Height   string `json:"height"`
			ProofOps *struct {
				Ops []struct {
					Type string `json:"type"`
					Key  []byte `json:"key"`
					Data []byte `json:"data"`
				} `json:"ops"`
			} `json:"proofOps"`
		} `json:"response"`
	}
	path := fmt.Sprintf(`abci_query?path=%%22/store/%s/key%%22&data=0x%s&height=%d&prove=true`, store, hex.EncodeToString(key), height)
	if err := n.rpcGet(path, &res); err != nil {
		n.t.Fatal(err)
	}
	r := res.Response
	if r.Code != 0 || r.ProofOps == nil || r.Height != strconv.FormatInt(height, 10) {
		n.t.Fatalf("proved query of %s/%X at %d: code %d, log %q, height %s", store, key, height, r.Code, r.Log, r.Height)
	}
	ops := &cmtprotocrypto.ProofOps{}
	for _, op := range r.ProofOps.Ops {
		ops.Ops = append(ops.Ops, cmtprotocrypto.ProofOp{Type: op.Type, Key: op.Key, Data: op.Data})
	}
	appHash, err := hex.DecodeString(n.headerAppHash(height + 1))
	if err != nil {
		n.t.Fatal(err)
	}
	prt := rootmulti.DefaultProofRuntime()
	prt.RegisterOpDecoder(storetypes.ProofOpSMTCommitment, storetypes.CommitmentOpDecoder)
	keyPath := merkle.KeyPath{}.AppendKey([]byte(store), merkle.KeyEncodingURL).AppendKey(key, merkle.KeyEncodingURL).String()
	if err := prt.VerifyValue(ops, appHash, keyPath, r.Value); err != nil {
		n.t.Fatalf("the proof of %s/%X at %d does not verify against header %d's app hash: %v", store, key, height, height+1, err)
	}
	return r.Value, ops.Ops[0].Type
}

// waitLog waits until the node's log contains s.
func (n *node) waitLog(s string, timeout time.Duration) {
	n.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(filepath.Join(n.home, "node.log"))
		if strings.Contains(string(b), s) {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	n.t.Fatalf("the node's log has no %q; its tail:\n%s", s, n.logTail())
}

// tx runs a tx command from the node's validator key against the node
// and returns its hash once it is in a block.
func (n *node) tx(args ...string) {
	n.t.Helper()
	out, err := n.try(append(args, "--from", "val", "--keyring-backend", "test", "--home", n.home, "--chain-id", switchChainID,
		"--node", fmt.Sprintf("tcp://127.0.0.1:%d", n.rpc), "--yes", "--output", "json", "--gas", "400000")...)
	if err != nil {
		n.t.Fatalf("tx %v: %v\n%s\nnode log:\n%s", args, err, out[max(0, len(out)-600):], n.logTail())
	}
	var res struct {
		Code   uint32 `json:"code"`
		TxHash string `json:"txhash"`
		RawLog string `json:"raw_log"`
	}
	if err := json.Unmarshal(jsonObject(out), &res); err != nil || res.Code != 0 {
		n.t.Fatalf("tx %v: %v, code %d %s\n%s", args, err, res.Code, res.RawLog, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var txRes struct {
			TxResult struct {
				Code uint32 `json:"code"`
				Log  string `json:"log"`
			} `json:"tx_result"`
		}
		if err := n.rpcGet("tx?hash=0x"+res.TxHash, &txRes); err == nil {
			if txRes.TxResult.Code != 0 {
				n.t.Fatalf("tx %v failed: %s", args, txRes.TxResult.Log)
			}
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	n.t.Fatalf("tx %v (%s) was not included", args, res.TxHash)
}

// scheduleSwitch passes a governance proposal of the switch's software
// upgrade, blocksAhead blocks ahead, voted in by every validator, and
// returns its height.
func scheduleSwitch(t *testing.T, nodes []*node, blocksAhead int64) int64 {
	t.Helper()
	gov := authtypes.NewModuleAddress(govtypes.ModuleName).String()
	upgradeHeight := nodes[0].height() + blocksAhead
	proposal := filepath.Join(t.TempDir(), "proposal.json")
	prop := fmt.Sprintf(`{"messages":[{"@type":"/cosmos.upgrade.v1beta1.MsgSoftwareUpgrade","authority":%q,"plan":{"name":%q,"height":"%d"}}],
		"deposit":"10000000stake","title":"move to nomtstore","summary":"switch the store from IAVL to nomtstore"}`, gov, cmd.SwitchUpgrade, upgradeHeight)
	if err := os.WriteFile(proposal, []byte(prop), 0o600); err != nil {
		t.Fatal(err)
	}
	nodes[0].tx("tx", "gov", "submit-proposal", proposal)
	for _, nd := range nodes {
		nd.tx("tx", "gov", "vote", "1", "yes")
	}
	return upgradeHeight
}

// waitHalt waits until every node on IAVL has halted at the switch.
func waitHalt(nodes []*node, upgradeHeight int64) {
	halt := fmt.Sprintf("UPGRADE %q NEEDED at height: %d", cmd.SwitchUpgrade, upgradeHeight)
	for _, nd := range nodes {
		nd.waitLog(halt, 3*time.Minute)
	}
}

// TestAbandonSwitch: before any block on nomtstore, the switch is undone as
// docs/migration.md says: the nomtstore directory deleted, the binary on
// IAVL restarted with --unsafe-skip-upgrades, and the chain goes on from
// IAVL's state, which the migration left as it was.
func TestAbandonSwitch(t *testing.T) {
	if testing.Short() {
		t.Skip("a node process and a governance vote: not in -short")
	}
	nodes := newLocalnet(t, 1)
	val := nodes[0]
	val.startArgs = []string{"--" + cmd.FlagIAVL}
	val.start()
	val.waitHeight(2)
	upgradeHeight := scheduleSwitch(t, nodes, 45) // past the 6 s voting period
	waitHalt(nodes, upgradeHeight)
	val.stop()
	val.run("nomtstore", "migrate", "--from-iavl", "--home", val.home)
	if err := os.RemoveAll(filepath.Join(val.home, "data", "nomtstore")); err != nil {
		t.Fatal(err)
	}
	val.startArgs = []string{"--" + cmd.FlagIAVL, "--unsafe-skip-upgrades", strconv.FormatInt(upgradeHeight, 10)}
	val.start()
	val.waitHeight(upgradeHeight + 3)
	if _, err := os.Stat(filepath.Join(val.home, "data", "nomtstore")); err == nil {
		t.Fatal("the node on IAVL created a nomtstore directory")
	}
}

// TestSwitchFromIAVL is the operator procedure of docs/migration.md on a
// three-validator chain of separate processes: the chain runs on IAVL
// (--iavl), a governance proposal schedules the switch, every validator
// halts at the upgrade height, is migrated with `nomtstore migrate
// --from-iavl` and restarted on nomtstore; CometBFT's handshake accepts the
// carried app hash, block U replays with the upgrade handler, and the
// validators go on agreeing. The last IAVL height still answers IAVL
// proofs, later heights nomtstore's.
func TestSwitchFromIAVL(t *testing.T) {
	if testing.Short() {
		t.Skip("three node processes and a governance vote: not in -short")
	}
	began := time.Now()
	nodes := newLocalnet(t, 3)
	start := func(iavl bool) {
		for _, nd := range nodes {
			if iavl {
				nd.startArgs = []string{"--" + cmd.FlagIAVL}
			} else {
				nd.startArgs = nil
			}
			nd.start()
		}
	}
	start(true)
	nodes[0].waitHeight(3)

	upgradeHeight := scheduleSwitch(t, nodes, 30)
	recipient := authtypes.NewModuleAddress("switch-test-recipient").String()
	nodes[1].tx("tx", "bank", "send", "val", recipient, "1234stake")

	waitHalt(nodes, upgradeHeight)
	lastIAVL := upgradeHeight - 1
	iavlAppHash := nodes[0].headerAppHash(upgradeHeight)
	t.Logf("%v: every validator halted at the upgrade height %d; last IAVL app hash %s", time.Since(began).Round(time.Second), upgradeHeight, iavlAppHash)
	for _, nd := range nodes {
		nd.stop()
	}

	// Every validator migrates; each carries the app hash of U's header.
	for i, nd := range nodes {
		out := nd.run("nomtstore", "migrate", "--from-iavl", "--home", nd.home, "-o", "json")
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
		nd.waitLog(fmt.Sprintf("applying upgrade %q at height: %d", cmd.SwitchUpgrade, upgradeHeight), time.Minute)
	}
	for _, nd := range nodes {
		nd.waitHeight(upgradeHeight + 5)
	}
	// The validators agree on nomtstore's app hashes after the switch.
	for h := upgradeHeight; h <= upgradeHeight+4; h++ {
		want := nodes[0].headerAppHash(h + 1)
		for i, nd := range nodes[1:] {
			if got := nd.headerAppHash(h + 1); got != want {
				t.Fatalf("app hash of %d: validator %d has %s, validator 0 %s", h, i+1, got, want)
			}
		}
	}
	if got := nodes[0].headerAppHash(upgradeHeight + 1); got == iavlAppHash {
		t.Fatal("the app hash did not change at the switch")
	}
	t.Logf("%v after the restart on nomtstore: every validator at height %d, agreeing on app hashes %d..%d (the first %s)",
		time.Since(restarted).Round(time.Second), upgradeHeight+5, upgradeHeight, upgradeHeight+4, nodes[0].headerAppHash(upgradeHeight+1))

	// Proofs: IAVL's at the last IAVL height (what relayers need for the
	// client upgrade), nomtstore's after it; both verify against headers.
	planKey := []byte{upgradetypes.PlanByte} // the scheduled plan, at U-1
	if value, op := nodes[1].provedQuery(upgradetypes.StoreKey, planKey, lastIAVL); op != storetypes.ProofOpIAVLCommitment || len(value) == 0 {
		t.Fatalf("proof at the last IAVL height: %s, value %X", op, value)
	}
	bankVersion := append([]byte{upgradetypes.VersionMapByte}, "bank"...)
	if _, op := nodes[2].provedQuery(upgradetypes.StoreKey, bankVersion, upgradeHeight+2); op != storetypes.ProofOpSMTCommitment {
		t.Fatalf("proof after the switch: %s", op)
	}

	// The chain goes on taking transactions.
	nodes[2].tx("tx", "bank", "send", "val", recipient, "1stake")
}

// jsonObject is the JSON document a command printed after its log lines
// (nothing if it printed none, which then fails to decode).
func jsonObject(out string) []byte {
	if i := strings.Index(out, "{"); i >= 0 {
		return []byte(out[i:])
	}
	return nil
}
