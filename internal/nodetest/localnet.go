package nodetest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// NewLocalnet creates n validator homes of one chain of the line's
// nomtsimd, each with its own ports, peered with the others, with a
// governance voting period of a few seconds.
func NewLocalnet(t *testing.T, line *Line, n int) []*Node {
	t.Helper()
	dir := t.TempDir()
	bin := line.Binary(t)
	nodes := make([]*Node, n)
	addrs := make([]string, n)
	for i := range nodes {
		nd := &Node{t: t, line: line, bin: bin, Home: filepath.Join(dir, fmt.Sprintf("val%d", i)), chainID: localnetChainID, rpc: FreePort(t)}
		nodes[i] = nd
		nd.Run("init", fmt.Sprintf("val%d", i), "--chain-id", localnetChainID, "--home", nd.Home)
		nd.Run("keys", "add", "val", "--keyring-backend", "test", "--home", nd.Home)
		addrs[i] = strings.TrimSpace(nd.Run("keys", "show", "val", "-a", "--keyring-backend", "test", "--home", nd.Home))
		nd.Edit("config/config.toml", `(?m)^timeout_commit = .*$`, `timeout_commit = "300ms"`)
		nd.Edit("config/config.toml", `(?m)^allow_duplicate_ip = .*$`, `allow_duplicate_ip = true`)
		nd.Edit("config/config.toml", `(?m)^addr_book_strict = .*$`, `addr_book_strict = false`)
		nd.Edit("config/config.toml", `(?m)^pprof_laddr = .*$`, `pprof_laddr = ""`)
	}
	first := nodes[0]
	for _, addr := range addrs {
		first.Run("genesis", "add-genesis-account", addr, "1000000000stake", "--home", first.Home)
	}
	genesis := filepath.Join(first.Home, "config", "genesis.json")
	for i, nd := range nodes {
		if i > 0 {
			copyFile(t, genesis, filepath.Join(nd.Home, "config", "genesis.json"))
		}
		nd.Run("genesis", "gentx", "val", "100000000stake", "--chain-id", localnetChainID, "--keyring-backend", "test", "--home", nd.Home)
		if i > 0 {
			matches, _ := filepath.Glob(filepath.Join(nd.Home, "config", "gentx", "*.json"))
			for _, m := range matches {
				copyFile(t, m, filepath.Join(first.Home, "config", "gentx", filepath.Base(m)))
			}
		}
	}
	first.Run("genesis", "collect-gentxs", "--home", first.Home)
	editGenesis(t, genesis, func(g map[string]any) {
		params := g["app_state"].(map[string]any)["gov"].(map[string]any)["params"].(map[string]any)
		params["voting_period"] = "6s"
		params["expedited_voting_period"] = "3s"
	})
	var peers []string
	for _, nd := range nodes {
		id := strings.TrimSpace(nd.Run("comet", "show-node-id", "--home", nd.Home))
		peers = append(peers, fmt.Sprintf("%s@127.0.0.1:%d", id, nd.rpc+1))
	}
	for i, nd := range nodes {
		if i > 0 {
			copyFile(t, genesis, filepath.Join(nd.Home, "config", "genesis.json"))
		}
		var others []string
		for j, p := range peers {
			if j != i {
				others = append(others, p)
			}
		}
		nd.Edit("config/config.toml", `(?m)^persistent_peers = .*$`, fmt.Sprintf("persistent_peers = %q", strings.Join(others, ",")))
	}
	return nodes
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func editGenesis(t *testing.T, path string, edit func(map[string]any)) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var g map[string]any
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	edit(g)
	if b, err = json.MarshalIndent(g, "", " "); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
