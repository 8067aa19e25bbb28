// Package crossline checks that a store directory written through one SDK
// line's CommitMultiStore opens through the other's (the v0.53 store in
// package multistore, the v0.54 store in module storev2): same engine
// format, same commit-info encoding, same app hash, proofs that verify.
//
// The two lines live in Go modules whose dependency graphs cannot be
// built together, so one test binary cannot hold both. Each line's test
// calls Run on a shared directory; `make test` runs them in turn
// (v0.53, v0.54, v0.53 again), and each run opens what the other line
// left, checks it, and writes a block on top of it for the next run to
// check. The last run requires that each directory went through both.
package crossline

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// EnvDir names the environment variable holding the shared directory; the
// test skips without it.
const EnvDir = "NOMTSTORE_CROSSLINE_DIR"

// Stores are the stores every directory mounts (as IAVL-type stores).
var Stores = []string{"acc", "bank", "ibc"}

// Store is one line's CommitMultiStore as the check drives it.
type Store interface {
	// Set writes key in store; a nil value deletes it.
	Set(store string, key, value []byte)
	Get(store string, key []byte) []byte
	// Commit commits the block and returns its version and app hash.
	Commit() (version int64, appHash []byte)
	// LastCommit is the version and app hash of the last commit.
	LastCommit() (version int64, appHash []byte)
	// VerifyProof queries key in store at version with a proof, and
	// verifies the proof (of value, or of absence when value is nil)
	// against appHash with the SDK's proof runtime.
	VerifyProof(store string, key, value []byte, version int64, appHash []byte) error
	Close() error
}

// Line is an SDK line's adapter for the check.
type Line struct {
	// Name is the line ("v0.53", "v0.54").
	Name string
	// Open opens the store in dir, mounts Stores and loads the latest
	// version.
	Open func(dir string) (Store, error)
}

// manifest is what a directory holds, as the lines that wrote it know.
type manifest struct {
	Version int64                        `json:"version"`
	AppHash string                       `json:"app_hash"`
	Values  map[string]map[string]string `json:"values"` // store -> hex key -> hex value ("" absent)
	// Lines are the lines that wrote blocks, in order.
	Lines []string `json:"lines"`
}

// Run checks and extends the directories in root (from $NOMTSTORE_CROSSLINE_DIR).
func Run(t *testing.T, line Line) {
	root := os.Getenv(EnvDir)
	if root == "" {
		t.Skipf("set %s (make test does) to check store directories across the SDK lines", EnvDir)
	}
	entries, err := os.ReadDir(root)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	own := "by-" + line.Name
	found := false
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		found = found || e.Name() == own
		checkAndExtend(t, line, filepath.Join(root, e.Name()))
	}
	if !found {
		create(t, line, filepath.Join(root, own))
		return
	}
	// A second run of a line: every directory has been through both.
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		m := readManifest(t, filepath.Join(root, e.Name()))
		if len(slices.Compact(slices.Sorted(slices.Values(m.Lines)))) < 2 {
			t.Errorf("%s: written only by %v: the other line's run did not open it", e.Name(), m.Lines)
		}
	}
}

// create writes a new directory through line: a few blocks of writes and
// deletions in every store.
func create(t *testing.T, line Line, dir string) {
	s, err := line.Open(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatalf("%s: opening a new store: %v", line.Name, err)
	}
	m := &manifest{Values: map[string]map[string]string{}}
	for block := range 3 {
		writeBlock(s, m, line.Name, block)
		m.Version, m.AppHash = commit(s)
	}
	m.Lines = append(m.Lines, line.Name)
	closeStore(t, s)
	writeManifest(t, dir, m)
}

// writeBlock writes one block's keys (some overwriting or deleting
// earlier ones) and records them in m.
func writeBlock(s Store, m *manifest, lineName string, block int) {
	for i, store := range Stores {
		if m.Values[store] == nil {
			m.Values[store] = map[string]string{}
		}
		for k := range 40 {
			key := fmt.Appendf(nil, "key/%02d", (k*7+block*13+i)%60)
			if (k+block)%9 == 0 {
				s.Set(store, key, nil)
				m.Values[store][hex.EncodeToString(key)] = ""
				continue
			}
			value := fmt.Appendf(nil, "%s block %d store %s key %d", lineName, block, store, k)
			s.Set(store, key, value)
			m.Values[store][hex.EncodeToString(key)] = hex.EncodeToString(value)
		}
	}
}

func commit(s Store) (int64, string) {
	version, hash := s.Commit()
	return version, hex.EncodeToString(hash)
}

// checkAndExtend opens dir through line, checks the version, app hash,
// every value and its proof against the manifest, then commits a block of
// this line on top and records it.
func checkAndExtend(t *testing.T, line Line, dir string) {
	m := readManifest(t, dir)
	s, err := line.Open(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatalf("%s: opening %s (written by %v): %v", line.Name, dir, m.Lines, err)
	}
	defer func() {
		if s != nil {
			closeStore(t, s)
		}
	}()
	what := fmt.Sprintf("%s reading %s (written by %v)", line.Name, filepath.Base(dir), m.Lines)
	version, hash := s.LastCommit()
	if version != m.Version || hex.EncodeToString(hash) != m.AppHash {
		t.Fatalf("%s: last commit %d %x, the writer committed %d %s", what, version, hash, m.Version, m.AppHash)
	}
	for _, store := range Stores {
		for hk, hv := range m.Values[store] {
			key, _ := hex.DecodeString(hk)
			var want []byte
			if hv != "" {
				want, _ = hex.DecodeString(hv)
			}
			got := s.Get(store, key)
			if (got == nil) != (want == nil) || string(got) != string(want) {
				t.Fatalf("%s: %s/%s = %q, want %q", what, store, key, got, want)
			}
			if err := s.VerifyProof(store, key, want, version, hash); err != nil {
				t.Fatalf("%s: proof of %s/%s at %d: %v", what, store, key, version, err)
			}
		}
	}
	writeBlock(s, m, line.Name, len(m.Lines)+3)
	m.Version, m.AppHash = commit(s)
	m.Lines = append(m.Lines, line.Name)
	closeStore(t, s)
	s = nil
	writeManifest(t, dir, m)
}

func closeStore(t *testing.T, s Store) {
	if err := s.Close(); err != nil {
		t.Fatalf("closing: %v", err)
	}
}

func readManifest(t *testing.T, dir string) *manifest {
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	m := &manifest{}
	if err := json.Unmarshal(b, m); err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	return m
}

func writeManifest(t *testing.T, dir string, m *manifest) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}
