package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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
)

// node runs the nomtsimd binary on a one-validator localnet in a home.
type node struct {
	t    *testing.T
	bin  string
	home string
	rpc  int
	cmd  *exec.Cmd
	log  *os.File
	// startArgs are added to the start command's flags.
	startArgs []string
}

func freePort(t *testing.T) int {
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

// newNode builds nomtsimd and creates a localnet home with the given
// app.toml pruning settings.
func newNode(t *testing.T, pruning, keepRecent, interval string) *node {
	t.Helper()
	dir := t.TempDir()
	n := &node{t: t, bin: nomtsimdBinary(t), home: filepath.Join(dir, "home"), rpc: freePort(t)}
	kr := []string{"--keyring-backend", "test", "--home", n.home}
	n.run("init", "node", "--chain-id", "nomt-node-test", "--home", n.home)
	n.run(append([]string{"keys", "add", "val"}, kr...)...)
	addr := strings.TrimSpace(n.run(append([]string{"keys", "show", "val", "-a"}, kr...)...))
	n.run(append([]string{"genesis", "add-genesis-account", addr, "1000000000stake"}, kr...)...)
	n.run(append([]string{"genesis", "gentx", "val", "100000000stake", "--chain-id", "nomt-node-test"}, kr...)...)
	n.run("genesis", "collect-gentxs", "--home", n.home)
	n.edit("config/config.toml", `(?m)^timeout_commit = .*$`, `timeout_commit = "200ms"`)
	n.edit("config/app.toml", `(?m)^pruning = .*$`, fmt.Sprintf("pruning = %q", pruning))
	n.edit("config/app.toml", `(?m)^pruning-keep-recent = .*$`, fmt.Sprintf("pruning-keep-recent = %q", keepRecent))
	n.edit("config/app.toml", `(?m)^pruning-interval = .*$`, fmt.Sprintf("pruning-interval = %q", interval))
	return n
}

// run runs a nomtsimd command to completion and returns its output.
func (n *node) run(args ...string) string {
	n.t.Helper()
	out, err := n.try(args...)
	if err != nil {
		n.t.Fatalf("nomtsimd %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (n *node) try(args ...string) (string, error) {
	cmd := exec.Command(n.bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func (n *node) edit(file, pattern, replacement string) {
	n.t.Helper()
	path := filepath.Join(n.home, file)
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

func (n *node) start() {
	n.t.Helper()
	log, err := os.OpenFile(filepath.Join(n.home, "node.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		n.t.Fatal(err)
	}
	n.log = log
	n.cmd = exec.Command(n.bin, "start", "--home", n.home,
		"--rpc.laddr", fmt.Sprintf("tcp://127.0.0.1:%d", n.rpc),
		"--p2p.laddr", fmt.Sprintf("tcp://127.0.0.1:%d", n.rpc+1),
		"--grpc.address", fmt.Sprintf("127.0.0.1:%d", n.rpc+2),
		"--api.enable=false", "--grpc-web.enable=false")
	n.cmd.Args = append(n.cmd.Args, n.startArgs...)
	n.cmd.Stdout, n.cmd.Stderr = log, log
	if err := n.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { n.stop() })
}

func (n *node) stop() {
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

func (n *node) logTail() string {
	b, _ := os.ReadFile(filepath.Join(n.home, "node.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func (n *node) height() int64 {
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

func (n *node) waitHeight(want int64) {
	n.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if n.height() >= want {
			return
		}
		if n.cmd.ProcessState != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	n.t.Fatalf("the node did not reach height %d (at %d); log:\n%s", want, n.height(), n.logTail())
}

// appHashes reads the app hash of every retained height with the store's
// module-hash command (node stopped).
func (n *node) appHash(height int64) string {
	n.t.Helper()
	out := n.run("nomtstore", "module-hash", strconv.FormatInt(height, 10), "--home", n.home, "--output", "json")
	var hashes struct {
		AppHash string `json:"app_hash"`
	}
	if err := json.Unmarshal([]byte(out), &hashes); err != nil || hashes.AppHash == "" {
		n.t.Fatalf("no app hash for %d (%v) in:\n%s", height, err, out)
	}
	return hashes.AppHash
}

func (n *node) latestAndEarliest() (latest, earliest int64) {
	n.t.Helper()
	out := n.run("nomtstore", "stats", "--home", n.home, "--output", "json")
	var stats struct {
		Latest   int64 `json:"latest_version"`
		Earliest int64 `json:"earliest_version"`
	}
	if err := json.Unmarshal([]byte(out), &stats); err != nil {
		n.t.Fatalf("stats: %v\n%s", err, out)
	}
	return stats.Latest, stats.Earliest
}

// TestNodeRollback: the node binary's rollback after N blocks, then a
// restart that re-executes block N reproduces the same app hash; with
// pruning, rolling back across a pruned height is refused with a clear
// error and changes nothing, and the node still starts.
func TestNodeRollback(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the node binary; covered without -short")
	}
	n := newNode(t, "custom", "2", "10")
	n.start()
	n.waitHeight(24)
	n.stop()

	latest, earliest := n.latestAndEarliest()
	if earliest <= 1 {
		t.Fatalf("pruning (keep 2, every 10) did not run: earliest %d at %d", earliest, latest)
	}
	hashes := map[int64]string{}
	for h := earliest; h <= latest; h++ {
		hashes[h] = n.appHash(h)
	}
	out := n.run("rollback", "--home", n.home)
	if !strings.Contains(out, fmt.Sprintf("Rolled back state to height %d", latest-1)) {
		t.Fatalf("rollback said:\n%s", out)
	}
	if l, _ := n.latestAndEarliest(); l != latest-1 {
		t.Fatalf("after the rollback the store is at %d, want %d", l, latest-1)
	}
	// The restart re-executes block `latest` from the block store.
	n.start()
	n.waitHeight(latest + 3)
	n.stop()
	if got := n.appHash(latest); got != hashes[latest] {
		t.Fatalf("height %d re-executed to app hash %s, was %s", latest, got, hashes[latest])
	}
	if got := n.appHash(latest - 1); got != hashes[latest-1] {
		t.Fatalf("height %d: app hash %s, was %s", latest-1, got, hashes[latest-1])
	}

	// Hard rollbacks walk back until the store's earliest height; the
	// next one is refused before CometBFT's state changes.
	var refusal string
	for range 30 {
		l, e := n.latestAndEarliest()
		out, err := n.try("rollback", "--hard", "--home", n.home)
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
	l, _ := n.latestAndEarliest()
	state := `{"height":"0","round":0,"step":0}`
	if err := os.WriteFile(filepath.Join(n.home, "data", "priv_validator_state.json"), []byte(state), 0o600); err != nil {
		t.Fatal(err)
	}
	n.start()
	n.waitHeight(l + 3)
}
