package app_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const switchChainID = "nomt-switch-test"

// newLocalnet builds nomtsimd and creates n validator homes of one chain,
// each with its own ports, peered with the others, with a governance
// voting period of a few seconds.
func newLocalnet(t *testing.T, n int) []*node {
	t.Helper()
	dir := t.TempDir()
	bin := nomtsimdBinary(t)
	nodes := make([]*node, n)
	addrs := make([]string, n)
	for i := range nodes {
		nd := &node{t: t, bin: bin, home: filepath.Join(dir, fmt.Sprintf("val%d", i)), rpc: freePort(t)}
		nodes[i] = nd
		nd.run("init", fmt.Sprintf("val%d", i), "--chain-id", switchChainID, "--home", nd.home)
		nd.run("keys", "add", "val", "--keyring-backend", "test", "--home", nd.home)
		addrs[i] = strings.TrimSpace(nd.run("keys", "show", "val", "-a", "--keyring-backend", "test", "--home", nd.home))
		nd.edit("config/config.toml", `(?m)^timeout_commit = .*$`, `timeout_commit = "300ms"`)
		nd.edit("config/config.toml", `(?m)^allow_duplicate_ip = .*$`, `allow_duplicate_ip = true`)
		nd.edit("config/config.toml", `(?m)^addr_book_strict = .*$`, `addr_book_strict = false`)
		nd.edit("config/config.toml", `(?m)^pprof_laddr = .*$`, `pprof_laddr = ""`)
	}
	first := nodes[0]
	for _, addr := range addrs {
		first.run("genesis", "add-genesis-account", addr, "1000000000stake", "--home", first.home)
	}
	genesis := filepath.Join(first.home, "config", "genesis.json")
	for i, nd := range nodes {
		if i > 0 {
			copyFile(t, genesis, filepath.Join(nd.home, "config", "genesis.json"))
		}
		nd.run("genesis", "gentx", "val", "100000000stake", "--chain-id", switchChainID, "--keyring-backend", "test", "--home", nd.home)
		if i > 0 {
			matches, _ := filepath.Glob(filepath.Join(nd.home, "config", "gentx", "*.json"))
			for _, m := range matches {
				copyFile(t, m, filepath.Join(first.home, "config", "gentx", filepath.Base(m)))
			}
		}
	}
	first.run("genesis", "collect-gentxs", "--home", first.home)
	editGenesis(t, genesis, func(g map[string]any) {
		params := g["app_state"].(map[string]any)["gov"].(map[string]any)["params"].(map[string]any)
		params["voting_period"] = "6s"
		params["expedited_voting_period"] = "3s"
	})
	var peers []string
	for _, nd := range nodes {
		id := strings.TrimSpace(nd.run("comet", "show-node-id", "--home", nd.home))
		peers = append(peers, fmt.Sprintf("%s@127.0.0.1:%d", id, nd.rpc+1))
	}
	for i, nd := range nodes {
		if i > 0 {
			copyFile(t, genesis, filepath.Join(nd.home, "config", "genesis.json"))
		}
		var others []string
		for j, p := range peers {
			if j != i {
				others = append(others, p)
			}
		}
		nd.edit("config/config.toml", `(?m)^persistent_peers = .*$`, fmt.Sprintf("persistent_peers = %q", strings.Join(others, ",")))
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
