// Package nodetest runs a nomtsimd node binary as processes, for the
// process-level tests both SDK lines share: one-validator homes, localnets
// of several validators, the store's commands, a governance upgrade and the
// switch from IAVL. The tests themselves are here too (NodeRollback,
// SwitchFromIAVL, ...); each line's app_test runs them with its binary and
// its proof checks (Line), so that a test of the node is written once.
package nodetest

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cometbft/cometbft/crypto/merkle"
	cmtprotocrypto "github.com/cometbft/cometbft/proto/tendermint/crypto"
)

// Line is what a line's tests give: its node binary and what differs
// between the SDK lines.
type Line struct {
	// Binary builds the line's nomtsimd (once per test binary) and returns
	// its path.
	Binary func(t *testing.T) string
	// ProofRuntime is the line's proof runtime for the store's queries
	// (the node's own: storecmd.Line.ProofRuntime).
	ProofRuntime func() *merkle.ProofRuntime
	// PreloadIAVL commits keys random keys into the application.db of home
	// with the line's rootmulti on IAVL and returns the last app hash.
	PreloadIAVL func(t *testing.T, home string, keys int) []byte
	// FlagIAVL is the start flag that runs the node on IAVL, SwitchUpgrade
	// the upgrade plan of the switch to nomtstore, GovAuthority the gov
	// module's address.
	FlagIAVL, SwitchUpgrade, GovAuthority string
}

// The store's proof op types, and the upgrade module's store and keys the
// switch tests prove.
const (
	ProofOpIAVL           = "ics23:iavl"
	ProofOpSMT            = "ics23:smt"
	upgradeStore          = "upgrade"
	upgradePlanByte       = 0x0
	upgradeVersionMapByte = 0x2
	localnetChainID       = "nomt-localnet-test"
)

// Node runs a line's nomtsimd binary in a home of its own: commands to
// completion, or the node as a process with its RPC on its own ports.
type Node struct {
	t    *testing.T
	line *Line
	bin  string
	// Home is the node's --home.
	Home    string
	chainID string
	rpc     int
	cmd     *exec.Cmd
	log     *os.File
	// startArgs are added to the start command's flags.
	StartArgs []string
}

// FreePort is a free port whose next two are free too: a node's RPC, P2P
// and gRPC ports.
func FreePort(t *testing.T) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		// The node also takes port+1 and port+2.
		ok := true
		for _, p := range []int{port + 1, port + 2} {
			l2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				ok = false
				break
			}
			_ = l2.Close()
		}
		if ok {
			return port
		}
	}
	t.Fatal("no free ports")
	return 0
}

// NewNode creates a one-validator localnet home of the line's nomtsimd
// with the given app.toml pruning settings.
func NewNode(t *testing.T, line *Line, pruning, keepRecent, interval string) *Node {
	t.Helper()
	dir := t.TempDir()
	n := &Node{t: t, line: line, bin: line.Binary(t), Home: filepath.Join(dir, "home"), chainID: "nomt-node-test", rpc: FreePort(t)}
	kr := []string{"--keyring-backend", "test", "--home", n.Home}
	n.Run("init", "node", "--chain-id", "nomt-node-test", "--home", n.Home)
	n.Run(append([]string{"keys", "add", "val"}, kr...)...)
	addr := strings.TrimSpace(n.Run(append([]string{"keys", "show", "val", "-a"}, kr...)...))
	n.Run(append([]string{"genesis", "add-genesis-account", addr, "1000000000stake"}, kr...)...)
	n.Run(append([]string{"genesis", "gentx", "val", "100000000stake", "--chain-id", "nomt-node-test"}, kr...)...)
	n.Run("genesis", "collect-gentxs", "--home", n.Home)
	n.Edit("config/config.toml", `(?m)^timeout_commit = .*$`, `timeout_commit = "200ms"`)
	n.Edit("config/app.toml", `(?m)^pruning = .*$`, fmt.Sprintf("pruning = %q", pruning))
	n.Edit("config/app.toml", `(?m)^pruning-keep-recent = .*$`, fmt.Sprintf("pruning-keep-recent = %q", keepRecent))
	n.Edit("config/app.toml", `(?m)^pruning-interval = .*$`, fmt.Sprintf("pruning-interval = %q", interval))
	return n
}

// Run runs a nomtsimd command to completion and returns its output.
func (n *Node) Run(args ...string) string {
	n.t.Helper()
	out, err := n.Try(args...)
	if err != nil {
		n.t.Fatalf("nomtsimd %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// Try runs a nomtsimd command to completion and returns its output and
// its error.
func (n *Node) Try(args ...string) (string, error) {
	cmd := exec.Command(n.bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// Edit replaces what pattern matches in a file of the home.
func (n *Node) Edit(file, pattern, replacement string) {
	n.t.Helper()
	path := filepath.Join(n.Home, file)
	b, err := os.ReadFile(path)
	if err != nil {
		n.t.Fatal(err)
	}
	re := regexp.MustCompile(pattern)
	if !re.Match(b) {
		n.t.Fatalf("%s has no %s", file, pattern)
	}
	if err := os.WriteFile(path, re.ReplaceAll(b, []byte(replacement)), 0o600); err != nil {
		n.t.Fatal(err)
	}
}

// Start starts the node; the test stops it at its end.
func (n *Node) Start() {
	n.t.Helper()
	log, err := os.OpenFile(filepath.Join(n.Home, "node.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		n.t.Fatal(err)
	}
	n.log = log
	n.cmd = exec.Command(n.bin, "start", "--home", n.Home,
		"--rpc.laddr", fmt.Sprintf("tcp://127.0.0.1:%d", n.rpc),
		"--p2p.laddr", fmt.Sprintf("tcp://127.0.0.1:%d", n.rpc+1),
		"--grpc.address", fmt.Sprintf("127.0.0.1:%d", n.rpc+2),
		"--api.enable=false", "--grpc-web.enable=false")
	n.cmd.Args = append(n.cmd.Args, n.StartArgs...)
	n.cmd.Stdout, n.cmd.Stderr = log, log
	if err := n.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { n.Stop() })
}

// Stop stops the node (SIGTERM, then SIGKILL after 30 s).
func (n *Node) Stop() {
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = n.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = n.cmd.Process.Kill()
		<-done
	}
	_ = n.log.Close()
	n.cmd = nil
}

// LogTail is the end of the node's log.
func (n *Node) LogTail() string {
	b, _ := os.ReadFile(filepath.Join(n.Home, "node.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Height is the node's latest block height, 0 if it does not answer.
func (n *Node) Height() int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/status", n.rpc), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer func() { _ = resp.Body.Close() }()
	var status struct {
		Result struct {
			SyncInfo struct {
				LatestBlockHeight string `json:"latest_block_height"`
			} `json:"sync_info"`
		} `json:"result"`
	}
	if json.NewDecoder(resp.Body).Decode(&status) != nil {
		return 0
	}
	h, _ := strconv.ParseInt(status.Result.SyncInfo.LatestBlockHeight, 10, 64)
	return h
}

// WaitHeight waits (two minutes at most) for the node to reach a height.
func (n *Node) WaitHeight(want int64) {
	n.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if n.Height() >= want {
			return
		}
		if n.cmd.ProcessState != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	n.t.Fatalf("the node did not reach height %d (at %d); log:\n%s", want, n.Height(), n.LogTail())
}

// AppHash reads the app hash of a retained height with the store's
// module-hash command (node stopped).
func (n *Node) AppHash(height int64) string {
	n.t.Helper()
	out := n.Run("nomtstore", "module-hash", strconv.FormatInt(height, 10), "--home", n.Home, "--output", "json")
	var hashes struct {
		AppHash string `json:"app_hash"`
	}
	if err := json.Unmarshal([]byte(out), &hashes); err != nil || hashes.AppHash == "" {
		n.t.Fatalf("no app hash for %d (%v) in:\n%s", height, err, out)
	}
	return hashes.AppHash
}

// LatestAndEarliest are the store's latest and earliest versions, from
// its stats command (node stopped).
func (n *Node) LatestAndEarliest() (latest, earliest int64) {
	n.t.Helper()
	out := n.Run("nomtstore", "stats", "--home", n.Home, "--output", "json")
	var stats struct {
		Latest   int64 `json:"latest_version"`
		Earliest int64 `json:"earliest_version"`
	}
	if err := json.Unmarshal([]byte(out), &stats); err != nil {
		n.t.Fatalf("stats: %v\n%s", err, out)
	}
	return stats.Latest, stats.Earliest
}

// RPCGet decodes the result of a CometBFT RPC call on the node.
func (n *Node) RPCGet(path string, result any) error {
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

// HeaderAppHash is the app hash in block h's header: the state after h-1.
func (n *Node) HeaderAppHash(h int64) string {
	n.t.Helper()
	var res struct {
		Block struct {
			Header struct {
				AppHash string `json:"app_hash"`
			} `json:"header"`
		} `json:"block"`
	}
	if err := n.RPCGet(fmt.Sprintf("block?height=%d", h), &res); err != nil {
		n.t.Fatal(err)
	}
	return res.Block.Header.AppHash
}

// ProvedQuery queries store/key at height with a proof through the RPC and
// verifies it against the app hash of the header after height; it returns
// the type of the store's proof op.
func (n *Node) ProvedQuery(store string, key []byte, height int64) (value []byte, storeProof string) {
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
	if err := n.RPCGet(path, &res); err != nil {
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
	if len(ops.Ops) == 0 {
		n.t.Fatalf("proved query of %s/%X at %d: no proof ops", store, key, height)
	}
	appHash, err := hex.DecodeString(n.HeaderAppHash(height + 1))
	if err != nil {
		n.t.Fatal(err)
	}
	keyPath := merkle.KeyPath{}.AppendKey([]byte(store), merkle.KeyEncodingURL).AppendKey(key, merkle.KeyEncodingURL).String()
	if err := n.line.ProofRuntime().VerifyValue(ops, appHash, keyPath, r.Value); err != nil {
		n.t.Fatalf("the proof of %s/%X at %d does not verify against header %d's app hash: %v", store, key, height, height+1, err)
	}
	return r.Value, ops.Ops[0].Type
}

// WaitLog waits until the node's log contains s.
func (n *Node) WaitLog(s string, timeout time.Duration) {
	n.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(filepath.Join(n.Home, "node.log"))
		if strings.Contains(string(b), s) {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	n.t.Fatalf("the node's log has no %q; its tail:\n%s", s, n.LogTail())
}

// Tx runs a tx command from the node's validator key against the node
// and returns its hash once it is in a block.
func (n *Node) Tx(args ...string) {
	n.t.Helper()
	out, err := n.Try(append(args, "--from", "val", "--keyring-backend", "test", "--home", n.Home, "--chain-id", n.chainID,
		"--node", fmt.Sprintf("tcp://127.0.0.1:%d", n.rpc), "--yes", "--output", "json", "--gas", "400000")...)
	if err != nil {
		n.t.Fatalf("tx %v: %v\n%s\nnode log:\n%s", args, err, out[max(0, len(out)-600):], n.LogTail())
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
		if err := n.RPCGet("tx?hash=0x"+res.TxHash, &txRes); err == nil {
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
func scheduleSwitch(t *testing.T, nodes []*Node, blocksAhead int64) int64 {
	t.Helper()
	line := nodes[0].line
	upgradeHeight := nodes[0].Height() + blocksAhead
	proposal := filepath.Join(t.TempDir(), "proposal.json")
	prop := fmt.Sprintf(`{"messages":[{"@type":"/cosmos.upgrade.v1beta1.MsgSoftwareUpgrade","authority":%q,"plan":{"name":%q,"height":"%d"}}],
		"deposit":"10000000stake","title":"move to nomtstore","summary":"switch the store from IAVL to nomtstore"}`, line.GovAuthority, line.SwitchUpgrade, upgradeHeight)
	if err := os.WriteFile(proposal, []byte(prop), 0o600); err != nil {
		t.Fatal(err)
	}
	nodes[0].Tx("tx", "gov", "submit-proposal", proposal)
	for _, nd := range nodes {
		nd.Tx("tx", "gov", "vote", "1", "yes")
	}
	return upgradeHeight
}

// waitHalt waits until every node on IAVL has halted at the switch.
func waitHalt(nodes []*Node, upgradeHeight int64) {
	halt := fmt.Sprintf("UPGRADE %q NEEDED at height: %d", nodes[0].line.SwitchUpgrade, upgradeHeight)
	for _, nd := range nodes {
		nd.WaitLog(halt, 3*time.Minute)
	}
}

// jsonObject is the JSON document a command printed after its log lines
// (nothing if it printed none, which then fails to decode).
func jsonObject(out string) []byte {
	if i := strings.Index(out, "{"); i >= 0 {
		return []byte(out[i:])
	}
	return nil
}
